package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/signald/signald/internal/device"
)

// devices holds the device registrations (device.Store). It has a mutex
// of its own: registrations share nothing with invitations.
//
// Invariant: owner[{p, t}] is (u, d) exactly when byUser[u][{d, p}] holds
// token t, so that a token has one owner and moving it is two map writes.
type devices struct {
	mu     sync.Mutex
	byUser map[string]map[devSlot]devValue // user → registrations; guarded by mu
	owner  map[devToken]devOwner           // guarded by mu
}

func newDevices() devices {
	return devices{byUser: make(map[string]map[devSlot]devValue), owner: make(map[devToken]devOwner)}
}

// devSlot is one registration of a user: a device on a platform.
type devSlot struct {
	device   string
	platform device.Platform
}

type devValue struct {
	token   string
	sandbox bool
	updated int64
}

// devToken is a token as platforms know it: the same string on two
// platforms is two tokens.
type devToken struct {
	platform device.Platform
	token    string
}

type devOwner struct{ user, device string }

// Register implements device.Store.
func (s *Store) Register(_ context.Context, r device.Registration) error {
	if err := device.CheckRegistration(r); err != nil {
		return fmt.Errorf("register device %q of %q: %w", r.Device, r.User, err)
	}
	d := &s.devices
	d.mu.Lock()
	defer d.mu.Unlock()
	slot := devSlot{r.Device, r.Platform}
	me := devOwner{r.User, r.Device}
	if prev, ok := d.owner[devToken{r.Platform, r.Token}]; ok && prev != me {
		d.remove(prev.user, devSlot{prev.device, r.Platform})
	}
	d.remove(r.User, slot) // its old token, if another, is free
	regs := d.byUser[r.User]
	if regs == nil {
		regs = make(map[devSlot]devValue)
		d.byUser[r.User] = regs
	}
	regs[slot] = devValue{token: r.Token, sandbox: r.Sandbox, updated: r.Updated}
	d.owner[devToken{r.Platform, r.Token}] = me
	return nil
}

// Unregister implements device.Store.
func (s *Store) Unregister(_ context.Context, user, dev string, p device.Platform) error {
	d := &s.devices
	d.mu.Lock()
	defer d.mu.Unlock()
	d.remove(user, devSlot{dev, p})
	return nil
}

// RemoveDevice implements device.Store.
func (s *Store) RemoveDevice(_ context.Context, user, dev string) error {
	d := &s.devices
	d.mu.Lock()
	defer d.mu.Unlock()
	for slot := range d.byUser[user] {
		if slot.device == dev {
			d.remove(user, slot)
		}
	}
	return nil
}

// Drop implements device.Store.
func (s *Store) Drop(_ context.Context, r device.Registration) error {
	d := &s.devices
	d.mu.Lock()
	defer d.mu.Unlock()
	slot := devSlot{r.Device, r.Platform}
	if v, ok := d.byUser[r.User][slot]; ok && v.token == r.Token {
		d.remove(r.User, slot)
	}
	return nil
}

// Devices implements device.Store. A user without registrations gets a
// nil slice.
func (s *Store) Devices(_ context.Context, users []string) ([][]device.Registration, error) {
	d := &s.devices
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([][]device.Registration, len(users))
	for i, u := range users {
		for slot, v := range d.byUser[u] {
			out[i] = append(out[i], device.Registration{
				User: u, Device: slot.device, Platform: slot.platform,
				Token: v.token, Sandbox: v.sandbox, Updated: v.updated,
			})
		}
		slices.SortFunc(out[i], compareRegistrations)
	}
	return out, nil
}

// compareRegistrations orders one user's registrations as Devices returns
// them: by device, then by Rank of the platform (then by its name, for
// platforms Rank does not know).
func compareRegistrations(a, b device.Registration) int {
	return cmp.Or(
		strings.Compare(a.Device, b.Device),
		cmp.Compare(device.Rank(a.Platform), device.Rank(b.Platform)),
		strings.Compare(string(a.Platform), string(b.Platform)))
}

// remove deletes a registration and its token's owner. Called with mu held.
func (d *devices) remove(user string, slot devSlot) {
	regs := d.byUser[user]
	v, ok := regs[slot]
	if !ok {
		return
	}
	delete(regs, slot)
	if len(regs) == 0 {
		delete(d.byUser, user)
	}
	delete(d.owner, devToken{slot.platform, v.token})
}
