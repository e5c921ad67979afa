#!lua
-- pushmark.lua: change a pending push job: its attempts (Store.Retry) or
-- its state, to finished (Store.Finish). A job finished or gone (expired)
-- stays so, and a hash that expired is not brought back.
--
-- KEYS[1]  the invitation's push hash
-- ARGV[1]  the job key k
-- ARGV[2]  the field's letter: "a" (attempts) or "s" (state)
-- ARGV[3]  its new value
--
-- Returns 1 when changed, 0 when the job is not pending.

if redis.call('HGET', KEYS[1], 's' .. ARGV[1]) ~= 'p' then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2] .. ARGV[1], ARGV[3])
return 1
