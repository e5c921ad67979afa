package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// trickle sends invitations from one device to a user at a steady pace in
// the background, each with data "n=<seq>", and records how each was
// answered. It never fails the test itself; the test reads what it saw.
type trickle struct {
	d       *device
	invitee string

	mu      sync.Mutex
	seq     int            // guarded by mu: the last seq sent
	answers map[int]answer // guarded by mu: by seq

	stop     chan struct{} // closed by halt
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// maxTrickle bounds the invitations one trickle sends.
const maxTrickle = 600

type answer struct {
	code     int // -1: no reply (the connection failed)
	inviteID string
}

func startTrickle(t *testing.T, d *device, invitee string, every time.Duration) *trickle {
	tr := &trickle{d: d, invitee: invitee, answers: map[int]answer{}, stop: make(chan struct{})}
	tr.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			tr.mu.Lock()
			if tr.seq == maxTrickle {
				tr.mu.Unlock()
				return
			}
			tr.seq++
			n := tr.seq
			tr.mu.Unlock()
			// Not cancelled by halt: an invite whose reply was never read
			// could still ring after the test has stopped looking.
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			d.reconnectIfAsked() // only this goroutine uses d
			f, err := d.c.Call(cctx, protocol.OpInvite, map[string]any{"invitee": invitee, "data": fmt.Sprintf("n=%d", n), "timeout": 0})
			ccancel()
			a := answer{code: -1}
			if err == nil {
				a.code = f.Code
				if f.Code == 0 {
					a.inviteID = strings.Trim(string(f.Data), `"`)
				}
			}
			tr.mu.Lock()
			tr.answers[n] = a
			tr.mu.Unlock()
		}
	})
	t.Cleanup(tr.halt)
	return tr
}

// halt stops the trickle and waits for the reply to its last request.
func (tr *trickle) halt() {
	tr.stopOnce.Do(func() { close(tr.stop) })
	tr.wg.Wait()
}

// last returns the seq of the last invitation sent.
func (tr *trickle) last() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.seq
}

// codes counts the answers by code among seqs in (from, to].
func (tr *trickle) codes(from, to int) map[int]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := map[int]int{}
	for n := from + 1; n <= to; n++ {
		if a, ok := tr.answers[n]; ok {
			m[a.code]++
		}
	}
	return m
}

// answer returns how invitation #n was answered, once it was.
func (tr *trickle) answer(n int) (answer, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	a, ok := tr.answers[n]
	return a, ok
}

// succeeded returns the seqs after from that were answered 0, in order.
func (tr *trickle) succeeded(from int) []int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []int
	for n := from + 1; n <= tr.seq; n++ {
		if tr.answers[n].code == 0 {
			out = append(out, n)
		}
	}
	return out
}

// seqOf reads the seq of a trickle invitation's event, failing on any
// other event.
func seqOf(t *testing.T, who string, f *protocol.Frame) int {
	t.Helper()
	var n int
	if f.Event != "onReceiveNewInvitation" || f.Inviter != "alice" {
		t.Fatalf("%s: unexpected %s", who, describe(f))
	}
	if _, err := fmt.Sscanf(f.EventData(), "n=%d", &n); err != nil {
		t.Fatalf("%s: ring with data %q", who, f.EventData())
	}
	return n
}

// awaitSeqAfter reads d until the ring of an invitation sent after seq
// after arrives, and returns its seq. Rings of earlier ones may come first;
// each seq read is entered in seen, and one that comes twice fails the test.
func awaitSeqAfter(t *testing.T, d *device, seen map[int]bool, after int, why string) int {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		f, err := d.nextWithin(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: no ring of an invitation sent after #%d within %v (%v)", why, after, waitFor, err)
		}
		n := seqOf(t, d.user, f)
		if seen[n] {
			t.Fatalf("%s: invitation #%d rang twice on one connection", why, n)
		}
		seen[n] = true
		if n > after {
			return n
		}
	}
}

// TestRedisRestartAndPubSubKill: two instances, a steady trickle of
// invitations from a user on one to a user on the other. (a) Redis drops
// the instances' Pub/Sub connections: delivery resumes by itself, and the
// instances catch their clients up without closing any. (b) Redis
// stops: requests answer 90994 and /readyz 503; Redis comes back on the
// same port with its data (AOF): the instances recover by themselves, and a
// device that was away resumes with every event kept meanwhile. It logs how
// many rings a device connected throughout did not get live.
func TestRedisRestartAndPubSubKill(t *testing.T) {
	requireBinary(t)
	rs := startRedis(t, "redis", "--appendonly", "yes", "--appendfsync", "always")
	dep := newDeployment(t, "redis://"+rs.addr, "single", map[string]string{
		"SIGNALD_REQUEST_TIMEOUT": "1s",
		"SIGNALD_EVENTS_KEPT":     "200",
	})
	n1, n2 := dep.start("node1"), dep.start("node2")
	alice := login(t, n1.ws(), "alice")
	alice2 := login(t, n2.ws(), "alice") // makes requests of its own while Redis is away
	phone := login(t, n2.ws(), "bob")
	// An instance asks a client to resume when it cannot catch it up
	// itself; these do, as apps do.
	phone.autoResume, alice.autoResume, alice2.autoResume = true, true, true
	tablet := login(t, n1.ws(), "bob")

	tr := startTrickle(t, alice, "bob", 100*time.Millisecond)
	phoneSaw := map[int]bool{}
	awaitSeqAfter(t, phone, phoneSaw, 2, "delivery across instances")
	// The tablet takes a few rings, then goes away.
	tabletSeq := awaitSeqAfter(t, tablet, map[int]bool{}, 2, "the tablet on node1")
	tabletLast := tablet.last
	_ = tablet.c.Close()

	// (a) Redis drops every Pub/Sub connection.
	v, err := rs.do("CLIENT", "KILL", "TYPE", "pubsub")
	if err != nil {
		t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
	}
	killed, _ := v.(int64)
	mark := tr.last()
	if killed < 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub killed %d connections: the instances hold no Pub/Sub connection", killed)
	}
	t.Logf("killed %d Pub/Sub connections after invitation #%d", killed, mark)
	got := awaitSeqAfter(t, phone, phoneSaw, mark, "delivery after CLIENT KILL TYPE pubsub")
	t.Logf("delivery resumed by itself: #%d arrived", got)
	// The instances caught their clients up from the kept events: nobody
	// was asked to reconnect.
	alice2.must(protocol.OpPing, nil)
	alice.must(protocol.OpPing, nil)
	for _, d := range []*device{alice, alice2, phone} {
		if d.isClosed() || d.resumes > 0 {
			t.Fatalf("%s was closed after the Pub/Sub gap (status %d, resumed %d times)", d.user, d.c.CloseStatus(), d.resumes)
		}
	}

	// (b) Redis stops.
	mark = tr.last()
	rs.stop()
	down := time.Now()
	allReadyz(t, http.StatusServiceUnavailable, n1, n2)
	t.Logf("both instances not ready %v after Redis stopped", time.Since(down).Round(time.Millisecond))
	asked := time.Now()
	f := alice2.call(protocol.OpInvite, map[string]any{"invitee": "carol", "data": "while down"})
	if f.Code != protocol.CodeInternal {
		t.Fatalf("invite while Redis is down: code %d %q, want %d", f.Code, f.Desc, protocol.CodeInternal)
	}
	t.Logf("invite while Redis is down answered %d in %v", f.Code, time.Since(asked).Round(time.Millisecond))
	rs.restart()
	up := time.Now()
	t.Logf("Redis was down %v; trickle answers meanwhile: %v", up.Sub(down).Round(time.Millisecond), tr.codes(mark, tr.last()))
	allReadyz(t, http.StatusOK, n1, n2)
	t.Logf("both instances ready again %v after Redis came back", time.Since(up).Round(time.Millisecond))
	mark = tr.last()
	got = awaitSeqAfter(t, phone, phoneSaw, mark, "delivery after Redis came back")
	t.Logf("delivery resumed after the restart: #%d arrived", got)
	// The ring can arrive before its invite's reply is recorded: wait for
	// that answer rather than read it at once.
	eventually(t, fmt.Sprintf("invitation #%d answered 0", got), func() error {
		if a, ok := tr.answer(got); !ok || a.code != 0 {
			return fmt.Errorf("answer %+v (recorded %v)", a, ok)
		}
		return nil
	})

	// The trickle stops; the phone hears its last invitation.
	tr.halt()
	ok := tr.succeeded(0)
	if len(ok) == 0 {
		t.Fatal("no invitation of the trickle succeeded")
	}
	lastOK := ok[len(ok)-1]
	if got < lastOK {
		awaitSeqAfter(t, phone, phoneSaw, lastOK-1, "the last invitation")
	}
	t.Logf("trickle: %d sent, answers %v", tr.last(), tr.codes(0, tr.last()))
	// The phone stayed connected (but for the reconnections its instance
	// asked for): it rang for every invitation that succeeded, live or by
	// resuming, none lost to the Pub/Sub gaps.
	var missed []int
	for _, n := range ok {
		if !phoneSaw[n] {
			missed = append(missed, n)
		}
	}
	if len(missed) > 0 {
		t.Fatalf("the phone did not ring for %d of %d successful invitations: %v (resumed %d times)", len(missed), len(ok), missed, phone.resumes)
	}
	t.Logf("the phone rang for all %d successful invitations; it was asked to resume %d times", len(ok), phone.resumes)
	phone.expectQuiet()

	// The tablet resumes, on the other instance, after the last ring it
	// took: every kept event since, in order, and nothing else.
	tablet.last = tabletLast
	data := tablet.resume(n2.ws())
	if data["recovered"] != true {
		t.Fatalf("resume after Redis restarted: login data %v, want recovered true", data)
	}
	tablet.must(protocol.OpPing, nil) // the replay is queued before its reply
	var seqs []int
	prevID := tabletLast
	for tablet.c.Pending() > 0 {
		f := tablet.next()
		n := seqOf(t, "tablet", f)
		if f.EventID <= prevID {
			t.Fatalf("replayed eventID %s not after %s", f.EventID, prevID)
		}
		if n <= tabletSeq || (len(seqs) > 0 && n <= seqs[len(seqs)-1]) {
			t.Fatalf("replayed #%d after #%v (resumed after #%d)", n, seqs, tabletSeq)
		}
		prevID = f.EventID
		seqs = append(seqs, n)
	}
	if data["lastEventID"] != prevID {
		t.Fatalf("login lastEventID %v, want the newest replayed %s", data["lastEventID"], prevID)
	}
	replayed := map[int]bool{}
	for _, n := range seqs {
		replayed[n] = true
	}
	for _, n := range tr.succeeded(tabletSeq) {
		if !replayed[n] {
			t.Fatalf("invitation #%d succeeded but was not replayed; replayed %v", n, seqs)
		}
	}
	t.Logf("tablet resumed: %d events replayed %v", len(seqs), seqs)
}
