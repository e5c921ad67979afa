package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CmdStat is one line of INFO commandstats.
type CmdStat struct {
	Calls int64 `json:"calls"`
	Usec  int64 `json:"usec"` // time Redis spent executing the command, microseconds
}

// RedisSnapshot is Redis's own command accounting at one instant. The bench
// cannot see signald's Redis round trips from the client side, so it reads
// what Redis counted instead and divides the difference by the work done.
type RedisSnapshot struct {
	Commands map[string]CmdStat // by command name, e.g. "evalsha", "client|setinfo"
	Total    int64              // total_commands_processed from INFO stats
	// CPUSeconds is used_cpu_sys + used_cpu_user from INFO cpu: the CPU the
	// redis-server process has used since it started. HasCPU is false when
	// INFO cpu could not be read (the command figures do not need it).
	CPUSeconds float64
	HasCPU     bool
}

// ParseCommandStats parses the output of INFO commandstats, whose lines
// look like
//
//	cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,rejected_calls=0,failed_calls=0
func ParseCommandStats(info string) (map[string]CmdStat, error) {
	out := map[string]CmdStat{}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		name, fields, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st CmdStat
		for kv := range strings.SplitSeq(fields, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("commandstats: malformed %q", line)
			}
			var err error
			switch k {
			case "calls":
				st.Calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.Usec, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("commandstats: %q: %w", line, err)
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out, nil
}

// InfoField returns one "field:value" of an INFO section's output.
func InfoField(info, field string) (string, bool) {
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			return v, true
		}
	}
	return "", false
}

// ParseInfoCPU returns used_cpu_sys + used_cpu_user from the output of
// INFO cpu, whose lines look like
//
//	used_cpu_sys:12.345678
//	used_cpu_user:23.456789
//
// The children's fields (a fork for a save) are left out: a benchmark's
// Redis saves nothing.
func ParseInfoCPU(info string) (float64, error) {
	var total float64
	for _, field := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, ok := InfoField(info, field)
		if !ok {
			return 0, fmt.Errorf("redis INFO cpu has no %s", field)
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("redis %s %q is not a number of seconds", field, v)
		}
		total += n
	}
	return total, nil
}

// SnapshotRedis reads INFO commandstats, INFO stats and INFO cpu.
func SnapshotRedis(ctx context.Context, rdb *redis.Client) (RedisSnapshot, error) {
	cs, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return RedisSnapshot{}, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	cmds, err := ParseCommandStats(cs)
	if err != nil {
		return RedisSnapshot{}, err
	}
	st, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return RedisSnapshot{}, fmt.Errorf("redis INFO stats: %w", err)
	}
	v, ok := InfoField(st, "total_commands_processed")
	if !ok {
		return RedisSnapshot{}, fmt.Errorf("redis INFO stats has no total_commands_processed")
	}
	total, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return RedisSnapshot{}, fmt.Errorf("redis total_commands_processed %q: %w", v, err)
	}
	snap := RedisSnapshot{Commands: cmds, Total: total}
	if info, err := rdb.Info(ctx, "cpu").Result(); err == nil {
		snap.CPUSeconds, err = ParseInfoCPU(info)
		snap.HasCPU = err == nil
	}
	return snap, nil
}

// benchOwnCommands are commands the bench itself sends to read the
// statistics; they are left out of every figure.
var benchOwnCommands = map[string]bool{"info": true}

// RedisDelta is what Redis executed between two snapshots, without the
// bench's own INFO commands.
type RedisDelta struct {
	Commands map[string]CmdStat
	Calls    int64 // sum of Commands' calls
	Total    int64 // total_commands_processed delta (includes the bench's INFO calls)
	// CPUSeconds is the CPU Redis used in between (its INFO calls
	// included, a few hundred microseconds); HasCPU says both snapshots had it.
	CPUSeconds float64
	HasCPU     bool
}

// Sub returns what happened from before to s.
func (s RedisSnapshot) Sub(before RedisSnapshot) RedisDelta {
	d := RedisDelta{Commands: map[string]CmdStat{}, Total: s.Total - before.Total}
	if s.HasCPU && before.HasCPU {
		d.CPUSeconds, d.HasCPU = s.CPUSeconds-before.CPUSeconds, true
	}
	for name, after := range s.Commands {
		if benchOwnCommands[name] {
			continue
		}
		b := before.Commands[name]
		if calls := after.Calls - b.Calls; calls > 0 {
			d.Commands[name] = CmdStat{Calls: calls, Usec: after.Usec - b.Usec}
			d.Calls += calls
		}
	}
	return d
}

// ScriptCalls is how many Lua script (and function) executions the delta
// holds: signald makes each invitation state change one script, so this is
// the closest client-invisible stand-in for its Redis round trips.
func (d RedisDelta) ScriptCalls() int64 {
	var n int64
	for _, name := range []string{"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"} {
		n += d.Commands[name].Calls
	}
	return n
}

// NamedStat is a command with its counts, for sorted listings.
type NamedStat struct {
	Name string `json:"command"`
	CmdStat
}

// Top returns the n commands with the most calls, most first.
func (d RedisDelta) Top(n int) []NamedStat {
	out := make([]NamedStat, 0, len(d.Commands))
	for name, st := range d.Commands {
		out = append(out, NamedStat{name, st})
	}
	slices.SortFunc(out, func(a, b NamedStat) int {
		if c := cmp.Compare(b.Calls, a.Calls); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out[:min(n, len(out))]
}
