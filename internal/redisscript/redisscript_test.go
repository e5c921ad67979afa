package redisscript_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/signald/signald/internal/redisscript"
	"github.com/signald/signald/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// main sets its key to ARGV[1] and returns ARGV[2] as its status; the
// part appends ARGV[1] to its list key and returns the list's length.
const (
	mainLua = "#!lua\nredis.call('SET', KEYS[1], ARGV[1])\nreturn tonumber(ARGV[2])\n"
	partLua = "#!lua\nreturn redis.call('RPUSH', KEYS[1], ARGV[1])\n"
)

// TestJoin: the part runs once per key set, with its own KEYS and ARGV,
// only after main returned 0; a failing part leaves main's work and says
// so; a script is made once per pair of bodies.
func TestJoin(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.NewClient(t)
	j := redisscript.Join(mainLua, partLua)
	if redisscript.Join(mainLua, partLua) != j {
		t.Error("Join made a second script for the same bodies")
	}
	run := func(status string, lists ...string) (int64, []any, string) {
		t.Helper()
		p := redisscript.Part{Body: partLua, Args: []any{"x"}}
		for _, l := range lists {
			p.Keys = append(p.Keys, []string{prefix + l})
		}
		keys, args := redisscript.Args([]string{prefix + "main"}, []any{"m", status}, p)
		v, err := j.Script().Run(ctx, c, keys, args...).Result()
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		st, replies, partErr, ok := redisscript.Reply(v)
		if !ok {
			t.Fatalf("Reply(%v) not understood", v)
		}
		return st, replies, partErr
	}

	st, replies, partErr := run("0", "a", "b", "a")
	if st != 0 || partErr != "" || !reflect.DeepEqual(replies, []any{int64(1), int64(1), int64(2)}) {
		t.Errorf("main 0, parts on a, b, a: status %d, replies %v, part error %q; want 0, [1 1 2], none", st, replies, partErr)
	}
	if got, _ := c.Get(ctx, prefix+"main").Result(); got != "m" {
		t.Errorf("main's key = %q, want m", got)
	}

	st, replies, partErr = run("6", "c")
	if st != 6 || replies != nil || partErr != "" {
		t.Errorf("main 6: status %d, replies %v, part error %q; want 6 and no part", st, replies, partErr)
	}
	if n, _ := c.Exists(ctx, prefix+"c").Result(); n != 0 {
		t.Error("the part ran after main refused")
	}

	if err := c.Set(ctx, prefix+"notalist", "s", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Del(ctx, prefix+"main")
	st, replies, partErr = run("0", "d", "notalist", "e")
	if st != 0 || replies != nil || !strings.Contains(partErr, "WRONGTYPE") {
		t.Errorf("a part failing: status %d, replies %v, part error %q; want 0, none, WRONGTYPE", st, replies, partErr)
	}
	if got, _ := c.Get(ctx, prefix+"main").Result(); got != "m" {
		t.Errorf("main's work after a part failed: %q, want m (it stands)", got)
	}
	if n, _ := c.LLen(ctx, prefix+"d").Result(); n != 1 {
		t.Errorf("the part before the failure: %d entries, want 1 (it stands)", n)
	}
	if n, _ := c.Exists(ctx, prefix+"e").Result(); n != 0 {
		t.Error("the part after the failure ran")
	}
}
