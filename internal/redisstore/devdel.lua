#!lua
-- devdel.lua: remove one registration of a user, if it is still one the
-- caller means.
--
-- KEYS[1]  the user's device hash
-- ARGV[1]  the field: netstrings of the device ID and the platform
-- ARGV[2]  the token it must hold, "" for any
-- ARGV[3]  the highest version it may have, "" for any: a registration
--          made again since, under a higher version, stays
--
-- Returns the value removed, or nil when nothing was.

-- decodeList reverses store.go's encodeList: netstrings, "3:bob,5:carol,".
local function decodeList(s)
  local out, i = {}, 1
  while i <= #s do
    local colon = string.find(s, ':', i, true)
    local n = tonumber(string.sub(s, i, colon - 1))
    out[#out + 1] = string.sub(s, colon + 1, colon + n)
    i = colon + n + 2
  end
  return out
end

local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then
  return nil
end
local f = decodeList(v)
if (ARGV[2] ~= '' and f[1] ~= ARGV[2]) or (ARGV[3] ~= '' and tonumber(f[4]) > tonumber(ARGV[3])) then
  return nil
end
redis.call('HDEL', KEYS[1], ARGV[1])
return v
