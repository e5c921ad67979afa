#!lua
-- claim.lua: claim due members of a sorted set of times for one claimer,
-- atomically: deadlines, or outbox entries.
--
-- KEYS[1]  the sorted set (score: ms when the member may next be claimed)
-- ARGV[1]  now (ms)
-- ARGV[2]  now + lease (ms)
-- ARGV[3]  the most members to claim
--
-- Returns {claimed members, earliest score left or ""}: the claimed members
-- are each re-scored to now + lease so that no other claimer gets them
-- before the lease runs out; the earliest score lets the caller sleep until
-- the next one is due.

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {ids, first[2] or ''}
