#!lua
-- pushadd.lua: record push jobs of one invitation (Store.Add's first step),
-- except those recorded before, whatever their state.
--
-- KEYS[1]   the invitation's push hash
-- ARGV[1]   expires (ms), "0" for none: the hash's field x and PEXPIREAT,
--           moved later, never earlier
-- ARGV[2..] per job, five: the job key k (netstrings of user, device and
--           kind); the ring index field of its user ("r" .. netstring of
--           the user) for a ring job, "" for another kind; the netstring of
--           its device; the encoded job; its attempts
--
-- A recorded job is the fields j<k> (the job), s<k> ("p" pending, or "f"
-- and the outcome once finished) and a<k> (attempts); a ring job is also
-- listed in its user's ring index, for Rung.
--
-- Returns the keys of the jobs given that are pending, new or not: the
-- caller then enters those not yet in the due set (ZADD NX), which repairs
-- an Add that died between its two steps when it is made again.

local key = KEYS[1]
local pending = {}
for i = 2, #ARGV, 5 do
  local k, ring = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', key, 'j' .. k, ARGV[i + 3]) == 1 then
    redis.call('HSET', key, 's' .. k, 'p', 'a' .. k, ARGV[i + 4])
    if ring ~= '' then
      local devices = redis.call('HGET', key, ring) or ''
      redis.call('HSET', key, ring, devices .. ARGV[i + 2])
    end
    pending[#pending + 1] = k
  elseif redis.call('HGET', key, 's' .. k) == 'p' then
    pending[#pending + 1] = k
  end
end
local expires = tonumber(ARGV[1])
if expires > 0 and expires > tonumber(redis.call('HGET', key, 'x') or '0') then
  redis.call('HSET', key, 'x', ARGV[1])
  redis.call('PEXPIREAT', key, ARGV[1])
end
return pending
