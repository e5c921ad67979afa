package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/signald/signald/internal/protocol"
)

// Final is what getSignalingInfo said of an invitation at the end.
type Final struct {
	Info    *protocol.SignalingInfo // nil when it could not be read
	Code    int                     // the reply's code; CodeNoReply if none came
	Desc    string
	AskedAs string // the user who asked
}

// ended reports whether no invitee is pending.
func (f Final) ended() bool {
	if f.Info == nil {
		return true // nothing more to wait for
	}
	for _, s := range f.Info.States {
		if s == "pending" {
			return false
		}
	}
	return true
}

// inspector reads invitations with getSignalingInfo, on connections of its
// own (one per user asking, logged in without lastEventID; what they are
// sent is ignored), not on the devices', which it must not disturb.
type inspector struct {
	env *env

	mu    sync.Mutex
	conns map[string]*wsConn // guarded by mu; each used by one worker at a time
}

func newInspector(e *env) *inspector {
	return &inspector{env: e, conns: make(map[string]*wsConn)}
}

// getAll reads every invitation of known (inviteID → a user who may ask),
// a few users at a time.
func (s *inspector) getAll(ctx context.Context, known map[string]string) map[string]Final {
	byUser := make(map[string][]string)
	for id, u := range known {
		byUser[u] = append(byUser[u], id)
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	sort.Strings(users)
	out := make(map[string]Final, len(known))
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for u := range work {
				for _, id := range byUser[u] {
					f := s.get(ctx, u, id)
					mu.Lock()
					out[id] = f
					mu.Unlock()
				}
			}
		})
	}
	for _, u := range users {
		work <- u
	}
	close(work)
	wg.Wait()
	return out
}

// get asks getSignalingInfo as user, trying again while the answer is not
// a definite one (no reply, 90994, no connection) until ctx ends.
func (s *inspector) get(ctx context.Context, user, id string) Final {
	f := Final{Code: CodeNoReply, AskedAs: user}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return f
			case <-t.C:
			}
		}
		c, err := s.conn(ctx, user)
		if err != nil {
			f.Desc = err.Error()
			continue
		}
		r, err := c.call(ctx, protocol.OpGetSignalingInfo, map[string]any{"inviteID": id})
		if err != nil {
			f.Code, f.Desc = CodeNoReply, err.Error()
			s.forget(user, c)
			continue
		}
		f.Code, f.Desc = r.Code, r.Desc
		switch r.Code {
		case 0:
			info := new(protocol.SignalingInfo)
			if err := json.Unmarshal(r.Data, info); err != nil {
				f.Desc = fmt.Sprintf("reply data %s: %v", r.Data, err)
				return f
			}
			f.Info = info
			return f
		case protocol.CodeInternal, protocol.CodeRateLimited:
			continue
		default:
			return f
		}
	}
}

// conn returns the user's connection, making it if need be.
func (s *inspector) conn(ctx context.Context, user string) (*wsConn, error) {
	s.mu.Lock()
	c := s.conns[user]
	s.mu.Unlock()
	if c != nil && !c.closed() {
		return c, nil
	}
	c, err := dialConn(ctx, s.env.dep.pick().addr, func(*protocol.Frame) {})
	if err != nil {
		return nil, err
	}
	r, err := c.call(ctx, protocol.OpLogin, map[string]any{"userID": user, "userSig": s.env.tokens[user]})
	if err == nil && r.Code != 0 {
		err = fmt.Errorf("login answered %d %q", r.Code, r.Desc)
	}
	if err != nil {
		c.close()
		return nil, err
	}
	s.mu.Lock()
	s.conns[user] = c
	s.mu.Unlock()
	return c, nil
}

func (s *inspector) forget(user string, c *wsConn) {
	s.mu.Lock()
	if s.conns[user] == c {
		delete(s.conns, user)
	}
	s.mu.Unlock()
	c.close()
}

// close closes every connection.
func (s *inspector) close() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}
