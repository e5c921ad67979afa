#!lua
-- devput.lua: set one registration of a user (Store.Register's second
-- step), unless the device has registered the same token under a higher
-- version since: of a device's Registers racing each other, the last to
-- take the index entry keeps the registration.
--
-- KEYS[1]  the user's device hash
-- ARGV[1]  the field: netstrings of the device ID and the platform
-- ARGV[2]  the value: netstrings of token, sandbox, updated and version
-- ARGV[3]  the token
-- ARGV[4]  the version
--
-- Returns the value it replaced, or nil when there was none or it stayed:
-- the index entry of a replaced token is then the caller's to clear.

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

local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local f = decodeList(old)
  if f[1] == ARGV[3] and tonumber(f[4]) > tonumber(ARGV[4]) then
    return nil
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
