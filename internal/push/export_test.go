package push

import "time"

// SetClock replaces the clock of a sender made by NewAPNs, NewFCM or
// NewWebhook, so that tests can age tokens without waiting.
func SetClock(s Sender, now func() time.Time) {
	switch s := s.(type) {
	case *APNs:
		s.now = now
	case *FCM:
		s.now = now
	case *Webhook:
		s.now = now
	default:
		panic("push.SetClock: not a sender of this package")
	}
}

// APNsBaseURLs returns where a sends production and sandbox targets.
func APNsBaseURLs(a *APNs) (production, sandbox string) { return a.production, a.sandbox }
