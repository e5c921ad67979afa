package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// killPubSub breaks every Pub/Sub subscription connection on the Redis
// signald uses (CLIENT KILL TYPE pubsub), as a network blip or a Redis
// restart of the subscriptions would. It returns how many Redis killed
// and the names (CLIENT SETNAME: signald-<node>) of the Pub/Sub
// connections it listed just before.
func killPubSub(ctx context.Context, rdb *redis.Client) (killed int64, names []string, err error) {
	list, err := rdb.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		return 0, nil, fmt.Errorf("CLIENT LIST TYPE pubsub: %w", err)
	}
	killed, err = rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	if err != nil {
		return 0, nil, fmt.Errorf("CLIENT KILL TYPE pubsub: %w", err)
	}
	return killed, clientNames(list), nil
}

// clientNames returns the distinct name= fields of CLIENT LIST output, one
// client a line, sorted; unnamed clients count as "(unnamed)".
func clientNames(list string) []string {
	var names []string
	for line := range strings.Lines(list) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name := "(unnamed)"
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "name="); ok && v != "" {
				name = v
			}
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
