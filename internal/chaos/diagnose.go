package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/protocol"
)

// lostItem is a lost event in a form the diagnosis can look up.
type lostItem struct {
	user string
	key  logical
}

// diagnoseLosses says, for each lost event in the report's details,
// whether it is in its user's kept events in Redis: kept but not delivered
// points at delivery (live or replay), not kept at publishing. It reads
// redisbus's stream key (<prefix>ev:{u:<user>}, field f); it is a hint for
// whoever reads the report, not part of the check, and says so when the
// layout is not what it expects.
func (r *runner) diagnoseLosses(ctx context.Context, rep *Report) {
	if len(rep.lostItems) == 0 {
		return
	}
	c := redis.NewClient(&redis.Options{Addr: r.e.dep.redis.addr, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	streams := make(map[string][]redis.XMessage)
	for i, it := range rep.lostItems {
		msgs, ok := streams[it.user]
		if !ok {
			var err error
			msgs, err = c.XRange(ctx, r.e.dep.prefix+"ev:{u:"+it.user+"}", "-", "+").Result()
			if err != nil {
				rep.LostDetails[i] += fmt.Sprintf("; [diagnosis: cannot read %s's kept events: %v]", it.user, err)
				continue
			}
			streams[it.user] = msgs
		}
		found := ""
		for _, m := range msgs {
			s, _ := m.Values["f"].(string)
			var f protocol.Frame
			if json.Unmarshal([]byte(s), &f) != nil || !f.IsEvent() {
				continue
			}
			e := EventRecord{Kind: f.Event, InviteID: f.InviteID, Invitee: f.Invitee, Data: f.EventData()}
			if keyOf(e) == it.key {
				found = m.ID
				break
			}
		}
		switch {
		case found != "":
			rep.LostDetails[i] += fmt.Sprintf("; [diagnosis: kept in %s's events in Redis as entry %s: published, not delivered]", it.user, found)
		case len(msgs) == 0:
			rep.LostDetails[i] += fmt.Sprintf("; [diagnosis: no kept events of %s found in Redis (key layout changed?)]", it.user)
		default:
			rep.LostDetails[i] += fmt.Sprintf("; [diagnosis: not among %s's %d kept events in Redis: never published to it]", it.user, len(msgs))
		}
	}
}

// dumpHistory writes the whole history as JSON to dir/history.json, for
// digging into a report.
func dumpHistory(dir string, h *History) error {
	f, err := os.Create(filepath.Join(dir, "history.json"))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", " ")
	if err := enc.Encode(h); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
