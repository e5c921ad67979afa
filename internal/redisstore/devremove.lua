#!lua
-- devremove.lua: remove every registration of one device of a user.
--
-- KEYS[1]  the user's device hash
-- ARGV[1]  the netstring of the device ID: the start of each of its fields
--          (netstrings end where they say, so no other device's field
--          starts with it)
--
-- Returns {field, value, ...} of the registrations removed, for the caller
-- to clear their tokens' index entries.

local all = redis.call('HGETALL', KEYS[1])
local removed = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    removed[#removed + 1] = all[i]
    removed[#removed + 1] = all[i + 1]
  end
end
return removed
