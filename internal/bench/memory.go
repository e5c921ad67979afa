package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"time"
)

// The memory scenario: what the server's memory (and Redis's) grows by per
// pending invitation, and what is left of a flood of large invitations once
// they have all timed out and been dropped. Every heap figure is read from
// /metrics right after collections forced through -pprof (memheap.go).
//
// Connection 0 is the calibration invitee (online), 1 the calibration
// inviter (calibrate.go), then the flood's inviters, then each pending
// pass's inviters. The invitees of the flood and of the passes never
// connect: an offline user is what an abuser would invite.

// dropMargin is waited after the flood's invitations are gone to the
// clients' eyes, before the heap is read: the memory store reclaims a
// dropped invitation on the timeout loop's next poll (50 ms by default).
const dropMargin = time.Second

// cleanupTimeout bounds the cancelling of the pending invitations at the end.
const cleanupTimeout = time.Minute

// memPoll is how often the flood's end is polled for.
const memPoll = 200 * time.Millisecond

func runMemory(ctx context.Context, cfg *Config, d *Dialer, p *probe, rep *Report) error {
	sizes := cfg.PendingDataSizes
	if cfg.Pending == 0 {
		sizes = nil
	}
	fplan := floodPlan(cfg.Flood, cfg.PerUser)
	pplan := spreadPlan(cfg.Pending, cfg.PerUser)
	users := []string{cfg.Prefix + "-calee", cfg.Prefix + "-calor"}
	users = append(users, names(cfg.Prefix+"-fi", fplan.inviters)...)
	for s := range sizes {
		users = append(users, names(cfg.Prefix+"-p"+strconv.Itoa(s)+"i", pplan.inviters)...)
	}
	m := newMemRun(cfg, len(users), 0, 1)
	rep.setOutcome("invitations made", 0, &m.errs)
	stop := startProgress(ctx, cfg.Progress, "memory", "invitations made", func() (int64, int64, string) {
		return m.created.Load(), m.errs.Total(), *m.phase.Load()
	})
	defer stop()

	connectLat := NewHistogram()
	conns := d.ConnectMany(ctx, users, m, cfg.DialConcurrency, &m.errs, connectLat, nil)
	defer closeConns(ctx, conns, cfg.DialConcurrency)
	rep.addLatency("connect (dial + WebSocket + login)", connectLat)
	connected := 0
	for _, c := range conns {
		if c != nil {
			connected++
		}
	}
	if connected == 0 {
		rep.setOutcome("invitations made", 0, &m.errs)
		return errors.New("no connection could be established")
	}
	if connected < len(users) {
		rep.note("only %d of %d connections were established: the invitations of the others failed", connected, len(users))
	}

	start := p.take(ctx)
	load0 := ReadLoadAvg()
	first := p.readHeap(ctx)
	if first.err != nil {
		rep.setOutcome("invitations made", 0, &m.errs)
		return fmt.Errorf("server heap: %w", first.err)
	}
	if !first.gced {
		rep.note("the heap was read WITHOUT forced garbage collections (%v): garbage inflates every figure; pass -pprof with signald's --pprof-addr", first.gcErr)
	}

	var cal *calibration
	if conns[0] != nil && conns[1] != nil {
		m.setPhase("calibrating")
		var problems []string
		cal, problems = m.calibrate(ctx, conns[0], conns[1], sizes, cfg.FloodDataSize, cfg.Flood > 0)
		for _, pr := range problems {
			rep.note("calibration: %s: the kept-frame estimates that need it are left out", pr)
		}
	} else {
		rep.note("the calibration users could not connect: no kept-frame estimates")
	}

	// The flood first: what it leaves (kept events, for 24 h) is then part
	// of every later reading, before and after alike, whereas the pending
	// passes' invitations would end (cancelled) and be dropped during it.
	off := 2
	if cfg.Flood > 0 && ctx.Err() == nil {
		m.setPhase("flood")
		m.runFlood(ctx, p, rep, fplan, conns[off:off+fplan.inviters], cal)
	}
	off += fplan.inviters
	var batches []*batch
	var beforePasses heapReading
	if len(sizes) > 0 {
		beforePasses = p.readHeap(ctx)
	}
	for s, size := range sizes {
		if ctx.Err() != nil {
			break
		}
		m.setPhase(fmt.Sprintf("pending, %d B of data", size))
		b := m.runPending(ctx, p, rep, s, size, pplan, conns[off:off+pplan.inviters], cal)
		batches = append(batches, b)
		off += pplan.inviters
	}
	if len(batches) > 0 {
		m.setPhase("cancelling the pending invitations")
		var total int64
		for _, b := range batches {
			total += b.created
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		n, last := m.cancelAll(cctx, batches)
		cancel()
		rep.note("the %d pending invitations made were cancelled at the end (%d of them answered 0), so that none stays for the maximum lifetime; their kept events stay for the events' retention like any", total, n)
		if n > 0 && ctx.Err() == nil {
			m.afterCancel(ctx, p, rep, beforePasses, batches, sizes, last, cal)
		}
	}
	stop()
	end := p.take(ctx)

	rep.setOutcome("invitations made", m.created.Load(), &m.errs)
	rep.MeasuredSeconds = end.at.Sub(start.at).Seconds()
	b := rep.section("bench tool (this process)")
	self := (end.self - start.self).Seconds()
	b.add("cpu_seconds", "CPU used", self, "s")
	if busy := end.machine.BusyPct(start.machine); busy >= 0 {
		b.add("machine_busy_pct", "machine CPU busy (all processes)", busy, "%")
	}
	if load0 >= 0 {
		b.add("loadavg_start", "load average (1 min) at the start", load0, "")
	}
	if l := ReadLoadAvg(); l >= 0 {
		b.add("loadavg_end", "load average (1 min) at the end", l, "")
	}
	b.add("machine_cpus", "CPUs on this machine", float64(runtime.NumCPU()), "")
	if n := m.stray.Load(); n > 0 {
		rep.note("%d replies came after their request had been given up (-op-timeout)", n)
	}
	rep.note("heap figures are signald's Go heap from /metrics after %d forced collections (GET -pprof/debug/pprof/heap?gc=1): \"live\" is go_memstats_heap_alloc_bytes (the objects), \"in use\" go_memstats_heap_inuse_bytes (the spans that hold them, fragmentation included); deltas are divided by the invitations made", heapGCs)
	rep.note("each inviter makes at most -per-user %d invitations and each invitee is in at most that many, under signald's default quotas (100 active per inviter, 100 pending per invitee, a burst of 400 invitees); the invitees never connect", cfg.PerUser)
	return nil
}

// runPending makes one pass of -pending invitations with size bytes of
// data and reports the memory they take while pending.
func (m *memRun) runPending(ctx context.Context, p *probe, rep *Report, pass, size int, plan invitePlan, inviters []*Conn, cal *calibration) *batch {
	cfg := m.cfg
	invitees := names(cfg.Prefix+"-p"+strconv.Itoa(pass)+"u", plan.invitees)
	keys := redisKeys{cfg.RedisPrefix}
	before := p.readHeap(ctx)
	var sharedBefore int64
	if p.rdb != nil {
		sharedBefore, _, _ = keysMemory(ctx, p.rdb, keys.shared())
	}
	b := m.inviteBatch(ctx, plan, inviters, invitees, paddedData(size), cfg.PendingTimeout)
	after := p.readHeap(ctx)

	noteUngced(rep, fmt.Sprintf("%d B pass", size), before, after)
	l := func(s string) string { return fmt.Sprintf("%d B data: %s", size, s) }
	k := func(s string) string { return fmt.Sprintf("pending_%d_%s", size, s) }
	s := rep.section(fmt.Sprintf("pending invitations, %d B of data, timeout %d s", size, cfg.PendingTimeout))
	s.add(k("made"), l("pending invitations made"), float64(b.created), "")
	s.add(k("seconds"), l("time to make them"), b.elapsed.Seconds(), "s")
	if err := readingErr(before, after); err != nil {
		rep.note("%d B pass: no heap figures: %v", size, err)
		return b
	}
	dl := heapDelta(before, after)
	s.add(k("active_added"), l("active invitations added (signald_active_invitations)"), dl.active, "")
	s.add(k("heap_alloc_before_mib"), l("heap before (live)"), before.alloc/(1<<20), "MiB")
	s.add(k("heap_alloc_after_mib"), l("heap after (live)"), after.alloc/(1<<20), "MiB")
	s.add(k("heap_alloc_per_inv"), l("heap per pending invitation (live)"), perUnit(before.alloc, after.alloc, b.created), "B")
	s.add(k("heap_inuse_per_inv"), l("heap per pending invitation (in use)"), perUnit(before.inuse, after.inuse, b.created), "B")
	if kept := pendingKept(cal, b, size); kept > 0 && b.created > 0 {
		label := "of which the invitee's kept ring frame (estimated)"
		if p.rdb != nil {
			label = "the invitee's kept ring frame (estimated; kept in Redis, not in the heap)"
		}
		s.add(k("kept_ring_per_inv"), l(label), float64(kept)/float64(b.created), "B")
	}
	if dl.redisOK {
		s.add(k("redis_used_per_inv"), l("Redis used_memory per pending invitation"), perUnit(0, float64(dl.redis.UsedMemory), b.created), "B")
		if dl.datasetOK {
			s.add(k("redis_dataset_per_inv"), l("Redis used_memory_dataset per pending invitation"), perUnit(0, float64(dl.redis.Dataset), b.created), "B")
		}
		s.add(k("redis_keys_per_inv"), l("Redis keys per pending invitation"), perUnit(0, float64(dl.redis.Keys), b.created), "")
		m.redisBreakdown(ctx, p, rep, s, b, size, plan, invitees, sharedBefore)
	} else if p.rdb != nil {
		rep.note("%d B pass: no Redis figures: %v", size, errors.Join(before.redisErr, after.redisErr))
	}
	if b.failed > 0 {
		rep.note("%d B pass: %d invitations failed (see ERRORS): codes 8012, 8013 or 60018 are the quotas; lower -per-user or raise them", size, b.failed)
	}
	return b
}

// redisBreakdown weighs the keys a pass of pending invitations made in
// Redis (MEMORY USAGE), by kind.
func (m *memRun) redisBreakdown(ctx context.Context, p *probe, rep *Report, s *Section, b *batch, size int, plan invitePlan, invitees []string, sharedBefore int64) {
	keys := redisKeys{m.cfg.RedisPrefix}
	var invKeys, inviteeKeys, inviterKeys []string
	for _, x := range b.all() {
		invKeys = append(invKeys, keys.invitation(x.id))
	}
	for _, u := range invitees {
		inviteeKeys = append(inviteeKeys, keys.invitee(u)...)
	}
	seen := map[string]bool{}
	for _, x := range b.all() {
		if !seen[x.conn.User] {
			seen[x.conn.User] = true
			inviterKeys = append(inviterKeys, keys.inviter(x.conn.User)...)
		}
	}
	inv, found, err := keysMemory(ctx, p.rdb, invKeys)
	if err != nil {
		rep.note("%d B pass: %v", size, err)
		return
	}
	if found == 0 {
		rep.note("%d B pass: none of the invitations' keys exist under -redis-prefix %q (is it signald's --redis-prefix, and signald in Redis mode?): no MEMORY USAGE breakdown", size, m.cfg.RedisPrefix)
		return
	}
	ie, _, err1 := keysMemory(ctx, p.rdb, inviteeKeys)
	ir, _, err2 := keysMemory(ctx, p.rdb, inviterKeys)
	sh, _, err3 := keysMemory(ctx, p.rdb, keys.shared())
	if err := errors.Join(err1, err2, err3); err != nil {
		rep.note("%d B pass: %v", size, err)
		return
	}
	l := func(t string) string { return fmt.Sprintf("%d B data: Redis MEMORY USAGE per invitation: %s", size, t) }
	k := func(t string) string { return fmt.Sprintf("pending_%d_redis_%s_per_inv", size, t) }
	n := b.created
	s.add(k("invitation"), l("the invitation's hash"), perUnit(0, float64(inv), n), "B")
	s.add(k("invitee"), l("the invitees' pending index and kept events"), perUnit(0, float64(ie), n), "B")
	s.add(k("inviter"), l("the inviters' active set and budget"), perUnit(0, float64(ir), n), "B")
	s.add(k("shared"), l("the deadline and announcement sets (growth)"), perUnit(float64(sharedBefore), float64(sh), n), "B")
	s.add(k("total"), l("all of these"), perUnit(float64(sharedBefore), float64(inv+ie+ir+sh), n), "B")
	if found < len(invKeys) {
		rep.note("%d B pass: only %d of the %d invitations' keys exist in Redis", size, found, len(invKeys))
	}
}

// afterCancel waits until the cancelled pending invitations have been
// dropped and reports what of them is left: their kept events (each
// invitee's rings and cancels), and nothing else if the memory comes back.
func (m *memRun) afterCancel(ctx context.Context, p *probe, rep *Report, before heapReading, batches []*batch, sizes []int, last made, cal *calibration) {
	cfg := m.cfg
	m.setPhase("waiting for the cancelled invitations to be dropped")
	t0 := time.Now()
	dropped, ok := m.awaitGone(ctx, last, t0, t0.Add(cfg.FloodWait))
	var invKeys []string
	var made int64
	var kept int64
	for i, b := range batches {
		made += b.created
		for _, x := range b.all() {
			invKeys = append(invKeys, redisKeys{cfg.RedisPrefix}.invitation(x.id))
		}
		if k := cancelledKept(cal, b, sizes[i]); k > 0 && kept >= 0 {
			kept += k
		} else {
			kept = -1 // one pass not calibrated: no estimate
		}
	}
	keysLeft := int64(-1)
	if p.rdb != nil && ok {
		keysLeft = m.awaitKeysGone(ctx, p, invKeys, t0.Add(cfg.FloodWait))
	}
	sleepCtx(ctx, dropMargin)
	after := p.readHeap(ctx)
	if ctx.Err() != nil {
		return
	}
	if !ok {
		rep.fail("the cancelled pending invitations were still readable (getSignalingInfo) -flood-wait %v after they were cancelled: not dropped after the retention", cfg.FloodWait)
		return
	}
	noteUngced(rep, "cancelled", before, after)
	s := rep.section("the pending invitations, cancelled and dropped")
	s.add("cancelled_made", "pending invitations cancelled", float64(made), "")
	s.add("cancelled_dropped_seconds", "all dropped (getSignalingInfo of the last answers 8010) after", dropped.Seconds(), "s")
	if err := readingErr(before, after); err != nil {
		rep.note("cancelled: no heap figures: %v", err)
		return
	}
	dl := heapDelta(before, after)
	s.add("cancelled_heap_alloc_delta_mib", "heap after they were cancelled and dropped minus before them (live)", dl.alloc/(1<<20), "MiB")
	s.add("cancelled_heap_alloc_per_inv", "the same per invitation (live)", perUnit(before.alloc, after.alloc, made), "B")
	s.add("cancelled_active_delta", "active invitations after minus before (signald_active_invitations)", dl.active, "")
	if kept > 0 {
		s.add("cancelled_kept_per_inv", "kept frames they left, per invitation (estimated)", float64(kept)/float64(made), "B")
		if p.rdb == nil {
			s.add("cancelled_heap_not_kept_per_inv", "heap left less the kept frames, per invitation (live)", perUnit(float64(kept), dl.alloc, made), "B")
		}
	}
	if dl.redisOK {
		s.add("cancelled_redis_used_per_inv", "Redis used_memory after minus before them, per invitation", perUnit(0, float64(dl.redis.UsedMemory), made), "B")
		if keysLeft >= 0 {
			s.add("cancelled_redis_inv_keys_left", "Redis: their invitation keys left", float64(keysLeft), "")
		}
	}
	rep.note("cancelled and dropped: an ended invitation is dropped after the retention; what it leaves is its events, kept for the events' retention (the invitee's ring and cancel, the inviter's cancel: the kept frames they left, estimated from the calibration), and the bookkeeping of the users' logs (per kept event: its entry, its once key); anything beyond is memory that does not come back")
}

// runFlood sends -flood invitations with -flood-data-size bytes of data
// and a 1 s timeout to as many offline users, waits until every one has
// timed out and been dropped, and reports the server's memory after it
// relative to before.
func (m *memRun) runFlood(ctx context.Context, p *probe, rep *Report, plan invitePlan, inviters []*Conn, cal *calibration) {
	cfg := m.cfg
	invitees := names(cfg.Prefix+"-fu", plan.invitees)
	keys := redisKeys{cfg.RedisPrefix}
	before := p.readHeap(ctx)
	t0 := time.Now()
	deadline := t0.Add(cfg.FloodWait)
	b := m.inviteBatch(ctx, plan, inviters, invitees, paddedData(cfg.FloodDataSize), 1)
	sent := time.Since(t0)

	var timedOut, dropped time.Duration
	timedOutOK, droppedOK, activeKnown := false, false, !math.IsNaN(before.active)
	if b.created > 0 {
		m.setPhase("flood: waiting for the timeouts")
		if activeKnown {
			timedOut, timedOutOK = m.awaitActive(ctx, p, before.active, t0, deadline)
		} else {
			rep.note("flood: /metrics has no %s: the timeouts were not awaited, only the drop", activeInvitationsMetric)
		}
		m.setPhase("flood: waiting for the drop")
		dropped, droppedOK = m.awaitGone(ctx, b.last, t0, deadline)
	}
	var invKeys []string
	for _, x := range b.all() {
		invKeys = append(invKeys, keys.invitation(x.id))
	}
	keysLeft := int64(-1)
	if p.rdb != nil && droppedOK {
		m.setPhase("flood: waiting for Redis to expire the invitations")
		keysLeft = m.awaitKeysGone(ctx, p, invKeys, deadline)
	}
	sleepCtx(ctx, dropMargin)
	after := p.readHeap(ctx)

	noteUngced(rep, "flood", before, after)
	s := rep.section(fmt.Sprintf("flood: %d invitations of %d B, timeout 1 s, to as many offline users", plan.n, cfg.FloodDataSize))
	s.add("flood_made", "flood invitations made", float64(b.created), "")
	s.add("flood_send_seconds", "time to send them", sent.Seconds(), "s")
	if timedOutOK {
		s.add("flood_timed_out_seconds", "all timed out (active invitations back to before) after", timedOut.Seconds(), "s")
	}
	if droppedOK {
		s.add("flood_dropped_seconds", "all dropped (getSignalingInfo of the last answers 8010) after", dropped.Seconds(), "s")
	}
	switch {
	case ctx.Err() != nil || b.created == 0:
	case activeKnown && !timedOutOK:
		rep.fail("the flood's invitations had not all timed out (signald_active_invitations back to %v) within -flood-wait %v", before.active, cfg.FloodWait)
	case !droppedOK:
		rep.fail("the flood's last invitation was still readable (getSignalingInfo) -flood-wait %v after the flood: not dropped after the retention", cfg.FloodWait)
	}
	if err := readingErr(before, after); err != nil {
		rep.note("flood: no heap figures: %v", err)
		return
	}
	dl := heapDelta(before, after)
	const mib = 1 << 20
	s.add("flood_heap_alloc_before_mib", "heap before the flood (live)", before.alloc/mib, "MiB")
	s.add("flood_heap_alloc_delta_mib", "heap after the flood minus before (live)", dl.alloc/mib, "MiB")
	s.add("flood_heap_inuse_delta_mib", "heap after the flood minus before (in use)", dl.inuse/mib, "MiB")
	s.add("flood_heap_alloc_per_inv", "heap after the flood minus before, per flood invitation (live)", perUnit(before.alloc, after.alloc, b.created), "B")
	s.add("flood_rss_delta_mib", "RSS after the flood minus before", dl.rss/mib, "MiB")
	toInvitees, toInviters := floodKept(cal, b, cfg.FloodDataSize)
	if kept := toInvitees + toInviters; kept > 0 {
		s.add("flood_kept_frames_mib", "kept frames of the flood (estimated: invitees' rings and timeouts, inviters' timeouts)", float64(kept)/mib, "MiB")
		if p.rdb == nil {
			s.add("flood_heap_not_kept_mib", "heap after the flood minus before, less the kept frames (live)", (dl.alloc-float64(kept))/mib, "MiB")
			s.add("flood_heap_not_kept_per_inv", "the same per flood invitation", perUnit(float64(kept), dl.alloc, b.created), "B")
		}
	}
	if p.rdb != nil {
		m.floodRedis(ctx, p, rep, s, b, invitees, before, after, keysLeft)
	} else {
		rep.note("flood (without -redis, signald is taken to be in memory mode, where the kept events are in its heap): the heap holds the kept frames rounded up to Go's size classes (a 12.3 KB frame takes a 13,568-byte slot) beside each user's log bookkeeping (its struct, the inviteID and once-key maps, the event slice), none of which SIGNALD_EVENTS_MAX_BYTES counts: hence the heap less the kept frames")
	}
	rep.note("after the flood every invitation has ended and been dropped, but its events stay kept for the events' retention (SIGNALD_EVENTS_RETENTION, 24 h): the ring (with its %d B of data) and the timeout for each invitee, the timeouts for each inviter; per user at most SIGNALD_EVENTS_KEPT (100) events and SIGNALD_EVENTS_KEPT_BYTES (256 KiB), and in memory mode at most SIGNALD_EVENTS_MAX_BYTES (512 MiB) in all, past which offline users' logs are evicted. So the heap after a flood is dominated by them in memory mode (in Redis mode they are in Redis). The kept frames are estimated from a calibration invitation to an online user with the per-user bounds emulated at their defaults: signald exports no gauge of them", cfg.FloodDataSize)
}

// floodRedis reports what the flood left in Redis.
func (m *memRun) floodRedis(ctx context.Context, p *probe, rep *Report, s *Section, b *batch, invitees []string, before, after heapReading, keysLeft int64) {
	keys := redisKeys{m.cfg.RedisPrefix}
	const mib = 1 << 20
	dl := heapDelta(before, after)
	if !dl.redisOK {
		rep.note("flood: no Redis figures: %v", errors.Join(before.redisErr, after.redisErr))
		return
	}
	s.add("flood_redis_used_delta_mib", "Redis used_memory after the flood minus before", float64(dl.redis.UsedMemory)/mib, "MiB")
	s.add("flood_redis_used_per_inv", "Redis used_memory after the flood minus before, per flood invitation", perUnit(0, float64(dl.redis.UsedMemory), b.created), "B")
	s.add("flood_redis_keys_delta", "Redis keys after the flood minus before", float64(dl.redis.Keys), "")
	var evKeys, pendKeys []string
	for _, u := range invitees {
		evKeys = append(evKeys, keys.events(u)...)
		pendKeys = append(pendKeys, keys.invitee(u)[0])
	}
	seen := map[string]bool{}
	for _, x := range b.all() {
		if !seen[x.conn.User] {
			seen[x.conn.User] = true
			evKeys = append(evKeys, keys.events(x.conn.User)...)
		}
	}
	kept, found, err := keysMemory(ctx, p.rdb, evKeys)
	if err != nil {
		rep.note("flood: %v", err)
		return
	}
	if found == 0 {
		rep.note("flood: none of the users' kept-event keys exist under -redis-prefix %q (is it signald's --redis-prefix?)", m.cfg.RedisPrefix)
		return
	}
	s.add("flood_redis_kept_mib", "Redis: the flood's kept events (MEMORY USAGE of the users' streams and rung hashes)", float64(kept)/mib, "MiB")
	s.add("flood_redis_kept_keys", "Redis: those keys", float64(found), "")
	if keysLeft >= 0 {
		s.add("flood_redis_inv_keys_left", "Redis: the flood's invitation keys left", float64(keysLeft), "")
	}
	if left, err := keysExisting(ctx, p.rdb, pendKeys); err == nil {
		s.add("flood_redis_pending_keys_left", "Redis: the flood invitees' pending indexes left", float64(left), "")
	}
}

// awaitActive polls the server's active invitations until they are back
// to want or fewer (every invitation of the flood has timed out), until
// the deadline; it returns how long after t0 they were.
func (m *memRun) awaitActive(ctx context.Context, p *probe, want float64, t0, deadline time.Time) (time.Duration, bool) {
	for {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		mt, err := ScrapeMetrics(mctx, p.hc, m.cfg.MetricsURL)
		cancel()
		if err == nil {
			v, ok := mt.Value(activeInvitationsMetric)
			if !ok {
				return 0, false
			}
			if v <= want {
				return time.Since(t0), true
			}
		}
		if !time.Now().Before(deadline) || !sleepCtx(ctx, memPoll) {
			return 0, false
		}
	}
}

// awaitGone polls getSignalingInfo of x, the flood's last invitation (the
// last to be dropped), until it is answered 8010, until the deadline; it
// returns how long after t0 that was.
func (m *memRun) awaitGone(ctx context.Context, x made, t0, deadline time.Time) (time.Duration, bool) {
	if x.conn == nil {
		return 0, false
	}
	for {
		gone, err := m.gone(ctx, x)
		if err == nil && gone {
			return time.Since(t0), true
		}
		if !time.Now().Before(deadline) || !sleepCtx(ctx, memPoll) {
			return 0, false
		}
	}
}

// awaitKeysGone polls Redis until none of keys exists (Redis expires
// them lazily and in a background cycle, after signald has stopped
// reading them), until the deadline; it returns how many are left.
func (m *memRun) awaitKeysGone(ctx context.Context, p *probe, keys []string, deadline time.Time) int64 {
	for {
		n, err := keysExisting(ctx, p.rdb, keys)
		if err == nil && n == 0 {
			return 0
		}
		if !time.Now().Before(deadline) || !sleepCtx(ctx, memPoll) {
			if err != nil {
				return -1
			}
			return n
		}
	}
}
