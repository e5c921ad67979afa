#!lua
-- tokset.lua: point a token's index entry at a registration (the first step
-- of Store.Register), under a new version.
--
-- KEYS[1]  the token's index key
-- ARGV[1]  the owner: netstrings of user and device
--
-- The entry is the owner followed by the netstring of its version. Versions
-- order the Registers of one token: each is above the one before, and at
-- least Redis's clock in microseconds, so that they keep rising when the
-- entry was removed in between (a script takes longer than a microsecond).
--
-- Returns {the entry replaced, or "", the new version}.

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

local prev = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
local version = tonumber(t[1]) * 1000000 + tonumber(t[2])
if prev then
  version = math.max(version, tonumber(decodeList(prev)[3]) + 1)
end
local v = string.format('%.0f', version)
redis.call('SET', KEYS[1], ARGV[1] .. #v .. ':' .. v .. ',')
return {prev or '', v}
