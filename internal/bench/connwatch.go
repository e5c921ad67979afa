package bench

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// connWatch holds the gap scenario to what a Pub/Sub gap must not break on
// any logged-in connection: its user's kept events arrive in increasing
// eventID order, none twice (PROTOCOL.md §9), and the server closes none
// of the connections. Its methods run on the connections' readers.
type connWatch struct {
	// last is each connection's newest eventID; element i is owned by
	// connection i's reader.
	last []string

	kept       atomic.Int64 // kept events received
	repeated   atomic.Int64 // the same eventID as the one before
	outOfOrder atomic.Int64 // an eventID below the one before

	mu     sync.Mutex
	closes map[int]int64 // connections ended, by close status (-1: without one); guarded by mu
}

func newConnWatch(conns int) *connWatch {
	return &connWatch{last: make([]string, conns), closes: map[int]int64{}}
}

// event checks the eventID of a kept event that connection i received.
func (w *connWatch) event(i int, id []byte) {
	w.kept.Add(1)
	last := w.last[i]
	switch s := string(id); {
	case s == last:
		w.repeated.Add(1)
	case s < last:
		w.outOfOrder.Add(1)
	default:
		w.last[i] = s
	}
}

// ended counts a connection that ended without the bench closing it.
func (w *connWatch) ended(err error) {
	status := int(websocket.CloseStatus(err)) // -1 when the server sent no close frame
	w.mu.Lock()
	w.closes[status]++
	w.mu.Unlock()
}

// closed returns the connections that ended, by close status (-1: the
// connection broke without a close frame).
func (w *connWatch) closed() map[int]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.closes)
}

// closedTotal is how many connections ended, however.
func (w *connWatch) closedTotal() int64 {
	var n int64
	for _, c := range w.closed() {
		n += c
	}
	return n
}
