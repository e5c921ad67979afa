// Package device keeps where each device of a user is pushed when it holds
// no live connection (api/README.md §13): registrations per (user, device,
// platform). It knows nothing of the platforms' protocols (package push)
// or of Redis: stores implement Store, and the contract suite in
// device/devicetest holds the memory and the Redis store to it.
package device

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/signald/signald/internal/ids"
)

// Platform names a way to push a device.
type Platform string

// The platforms, in the order a ring prefers them when a device has
// several registrations.
const (
	APNsVoIP Platform = "apns-voip" // PushKit: rings even when the app was killed
	FCM      Platform = "fcm"       // a data message, Android priority high
	APNs     Platform = "apns"      // an alert
	Webhook  Platform = "webhook"   // the app's own backend
)

// Platforms lists every platform in ring preference order.
var Platforms = []Platform{APNsVoIP, FCM, APNs, Webhook}

// Rank is p's place in Platforms, len(Platforms) for an unknown one.
func Rank(p Platform) int {
	for i, q := range Platforms {
		if q == p {
			return i
		}
	}
	return len(Platforms)
}

// Limits of what a client may register.
const (
	MaxDeviceIDBytes = 128
	MaxTokenBytes    = 4096
)

// Registration is where one device of a user is pushed on one platform.
type Registration struct {
	User     string
	Device   string
	Platform Platform
	Token    string
	Sandbox  bool  // APNs only: the development environment
	Updated  int64 // ms since epoch: when it was last registered
}

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid device registration")

// CheckDeviceID validates a deviceID (package ids): 1 to MaxDeviceIDBytes
// bytes of UTF-8 without control or bidirectional formatting characters.
func CheckDeviceID(id string) error {
	if err := ids.Check(id, MaxDeviceIDBytes); err != nil {
		return fmt.Errorf("deviceID %w: %w", err, ErrInvalid)
	}
	return nil
}

// CheckToken validates a token: up to MaxTokenBytes bytes of UTF-8 ("" is
// checked by the caller: it means remove).
func CheckToken(token string) error {
	switch {
	case len(token) > MaxTokenBytes:
		return fmt.Errorf("token longer than %d bytes: %w", MaxTokenBytes, ErrInvalid)
	case !utf8.ValidString(token):
		return fmt.Errorf("token is not valid UTF-8: %w", ErrInvalid)
	}
	return nil
}

// Store keeps registrations. Every method may fail with an error wrapping
// ErrUnavailable when the backing service cannot be reached.
type Store interface {
	// Register sets the token and sandbox flag of (r.User, r.Device,
	// r.Platform), made or replaced. A token is one device's: a
	// registration of the same platform and token under another user or
	// device is removed, so that a phone handed to another user (or an app
	// reinstalled) is pushed for its new owner only.
	Register(ctx context.Context, r Registration) error
	// Unregister removes (user, device, platform); nothing when absent.
	Unregister(ctx context.Context, user, device string, p Platform) error
	// RemoveDevice removes every registration of (user, device).
	RemoveDevice(ctx context.Context, user, device string) error
	// Devices returns, by index of users, each user's registrations,
	// ordered by device, then by Rank of their platform.
	Devices(ctx context.Context, users []string) ([][]Registration, error)
	// Drop removes r when a platform called its token dead, unless it has
	// been registered with another token since (then the new one stays).
	Drop(ctx context.Context, r Registration) error
}

// ErrUnavailable wraps failures to reach a store's backend.
var ErrUnavailable = errors.New("device store unavailable")
