// Package redisscript lets one Redis adapter run another's work in its own
// script call, so that a change and its effects take one round trip: the
// store creates an invitation and, in the same script, the bus keeps and
// publishes its ring for every invitee. Each adapter keeps its keys, its
// Lua and the reading of its replies; this package only joins two scripts
// into one.
//
// Joined scripts touch keys of several slots, which Redis Cluster refuses:
// they are for a single server (or Sentinel's primary) only.
package redisscript

import (
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Part is work an adapter hands to another adapter's script: the body of a
// Lua function of (KEYS, ARGV), written as a script of its own would be
// (a first "#!lua" line is dropped), run once per key set with the same
// ARGV. Its replies, in the order of Keys, are the reader's.
type Part struct {
	Body string
	Keys [][]string
	Args []any
}

// Joined is a script that runs a main body, then, if it returned
// OK (0), the part's body once per key set: one round trip for both.
type Joined struct {
	script *redis.Script
}

var (
	joinedMu sync.Mutex
	joined   = map[[2]string]*Joined{} // by (main, part) body; guarded by joinedMu
)

// Join returns the script that runs main, then part; made once per pair
// of bodies.
//
// The joined script returns {status} when main returned a status other
// than 0; else {0, reply, reply, ...}, one reply of part per key set; or
// {-1, message} when a part failed (raised an error): what main did
// stands (it returned 0), and whatever the part calls did before the
// failure. Statuses of main must not be negative.
func Join(main, part string) *Joined {
	joinedMu.Lock()
	defer joinedMu.Unlock()
	k := [2]string{main, part}
	if j := joined[k]; j != nil {
		return j
	}
	var b strings.Builder
	b.WriteString("#!lua\n-- joined by package redisscript: main, then part per key set\n")
	b.WriteString("local function main(KEYS, ARGV)\n")
	b.WriteString(body(main))
	b.WriteString("\nend\nlocal function part(KEYS, ARGV)\n")
	b.WriteString(body(part))
	b.WriteString("\nend\n")
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
local mk, ma = tonumber(ARGV[1]), tonumber(ARGV[2])
local calls, pk, pa = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local status = main(slice(KEYS, 1, mk), slice(ARGV, 6, ma))
if status ~= 0 then
  return {status}
end
local out = {0}
local pargs = slice(ARGV, 6 + ma, pa)
for c = 0, calls - 1 do
  local ok, r = pcall(part, slice(KEYS, mk + 1 + c * pk, pk), pargs)
  if not ok then
    if type(r) == 'table' and r.err then
      r = r.err
    end
    return {-1, tostring(r)}
  end
  out[#out + 1] = r
end
return out
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

// Args lays out the keys and arguments of one run: main's, then the
// part's. Every key set of the part must have the same length.
func Args(mainKeys []string, mainArgs []any, p Part) ([]string, []any) {
	perCall := 0
	if len(p.Keys) > 0 {
		perCall = len(p.Keys[0])
	}
	keys := make([]string, 0, len(mainKeys)+perCall*len(p.Keys))
	keys = append(keys, mainKeys...)
	for _, k := range p.Keys {
		keys = append(keys, k...)
	}
	args := make([]any, 0, 5+len(mainArgs)+len(p.Args))
	args = append(args, len(mainKeys), len(mainArgs), len(p.Keys), perCall, len(p.Args))
	args = append(args, mainArgs...)
	args = append(args, p.Args...)
	return keys, args
}

// Reply splits the joined script's reply: main's status, and the part's
// replies when it ran. partErr is the message of a part that failed, after
// main returned 0.
func Reply(v any) (status int64, replies []any, partErr string, ok bool) {
	a, isSlice := v.([]any)
	if !isSlice || len(a) == 0 {
		return 0, nil, "", false
	}
	status, ok = a[0].(int64)
	if !ok {
		return 0, nil, "", false
	}
	if status == -1 {
		msg := ""
		if len(a) > 1 {
			msg, _ = a[1].(string)
		}
		if msg == "" {
			msg = "a part failed"
		}
		return 0, nil, msg, true
	}
	if len(a) == 1 {
		return status, nil, "", true
	}
	return status, a[1:], "", true
}
