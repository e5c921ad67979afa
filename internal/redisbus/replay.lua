#!lua flags=no-writes
-- replay.lua: a user's kept events after one, and whether none after it was
-- dropped.
--
-- KEYS[1]  the user's stream of kept events
-- ARGV[1]  the milliseconds part of the entry ID to resume after, or ""
--          to replay every kept event
-- ARGV[2]  its sequence part
--
-- Returns {1, id, frame, origin, id, frame, origin, ...} (entry IDs
-- unpadded, oldest first; origin "" when the entry has none)
-- when every kept event after the ID is there, else {0}: the stream is gone
-- (never written, or expired), the ID is newer than any it issued, or older
-- than what it still keeps. From "" it returns {1, ...} unless an event of
-- the stream was ever dropped.

-- entries returns {1, id, frame, origin, ...} of the entries from start on.
local function entries(start)
  local out = {1}
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], start, '+')) do
    local f = e[2]
    local frame, origin = '', ''
    for i = 1, #f, 2 do
      if f[i] == 'f' then
        frame = f[i + 1]
      elseif f[i] == 'o' then
        origin = f[i + 1]
      end
    end
    out[#out + 1] = e[1]
    out[#out + 1] = frame
    out[#out + 1] = origin
  end
  return out
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[1] == '' then
    return {1}
  end
  return {0}
end

local last, maxdel, first
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  local k = info[i]
  if k == 'last-generated-id' then
    last = info[i + 1]
  elseif k == 'max-deleted-entry-id' then
    maxdel = info[i + 1]
  elseif k == 'first-entry' then
    first = info[i + 1] and info[i + 1][1]
  end
end

if ARGV[1] == '' then
  local dropped = false
  for i = 1, #info, 2 do
    if info[i] == 'max-deleted-entry-id' then
      dropped = info[i + 1] ~= '0-0'
    end
  end
  if dropped then
    return {0}
  end
  return entries('-')
end

local ams, aseq = tonumber(ARGV[1]), tonumber(ARGV[2])

-- cmp compares the ID to resume after with id: -1, 0 or 1.
local function cmp(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  ms, seq = tonumber(ms), tonumber(seq)
  if ams ~= ms then
    return ams < ms and -1 or 1
  end
  if aseq ~= seq then
    return aseq < seq and -1 or 1
  end
  return 0
end

-- publish.lua drops events with XDEL, so max-deleted-entry-id is the newest
-- dropped one. While none was dropped (0-0), the oldest entry bounds instead:
-- an older ID belongs to a stream that expired before this one began.
local lower = maxdel
if maxdel == '0-0' then
  lower = first
end
if not last or not lower or cmp(last) > 0 or cmp(lower) < 0 then
  return {0}
end

return entries('(' .. ARGV[1] .. '-' .. ARGV[2])
