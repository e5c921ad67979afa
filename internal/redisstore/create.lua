#!lua
-- create.lua: store a new invitation unless its ID is taken.
--
-- KEYS[1]   the invitation's hash
-- ARGV[1]   Expires (ms since epoch), "0" for never: the key's PEXPIREAT
-- ARGV[2]   the field of the creation's outbox entry (a:<token>), or ""
-- ARGV[3..] the hash's fields and values, in pairs (that entry among them)
--
-- Returns the status codes of store.go: 0 (statusOK, stored) or 6
-- (statusExists, the ID is taken). An invitation stored already with the
-- same creation entry is this very Create, tried again (go-redis does
-- across a reconnect): 0.

local OK, EXISTS = 0, 6

if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[2] ~= '' and (redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 or
      redis.call('HEXISTS', KEYS[1], 'd:' .. string.sub(ARGV[2], 3)) == 1) then
    return OK
  end
  return EXISTS
end
-- HSET in chunks: unpack of a very long ARGV would overflow Lua's C stack.
local n = #ARGV
local i = 3
while i <= n do
  local j = math.min(i + 199, n)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
if tonumber(ARGV[1]) > 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return OK
