package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisMemory is Redis's own memory accounting at one instant (INFO memory,
// INFO keyspace): what signald's state costs in Redis, beside its heap.
type RedisMemory struct {
	UsedMemory int64 `json:"usedMemory"`        // used_memory: every byte Redis allocated
	Dataset    int64 `json:"usedMemoryDataset"` // used_memory_dataset: the keys and values, without Redis's overhead; -1 when absent
	Keys       int64 `json:"keys"`              // keys in every database (INFO keyspace)
}

// ParseInfoMemory reads used_memory and used_memory_dataset from the output
// of INFO memory; used_memory is required.
func ParseInfoMemory(info string) (RedisMemory, error) {
	m := RedisMemory{Dataset: -1}
	v, ok := InfoField(info, "used_memory")
	if !ok {
		return m, errors.New("redis INFO memory has no used_memory")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return m, fmt.Errorf("redis used_memory %q: %w", v, err)
	}
	m.UsedMemory = n
	if v, ok := InfoField(info, "used_memory_dataset"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			m.Dataset = n
		}
	}
	return m, nil
}

// ParseKeyspaceKeys sums the keys of every database in the output of INFO
// keyspace, whose lines look like
//
//	db0:keys=12,expires=3,avg_ttl=0
//
// An empty Redis has no db line: 0 keys.
func ParseKeyspaceKeys(info string) (int64, error) {
	var total int64
	for line := range strings.Lines(info) {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "db") {
			continue
		}
		found := false
		for kv := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(kv, "keys="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("keyspace: %q: %w", line, err)
				}
				total += n
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("keyspace: no keys= in %q", strings.TrimSpace(line))
		}
	}
	return total, nil
}

// SnapshotRedisMemory reads INFO memory and INFO keyspace.
func SnapshotRedisMemory(ctx context.Context, rdb *redis.Client) (RedisMemory, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return RedisMemory{}, fmt.Errorf("redis INFO memory: %w", err)
	}
	m, err := ParseInfoMemory(info)
	if err != nil {
		return m, err
	}
	ks, err := rdb.Info(ctx, "keyspace").Result()
	if err != nil {
		return m, fmt.Errorf("redis INFO keyspace: %w", err)
	}
	m.Keys, err = ParseKeyspaceKeys(ks)
	return m, err
}

// redisKeyChunk is how many keys one pipeline (or one EXISTS) names.
const redisKeyChunk = 1000

// keysMemory sums MEMORY USAGE (every element sampled) over keys, in
// pipelines; keys that do not exist count nothing. It returns the bytes and
// how many of the keys exist.
func keysMemory(ctx context.Context, rdb *redis.Client, keys []string) (bytes int64, found int, err error) {
	for start := 0; start < len(keys); start += redisKeyChunk {
		chunk := keys[start:min(start+redisKeyChunk, len(keys))]
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return bytes, found, fmt.Errorf("redis MEMORY USAGE: %w", err)
		}
		for _, c := range cmds {
			n, err := c.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return bytes, found, fmt.Errorf("redis MEMORY USAGE: %w", err)
			}
			bytes += n
			found++
		}
	}
	return bytes, found, nil
}

// keysExisting counts which of keys exist (EXISTS, in chunks).
func keysExisting(ctx context.Context, rdb *redis.Client, keys []string) (int64, error) {
	var n int64
	for start := 0; start < len(keys); start += redisKeyChunk {
		c, err := rdb.Exists(ctx, keys[start:min(start+redisKeyChunk, len(keys))]...).Result()
		if err != nil {
			return n, fmt.Errorf("redis EXISTS: %w", err)
		}
		n += c
	}
	return n, nil
}

// redisKeys names signald's Redis keys (internal/redisstore and
// internal/redisbus document the layout) under its --redis-prefix, so
// that the bench can weigh the keys of the users and invitations it made.
type redisKeys struct{ prefix string }

func (k redisKeys) invitation(id string) string { return k.prefix + "inv:{" + id + "}" }

// invitee is the keys an invitation adds for its invitee: the index of the
// invitations it is pending in, its kept events and its rung index.
func (k redisKeys) invitee(user string) []string {
	return []string{k.prefix + "user:{" + user + "}:pending", k.prefix + "ev:{u:" + user + "}", k.prefix + "rung:{u:" + user + "}"}
}

// events is a user's kept events: the stream and the rung hash.
func (k redisKeys) events(user string) []string {
	return []string{k.prefix + "ev:{u:" + user + "}", k.prefix + "rung:{u:" + user + "}"}
}

// inviter is the keys an invitation adds for its inviter: its active
// invitations and its invite budget.
func (k redisKeys) inviter(user string) []string {
	return []string{k.prefix + "user:{" + user + "}:out", k.prefix + "user:{" + user + "}:rate"}
}

// shared is the keys every invitation has an entry in: the deadlines and
// the changes not yet announced.
func (k redisKeys) shared() []string {
	return []string{k.prefix + "deadlines", k.prefix + "announce"}
}
