#!lua
-- announced.lua: forget outbox entries of one invitation whose effects are
-- carried out, each leaving its done marker (an empty field d:<token>), so
-- that the change's request, sent again after its answer was lost, is
-- still recognised as applied (create.lua, admitcreate.lua,
-- transition.lua). An entry not recorded (its change was refused, or the
-- invitation is gone) leaves nothing: no marker creates a hash.
--
-- KEYS[1]   the invitation's hash
-- ARGV[1..] the entries' tokens
--
-- Returns how many entries were forgotten.

local n = 0
for _, token in ipairs(ARGV) do
  if redis.call('HDEL', KEYS[1], 'a:' .. token) == 1 then
    redis.call('HSET', KEYS[1], 'd:' .. token, '')
    n = n + 1
  end
end
return n
