package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/device"
)

// Store keeps device registrations too; the key layout and how a token
// moves between users are in the package comment (Devices).
var _ device.Store = (*Store)(nil)

func devField(dev string, p device.Platform) string { return encodeList([]string{dev, string(p)}) }

// devOwner is how a token's index entry names a registration's device: the
// start of the entry, which its version follows.
func devOwner(user, dev string) string { return encodeList([]string{user, dev}) }

// devEntry is one registration as its user's hash holds it.
type devEntry struct {
	dev      string
	platform device.Platform
	token    string
	sandbox  bool
	updated  int64
	version  string // of the Register that made it (tokset.lua)
}

func encodeDevValue(r device.Registration, version string) string {
	return encodeList([]string{r.Token, boolField(r.Sandbox), strconv.FormatInt(r.Updated, 10), version})
}

func decodeDevEntry(field, value string) (devEntry, error) {
	f, err1 := decodeList(field)
	v, err2 := decodeList(value)
	if err1 != nil || err2 != nil || len(f) != 2 || len(v) != 4 {
		return devEntry{}, fmt.Errorf("malformed registration %q: %q", field, value)
	}
	updated, err := strconv.ParseInt(v[2], 10, 64)
	if err != nil {
		return devEntry{}, fmt.Errorf("malformed registration %q: %q", field, value)
	}
	return devEntry{dev: f[0], platform: device.Platform(f[1]), token: v[0], sandbox: v[1] == "1", updated: updated, version: v[3]}, nil
}

// devUnavailable wraps an error of the Redis client as unavailable does,
// for device.Store.
func devUnavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, device.ErrUnavailable, err)
}

// Register implements device.Store in three round trips of one-slot steps,
// and a fourth when it finds itself displaced; the package comment says
// why in this order.
func (s *Store) Register(ctx context.Context, r device.Registration) error {
	op := fmt.Sprintf("register device %q of %q", r.Device, r.User)
	if err := device.CheckRegistration(r); err != nil {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	me := devOwner(r.User, r.Device)
	tokKey, devKey := s.tokKey(r.Platform, r.Token), s.devKey(r.User)
	// (1) The token's index names this device, under a new version.
	res, err := toksetScript.Run(ctx, s.c, []string{tokKey}, me).StringSlice()
	if err != nil {
		return devUnavailable(op, err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redisstore: %s: malformed tokset reply %q", op, res)
	}
	prev, version := res[0], res[1]
	// (2) The registration.
	replaced, err := devputScript.Run(ctx, s.c, []string{devKey}, devField(r.Device, r.Platform), encodeDevValue(r, version), r.Token, version).Text()
	if err != nil && !errors.Is(err, redis.Nil) {
		return devUnavailable(op, err)
	}
	// (3) The registration (1) displaced, if it is still that one or
	// older; the index entry of the token (2) replaced, if it still names
	// this device as then; and whether the index still names this device.
	var calls []scriptCall
	if prev != "" && !strings.HasPrefix(prev, me) {
		owner, err := decodeList(prev)
		if err != nil || len(owner) != 3 {
			return fmt.Errorf("redisstore: %s: malformed token index entry %q", op, prev)
		}
		calls = append(calls, scriptCall{devdelScript, []string{s.devKey(owner[0])},
			[]any{devField(owner[1], r.Platform), r.Token, owner[2]}})
	}
	if replaced != "" {
		old, err := decodeDevEntry(devField(r.Device, r.Platform), replaced)
		if err != nil {
			return fmt.Errorf("redisstore: %s: %w", op, err)
		}
		if old.token != r.Token {
			calls = append(calls, scriptCall{tokdelScript, []string{s.tokKey(r.Platform, old.token)}, []any{me, old.version}})
		}
	}
	var owner *redis.StringCmd
	if _, err := s.runScripts(ctx, calls, func(p redis.Pipeliner) { owner = p.Get(ctx, tokKey) }); err != nil {
		return devUnavailable(op, err)
	}
	if cur, err := owner.Result(); errors.Is(err, redis.Nil) || (err == nil && !strings.HasPrefix(cur, me)) {
		// (4) Displaced by another device's Register after (1), whose step
		// (3) may have come before (2), or its entry removed (Drop): this
		// registration goes, unless this device has registered the token
		// again since.
		err := devdelScript.Run(ctx, s.c, []string{devKey}, devField(r.Device, r.Platform), r.Token, version).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			return devUnavailable(op, err)
		}
	} else if err != nil {
		return devUnavailable(op, err)
	}
	return nil
}

// Unregister implements device.Store: the registration, then its token's
// index entry unless the device registered the token again since.
func (s *Store) Unregister(ctx context.Context, user, dev string, p device.Platform) error {
	op := fmt.Sprintf("unregister %s of device %q of %q", p, dev, user)
	field := devField(dev, p)
	removed, err := devdelScript.Run(ctx, s.c, []string{s.devKey(user)}, field, "", "").Text()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return devUnavailable(op, err)
	}
	e, err := decodeDevEntry(field, removed)
	if err != nil {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if err := tokdelScript.Run(ctx, s.c, []string{s.tokKey(p, e.token)}, devOwner(user, dev), e.version).Err(); err != nil {
		return devUnavailable(op, err)
	}
	return nil
}

// RemoveDevice implements device.Store as Unregister does, for each
// platform.
func (s *Store) RemoveDevice(ctx context.Context, user, dev string) error {
	op := fmt.Sprintf("remove device %q of %q", dev, user)
	flat, err := devremoveScript.Run(ctx, s.c, []string{s.devKey(user)}, encodeList([]string{dev})).StringSlice()
	if err != nil {
		return devUnavailable(op, err)
	}
	var calls []scriptCall
	for i := 0; i+1 < len(flat); i += 2 {
		e, err := decodeDevEntry(flat[i], flat[i+1])
		if err != nil {
			return fmt.Errorf("redisstore: %s: %w", op, err)
		}
		calls = append(calls, scriptCall{tokdelScript, []string{s.tokKey(e.platform, e.token)}, []any{devOwner(user, dev), e.version}})
	}
	if _, err := s.runScripts(ctx, calls, nil); err != nil {
		return devUnavailable(op, err)
	}
	return nil
}

// Drop implements device.Store: the registration if it still has r.Token,
// and the token's index entry if it still names r's device. Either alone
// is harmless, so both go in one round trip.
func (s *Store) Drop(ctx context.Context, r device.Registration) error {
	op := fmt.Sprintf("drop %s of device %q of %q", r.Platform, r.Device, r.User)
	_, err := s.runScripts(ctx, []scriptCall{
		{devdelScript, []string{s.devKey(r.User)}, []any{devField(r.Device, r.Platform), r.Token, ""}},
		{tokdelScript, []string{s.tokKey(r.Platform, r.Token)}, []any{devOwner(r.User, r.Device), ""}},
	}, nil)
	if err != nil {
		return devUnavailable(op, err)
	}
	return nil
}

// Devices implements device.Store in two round trips: the users' hashes,
// then the index entries of their tokens. A registration whose token's
// entry names another device (it was displaced, and the Register that
// displaced it died or is under way) is left out. A user without
// registrations gets a nil slice.
func (s *Store) Devices(ctx context.Context, users []string) ([][]device.Registration, error) {
	out := make([][]device.Registration, len(users))
	if len(users) == 0 {
		return out, nil
	}
	op := fmt.Sprintf("devices of %d users", len(users))
	pipe := s.c.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, len(users))
	for i, u := range users {
		hashes[i] = pipe.HGetAll(ctx, s.devKey(u))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, devUnavailable(op, err)
	}

	type candidate struct {
		user  int
		e     devEntry
		owner *redis.StringCmd
	}
	var cands []candidate
	pipe = s.c.Pipeline()
	for i, h := range hashes {
		for field, value := range h.Val() {
			e, err := decodeDevEntry(field, value)
			if err != nil {
				return nil, fmt.Errorf("redisstore: %s: %w", op, err)
			}
			cands = append(cands, candidate{i, e, pipe.Get(ctx, s.tokKey(e.platform, e.token))})
		}
	}
	if len(cands) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, devUnavailable(op, err)
	}
	for _, c := range cands {
		owner, err := c.owner.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, devUnavailable(op, err)
		}
		u := users[c.user]
		// The device, whatever the version: a Register of the same token by
		// the same device under way (or dead after its first step) leaves
		// the registration it replaces in place, and pushed.
		if err != nil || !strings.HasPrefix(owner, devOwner(u, c.e.dev)) {
			continue
		}
		out[c.user] = append(out[c.user], device.Registration{
			User: u, Device: c.e.dev, Platform: c.e.platform,
			Token: c.e.token, Sandbox: c.e.sandbox, Updated: c.e.updated,
		})
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b device.Registration) int {
			return cmp.Or(
				strings.Compare(a.Device, b.Device),
				cmp.Compare(device.Rank(a.Platform), device.Rank(b.Platform)),
				strings.Compare(string(a.Platform), string(b.Platform)))
		})
	}
	return out, nil
}

// scriptCall is one call of runScripts.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// runScripts runs script calls that do not depend on one another in one
// pipeline of EVALSHA, with the commands extra adds (nil for none) after
// them, and runs again with Script.Run those Redis had no cached script for.
// It returns the first error of a script.
func (s *Store) runScripts(ctx context.Context, calls []scriptCall, extra func(redis.Pipeliner)) ([]*redis.Cmd, error) {
	if len(calls) == 0 && extra == nil {
		return nil, nil
	}
	pipe := s.c.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = pipe.EvalSha(ctx, c.script.Hash(), c.keys, c.args...)
	}
	if extra != nil {
		extra(pipe)
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range calls {
		if redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
			cmds[i] = c.script.Run(ctx, s.c, c.keys, c.args...)
		}
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
	}
	return cmds, nil
}
