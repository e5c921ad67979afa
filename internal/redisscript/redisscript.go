// Package redisscript lets one Redis adapter run another's work in its own
// script call, so that a change and its effects take one round trip: the
// store creates an invitation, or applies a change to one, and in the same
// script the bus keeps and publishes its event for every user of its
// audience. Each adapter keeps its keys, its Lua and the reading of its
// replies; this package only joins scripts into one.
//
// Joined scripts touch keys of several slots, and keys they are not given
// (a user's keys, named once the invitation is read), which Redis Cluster
// refuses: they are for a single server (or Sentinel's primary) only.
package redisscript

import (
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Main is the side of the adapter that makes the change.
type Main struct {
	// Body is a script (a first "#!lua" line is dropped), run as a Lua
	// function of (KEYS, ARGV).
	Body string
	// Audience is the body of a Lua function of (r, KEYS, ARGV, users): r
	// is what Body returned, KEYS and ARGV are Body's, users those Args
	// was given. It returns the users the part runs for and whether they
	// hear the event only live (the part then gets Part.LiveArgs), or nil
	// when the part must not run (the change was refused, or is not to be
	// announced here); third, for a Part with a Listing, the users its
	// frame lists.
	Audience string
	// After is the body of a Lua function of (r, X), X being the after
	// arguments Args was given, run once the part ran for every user
	// without failing: the main's bookkeeping of a done announcement.
	After string
}

// Part is work an adapter hands to another adapter's script: the body of a
// Lua function of (KEYS, ARGV), written as a script of its own would be
// (a first "#!lua" line is dropped), run once per user with the same ARGV.
// Its replies, in the order of the users, are the reader's.
type Part struct {
	Body string
	// Keys are the part's KEYS for a user u: Before + u + After each.
	Keys []Template
	// Users are the users to run for, when known beforehand; nil: the
	// main's Audience names them.
	Users []string
	Args  []any
	// LiveArgs replace Args when the audience hears the event only live;
	// nil: Args all the same.
	LiveArgs []any
	// Listing, when set, is a frame that lists users the main decides (a
	// timeout's, those it timed out): the part's argument Arg (1-based, in
	// Args and LiveArgs alike) becomes Prefix, the JSON strings of the
	// users the Audience names third, joined by commas, and Suffix.
	Listing *Listing
}

// Listing is a frame argument completed in the script: see Part.Listing.
// The users are IDs as package ids admits them (valid UTF-8, no control
// characters), written as encoding/json writes strings, byte for byte; a
// listing of nobody, or of an ID with a control character, fails the part.
type Listing struct {
	Arg            int
	Prefix, Suffix string
}

// Template makes a key of a user: Before + user + After.
type Template struct{ Before, After string }

// Joined is a script that runs a Main, then a Part per user of its
// audience, then the Main's After: one round trip for all.
type Joined struct {
	script *redis.Script
}

var (
	joinedMu sync.Mutex
	joined   = map[[4]string]*Joined{} // by the bodies; guarded by joinedMu
)

// Join returns the script that runs m, then part; made once per set of
// bodies.
//
// The joined script returns {r} when the part did not run (r: what
// m.Body returned); {r, {reply, ...}} when it ran for every user, one reply
// per user; or {r, message} when it failed (raised an error) for one, or
// could not run (its Listing names nobody, or an ID it cannot write): what
// m.Body did stands, and whatever the part did before the failure; After
// did not run.
func Join(m Main, part string) *Joined {
	joinedMu.Lock()
	defer joinedMu.Unlock()
	k := [4]string{m.Body, m.Audience, m.After, part}
	if j := joined[k]; j != nil {
		return j
	}
	var b strings.Builder
	b.WriteString("#!lua\n-- joined by package redisscript: main, then part per user, then after\n")
	for _, f := range []struct{ sig, body string }{
		{"main(KEYS, ARGV)", body(m.Body)},
		{"audience(r, KEYS, ARGV, users)", m.Audience},
		{"after(r, X)", m.After},
		{"part(KEYS, ARGV)", body(part)},
	} {
		b.WriteString("local function " + f.sig + "\n")
		b.WriteString(f.body)
		b.WriteString("\nend\n")
	}
	b.WriteString(driver)
	j := &Joined{script: redis.NewScript(b.String())}
	joined[k] = j
	return j
}

// driver splits KEYS and ARGV, as Args lays them out.
const driver = `
local function slice(t, from, n)
  local out = {}
  for i = from, from + n - 1 do
    out[#out + 1] = t[i]
  end
  return out
end
local mk, ma, nx, nu = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nt, pa, pl, nl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local i = 9
local mkeys, margs = slice(KEYS, 1, mk), slice(ARGV, i, ma)
i = i + ma
local x = slice(ARGV, i, nx)
i = i + nx
local given = slice(ARGV, i, nu)
i = i + nu
local templates = slice(ARGV, i, 2 * nt)
i = i + 2 * nt
local pargs = slice(ARGV, i, pa)
i = i + pa
local largs = pargs
if pl > 0 then
  largs = slice(ARGV, i, pl)
end
i = i + pl
local listing = slice(ARGV, i, nl)

-- jstr writes s as encoding/json does (HTML characters and the two line
-- separators escaped); s has no control characters.
local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['<'] = '\\u003c', ['>'] = '\\u003e', ['&'] = '\\u0026'}
local function jstr(s)
  s = string.gsub(s, '["\\<>&]', escapes)
  s = string.gsub(s, '\226\128\168', '\\u2028')
  s = string.gsub(s, '\226\128\169', '\\u2029')
  return '"' .. s .. '"'
end

local r = main(mkeys, margs)
local users, live, listed = audience(r, mkeys, margs, given)
if not users then
  return {r}
end
if nl > 0 then
  -- A listing of nobody (encoding/json leaves an empty list out), or of an
  -- ID with a control character (which jstr does not escape), is not
  -- written here: the part fails, and the caller publishes the event itself.
  if not listed or #listed == 0 then
    return {r, 'redisscript: the audience named nobody for the listing'}
  end
  local items = {}
  for _, u in ipairs(listed) do
    if string.find(u, '[%z\1-\31]') then
      return {r, 'redisscript: a control character in a listed ID'}
    end
    items[#items + 1] = jstr(u)
  end
  local at = tonumber(listing[1])
  local frame = listing[2] .. table.concat(items, ',') .. listing[3]
  local function with(t)
    local out = {}
    for k, v in ipairs(t) do
      out[k] = v
    end
    out[at] = frame
    return out
  end
  local same = largs == pargs
  pargs = with(pargs)
  largs = same and pargs or with(largs)
end
local replies = {}
for _, u in ipairs(users) do
  local keys = {}
  for t = 1, 2 * nt, 2 do
    keys[#keys + 1] = templates[t] .. u .. templates[t + 1]
  end
  local args = pargs
  if live then
    args = largs
  end
  local ok, reply = pcall(part, keys, args)
  if not ok then
    if type(reply) == 'table' and reply.err then
      reply = reply.err
    end
    return {r, tostring(reply)}
  end
  replies[#replies + 1] = reply
end
after(r, x)
return {r, replies}
`

func body(src string) string {
	if strings.HasPrefix(src, "#!") {
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			return src[i+1:]
		}
		return ""
	}
	return src
}

// Script is the joined script, to run with Args.
func (j *Joined) Script() *redis.Script { return j.script }

// Args lays out the keys and arguments of one run: the main's keys and
// arguments, After's arguments, and the part.
func Args(mainKeys []string, mainArgs, after []any, p Part) ([]string, []any) {
	var listing []any
	if p.Listing != nil {
		listing = []any{p.Listing.Arg, p.Listing.Prefix, p.Listing.Suffix}
	}
	args := make([]any, 0, 8+len(mainArgs)+len(after)+len(p.Users)+2*len(p.Keys)+len(p.Args)+len(p.LiveArgs)+len(listing))
	args = append(args, len(mainKeys), len(mainArgs), len(after), len(p.Users), len(p.Keys), len(p.Args), len(p.LiveArgs), len(listing))
	args = append(args, mainArgs...)
	args = append(args, after...)
	for _, u := range p.Users {
		args = append(args, u)
	}
	for _, t := range p.Keys {
		args = append(args, t.Before, t.After)
	}
	args = append(args, p.Args...)
	args = append(args, p.LiveArgs...)
	args = append(args, listing...)
	return mainKeys, args
}

// Reply splits the joined script's reply: what the main returned; the
// part's replies and ran true when it ran for every user; partErr, the
// message of a part that failed. ok is false for a reply of another shape.
func Reply(v any) (main any, replies []any, ran bool, partErr string, ok bool) {
	a, isSlice := v.([]any)
	if !isSlice || len(a) == 0 || len(a) > 2 {
		return nil, nil, false, "", false
	}
	if len(a) == 1 {
		return a[0], nil, false, "", true
	}
	switch p := a[1].(type) {
	case []any:
		return a[0], p, true, "", true
	case string:
		return a[0], nil, false, p, true
	}
	return nil, nil, false, "", false
}
