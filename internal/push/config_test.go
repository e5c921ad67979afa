package push_test

import (
	"context"
	"strings"
	"testing"

	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/pushtest"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  push.Config
		want []string // substrings of the error; none: valid
	}{
		{"nothing", push.Config{}, nil},
		{"apns complete", push.Config{APNs: push.APNsOptions{KeyFile: "k.p8", KeyID: "K", TeamID: "T", Topic: "com.x"}}, nil},
		{"apns key ID only", push.Config{APNs: push.APNsOptions{KeyID: "K"}},
			[]string{"SIGNALD_APNS_KEY_FILE", "SIGNALD_APNS_TEAM_ID", "SIGNALD_APNS_TOPIC"}},
		{"apns URL only", push.Config{APNs: push.APNsOptions{URL: "https://proxy"}},
			[]string{"SIGNALD_APNS_KEY_FILE", "SIGNALD_APNS_KEY_ID", "SIGNALD_APNS_TEAM_ID", "SIGNALD_APNS_TOPIC"}},
		{"apns voip topic", push.Config{APNs: push.APNsOptions{KeyFile: "k.p8", KeyID: "K", TeamID: "T", Topic: "com.x.voip"}},
			[]string{"SIGNALD_APNS_TOPIC"}},
		{"apns bad URL", push.Config{APNs: push.APNsOptions{KeyFile: "k.p8", KeyID: "K", TeamID: "T", Topic: "com.x", URL: "api.push.apple.com"}},
			[]string{"SIGNALD_APNS_URL"}},
		{"fcm complete", push.Config{FCM: push.FCMOptions{CredentialsFile: "sa.json"}}, nil},
		{"fcm project only", push.Config{FCM: push.FCMOptions{ProjectID: "p"}}, []string{"SIGNALD_FCM_CREDENTIALS_FILE"}},
		{"webhook complete", push.Config{Webhook: push.WebhookOptions{URL: "https://app/push", Secret: "whsec_c2VjcmV0"}}, nil},
		{"webhook URL only", push.Config{Webhook: push.WebhookOptions{URL: "https://app/push"}}, []string{"SIGNALD_PUSH_WEBHOOK_SECRET"}},
		{"webhook secret only", push.Config{Webhook: push.WebhookOptions{Secret: "whsec_c2VjcmV0"}}, []string{"SIGNALD_PUSH_WEBHOOK_URL"}},
		{"webhook secret without prefix", push.Config{Webhook: push.WebhookOptions{URL: "https://app/push", Secret: "c2VjcmV0"}},
			[]string{"SIGNALD_PUSH_WEBHOOK_SECRET", "whsec_"}},
		{"webhook secret not base64", push.Config{Webhook: push.WebhookOptions{URL: "https://app/push", Secret: "whsec_not base64!"}},
			[]string{"SIGNALD_PUSH_WEBHOOK_SECRET", "base64"}},
		{"two half-configured", push.Config{APNs: push.APNsOptions{Topic: "com.x"}, FCM: push.FCMOptions{URL: "https://fcm"}},
			[]string{"SIGNALD_APNS_KEY_FILE", "SIGNALD_FCM_CREDENTIALS_FILE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want an error naming %v", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestNewSendersNone(t *testing.T) {
	s, err := push.NewSenders(push.Config{}, nil)
	if err != nil || len(s) != 0 {
		t.Fatalf("NewSenders of nothing: %v, %v; want no senders", s, err)
	}
	if _, err := push.NewSenders(push.Config{FCM: push.FCMOptions{ProjectID: "p"}}, nil); err == nil {
		t.Fatal("NewSenders took a half-configured FCM")
	}
}

// TestNewSendersAll builds every sender against the fakes with one client
// (the fakes share a certificate) and rings through each.
func TestNewSendersAll(t *testing.T) {
	noLeaks(t)
	apns, fcm, webhook, clock := pushtest.NewAPNs(t), pushtest.NewFCM(t), pushtest.NewWebhook(t), newClock()
	cfg := push.Config{APNs: apns.Options(), FCM: fcm.Options(), Webhook: webhook.Options()}
	if got := cfg.Platforms(); len(got) != 4 || got[0] != push.PlatformAPNsVoIP || got[3] != push.PlatformWebhook {
		t.Errorf("Platforms() = %v, want all four in ring order", got)
	}
	senders, err := push.NewSenders(cfg, apns.Client())
	if err != nil {
		t.Fatal(err)
	}
	if len(senders) != 4 {
		t.Fatalf("%d senders, want 4", len(senders))
	}
	if senders[push.PlatformAPNsVoIP] != senders[push.PlatformAPNs] {
		t.Error("apns-voip and apns do not share one APNs sender")
	}
	for _, p := range push.Platforms {
		push.SetClock(senders[p], clock.Now)
		target := push.Target{User: "bob", Device: "d", Platform: p, Token: "tok-" + string(p)}
		if err := senders[p].Send(context.Background(), target, ringMessage(clock, string(p))); err != nil {
			t.Errorf("%s: Send: %v", p, err)
		}
	}
	if apns.Count("tok-apns-voip") != 1 || apns.Count("tok-apns") != 1 || fcm.Count("tok-fcm") != 1 || webhook.Count("tok-webhook") != 1 {
		t.Error("not every platform's fake got its push")
	}

	// Only APNs configured: only its platforms.
	senders, err = push.NewSenders(push.Config{APNs: apns.Options()}, apns.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := senders[push.PlatformFCM]; ok || len(senders) != 2 {
		t.Errorf("APNs only: senders for %d platforms, want apns-voip and apns", len(senders))
	}
}
