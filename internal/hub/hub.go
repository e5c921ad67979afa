// Package hub maps users to their live connections on this instance and
// delivers frames to them. It knows nothing of invitations or of other
// instances: it moves opaque frames to the connections registered here.
package hub

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery is one event on its way to a user's connections.
type Delivery struct {
	Frame []byte // the event as a JSON object, its eventID included
	// ID is the event's eventID, "" for an event that is not kept. Prev is
	// the eventID of the user's kept event before it ("" when it is the
	// first): a connection whose last kept event is not Prev has missed
	// something, and catches up before it sends this one.
	ID, Prev string
	Kind     string // the event's name, for metrics
}

// Sink is one live connection as the hub sees it.
type Sink interface {
	// Session identifies the connection, unique within this process.
	Session() uint64
	// Send queues an event without blocking. A connection that cannot keep
	// up closes itself; Send then reports false.
	Send(d Delivery) bool
	// Skip tells the connection of an event it caused: it got a reply
	// instead, but the event is part of its user's sequence all the same.
	Skip(d Delivery)
	// Presence returns the connection's deviceID ("" when it gave none)
	// and whether it is in the foreground: a device with a foreground
	// connection is not pushed.
	Presence() (device string, foreground bool)
}

// Hub maps users to their live connections on this instance. A user may
// have many (a phone and a laptop); a delivery reaches every one of them.
type Hub struct {
	mu    sync.RWMutex
	users map[string]map[uint64]Sink // guarded by mu

	conns       prometheus.Gauge
	onlineUsers prometheus.Gauge
	delivered   *prometheus.CounterVec
	dropped     prometheus.Counter
}

// NewHub returns an empty hub whose metrics are registered on reg. events
// are the event names it will deliver: their series start at 0.
func NewHub(reg prometheus.Registerer, events ...string) (*Hub, error) {
	h := &Hub{
		users: make(map[string]map[uint64]Sink),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signald_connections",
			Help: "Logged-in WebSocket connections on this instance.",
		}),
		onlineUsers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signald_online_users",
			Help: "Users with at least one logged-in connection on this instance.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_events_delivered_total",
			Help: "Event frames queued to live connections, by event.",
		}, []string{"event"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signald_events_dropped_total",
			Help: "Event frames not queued because the connection was too slow and was closed.",
		}),
	}
	for _, e := range events {
		h.delivered.WithLabelValues(e)
	}
	for _, c := range []prometheus.Collector{h.conns, h.onlineUsers, h.delivered, h.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Register adds a logged-in connection of user.
func (h *Hub) Register(user string, s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.users[user]
	if m == nil {
		m = make(map[uint64]Sink)
		h.users[user] = m
		h.onlineUsers.Inc()
	}
	if _, dup := m[s.Session()]; !dup {
		m[s.Session()] = s
		h.conns.Inc()
	}
}

// Unregister removes a connection; unknown ones are ignored.
func (h *Hub) Unregister(user string, s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.users[user]
	if _, ok := m[s.Session()]; !ok {
		return
	}
	delete(m, s.Session())
	h.conns.Dec()
	if len(m) == 0 {
		delete(h.users, user)
		h.onlineUsers.Dec()
	}
}

// Online reports whether user has a live connection on this instance.
func (h *Hub) Online(user string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[user]) > 0
}

// Deliver queues d to every live connection of user, but the one whose
// session is except (0: none), which is told to Skip it, and returns how
// many took it. It never blocks: Sink.Send does not, and the sinks are
// collected before sending so that the hub's lock is not held while
// connections work.
func (h *Hub) Deliver(user string, d Delivery, except uint64) int {
	var buf [4]Sink
	sinks := buf[:0]
	var own Sink
	h.mu.RLock()
	for sess, s := range h.users[user] {
		if sess != except {
			sinks = append(sinks, s)
		} else {
			own = s
		}
	}
	h.mu.RUnlock()
	if own != nil {
		own.Skip(d)
	}
	n := 0
	for _, s := range sinks {
		if s.Send(d) {
			n++
		} else {
			h.dropped.Inc()
		}
	}
	if n > 0 {
		h.delivered.WithLabelValues(d.Kind).Add(float64(n))
	}
	return n
}

// Foreground returns the deviceIDs of user's foreground connections on
// this instance, each once; connections without a deviceID are left out,
// as they never spare a device its push.
func (h *Hub) Foreground(user string) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []string
	for _, s := range h.users[user] {
		if d, fg := s.Presence(); fg && d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// ForegroundAll returns every user's foreground deviceIDs on this
// instance, for a bus that keeps presence across instances fresh.
func (h *Hub) ForegroundAll() map[string][]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string][]string)
	for u, sinks := range h.users {
		for _, s := range sinks {
			if d, fg := s.Presence(); fg && d != "" && !slices.Contains(out[u], d) {
				out[u] = append(out[u], d)
			}
		}
	}
	return out
}
