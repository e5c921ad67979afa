#!lua
-- publish.lua: keep one event of one user and send it to the instances that
-- watch the user, in one step, so that the order of the user's Pub/Sub
-- messages is the order of the user's stream.
--
-- KEYS[1]  the user's stream of kept events (one field per entry: f, the
--          frame without eventID)
-- KEYS[2]  the user's hash inviteID -> eventID
-- KEYS[3]  the user's shard channel. Not a key, but named here so that
--          Redis Cluster checks that it shares the keys' slot, which
--          SPUBLISH from a script requires.
-- KEYS[4]  the user's presence hash: "<node>\n<device>" -> ms it lapses
-- ARGV[1]  how many events to keep; 0: this event is not kept (no eventID)
-- ARGV[2]  retention (ms): the stream and the hash expire this long after
--          the newest event
-- ARGV[3]  inviteID whose ringing this event is, or ""
-- ARGV[4]  the message header: "<origin node>\n<origin session>\n<kind>"
-- ARGV[5]  the frame
-- ARGV[6]  a key unique to this event, or "": an event with a key reaches
--          the user at most once however often it is published (an
--          announcement made again because its first try failed part-way)
-- ARGV[7]  the connection that caused the event, "<node>\n<session>", or
--          "": kept beside the frame (field o), so that this connection,
--          catching up after a gap, skips it as it did live
-- ARGV[8]  "1" to report the user's foreground devices, else ""
-- ARGV[9]  now (ms), on the publisher's clock: presence entries that lapsed
--          before it are dropped
-- ARGV[10] the most bytes of frames kept for the user
--
-- The message is "<eventID>\n<prev>\n<header>\n<frame>", prev being the
-- eventID of the user's kept event before this one ("" for the first), so
-- that a receiver can tell that it missed one. Both are "" for an event not
-- kept.
--
-- Returns SPUBLISH's count: how many subscriptions (instances watching the
-- user) the message reached; -1 when the event was published to this user
-- before. With ARGV[8], {count, device, ...}: the devices with a foreground
-- connection on some instance, each once, read first, so that an event
-- published again reports them too.

local keep = tonumber(ARGV[1])
local once = ARGV[6]

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- The eventID: the entry ID with both numbers zero-padded, so that byte-wise
-- order is stream order.
local function pad(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return string.rep('0', 13 - #ms) .. ms .. '-' .. string.rep('0', 10 - #seq) .. seq
end

local function older(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

local present
if ARGV[8] == '1' then
  present = {}
  local seen = {}
  local now = tonumber(ARGV[9])
  local p = redis.call('HGETALL', KEYS[4])
  for i = 1, #p, 2 do
    if tonumber(p[i + 1]) <= now then
      redis.call('HDEL', KEYS[4], p[i])
    else
      local device = string.match(p[i], '\n(.*)$')
      if device and not seen[device] then
        seen[device] = true
        present[#present + 1] = device
      end
    end
  end
end

-- answer adds the foreground devices to the count when asked for them.
local function answer(n)
  if not present then
    return n
  end
  local out = {n}
  for _, d in ipairs(present) do
    out[#out + 1] = d
  end
  return out
end

-- The once-key and the kept-bytes counter, in one read.
local seen = redis.call('HMGET', KEYS[2], once ~= '' and ('once:' .. once) or 'kb', 'kb')
if once ~= '' and seen[1] then
  return answer(-1)
end

local id, prev = '', ''
local kept = 0 -- the bytes of the frames kept, this one's not counted
if keep > 0 then
  -- Read before trimming, which may drop every entry (keep = 1). Entries
  -- leave only from the oldest end, so the newest is the last one issued.
  -- Read from the stream itself, not from a copy kept in the hash: a writer
  -- that did not update the copy (an older signald during a rolling
  -- upgrade) would make prev skip its event, and a connection that had
  -- missed that event would take this one as the next and never replay it.
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if newest then
    prev = pad(newest[1])
  end
  -- The oldest go while the new one would pass either bound, count or
  -- bytes (field kb of the hash: the bytes of the kept frames); the new
  -- one is always kept. Trim with XDEL, not XADD MAXLEN: Redis 7.0 records
  -- the newest dropped ID as the stream's max-deleted-entry-id only for
  -- XDEL, and replay.lua needs it.
  local size, keepBytes = #ARGV[5], tonumber(ARGV[10])
  local n = redis.call('XLEN', KEYS[1])
  if n > 0 then
    kept = tonumber(seen[2] or '0')
  end
  while n > 0 and (n + 1 > keep or kept + size > keepBytes) do
    local e = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
    for i = 1, #e[2], 2 do
      if e[2][i] == 'f' then
        kept = kept - #e[2][i + 1]
      end
    end
    redis.call('XDEL', KEYS[1], e[1])
    n = n - 1
  end
  if ARGV[7] ~= '' then
    id = pad(redis.call('XADD', KEYS[1], '*', 'f', ARGV[5], 'o', ARGV[7]))
  else
    id = pad(redis.call('XADD', KEYS[1], '*', 'f', ARGV[5]))
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end

-- The hash maps inviteIDs (and once-keys) to the eventID they were sent
-- under; a once-key of an event not kept gets the newest kept event's ID, or
-- the smallest ID, so that the trimming below ages it like the others.
-- One HSET for those and the kept-bytes counter.
local fields = {}
if ARGV[3] ~= '' then
  fields[#fields + 1] = ARGV[3]
end
if once ~= '' then
  fields[#fields + 1] = 'once:' .. once
end
if #fields > 0 or keep > 0 then
  local value = id
  if value == '' and #fields > 0 then
    local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
    value = newest and pad(newest[1]) or '0000000000000-0000000000'
  end
  local args = {}
  for _, f in ipairs(fields) do
    args[#args + 1] = f
    args[#args + 1] = value
  end
  if keep > 0 then
    args[#args + 1] = 'kb'
    args[#args + 1] = math.max(kept, 0) + #ARGV[5]
  end
  redis.call('HSET', KEYS[2], unpack(args))
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  -- Forget what was sent before the oldest kept event, now and then rather
  -- than on every call, so that the hash stays small.
  if keep > 0 and redis.call('HLEN', KEYS[2]) > 2 * keep + 1 then
    local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1]
    local rung = redis.call('HGETALL', KEYS[2])
    for i = 1, #rung, 2 do
      if rung[i] ~= 'kb' and older(rung[i + 1], oldest) then
        redis.call('HDEL', KEYS[2], rung[i])
      end
    end
  end
end

return answer(redis.call('SPUBLISH', KEYS[3], id .. '\n' .. prev .. '\n' .. ARGV[4] .. '\n' .. ARGV[5]))
