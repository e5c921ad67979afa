package redisscript_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/signald/signald/internal/redisscript"
	"github.com/signald/signald/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// The main sets its key to ARGV[1] and returns ARGV[2] as its status; its
// audience is the users given, or else two it "reads", who hear only live;
// its After marks its key. The part appends ARGV[1] to the user's list and
// returns the list's length.
var testMain = redisscript.Main{
	Body: "#!lua\nredis.call('SET', KEYS[1], ARGV[1])\nreturn tonumber(ARGV[2])\n",
	Audience: `if r ~= 0 then return nil end
if #users > 0 then return users, false end
return {'read1', 'read2'}, true`,
	After: `if #X == 1 then redis.call('SET', X[1], 'after') end`,
}

const partLua = "#!lua\nreturn redis.call('RPUSH', KEYS[1], ARGV[1])\n"

// TestJoin: the part runs once per user of the main's audience, with its
// own KEYS (made from the templates) and ARGV (the live ones for a live
// audience), only when the main says so; After runs when every part did;
// a failing part leaves the main's work and says so; a script is made once
// per set of bodies.
func TestJoin(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.NewClient(t)
	j := redisscript.Join(testMain, partLua)
	if redisscript.Join(testMain, partLua) != j {
		t.Error("Join made a second script for the same bodies")
	}
	run := func(status string, users ...string) (any, []any, bool, string) {
		t.Helper()
		p := redisscript.Part{Body: partLua, Users: users, Args: []any{"x"}, LiveArgs: []any{"L"},
			Keys: []redisscript.Template{{Before: prefix + "list:", After: ":end"}}}
		keys, args := redisscript.Args([]string{prefix + "main"}, []any{"m", status}, []any{prefix + "after"}, p)
		v, err := j.Script().Run(ctx, c, keys, args...).Result()
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		main, replies, ran, partErr, ok := redisscript.Reply(v)
		if !ok {
			t.Fatalf("Reply(%v) not understood", v)
		}
		return main, replies, ran, partErr
	}
	list := func(u string) []string {
		t.Helper()
		l, err := c.LRange(ctx, prefix+"list:"+u+":end", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	after := func() bool {
		t.Helper()
		v, _ := c.Get(ctx, prefix+"after").Result()
		c.Del(ctx, prefix+"after")
		return v == "after"
	}

	main, replies, ran, partErr := run("0", "a", "b", "a")
	if main != int64(0) || !ran || partErr != "" || !reflect.DeepEqual(replies, []any{int64(1), int64(1), int64(2)}) {
		t.Errorf("main 0, users a, b, a: main %v, replies %v, ran %v, part error %q; want 0, [1 1 2], true, none", main, replies, ran, partErr)
	}
	if got := list("a"); !reflect.DeepEqual(got, []string{"x", "x"}) {
		t.Errorf("a's list = %v, want [x x]", got)
	}
	if got, _ := c.Get(ctx, prefix+"main").Result(); got != "m" || !after() {
		t.Errorf("main's key = %q, After ran: want m, and After to have run", got)
	}

	main, replies, ran, partErr = run("6", "c")
	if main != int64(6) || ran || replies != nil || partErr != "" || len(list("c")) != 0 || after() {
		t.Errorf("main 6: main %v, replies %v, ran %v, part error %q; want 6 and neither part nor After", main, replies, ran, partErr)
	}

	main, replies, ran, _ = run("0")
	if main != int64(0) || !ran || len(replies) != 2 || !reflect.DeepEqual(list("read2"), []string{"L"}) || !after() {
		t.Errorf("an audience the main reads, live: replies %v, ran %v, read2's list %v; want 2 replies and [L]", replies, ran, list("read2"))
	}

	if err := c.Set(ctx, prefix+"list:notalist:end", "s", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Del(ctx, prefix+"main")
	main, _, ran, partErr = run("0", "d", "notalist", "e")
	if main != int64(0) || ran || !strings.Contains(partErr, "WRONGTYPE") {
		t.Errorf("a part failing: main %v, ran %v, part error %q; want 0, false, WRONGTYPE", main, ran, partErr)
	}
	if got, _ := c.Get(ctx, prefix+"main").Result(); got != "m" {
		t.Errorf("main's work after a part failed: %q, want m (it stands)", got)
	}
	if ranAfter := after(); len(list("d")) != 1 || len(list("e")) != 0 || ranAfter {
		t.Errorf("after a failure: d has %d (want 1, done before), e %d (want 0), After ran %v (want not)", len(list("d")), len(list("e")), ranAfter)
	}
}

// TestListing: a part's frame argument completed in the script, listing
// the users the audience names third, each written as encoding/json writes
// a string, in the live arguments for a live audience and in the kept ones
// otherwise. A listing of nobody (encoding/json would leave the list out)
// or of an ID with a control character fails the part, for the caller to
// publish the event itself.
func TestListing(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.NewClient(t)
	m := redisscript.Main{
		Body: "#!lua\nreturn tonumber(ARGV[1])\n",
		Audience: `if r == 1 then return {'a', 'b'}, true, {'a', 'x"<y>&\\z'} end
if r == 2 then return {'a'}, false end
if r == 3 then return {'a', 'b'}, false, {} end
if r == 4 then return {'a'}, false, {'a'} end
return {'a'}, false, {'tab\there'}`,
		After: "",
	}
	const part = "#!lua\nreturn ARGV[1] .. ARGV[2]\n"
	j := redisscript.Join(m, part)
	run := func(mode string) ([]any, string) {
		t.Helper()
		p := redisscript.Part{Body: part, Args: []any{"kept:", "template"}, LiveArgs: []any{"live:", "template"},
			Keys:    []redisscript.Template{{Before: prefix + "u:", After: ""}},
			Listing: &redisscript.Listing{Arg: 2, Prefix: `{"list":[`, Suffix: `]}`}}
		keys, args := redisscript.Args([]string{prefix + "m"}, []any{mode}, nil, p)
		v, err := j.Script().Run(ctx, c, keys, args...).Result()
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		_, replies, _, partErr, ok := redisscript.Reply(v)
		if !ok {
			t.Fatalf("Reply(%v) not understood", v)
		}
		return replies, partErr
	}
	want, _ := json.Marshal(map[string][]string{"list": {"a", `x"<y>&\z`}})
	if replies, partErr := run("1"); partErr != "" || !reflect.DeepEqual(replies, []any{"live:" + string(want), "live:" + string(want)}) {
		t.Errorf("live audience: replies %v (part error %q), want live:%s for each", replies, partErr, want)
	}
	if replies, partErr := run("4"); partErr != "" || !reflect.DeepEqual(replies, []any{`kept:{"list":["a"]}`}) {
		t.Errorf("kept audience: replies %v (part error %q), want the kept arguments listing a", replies, partErr)
	}
	for mode, why := range map[string]string{"2": "no listing named", "3": "a listing of nobody", "5": "a control character"} {
		if replies, partErr := run(mode); partErr == "" || replies != nil {
			t.Errorf("%s: replies %v, part error %q; want the part failed", why, replies, partErr)
		}
	}
}
