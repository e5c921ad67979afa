package redisbus

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/hub"
)

// watch is one watched user: its channel and where it is subscribed.
type watch struct {
	ch    string
	n     int    // Watch calls not undone by Unwatch; guarded by Bus.mu
	shard *shard // guarded by Bus.mu
	// confirmed: Redis confirmed the subscription on the shard's current
	// connection, so that a further Watch may return at once. Guarded by
	// Bus.mu; cleared when the connection breaks.
	confirmed bool
}

// shard is one subscription connection, to one Redis server, and the
// goroutines that read and ping it.
type shard struct {
	client *redis.Client // the server
	ps     *redis.PubSub
	chans  map[string]*watch // channels subscribed here, by name; guarded by Bus.mu

	wmu     sync.Mutex
	waiters map[string]waiter // by ping payload; guarded by wmu
	closed  bool              // no more waiters: Run has ended; guarded by wmu
}

// waiter is a Watch or Unwatch waiting for the reply to its PING, which
// Redis sends after it has processed the (S)SUBSCRIBE sent before.
type waiter struct {
	ch   string // the channel that must then be subscribed; "" for none
	done chan error
}

// Payloads of the PINGs that the shards' goroutines send themselves.
// confirm's are numbers.
const (
	keepaliveToken = "k"
	restoreToken   = "r"
)

var (
	errBroken        = errors.New("subscription connection broken")
	errNotSubscribed = errors.New("redis refused the subscription")
	errStopped       = errors.New("bus stopped")
	errMoved         = errors.New("channel moved to another server")
)

// Timeouts of the work on subscriptions that no caller's context bounds.
const (
	unwatchTimeout     = 2 * time.Second
	resubscribeTimeout = 10 * time.Second
	maxBackoff         = 2 * time.Second
)

// Watch implements bus.Bus. The first Watch of a user subscribes to its
// channel and returns once Redis has confirmed it (Run must be running);
// later ones only count, unless the subscription connection broke since.
// Errors wrap bus.ErrUnavailable; the call is then undone.
func (b *Bus) Watch(ctx context.Context, user string) error {
	ch := b.channel(user)
	b.mu.Lock()
	if b.state == stopped {
		b.mu.Unlock()
		return unavailable("watch", errStopped)
	}
	w := b.watches[ch]
	if w == nil {
		w = &watch{ch: ch}
		b.watches[ch] = w
	}
	w.n++
	confirmed := w.confirmed
	b.mu.Unlock()
	if confirmed {
		return nil
	}
	if err := b.subscribe(ctx, w); err != nil {
		b.release(ch, false)
		return unavailable("watch", err)
	}
	return nil
}

// subscribe subscribes w's channel on the server that owns it and waits for
// Redis to confirm, trying again a few times if the connection breaks
// meanwhile. Concurrent calls for one watch are harmless: SSUBSCRIBE of a
// channel already subscribed changes nothing.
func (b *Bus) subscribe(ctx context.Context, w *watch) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 && !sleep(ctx, backoff(attempt)) {
			break
		}
		var cl *redis.Client
		if cl, err = b.serverOf(ctx, w.ch); err != nil {
			continue
		}
		b.mu.Lock()
		if w.confirmed {
			b.mu.Unlock()
			return nil
		}
		var sh *shard
		if sh, err = b.place(w, cl); err == nil {
			// Sent under b.mu, so that the SSUBSCRIBEs and SUNSUBSCRIBEs of
			// a channel reach Redis in the order of the count's changes.
			err = sh.ps.SSubscribe(ctx, w.ch)
		}
		b.mu.Unlock()
		if err == nil {
			err = b.confirm(ctx, sh, w.ch)
		}
		if err == nil {
			b.mu.Lock()
			if w.shard == sh {
				w.confirmed = true
			} else {
				err = errMoved
			}
			b.mu.Unlock()
			if err == nil {
				return nil
			}
		}
		if errors.Is(err, errStopped) {
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// serverOf returns the server that owns the slot of channel ch.
func (b *Bus) serverOf(ctx context.Context, ch string) (*redis.Client, error) {
	if b.cluster == nil {
		return b.single, nil
	}
	return b.cluster.MasterForKey(ctx, ch)
}

// place makes w's channel belong to the shard of cl, making the shard if
// need be, and unsubscribes it from the one it leaves. b.mu must be held.
func (b *Bus) place(w *watch, cl *redis.Client) (*shard, error) {
	if b.state == stopped {
		return nil, errStopped
	}
	sh := b.shards[cl]
	if sh == nil {
		sh = &shard{
			client:  cl,
			ps:      cl.SSubscribe(context.Background()), // connects on first use
			chans:   make(map[string]*watch),
			waiters: make(map[string]waiter),
		}
		b.shards[cl] = sh
		if b.state == running {
			b.start(sh)
		}
	}
	if old := w.shard; old != sh {
		if old != nil {
			delete(old.chans, w.ch)
			// Bounded: the old server may be gone. The channel leaves the
			// PubSub's own list even when this fails, so that go-redis does
			// not subscribe it there again.
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_ = old.ps.SUnsubscribe(ctx, w.ch)
			cancel()
		}
		w.shard = sh
		w.confirmed = false
		sh.chans[w.ch] = w
	}
	return sh, nil
}

// confirm sends a PING on sh's connection and waits for Run to read its
// reply; by then Redis has processed every (S)SUBSCRIBE sent before. With
// ch set, it fails unless ch is then subscribed.
func (b *Bus) confirm(ctx context.Context, sh *shard, ch string) error {
	token := strconv.FormatUint(b.tokens.Add(1), 10)
	done := make(chan error, 1)
	sh.wmu.Lock()
	if sh.closed {
		sh.wmu.Unlock()
		return errStopped
	}
	sh.waiters[token] = waiter{ch: ch, done: done}
	sh.wmu.Unlock()
	defer func() {
		sh.wmu.Lock()
		delete(sh.waiters, token)
		sh.wmu.Unlock()
	}()
	if err := sh.ps.Ping(ctx, token); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unwatch implements bus.Bus. The last Unwatch of a user unsubscribes
// from its channel and waits (a little) for Redis to have done so, so that
// a Publish right after it no longer counts this instance. Unwatch of a
// user not watched does nothing.
func (b *Bus) Unwatch(user string) { b.release(b.channel(user), true) }

func (b *Bus) release(ch string, wait bool) {
	b.mu.Lock()
	w := b.watches[ch]
	if w == nil {
		b.mu.Unlock()
		return
	}
	if w.n--; w.n > 0 {
		b.mu.Unlock()
		return
	}
	delete(b.watches, ch)
	sh := w.shard
	if sh == nil {
		b.mu.Unlock()
		return
	}
	delete(sh.chans, ch)
	ctx, cancel := context.WithTimeout(context.Background(), unwatchTimeout)
	defer cancel()
	err := sh.ps.SUnsubscribe(ctx, ch)
	wait = wait && err == nil && b.state == running
	b.mu.Unlock()
	if wait {
		_ = b.confirm(ctx, sh, "")
	}
}

// Run reads the subscription connections and delivers their events to the
// hub until ctx ends, then closes them; it returns nil once every goroutine
// it started has ended. It may be called once.
func (b *Bus) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.state != notStarted {
		b.mu.Unlock()
		return errors.New("redisbus: Run called twice")
	}
	b.state = running
	b.runCtx = ctx
	for _, sh := range b.shards {
		b.start(sh)
	}
	b.mu.Unlock()
	b.wg.Go(func() { b.refreshPresence(ctx) })

	<-ctx.Done()

	b.mu.Lock()
	b.state = stopped
	shards := slices.Collect(maps.Values(b.shards))
	b.mu.Unlock()
	for _, sh := range shards {
		_ = sh.ps.Close() // ends the read that receive is blocked in
	}
	b.wg.Wait()
	for _, sh := range shards {
		sh.fail(errStopped, true)
	}
	return nil
}

// start starts sh's goroutines. b.mu must be held, in state running.
func (b *Bus) start(sh *shard) {
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.receive(b.runCtx, sh)
	}()
	go func() {
		defer b.wg.Done()
		b.keepalive(b.runCtx, sh)
	}()
}

// keepalive pings sh's connection, so that receive hears from Redis at
// least that often and can tell a dead connection from a quiet one.
func (b *Bus) keepalive(ctx context.Context, sh *shard) {
	t := time.NewTicker(b.pingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, b.pingEvery)
		_ = sh.ps.Ping(pctx, keepaliveToken)
		cancel()
	}
}

// receive reads sh's connection until ctx ends: events go to the hub, in
// order, and the replies to PINGs to their waiters. When the connection
// breaks, it subscribes every channel of sh again.
func (b *Bus) receive(ctx context.Context, sh *shard) {
	// The channels Redis confirmed on the current connection.
	subscribed := make(map[string]bool)
	broken := false
	addr := sh.client.Options().Addr

	var dl readDeadline
	defer dl.stop()
	for {
		msg, err := sh.ps.Receive(dl.get(ctx, b.pingEvery))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var rerr redis.Error
			if errors.As(err, &rerr) {
				// An error reply: the connection is fine. Typically
				// go-redis's own resubscription of every channel in one
				// SSUBSCRIBE, which a cluster refuses when they span slots.
				b.log.Debug("redisbus: error reply on the subscription connection", "server", addr, "err", err)
				continue
			}
			if !broken {
				b.log.Warn("redisbus: subscription connection broken; subscribing again", "server", addr, "err", err)
				broken = true
			}
			clear(subscribed)
			sh.fail(errBroken, false)
			if !b.restore(ctx, sh) {
				return
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			b.deliver(m)
		case *redis.Subscription:
			switch m.Kind {
			case "ssubscribe":
				subscribed[m.Channel] = true
			case "sunsubscribe":
				delete(subscribed, m.Channel)
				// Not asked for when the channel is still watched here: its
				// slot moved to another master.
				if b.cluster != nil {
					b.reroute(ctx, sh, []string{m.Channel})
				}
			}
		case *redis.Pong:
			switch m.Payload {
			case keepaliveToken:
			case restoreToken:
				if broken {
					broken = false
					b.log.Info("redisbus: subscriptions restored", "server", addr)
					if b.cluster != nil {
						b.reroute(ctx, sh, b.unconfirmed(sh, subscribed))
					}
					b.reportGap(sh)
				}
			default:
				sh.resolve(m.Payload, subscribed)
			}
		}
	}
}

// reportGap tells OnGap which users were watched on sh while its
// connection was down.
func (b *Bus) reportGap(sh *shard) {
	if b.onGap == nil {
		return
	}
	b.mu.Lock()
	users := make([]string, 0, len(sh.chans))
	for ch := range sh.chans {
		if u, ok := b.userOf(ch); ok {
			users = append(users, u)
		}
	}
	b.mu.Unlock()
	if len(users) > 0 {
		b.onGap(users)
	}
}

// readDeadline gives each read of a subscription connection a deadline 2
// to 3 pings away (go-redis drops the connection when a read reaches it),
// renewing its context once a ping has passed rather than on every read.
type readDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

func (d *readDeadline) get(parent context.Context, ping time.Duration) context.Context {
	if d.ctx == nil || time.Until(d.at) < 2*ping {
		d.stop()
		d.at = time.Now().Add(3 * ping)
		d.ctx, d.cancel = context.WithDeadline(parent, d.at)
	}
	return d.ctx
}

func (d *readDeadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

// deliver hands one message to the hub.
func (b *Bus) deliver(m *redis.Message) {
	user, ok := b.userOf(m.Channel)
	id, rest, ok1 := strings.Cut(m.Payload, "\n")
	prev, rest, ok2 := strings.Cut(rest, "\n")
	node, rest, ok3 := strings.Cut(rest, "\n")
	session, rest, ok4 := strings.Cut(rest, "\n")
	kind, frame, ok5 := strings.Cut(rest, "\n")
	if !ok || !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || len(frame) < 2 {
		b.log.Warn("redisbus: malformed message", "channel", m.Channel)
		return
	}
	var except uint64
	if node == b.node {
		except, _ = strconv.ParseUint(session, 10, 64)
	}
	d := hub.Delivery{Frame: []byte(frame), ID: id, Prev: prev, Kind: kind}
	if id != "" {
		d.Frame = bus.WithEventID(d.Frame, id)
	}
	b.hub.Deliver(user, d, except)
}

// restore subscribes every channel of sh again after its connection broke,
// retrying with backoff until it succeeds or ctx ends (false). Its last
// PING's reply tells receive that Redis has the subscriptions again.
func (b *Bus) restore(ctx context.Context, sh *shard) bool {
	b.mu.Lock()
	for _, w := range sh.chans {
		w.confirmed = false
	}
	b.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if !sleep(ctx, backoff(attempt)) {
			return false
		}
		if attempt > 0 && b.cluster != nil {
			// The server may be gone for good (a failover): move the
			// channels whose slot another master now owns.
			b.cluster.ReloadState(ctx)
			b.mu.Lock()
			chans := slices.Collect(maps.Keys(sh.chans))
			b.mu.Unlock()
			b.reroute(ctx, sh, chans)
		}
		err := b.resubscribe(ctx, sh)
		if err == nil {
			return true
		}
		b.log.Debug("redisbus: subscribing again failed", "server", sh.client.Options().Addr, "err", err)
	}
}

// resubscribe sends SSUBSCRIBE for every channel of sh, one command per slot
// (Redis Cluster refuses more), then the restore PING.
func (b *Bus) resubscribe(ctx context.Context, sh *shard) error {
	ctx, cancel := context.WithTimeout(ctx, resubscribeTimeout)
	defer cancel()
	b.mu.Lock()
	var err error
	for _, group := range b.bySlot(slices.Collect(maps.Keys(sh.chans))) {
		if err = sh.ps.SSubscribe(ctx, group...); err != nil {
			break
		}
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	return sh.ps.Ping(ctx, restoreToken)
}

// bySlot groups channels for SSUBSCRIBE: by slot on a cluster, else in
// batches.
func (b *Bus) bySlot(chans []string) [][]string {
	const batch = 1000
	var groups [][]string
	if b.cluster == nil {
		for c := range slices.Chunk(chans, batch) {
			groups = append(groups, c)
		}
		return groups
	}
	idx := make(map[uint16]int)
	for _, ch := range chans {
		s := slot(ch)
		i, ok := idx[s]
		if !ok {
			i = len(groups)
			idx[s] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], ch)
	}
	return groups
}

// unconfirmed returns sh's channels that Redis has not confirmed on the
// current connection.
func (b *Bus) unconfirmed(sh *shard, subscribed map[string]bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for ch := range sh.chans {
		if !subscribed[ch] {
			out = append(out, ch)
		}
	}
	return out
}

// reroute subscribes those of chans still watched on sh on the master that
// owns their slot now, which may be sh's server again: for a channel Redis
// dropped (its slot moved) or refused.
func (b *Bus) reroute(ctx context.Context, sh *shard, chans []string) {
	here := func(ch string) bool {
		w := b.watches[ch]
		return w != nil && w.shard == sh
	}
	for _, ch := range chans {
		b.mu.Lock()
		ok := here(ch)
		b.mu.Unlock()
		if !ok {
			continue
		}
		cl, err := b.serverOf(ctx, ch)
		if err != nil {
			continue
		}
		b.mu.Lock()
		if here(ch) {
			if nsh, err := b.place(b.watches[ch], cl); err == nil {
				sctx, cancel := context.WithTimeout(ctx, time.Second)
				_ = nsh.ps.SSubscribe(sctx, ch)
				cancel()
			}
		}
		b.mu.Unlock()
	}
}

// resolve answers the waiter of a PING reply.
func (sh *shard) resolve(token string, subscribed map[string]bool) {
	sh.wmu.Lock()
	w, ok := sh.waiters[token]
	delete(sh.waiters, token)
	sh.wmu.Unlock()
	if !ok {
		return
	}
	if w.ch == "" || subscribed[w.ch] {
		w.done <- nil
	} else {
		w.done <- errNotSubscribed
	}
}

// fail answers every waiter with err; with closed, also those to come.
func (sh *shard) fail(err error, closed bool) {
	sh.wmu.Lock()
	defer sh.wmu.Unlock()
	for token, w := range sh.waiters {
		w.done <- err
		delete(sh.waiters, token)
	}
	if closed {
		sh.closed = true
	}
}

// backoff is the wait before the attempt-th try: none before the first.
func backoff(attempt int) time.Duration {
	if attempt == 0 {
		return 0
	}
	return min(50*time.Millisecond<<min(attempt-1, 6), maxBackoff)
}

// sleep waits d, or less when ctx ends first (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// slot is the Redis Cluster slot of key: CRC-16/XMODEM of its hash tag,
// modulo 16384.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc & 16383
}
