#!lua
-- admitcreate.lua: admit.lua and create.lua in one step, with the entries
-- Create writes around create.lua, for a single server (or Sentinel) only:
-- its keys are in many slots, which Redis Cluster refuses. One round trip
-- per invite where Admit and Create take two.
--
-- KEYS[1]       the invitation's hash
-- KEYS[2]       the deadline set
-- KEYS[3]       the outbox set (announce)
-- KEYS[4]       the inviter's budget (admit.lua)
-- KEYS[5]       the inviter's invitations (out)
-- KEYS[6..5+n]  each invitee's pending index, in the order of the invitees
-- ARGV[1]   now (ms, signald's clock)
-- ARGV[2]   the emission interval (ms per invitee)
-- ARGV[3]   the budget's capacity (ms: burst times the interval)
-- ARGV[4]   MaxActive
-- ARGV[5]   MaxPending
-- ARGV[6]   the invitation's ID
-- ARGV[7]   Deadline (ms), "0" for none
-- ARGV[8]   Expires (ms), "0" for never: the keys' PEXPIREAT, the index score
-- ARGV[9]   "1" to index the invitation under its invitees (not OnlineUserOnly)
-- ARGV[10]  announceBy (ms): the outbox entries' score
-- ARGV[11]  the field of the creation's outbox entry (a:<token>), or ""
-- ARGV[12]  t, how many outbox tokens follow
-- ARGV[13..12+t]  the tokens
-- ARGV[13+t..]    the hash's fields and values, in pairs
--
-- Returns the status codes of store.go: 0 (statusOK, stored), 6
-- (statusExists, the ID is taken), 7 (statusRateLimited), or 8
-- (statusRecount: a bound read from the indexes is at its limit, which
-- the indexes' entries of ended invitations may cause; Go makes the count
-- exact and creates with create.lua if still admitted). Budget and counts
-- are admit.lua's and Admit's; the creation is Create's.

local OK, EXISTS, RATE, RECOUNT = 0, 6, 7, 8

local n = #KEYS - 5
local created = ARGV[11]
if redis.call('EXISTS', KEYS[1]) == 1 then
  if created ~= '' and (redis.call('HEXISTS', KEYS[1], created) == 1 or
      redis.call('HEXISTS', KEYS[1], 'd:' .. string.sub(created, 3)) == 1) then
    return OK -- this very call, tried again: admitted and stored already
  end
  return EXISTS
end

-- The budget, as admit.lua spends it.
local now = tonumber(ARGV[1])
local capacity = tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[4]) or 0), now)
local nxt = tat + n * tonumber(ARGV[2])
local admitted = true
if nxt - now > capacity then
  nxt = now + capacity
  admitted = false
end
redis.call('SET', KEYS[4], string.format('%.0f', nxt), 'PX', math.max(math.ceil(nxt - now), 1))
if not admitted then
  return RATE
end

-- The counts, as bounds: entries not expired, of invitations that may have
-- ended.
local min = '(' .. ARGV[1]
if redis.call('ZCOUNT', KEYS[5], min, '+inf') >= tonumber(ARGV[4]) then
  return RECOUNT
end
local maxPending = tonumber(ARGV[5])
for i = 6, 5 + n do
  if redis.call('ZCOUNT', KEYS[i], min, '+inf') >= maxPending then
    return RECOUNT
  end
end

-- The creation: Create's entries, then create.lua's hash.
local id = ARGV[6]
local expires = tonumber(ARGV[8])
local score = '+inf'
if expires > 0 then
  score = ARGV[8]
end
if tonumber(ARGV[7]) > 0 then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[7], id)
end
local t = tonumber(ARGV[12])
for i = 13, 12 + t do
  redis.call('ZADD', KEYS[3], ARGV[10], id .. '\n' .. ARGV[i])
end
-- An index expires with its latest invitation: GT extends an expiry that is
-- earlier, which is the usual case (one command); when it does nothing the
-- key has a later expiry, or none (new, or persisted), which NX then sets.
local function index(key)
  redis.call('ZADD', key, 'NX', score, id)
  if expires > 0 then
    if redis.call('PEXPIREAT', key, ARGV[8], 'GT') == 0 then
      redis.call('PEXPIREAT', key, ARGV[8], 'NX')
    end
  else
    redis.call('PERSIST', key)
  end
end
index(KEYS[5])
if ARGV[9] == '1' then
  for i = 6, 5 + n do
    index(KEYS[i])
  end
end
-- HSET in chunks: unpack of a very long ARGV would overflow Lua's C stack.
local last = #ARGV
local i = 13 + t
while i <= last do
  local j = math.min(i + 199, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
if expires > 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[8])
end
return OK
