package push

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Config is the credentials of every push platform. A platform whose
// options are all empty is off; one with some but not all of its required
// settings is an error, so that a typo does not quietly disable pushes.
type Config struct {
	APNs    APNsOptions
	FCM     FCMOptions
	Webhook WebhookOptions
}

// APNsOptions configures APNs (PlatformAPNsVoIP and PlatformAPNs):
// token-based authentication with a signing key made in the Apple
// developer account. Required: KeyFile, KeyID, TeamID, Topic.
type APNsOptions struct {
	KeyFile string // SIGNALD_APNS_KEY_FILE: the .p8 file (PKCS#8 EC P-256 key)
	KeyID   string // SIGNALD_APNS_KEY_ID: its key ID (the provider token's kid)
	TeamID  string // SIGNALD_APNS_TEAM_ID: the team ID (the provider token's iss)
	Topic   string // SIGNALD_APNS_TOPIC: the app's bundle ID; VoIP pushes go to <Topic>.voip
	URL     string // SIGNALD_APNS_URL: replaces both Apple hosts (a proxy, tests); "": Apple's
}

// FCMOptions configures Firebase Cloud Messaging (HTTP v1 API), which
// authenticates with a service account. Required: CredentialsFile.
type FCMOptions struct {
	CredentialsFile string // SIGNALD_FCM_CREDENTIALS_FILE: the service account's JSON key file
	ProjectID       string // SIGNALD_FCM_PROJECT_ID: "": the key file's project_id
	URL             string // SIGNALD_FCM_URL: replaces https://fcm.googleapis.com (a proxy, tests)
}

// WebhookOptions configures pushes through the app's own backend.
// Required: URL and Secret.
type WebhookOptions struct {
	URL    string // SIGNALD_PUSH_WEBHOOK_URL: where pushes are POSTed
	Secret string // SIGNALD_PUSH_WEBHOOK_SECRET: whsec_<base64>, as Standard Webhooks have it
}

func (o APNsOptions) enabled() bool {
	return o != APNsOptions{}
}

func (o FCMOptions) enabled() bool {
	return o != FCMOptions{}
}

func (o WebhookOptions) enabled() bool {
	return o != WebhookOptions{}
}

// Validate reports what is missing from half-configured APNs options. All
// empty is valid: APNs is off.
func (o APNsOptions) Validate() error {
	if !o.enabled() {
		return nil
	}
	var missing []string
	for _, s := range []struct{ v, env string }{
		{o.KeyFile, "SIGNALD_APNS_KEY_FILE"}, {o.KeyID, "SIGNALD_APNS_KEY_ID"},
		{o.TeamID, "SIGNALD_APNS_TEAM_ID"}, {o.Topic, "SIGNALD_APNS_TOPIC"},
	} {
		if s.v == "" {
			missing = append(missing, s.env)
		}
	}
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("APNs half-configured: set %s too (or none of SIGNALD_APNS_*)", strings.Join(missing, ", ")))
	}
	if strings.HasSuffix(o.Topic, ".voip") {
		errs = append(errs, fmt.Errorf("SIGNALD_APNS_TOPIC %q: want the bundle ID; VoIP pushes add .voip", o.Topic))
	}
	if o.URL != "" {
		errs = append(errs, checkURL("SIGNALD_APNS_URL", o.URL))
	}
	return errors.Join(errs...)
}

// Validate reports what is missing from half-configured FCM options. All
// empty is valid: FCM is off.
func (o FCMOptions) Validate() error {
	if !o.enabled() {
		return nil
	}
	var errs []error
	if o.CredentialsFile == "" {
		errs = append(errs, errors.New("FCM half-configured: set SIGNALD_FCM_CREDENTIALS_FILE too (or none of SIGNALD_FCM_*)"))
	}
	if o.URL != "" {
		errs = append(errs, checkURL("SIGNALD_FCM_URL", o.URL))
	}
	return errors.Join(errs...)
}

// Validate reports what is missing from half-configured webhook options,
// and a secret not in the form whsec_<base64>. All empty is valid: the
// webhook is off.
func (o WebhookOptions) Validate() error {
	if !o.enabled() {
		return nil
	}
	var errs []error
	switch {
	case o.URL == "":
		errs = append(errs, errors.New("push webhook half-configured: set SIGNALD_PUSH_WEBHOOK_URL too (or neither of SIGNALD_PUSH_WEBHOOK_*)"))
	default:
		errs = append(errs, checkURL("SIGNALD_PUSH_WEBHOOK_URL", o.URL))
	}
	if o.Secret == "" {
		errs = append(errs, errors.New("push webhook half-configured: set SIGNALD_PUSH_WEBHOOK_SECRET too (or neither of SIGNALD_PUSH_WEBHOOK_*)"))
	} else if _, err := webhookKey(o.Secret); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate checks every platform's options.
func (c Config) Validate() error {
	return errors.Join(c.APNs.Validate(), c.FCM.Validate(), c.Webhook.Validate())
}

// Platforms lists the platforms c enables, in ring preference order.
func (c Config) Platforms() []Platform {
	var ps []Platform
	for _, p := range Platforms {
		switch p {
		case PlatformAPNsVoIP, PlatformAPNs:
			if c.APNs.enabled() {
				ps = append(ps, p)
			}
		case PlatformFCM:
			if c.FCM.enabled() {
				ps = append(ps, p)
			}
		case PlatformWebhook:
			if c.Webhook.enabled() {
				ps = append(ps, p)
			}
		}
	}
	return ps
}

// NewSenders validates c and builds the sender of every platform it
// enables, by platform: PlatformAPNsVoIP and PlatformAPNs share one APNs.
// A platform not in the map has no credentials (setOfflinePushConfig
// answers 6017). client, when not nil, is used by every sender and must
// speak HTTP/2 for APNs; nil: each sender makes its own.
func NewSenders(c Config, client *http.Client) (map[Platform]Sender, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	senders := make(map[Platform]Sender, len(Platforms))
	if c.APNs.enabled() {
		a, err := NewAPNs(c.APNs, client)
		if err != nil {
			return nil, err
		}
		senders[PlatformAPNsVoIP], senders[PlatformAPNs] = a, a
	}
	if c.FCM.enabled() {
		f, err := NewFCM(c.FCM, client)
		if err != nil {
			return nil, err
		}
		senders[PlatformFCM] = f
	}
	if c.Webhook.enabled() {
		w, err := NewWebhook(c.Webhook, client)
		if err != nil {
			return nil, err
		}
		senders[PlatformWebhook] = w
	}
	return senders, nil
}

func checkURL(env, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http:// or https:// URL", env, s)
	}
	return nil
}

// webhookSecretPrefix starts a Standard Webhooks secret.
const webhookSecretPrefix = "whsec_"

// webhookKey decodes a secret whsec_<base64> into the HMAC key.
func webhookKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	if !ok {
		return nil, errors.New("SIGNALD_PUSH_WEBHOOK_SECRET: want whsec_ followed by base64")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, errors.New("SIGNALD_PUSH_WEBHOOK_SECRET: the part after whsec_ is not base64 (standard alphabet, padded)")
	}
	return key, nil
}
