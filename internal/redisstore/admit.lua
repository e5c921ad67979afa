#!lua
-- admit.lua: spend an inviter's invite budget, a generic cell rate
-- algorithm: the key holds when the budget is whole again (ms), and an
-- invite of n invitees moves it n emission intervals later.
--
-- KEYS[1]  the inviter's budget (a string: that time, ms)
-- ARGV[1]  now (ms, signald's clock)
-- ARGV[2]  n, the invitees
-- ARGV[3]  the emission interval (ms per invitee)
-- ARGV[4]  the capacity (ms: burst times the interval)
--
-- Returns 1 (admitted) or 0 (refused; the budget left is spent, so that a
-- caller that keeps trying stays refused until it pauses).

local now = tonumber(ARGV[1])
local capacity = tonumber(ARGV[4])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local nxt = tat + tonumber(ARGV[2]) * tonumber(ARGV[3])
local ok = 1
if nxt - now > capacity then
  nxt = now + capacity
  ok = 0
end
-- Gone once whole again: an idle user costs nothing.
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.max(math.ceil(nxt - now), 1))
return ok
