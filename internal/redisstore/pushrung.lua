#!lua
-- pushrung.lua: the ring jobs of some users of one invitation (Store.Rung),
-- finished or not.
--
-- KEYS[1]   the invitation's push hash
-- ARGV[1]   the netstring of the ring kind
-- ARGV[2..] netstrings of the users
--
-- Returns {job key, job, attempts, ...}.

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

local out = {}
for u = 2, #ARGV do
  local devices = redis.call('HGET', KEYS[1], 'r' .. ARGV[u])
  if devices then
    for _, d in ipairs(decodeList(devices)) do
      local k = ARGV[u] .. #d .. ':' .. d .. ',' .. ARGV[1]
      local v = redis.call('HMGET', KEYS[1], 'j' .. k, 'a' .. k)
      if v[1] then
        out[#out + 1] = k
        out[#out + 1] = v[1]
        out[#out + 1] = v[2] or '0'
      end
    end
  end
end
return out
