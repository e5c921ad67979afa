package server

import (
	"context"

	"github.com/signald/signald/internal/bus"
	"github.com/signald/signald/internal/hub"
)

// A connection sends its user's kept events in eventID order, none twice
// and none missed. Every kept event names the user's kept event before it
// (hub.Delivery.Prev), and the connection remembers the last one it sent
// (lastID). An event that does not follow it reveals a gap: events
// published while this instance's Pub/Sub subscription was down, which it
// never received. The connection then holds what arrives and catches up
// from the user's kept events (Bus.Replay after lastID) before sending
// the rest; only if those were dropped meanwhile does it ask its client to
// resume (1012). So a Redis blip costs a few replays, not a reconnect of
// every client.
//
// At login the same holding keeps live events behind the login reply and
// the replayed or pending events (see conn.login).

// heldEvent is an event that arrived while the connection was holding.
type heldEvent struct {
	d   hub.Delivery
	own bool // the connection's own event (Skip): not sent, only counted
}

// Send implements hub.Sink: it queues an event without ever blocking. A
// connection whose queue is full is too slow to keep up and is closed (1008).
func (c *conn) Send(d hub.Delivery) bool {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	return c.deliverLocked(d, false)
}

// Skip implements hub.Sink: d is this connection's own event, answered by
// a reply; it moves the connection along its user's sequence all the same.
func (c *conn) Skip(d hub.Delivery) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	c.deliverLocked(d, true)
}

func (c *conn) deliverLocked(d hub.Delivery, own bool) bool {
	if c.holding {
		if c.heldBytes+len(d.Frame) > c.srv.cfg.SendQueueBytes {
			if c.catching {
				// Too much arrived during the catch-up: let the client resume.
				c.stop(closeResume, true)
			} else {
				c.stop(closeTooSlow, false)
			}
			return false
		}
		c.held = append(c.held, heldEvent{d, own})
		c.heldBytes += len(d.Frame)
		return true
	}
	return c.sendLocked(d, own)
}

// sendLocked sends d unless it was sent already, or holds it and starts a
// catch-up when it does not follow the last event sent. holdMu is held and
// the connection is not holding.
func (c *conn) sendLocked(d hub.Delivery, own bool) bool {
	if d.ID == "" { // not kept: no place in the sequence
		return own || c.enqueue(d.Frame)
	}
	if d.ID <= c.lastID {
		return true // sent already, by a replay
	}
	if d.Prev != c.lastID {
		c.held = append(c.held, heldEvent{d, own})
		c.heldBytes += len(d.Frame)
		c.startCatchUpLocked()
		return true
	}
	c.lastID = d.ID
	return own || c.enqueue(d.Frame)
}

// startCatchUpLocked holds further events and asks the server's catcher
// to bring the connection up to date. holdMu is held.
func (c *conn) startCatchUpLocked() {
	c.holding, c.catching = true, true
	c.srv.catcher.request(c)
}

// drainHeldLocked stops holding and sends what was held, in order, as if
// it arrived now: a gap among it starts a catch-up, which holds the rest.
// holdMu is held.
func (c *conn) drainHeldLocked() {
	held := c.held
	c.held, c.heldBytes, c.holding = nil, 0, false
	for i, h := range held {
		if c.holding {
			for _, r := range held[i:] {
				c.held = append(c.held, r)
				c.heldBytes += len(r.d.Frame)
			}
			return
		}
		c.sendLocked(h.d, h.own)
	}
	if !c.holding && c.recheck {
		c.recheck = false
		c.startCatchUpLocked()
	}
}

// sendRangeLocked sends events, a contiguous run of the user's kept
// events right after lastID (a replay), skipping those sent already and
// those this connection caused (it got a reply instead). holdMu is held.
func (c *conn) sendRangeLocked(events []bus.Kept) {
	own := bus.Origin{Node: c.srv.d.Node, Session: c.session}
	for _, e := range events {
		if id := bus.EventIDOf(e.Frame); id > c.lastID {
			c.lastID = id
			if e.Origin != own {
				c.enqueue(e.Frame)
			}
		}
	}
}

// catchUp replays what the connection missed after lastID, then sends what
// it held meanwhile. It reports false when the bus failed, to be tried
// again; a connection whose missed events are no longer all kept is asked
// to resume (1012), its client then refreshes what it shows.
func (c *conn) catchUp(ctx context.Context) bool {
	c.holdMu.Lock()
	from := c.lastID
	c.holdMu.Unlock()
	events, recovered, err := c.srv.d.Bus.Replay(ctx, c.user, from)
	if err != nil {
		return false
	}
	if !recovered {
		c.stop(closeResume, true)
		return true
	}
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	c.sendRangeLocked(events)
	c.catching, c.catchTry = false, 0
	c.drainHeldLocked()
	return true
}

// checkBehind starts a catch-up when the user's newest kept event (last)
// is past the last one sent here: the instance reported a gap, and no
// later event came to reveal it. A connection busy logging in or catching
// up checks once it is done.
func (c *conn) checkBehind(last string) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	switch {
	case !c.loggedIn.Load():
	case c.holding:
		c.recheck = true
	case last > c.lastID:
		c.startCatchUpLocked()
	}
}
