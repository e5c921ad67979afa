#!lua
-- tokdel.lua: remove a token's index entry if it still names the owner the
-- caller means.
--
-- KEYS[1]  the token's index key
-- ARGV[1]  the owner: netstrings of user and device, the start of the entry
-- ARGV[2]  the highest version the entry may have, "" for any: a Register
--          of the token by the same device since, under a higher version,
--          keeps its entry
--
-- Returns 1 when removed, 0 otherwise.

local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] ~= '' then
  -- The rest is the netstring of the version.
  local rest = string.sub(v, #ARGV[1] + 1)
  local colon = string.find(rest, ':', 1, true)
  if tonumber(string.sub(rest, colon + 1, -2)) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('DEL', KEYS[1])
return 1
