#!lua
-- transition.lua: one change to one invitation, atomically. It is a
-- transcription of invite.Apply (internal/invite/transition.go): the same
-- checks in the same order, the same result. Change both together; the
-- contract suite (internal/invite/storetest) holds them to each other.
--
-- KEYS[1]  the invitation's hash (its fields are described in store.go)
-- KEYS[2]  the deadlines sorted set, when it is on the same server (not on
--          Redis Cluster): a change other than a timeout that ends the
--          invitation removes its deadline, so that it never comes due
-- ARGV[1]  action: accept, reject, cancel, modify or timeout
-- ARGV[2]  actor, "" for timeout
-- ARGV[3]  data, used by modify
-- ARGV[4]  now (ms since epoch, on signald's clock, never Redis's)
-- ARGV[5]  now + retention (ms): Expires, should this change end it
-- ARGV[6]  the change's announcement token, or "" (Change.Token)
-- ARGV[7]  the announcement to keep under field a:<token> until announced,
--          without its sequence number: netstrings of action, actor, data,
--          origin node, origin session. The script numbers it (field seq)
--          and puts the number first.
-- ARGV[8]  the invitation's ID, its member in KEYS[2]
--
-- Returns {status} when the change is refused, or
-- {0, ended (0 or 1), {changed invitee, ...}, {HGETALL after the change}}.

local OK, NOT_FOUND, FORBIDDEN, ENDED, NOT_DUE, INVALID = 0, 1, 2, 3, 4, 5

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

local key = KEYS[1]
local action, actor = ARGV[1], ARGV[2]
local now = tonumber(ARGV[4])

local h = redis.call('HMGET', key, 'inviter', 'expires', 'ended', 'deadline', 'pending')
if not h[1] then
  return {NOT_FOUND}
end
local inviter = h[1]
local expires, deadline = tonumber(h[2]), tonumber(h[4])
local active = tonumber(h[3]) == 0
local pending = tonumber(h[5])
if expires > 0 and now >= expires then
  return {NOT_FOUND} -- dropped: past its lifetime, or its retention
end

-- Applied already by this very change (its token is recorded, as an entry
-- or as the marker d:<token> of an entry forgotten in its step): a client
-- that lost the answer tries again (go-redis does across a reconnect) and
-- must not be told it failed. Apply's reapplied: the invitation as it is.
if ARGV[6] ~= '' and (redis.call('HEXISTS', key, 'a:' .. ARGV[6]) == 1 or redis.call('HEXISTS', key, 'd:' .. ARGV[6]) == 1) then
  local ended = 0
  if not active and tonumber(h[3]) == now then
    ended = 1
  end
  local to = ({accept = 'accepted', reject = 'rejected', cancel = 'cancelled', timeout = 'timeout'})[action]
  local changed = {}
  if to then
    for _, u in ipairs(decodeList(redis.call('HGET', key, 'invitees') or '')) do
      if redis.call('HGET', key, 's:' .. u) == to and (action == 'cancel' or action == 'timeout' or u == actor) then
        changed[#changed + 1] = u
      end
    end
  end
  return {OK, ended, changed, redis.call('HGETALL', key)}
end

-- Permission first, whether or not the invitation has ended.
local actorState = redis.call('HGET', key, 's:' .. actor)
if action == 'accept' or action == 'reject' then
  if not actorState then
    return {FORBIDDEN}
  end
elseif action == 'cancel' or action == 'modify' then
  if actor ~= inviter then
    return {FORBIDDEN}
  end
elseif action == 'timeout' then
  if not active then
    return {ENDED}
  end
  if deadline == 0 or now < deadline then
    return {NOT_DUE}
  end
else
  return {INVALID}
end
-- Past its deadline an invitation counts as ended even before the timeout
-- has fired, so that an accept at the deadline and the timeout cannot both win.
if action ~= 'timeout' and (not active or (deadline > 0 and now >= deadline)) then
  return {ENDED}
end

local changed = {}
if action == 'accept' or action == 'reject' then
  if actorState ~= 'pending' then
    return {ENDED}
  end
  redis.call('HSET', key, 's:' .. actor, action == 'accept' and 'accepted' or 'rejected')
  changed[1] = actor
elseif action == 'cancel' or action == 'timeout' then
  local to = action == 'cancel' and 'cancelled' or 'timeout'
  for _, u in ipairs(decodeList(redis.call('HGET', key, 'invitees') or '')) do
    local field = 's:' .. u
    if redis.call('HGET', key, field) == 'pending' then
      redis.call('HSET', key, field, to)
      changed[#changed + 1] = u
    end
  end
else -- modify
  redis.call('HSET', key, 'data', ARGV[3])
end

-- Every invitee changed above was pending, and was counted in 'pending'.
pending = pending - #changed
local ended = 0
if pending == 0 then
  ended = 1
  redis.call('HSET', key, 'pending', 0, 'ended', ARGV[4], 'expires', ARGV[5])
elseif #changed > 0 then
  redis.call('HSET', key, 'pending', pending)
end
-- Read before moving the expiry: an Expires already past on Redis's clock
-- deletes the key at once.
if ARGV[6] ~= '' then
  local seq = tostring(redis.call('HINCRBY', key, 'seq', 1))
  redis.call('HSET', key, 'a:' .. ARGV[6], #seq .. ':' .. seq .. ',' .. ARGV[7])
end
local fields = redis.call('HGETALL', key)
if ended == 1 then
  redis.call('PEXPIREAT', key, ARGV[5])
  if KEYS[2] and action ~= 'timeout' then
    redis.call('ZREM', KEYS[2], ARGV[8])
  end
end
return {OK, ended, changed, fields}
