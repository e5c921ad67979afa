package push

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signald/signald/internal/device"
)

// Platform names a way to push a device (api/README.md §13): the device
// package's, which registrations carry.
type Platform = device.Platform

// The platforms, in the order a ring prefers them when a device has
// several registrations.
const (
	PlatformAPNsVoIP = device.APNsVoIP // PushKit: rings even when the app was killed
	PlatformFCM      = device.FCM      // a data message, Android priority high
	PlatformAPNs     = device.APNs     // an alert
	PlatformWebhook  = device.Webhook  // the app's own backend
)

// Platforms lists every platform in ring preference order.
var Platforms = device.Platforms

// Target is one device's registration on one platform.
type Target struct {
	User     string
	Device   string
	Platform Platform
	Token    string // the APNs device token, FCM registration token, or the app's own token (webhook)
	Sandbox  bool   // APNs only: the development environment
}

// Message is one push to one device.
type Message struct {
	// ID is stable per (invitation, device, type) across retries and
	// instances: the apns-id (a UUID), the webhook-id. An FCM message has
	// no such header; it carries ID in its data as "pushID".
	ID string
	// Fields is the payload as api/README.md §13 lists it (type, inviteID,
	// inviter, ...): strings only, as FCM data requires. A webhook adds
	// userID, deviceID and token.
	Fields map[string]string
	// Deadline is when the push stops being worth sending: nothing is sent
	// after it. It sets apns-expiration and the FCM ttl.
	Deadline time.Time
	// Title and Body are what an APNs alert shows (from offlinePushInfo).
	Title, Body string
}

// DroppableField is the payload field a sender drops when the message
// would exceed its platform's size limit: the app then reads the data
// with getSignalingInfo.
const DroppableField = "data"

// Sender makes one attempt at delivering a message to a target on one
// platform: one HTTP request (two when its credentials had to be renewed).
// Retrying, up to the deadline, is the caller's business, so that any
// instance can take a push over. ctx bounds the attempt and carries the
// message's deadline.
//
// Errors: nil when the platform accepted the message; an error wrapping
// ErrUnregistered when the token is dead (the registration must go); a
// *RetryError when a later attempt may succeed; anything else is
// permanent for this message (a malformed request, a rejected payload).
type Sender interface {
	Send(ctx context.Context, t Target, m Message) error
}

// ErrUnregistered means the platform says the token is no longer valid
// (APNs 410, BadDeviceToken, DeviceTokenNotForTopic; FCM UNREGISTERED;
// webhook 410): the registration is removed.
var ErrUnregistered = errors.New("push: token no longer valid")

// RetryError is a failure that a later attempt may not have: a throttle,
// an unavailable service, a network error. After, when not zero, is when
// the platform asked to be tried again (Retry-After).
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
	}
	return e.Err.Error()
}

func (e *RetryError) Unwrap() error { return e.Err }
