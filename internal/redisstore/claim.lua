#!lua
-- claim.lua: claim due deadlines for one claimer, atomically.
--
-- KEYS[1]  the deadlines sorted set (member: invitation ID, score: ms when
--          it may next be claimed)
-- ARGV[1]  now (ms)
-- ARGV[2]  now + lease (ms)
-- ARGV[3]  the most IDs to claim
--
-- Returns the claimed IDs, each re-scored to now + lease so that no other
-- claimer gets it before the lease runs out.

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return ids
