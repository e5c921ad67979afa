// Package redisbus is the bus.Bus of signald instances that share a Redis:
// each user's recent events are kept in a Redis stream, and every event is
// sent over a sharded Pub/Sub channel of the user to the instances that hold
// a connection of that user.
//
// # Keys and channels
//
// Every name starts with Options.Prefix (default "signald:") and carries the
// user as the hash tag {u:<user>}, so that one user's keys and channel are
// in one Redis Cluster slot and every script touches one slot:
//
//	<prefix>ev:{u:<user>}    stream: the user's newest Keep events; each entry has one
//	                         field, f: the frame without eventID
//	<prefix>rung:{u:<user>}  hash: inviteID → eventID of the user's onReceiveNewInvitation;
//	                         "once:<key>" → eventID (Envelope.Once); kb → bytes of the kept frames
//	<prefix>ch:{u:<user>}    shard channel (SPUBLISH/SSUBSCRIBE): the user's events
//	<prefix>pres:{u:<user>}  hash: "<node>\n<deviceID>" → ms when the entry lapses: the
//	                         user's devices with a foreground connection on that
//	                         instance, refreshed by it every 20 s, lapsing after 60 s
//
// The stream and the hash expire Retention after the user's newest kept
// event. An eventID is its stream entry ID "<ms>-<seq>" with the numbers
// zero-padded to 13 and 10 digits, so that byte-wise order is stream order.
// Old events are dropped with XDEL, which (unlike XADD MAXLEN on Redis 7.0)
// records the newest dropped ID as the stream's max-deleted-entry-id: a
// resume after an older ID would miss events.
//
// A Pub/Sub message is "<eventID>\n<prev>\n<origin node>\n<origin session>\n<kind>\n<frame>",
// prev being the eventID of the user's kept event before it; both are
// empty for an event that is not kept. publish.lua appends to the stream
// and publishes in one step, so a user's messages go out in eventID order
// (an event not kept is a plain SPUBLISH); each instance reads a
// subscription connection in order and hands every message to its hub
// before reading the next. A connection that is handed an event whose prev
// is not the last one it saw has missed some (a Pub/Sub gap) and replays
// them from the stream.
//
// # Subscriptions
//
// An instance subscribes to the channel of each user it watches, on one
// connection per Redis server (per master on a cluster: a shard channel can
// only be subscribed on the server that owns its slot). Run reads those
// connections. When one breaks, go-redis reconnects it and sends one
// SSUBSCRIBE of every channel, which Redis Cluster refuses (CROSSSLOT) as
// soon as they span slots; so Run subscribes again itself, slot by slot,
// and on a cluster moves channels whose slot now has another master. Each
// connection is pinged every 5 s, and one silent for 10 to 15 s is given up
// and made again, so that a lost peer is noticed without TCP's help.
// Events published while a connection is down do not reach its users'
// live connections; they stay kept, and the instance catches its
// connections up from the streams (Options.OnGap, hub.Delivery.Prev).
//
// It needs Redis 7.0 or later: sharded Pub/Sub, "#!lua" scripts, XINFO
// STREAM's max-deleted-entry-id.
package redisbus

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/hub"
	"github.com/signald/signald/internal/redisscript"
)

// Defaults of Options.
const (
	DefaultPrefix    = "signald:"
	DefaultKeep      = 100
	DefaultKeepBytes = 256 << 10
	DefaultRetention = 24 * time.Hour
)

// Options configure a Bus.
type Options struct {
	// Client is the Redis: a *redis.Client (a server, or Sentinel failover)
	// or a *redis.ClusterClient. Required. The Bus does not close it.
	Client redis.UniversalClient
	// Prefix starts every key and channel; DefaultPrefix when empty. It
	// must not contain '{' or '}', which would change the hash tags.
	Prefix string
	// Node identifies this instance among those sharing the Redis
	// (bus.Origin.Node). Required; no newline.
	Node string
	// Hub receives the events of the users this instance watches. Required.
	Hub *hub.Hub
	// Keep is how many events are kept per user; DefaultKeep when 0.
	Keep int
	// KeepBytes bounds the bytes of frames kept per user (the newest event
	// is always kept); DefaultKeepBytes when 0.
	KeepBytes int
	// Retention is how long a user's events are kept after the newest;
	// DefaultRetention when 0.
	Retention time.Duration
	// Logger reports subscription trouble; nil discards.
	Logger *slog.Logger
	// OnGap, when set, is called (from Run's goroutine; it must not block)
	// after a broken subscription connection has been restored, with the
	// users watched on it: events published to them while it was down were
	// kept but not delivered live here, so their connections should catch
	// up from the users' streams (Replay). A connection that receives a
	// later event notices the gap by itself (hub.Delivery.Prev); OnGap is
	// for those to which nothing more is sent.
	OnGap func(users []string)
}

func (o *Options) validate() error {
	switch o.Client.(type) {
	case *redis.Client, *redis.ClusterClient:
	case nil:
		return errors.New("redisbus: Options.Client is required")
	default:
		return fmt.Errorf("redisbus: Options.Client is a %T; want a *redis.Client or a *redis.ClusterClient", o.Client)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return fmt.Errorf("redisbus: Options.Prefix %q contains a brace", o.Prefix)
	}
	if o.Node == "" || strings.Contains(o.Node, "\n") {
		return fmt.Errorf("redisbus: Options.Node %q: want a non-empty name without newline", o.Node)
	}
	if o.Hub == nil {
		return errors.New("redisbus: Options.Hub is required")
	}
	if o.Keep == 0 {
		o.Keep = DefaultKeep
	}
	if o.Keep < 1 {
		return fmt.Errorf("redisbus: Options.Keep %d < 1", o.Keep)
	}
	if o.KeepBytes == 0 {
		o.KeepBytes = DefaultKeepBytes
	}
	if o.KeepBytes < 1 {
		return fmt.Errorf("redisbus: Options.KeepBytes %d < 1", o.KeepBytes)
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Retention < time.Millisecond {
		return fmt.Errorf("redisbus: Options.Retention %v < 1ms", o.Retention)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Bus implements bus.Bus on Redis. It is safe for concurrent use. Run must
// be running for Watch to return, and for events to reach the hub.
type Bus struct {
	c         redis.UniversalClient
	single    *redis.Client        // Options.Client when it is not a cluster
	cluster   *redis.ClusterClient // Options.Client when it is a cluster
	prefix    string
	node      string
	hub       *hub.Hub
	keep      int
	keepBytes int
	retain    int64 // ms
	log       *slog.Logger
	onGap     func(users []string)

	// pingEvery is how often a subscription connection is pinged; one
	// silent for three times as long is dropped and made again.
	pingEvery time.Duration
	tokens    atomic.Uint64 // for ping payloads

	mu      sync.Mutex
	watches map[string]*watch        // by channel; guarded by mu
	shards  map[*redis.Client]*shard // by the server subscribed on; guarded by mu
	state   runState                 // guarded by mu
	runCtx  context.Context          // Run's; guarded by mu
	wg      sync.WaitGroup           // the shards' goroutines
}

type runState int

const (
	notStarted runState = iota
	running
	stopped
)

// New returns a Bus on o.Client. It does not contact Redis; see Ping.
func New(o Options) (*Bus, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	b := &Bus{
		c:         o.Client,
		prefix:    o.Prefix,
		node:      o.Node,
		hub:       o.Hub,
		keep:      o.Keep,
		keepBytes: o.KeepBytes,
		retain:    o.Retention.Milliseconds(),
		log:       o.Logger,
		onGap:     o.OnGap,
		pingEvery: 5 * time.Second,
		watches:   make(map[string]*watch),
		shards:    make(map[*redis.Client]*shard),
	}
	switch c := o.Client.(type) {
	case *redis.Client:
		b.single = c
	case *redis.ClusterClient:
		b.cluster = c
	}
	return b, nil
}

var _ bus.Bus = (*Bus)(nil)

func (b *Bus) streamKey(user string) string { return b.prefix + "ev:{u:" + user + "}" }

func (b *Bus) rungKey(user string) string { return b.prefix + "rung:{u:" + user + "}" }

func (b *Bus) channel(user string) string { return b.prefix + "ch:{u:" + user + "}" }

func (b *Bus) presenceKey(user string) string { return b.prefix + "pres:{u:" + user + "}" }

// userOf returns the user of a channel of this bus.
func (b *Bus) userOf(ch string) (string, bool) {
	rest, ok := strings.CutPrefix(ch, b.prefix+"ch:{u:")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}

// The scripts. Their first line, "#!lua", has Redis Cluster refuse them
// when their keys span slots.
var (
	//go:embed publish.lua
	publishLua    string
	publishScript = redis.NewScript(publishLua)

	//go:embed replay.lua
	replayLua    string
	replayScript = redis.NewScript(replayLua)
)

// unavailable wraps an error of the Redis client so that it matches
// bus.ErrUnavailable and still matches what it was.
func unavailable(op string, err error) error {
	return fmt.Errorf("redisbus: %s: %w: %w", op, bus.ErrUnavailable, err)
}

// Ping reports whether Redis answers. Errors wrap bus.ErrUnavailable.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.c.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// PreparePublish readies env, a kept event (or one with a Once key or a
// Presence read), for a script of the store to publish in the step that
// makes its change: payload is a redisscript.Part, the script is joined by
// redisscript.Join, and the step is then one round trip for the change
// and its event. env.Users nil leaves the users to the store's script (an
// event for an invitation's inviter and invitees, kept unless the script
// says they hear it only live). done reads the part's replies, one per
// user, as Publish reads its own. ok is false on Redis Cluster, where a
// user's keys and the store's are on different nodes, and for an event
// Publish would send by plain SPUBLISH: Publish it after the step. An
// event with env.Listed (its users left to the store's script, env.Users
// nil) becomes a part whose frame, publish.lua's ARGV[5], the script
// completes.
func (b *Bus) PreparePublish(env bus.Envelope) (payload any, done func(replies []any) ([]bus.Reach, error), ok bool, err error) {
	if env.Listed != nil && env.Users != nil {
		return nil, nil, false, errors.New("redisbus: publish: a listing frame with its users given")
	}
	if b.single == nil || (env.Users != nil && len(env.Users) == 0) || !(env.Keep || env.Once != "" || env.Presence) {
		return nil, nil, false, nil
	}
	args, err := b.publishArgs(env)
	if err != nil {
		return nil, nil, false, err
	}
	part := redisscript.Part{Body: publishLua, Users: env.Users, Args: args, Keys: []redisscript.Template{
		template(b.streamKey), template(b.rungKey), template(b.channel), template(b.presenceKey),
	}}
	if env.Listed != nil {
		part.Listing = &redisscript.Listing{Arg: publishFrameArg, Prefix: env.Listed.Prefix, Suffix: env.Listed.Suffix}
	}
	if env.Users == nil && env.Keep {
		live := env
		live.Keep = false
		if part.LiveArgs, err = b.publishArgs(live); err != nil {
			return nil, nil, false, err
		}
	}
	n := len(env.Users)
	done = func(replies []any) ([]bus.Reach, error) {
		if env.Users != nil && len(replies) != n {
			return nil, fmt.Errorf("redisbus: publish: %d replies for %d users", len(replies), n)
		}
		reach := make([]bus.Reach, len(replies))
		for i, v := range replies {
			var c int64
			c, reach[i].Foreground = publishReply(v)
			reach[i].Online = c > 0 || c == -1
		}
		return reach, nil
	}
	return part, done, true, nil
}

// template is the redisscript.Template of a user's key made by key.
func template(key func(user string) string) redisscript.Template {
	k := key("\x00")
	i := strings.IndexByte(k, 0)
	return redisscript.Template{Before: k[:i], After: k[i+1:]}
}

func (b *Bus) publishKeys(u string) []string {
	return []string{b.streamKey(u), b.rungKey(u), b.channel(u), b.presenceKey(u)}
}

// publishFrameArg is the index of the frame in publish.lua's ARGV.
const publishFrameArg = 5

// publishArgs checks env and returns publish.lua's ARGV for it.
func (b *Bus) publishArgs(env bus.Envelope) ([]any, error) {
	if n := len(env.Frame); n < 2 || env.Frame[0] != '{' || env.Frame[n-1] != '}' {
		return nil, errors.New("redisbus: publish: the frame is not a JSON object")
	}
	if strings.Contains(env.Kind, "\n") || strings.Contains(env.Except.Node, "\n") {
		return nil, errors.New("redisbus: publish: newline in the kind or the origin node")
	}
	keep := 0
	if env.Keep {
		keep = b.keep
	}
	origin := ""
	if env.Except.Session != 0 {
		origin = env.Except.Node + "\n" + strconv.FormatUint(env.Except.Session, 10)
	}
	presence := ""
	if env.Presence {
		presence = "1"
	}
	return []any{keep, b.retain, env.InviteID, header(env), env.Frame, env.Once, origin, presence, time.Now().UnixMilli(), b.keepBytes}, nil
}

func header(env bus.Envelope) string {
	return env.Except.Node + "\n" + strconv.FormatUint(env.Except.Session, 10) + "\n" + env.Kind
}

// Publish implements bus.Bus in one round trip: a pipeline of one command
// per user, publish.lua for a kept event, else a plain SPUBLISH. A user is
// online when an instance watches it; its foreground devices, when asked,
// are read in the same script. Errors reaching Redis wrap
// bus.ErrUnavailable; the event may then have gone to some users only.
func (b *Bus) Publish(ctx context.Context, env bus.Envelope) ([]bus.Reach, error) {
	if env.Listed != nil {
		return nil, bus.ErrListed
	}
	args, err := b.publishArgs(env)
	if err != nil {
		return nil, err
	}
	reach := make([]bus.Reach, len(env.Users))
	if len(env.Users) == 0 {
		return reach, nil
	}
	keys := b.publishKeys
	header := header(env)

	cmds := make([]redis.Cmder, len(env.Users))
	pipe := b.c.Pipeline()
	for i, u := range env.Users {
		if env.Keep || env.Once != "" || env.Presence {
			cmds[i] = pipe.EvalSha(ctx, publishScript.Hash(), keys(u), args...)
		} else {
			cmds[i] = pipe.SPublish(ctx, b.channel(u), "\n\n"+header+"\n"+string(env.Frame))
		}
	}
	_, _ = pipe.Exec(ctx) // errors are the commands'

	// A server that does not have the script yet refused it without running
	// it: send the script itself to those users.
	var retry []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe = b.c.Pipeline()
		for _, i := range retry {
			cmds[i] = pipe.Eval(ctx, publishLua, keys(env.Users[i]), args...)
		}
		_, _ = pipe.Exec(ctx)
	}

	for i, cmd := range cmds {
		var n int64
		switch cmd := cmd.(type) {
		case *redis.Cmd:
			v, err := cmd.Result()
			if err != nil {
				return nil, unavailable("publish", err)
			}
			n, reach[i].Foreground = publishReply(v)
		case *redis.IntCmd:
			var err error
			if n, err = cmd.Result(); err != nil {
				return nil, unavailable("publish", err)
			}
		}
		reach[i].Online = n > 0 || n == -1 // -1: published to this user before
	}
	return reach, nil
}

// publishReply reads publish.lua's answer: a count, or with presence
// {count, device, ...}.
func publishReply(v any) (int64, []string) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case []any:
		if len(v) == 0 {
			return 0, nil
		}
		n, _ := v[0].(int64)
		var devices []string
		for _, d := range v[1:] {
			if s, ok := d.(string); ok {
				devices = append(devices, s)
			}
		}
		return n, devices
	}
	return 0, nil
}

// Presence entries live presenceTTL past their last refresh, and every
// instance refreshes its own every presenceRefresh: an instance that dies
// leaves its devices counted as present for at most presenceTTL.
const (
	presenceTTL     = 60 * time.Second
	presenceRefresh = 20 * time.Second
)

// SetForeground implements bus.Bus: the field <node>\n<device> of the
// user's presence hash holds when it lapses (ms), or is gone.
func (b *Bus) SetForeground(ctx context.Context, user, device string, foreground bool) error {
	var err error
	if foreground {
		pipe := b.c.Pipeline()
		pipe.HSet(ctx, b.presenceKey(user), b.node+"\n"+device, time.Now().Add(presenceTTL).UnixMilli())
		pipe.PExpire(ctx, b.presenceKey(user), presenceTTL)
		_, err = pipe.Exec(ctx)
	} else {
		err = b.c.HDel(ctx, b.presenceKey(user), b.node+"\n"+device).Err()
	}
	if err != nil {
		return unavailable("presence", err)
	}
	return nil
}

// refreshPresence keeps this instance's foreground devices present, every
// presenceRefresh, until ctx ends; it is one of Run's goroutines.
func (b *Bus) refreshPresence(ctx context.Context) {
	t := time.NewTicker(presenceRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		until := time.Now().Add(presenceTTL).UnixMilli()
		const batch = 1000
		pipe := b.c.Pipeline()
		n := 0
		flush := func() {
			if n > 0 {
				if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
					b.log.Warn("redisbus: refreshing presence failed; tried again next time", "err", err)
				}
				n = 0
			}
		}
		for user, devices := range b.hub.ForegroundAll() {
			for _, d := range devices {
				pipe.HSet(ctx, b.presenceKey(user), b.node+"\n"+d, until)
			}
			pipe.PExpire(ctx, b.presenceKey(user), presenceTTL)
			if n++; n >= batch {
				flush()
			}
		}
		flush()
	}
}

// Replay implements bus.Bus with replay.lua: the check that nothing after
// `after` was dropped and the read are one step. Errors wrap
// bus.ErrUnavailable.
func (b *Bus) Replay(ctx context.Context, user, after string) ([]bus.Kept, bool, error) {
	args := []any{"", ""}
	if after != "" {
		ms, seq, ok := parseID(after)
		if !ok {
			return nil, false, nil
		}
		args = []any{ms, seq}
	}
	res, err := replayScript.Run(ctx, b.c, []string{b.streamKey(user)}, args...).Slice()
	if err != nil {
		return nil, false, unavailable("replay", err)
	}
	if len(res) == 0 || res[0] != int64(1) || len(res)%3 != 1 {
		return nil, false, nil
	}
	events := make([]bus.Kept, 0, len(res)/3)
	for i := 1; i < len(res); i += 3 {
		raw, _ := res[i].(string)
		frame, _ := res[i+1].(string)
		origin, _ := res[i+2].(string)
		id, ok := padID(raw)
		if !ok || len(frame) < 2 {
			return nil, false, fmt.Errorf("redisbus: replay: malformed entry %q of %s", raw, b.streamKey(user))
		}
		k := bus.Kept{Frame: bus.WithEventID([]byte(frame), id)}
		if node, session, ok := strings.Cut(origin, "\n"); ok {
			k.Origin.Node = node
			k.Origin.Session, _ = strconv.ParseUint(session, 10, 64)
		}
		events = append(events, k)
	}
	return events, true, nil
}

// Last implements bus.Bus. Errors wrap bus.ErrUnavailable.
func (b *Bus) Last(ctx context.Context, user string) (string, error) {
	msgs, err := b.c.XRevRangeN(ctx, b.streamKey(user), "+", "-", 1).Result()
	if err != nil {
		return "", unavailable("last", err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	id, ok := padID(msgs[0].ID)
	if !ok {
		return "", fmt.Errorf("redisbus: last: malformed entry ID %q of %s", msgs[0].ID, b.streamKey(user))
	}
	return id, nil
}

// Lasts implements bus.Bus in one round trip. Errors wrap
// bus.ErrUnavailable.
func (b *Bus) Lasts(ctx context.Context, users []string) ([]string, error) {
	out := make([]string, len(users))
	if len(users) == 0 {
		return out, nil
	}
	pipe := b.c.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.XRevRangeN(ctx, b.streamKey(u), "+", "-", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("lasts", err)
	}
	for i, cmd := range cmds {
		if msgs := cmd.Val(); len(msgs) > 0 {
			id, ok := padID(msgs[0].ID)
			if !ok {
				return nil, fmt.Errorf("redisbus: lasts: malformed entry ID %q of %s", msgs[0].ID, b.streamKey(users[i]))
			}
			out[i] = id
		}
	}
	return out, nil
}

// RungAs implements bus.Bus. Errors wrap bus.ErrUnavailable.
func (b *Bus) RungAs(ctx context.Context, user string, inviteIDs []string) ([]string, error) {
	out := make([]string, len(inviteIDs))
	if len(inviteIDs) == 0 {
		return out, nil
	}
	vals, err := b.c.HMGet(ctx, b.rungKey(user), inviteIDs...).Result()
	if err != nil {
		return nil, unavailable("rungAs", err)
	}
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

// EventIDs are stream entry IDs with both numbers zero-padded to these
// widths: milliseconds until the year 2286, and far more events per
// millisecond than one user gets.
const (
	msWidth  = 13
	seqWidth = 10
	idLen    = msWidth + 1 + seqWidth
)

// padID turns an entry ID "<ms>-<seq>" into an eventID.
func padID(raw string) (string, bool) {
	ms, seq, ok := strings.Cut(raw, "-")
	if !ok || len(ms) == 0 || len(ms) > msWidth || len(seq) == 0 || len(seq) > seqWidth || !digits(ms) || !digits(seq) {
		return "", false
	}
	var buf [idLen]byte
	i := copy(buf[:], zeros[:msWidth-len(ms)])
	i += copy(buf[i:], ms)
	buf[i] = '-'
	i++
	i += copy(buf[i:], zeros[:seqWidth-len(seq)])
	copy(buf[i:], seq)
	return string(buf[:]), true
}

const zeros = "0000000000000"

// parseID returns the numbers of an eventID this bus issues, or false.
func parseID(id string) (ms, seq uint64, ok bool) {
	if len(id) != idLen || id[msWidth] != '-' || !digits(id[:msWidth]) || !digits(id[msWidth+1:]) {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(id[:msWidth], 10, 64)
	seq, err2 := strconv.ParseUint(id[msWidth+1:], 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
