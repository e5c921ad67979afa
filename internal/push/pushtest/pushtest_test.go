package pushtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signald/signald/internal/push"
	"github.com/signald/signald/internal/push/pushtest"
)

// complaints stands for a test's T in a fake, to see what the fake
// reports about a request breaking the protocol.
type complaints struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (c *complaints) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *complaints) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.errs
	c.errs = nil
	return e
}

func post(t *testing.T, client *http.Client, url string, h http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func reason(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestFakeAPNsRejectsWhatAPNsWould(t *testing.T) {
	c := &complaints{TB: t}
	fake := pushtest.NewAPNs(c)

	// A provider token signed with another key.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": fake.TeamID, "iat": time.Now().Unix()})
	tok.Header["kid"] = fake.KeyID
	forged, _ := tok.SignedString(other)
	h := http.Header{}
	h.Set("authorization", "bearer "+forged)
	h.Set("apns-push-type", "voip")
	h.Set("apns-topic", fake.Topic+".voip")
	resp := post(t, fake.Client(), fake.URL+"/3/device/ab", h, `{"aps":{}}`)
	if resp.StatusCode != 403 || !strings.Contains(reason(resp), "InvalidProviderToken") {
		t.Errorf("forged provider token answered %d, want 403 InvalidProviderToken", resp.StatusCode)
	}
	if len(c.take()) != 1 {
		t.Error("forged provider token not reported")
	}

	// HTTP/1.1.
	h1 := &http.Client{Transport: fake.Client().Transport.(*http.Transport).Clone()}
	h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	h1.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	defer h1.CloseIdleConnections()
	resp = post(t, h1, fake.URL+"/3/device/ab", http.Header{}, `{"aps":{}}`)
	if resp.StatusCode != 400 || len(c.take()) != 1 {
		t.Errorf("HTTP/1.1 request answered %d, want 400 and a report", resp.StatusCode)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("%d requests recorded, want 2", n)
	}
}

func TestFakeFCMRejectsWhatFCMWould(t *testing.T) {
	c := &complaints{TB: t}
	fake := pushtest.NewFCM(c)
	f, err := push.NewFCM(fake.Options(), fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	// A good send first, to learn an access token.
	m := push.Message{ID: "m", Fields: map[string]string{"type": "invite"}, Deadline: time.Now().Add(time.Minute)}
	if err := f.Send(context.Background(), push.Target{Platform: push.PlatformFCM, Token: "reg"}, m); err != nil {
		t.Fatal(err)
	}
	access := fake.Wait(t, 1)[0].AccessToken
	h := http.Header{}
	h.Set("Authorization", "Bearer "+access)
	h.Set("Content-Type", "application/json")
	url := fake.URL + "/v1/projects/" + fake.ProjectID + "/messages:send"
	for name, body := range map[string]string{
		"notification": `{"message":{"token":"r","notification":{"title":"x"},"data":{},"android":{"priority":"high","ttl":"3s"}}}`,
		"priority":     `{"message":{"token":"r","data":{},"android":{"priority":"normal","ttl":"3s"}}}`,
		"ttl":          `{"message":{"token":"r","data":{},"android":{"priority":"high","ttl":"3"}}}`,
		"not a string": `{"message":{"token":"r","data":{"n":1},"android":{"priority":"high","ttl":"3s"}}}`,
	} {
		resp := post(t, fake.Client(), url, h.Clone(), body)
		if resp.StatusCode != 400 || !strings.Contains(reason(resp), "INVALID_ARGUMENT") || len(c.take()) != 1 {
			t.Errorf("%s: answered %d, want 400 INVALID_ARGUMENT and a report", name, resp.StatusCode)
		}
	}
	h.Set("Authorization", "Bearer ya29.made-up")
	if resp := post(t, fake.Client(), url, h, `{}`); resp.StatusCode != 401 || len(c.take()) != 1 {
		t.Errorf("made-up access token answered %d, want 401 and a report", resp.StatusCode)
	}
}

func TestFakeWebhookVerifiesSignatures(t *testing.T) {
	c := &complaints{TB: t}
	fake := pushtest.NewWebhook(c)
	body := `{"token":"t"}`
	now := strconv.FormatInt(time.Now().Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", now)
	h.Set("webhook-signature", "v1,bm90IGl0")
	if resp := post(t, fake.Client(), fake.URL, h, body); resp.StatusCode != 401 || len(c.take()) != 1 {
		t.Errorf("bad signature answered %d, want 401 and a report", resp.StatusCode)
	}
	h.Set("webhook-timestamp", strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10))
	if err := pushtest.VerifyWebhook(fake.Secret, h, []byte(body), time.Now()); err == nil {
		t.Error("an hour-old timestamp verified")
	}
}

func TestWaitAwaitsRequests(t *testing.T) {
	fake := pushtest.NewWebhook(t)
	w, err := push.NewWebhook(fake.Options(), fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		wg.Go(func() {
			m := push.Message{ID: fmt.Sprint(i), Deadline: time.Now().Add(time.Minute)}
			_ = w.Send(context.Background(), push.Target{Platform: push.PlatformWebhook, Token: "t"}, m)
		})
	}
	if got := len(fake.Wait(t, n)); got != n {
		t.Fatalf("Wait returned %d requests, want %d", got, n)
	}
	if fake.Count("t") != n {
		t.Errorf("Count = %d, want %d", fake.Count("t"), n)
	}
}
