package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/protocol"
	"github.com/signald/signald/internal/redistest"
)

// mainDaemon is a signald started through its command line (app.Main), so
// that the defaults of the flags are what a user gets.
type mainDaemon struct {
	base string // http://host:port
	stop func()
}

// startMain runs `signald serve args...` with env and returns once it
// listens (its log line "signald listening" names the address).
func startMain(t *testing.T, args []string, env map[string]string) *mainDaemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"}, args...)
		err := app.Main(ctx, args, func(k string) string { return env[k] }, io.Discard, pw)
		_ = pw.CloseWithError(io.EOF)
		done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "signald listening" {
				addr <- line.Addr
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("signald stopped with %v", err)
		}
	}
	select {
	case a := <-addr:
		md := &mainDaemon{base: "http://" + a, stop: stop}
		t.Cleanup(stop)
		return md
	case err := <-done:
		cancel()
		t.Fatalf("signald %v did not start: %v", args, err)
	case <-time.After(waitFor):
		stop()
		t.Fatalf("signald %v: no \"signald listening\" within %v", args, waitFor)
	}
	return nil
}

func (md *mainDaemon) do(t *testing.T, method, path, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, md.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// secrets are long enough to start outside --dev.
var secrets = map[string]string{
	"SIGNALD_JWT_SECRET":  strings.Repeat("s", app.MinSecretBytes),
	"SIGNALD_ADMIN_TOKEN": strings.Repeat("a", app.MinSecretBytes),
}

func withEnv(extra map[string]string) map[string]string {
	env := map[string]string{}
	for k, v := range secrets {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// TestDemoInDevMode: `signald serve --dev` serves the demo page, its SDK
// bundle, a token endpoint whose userSigs log in, and the demo group
// endpoint, on the embedded store and on Redis; bad user IDs get a 400
// that says what is wrong.
func TestDemoInDevMode(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(backend, func(t *testing.T) {
			apptest.CheckLeaks(t)
			args := []string{"--dev"}
			if backend == "redis" {
				c, prefix := redistest.NewClient(t)
				args = append(args, "--redis-url", "redis://"+c.Options().Addr, "--redis-prefix", prefix)
			}
			md := startMain(t, args, nil)

			code, hdr, body := md.do(t, "GET", "/demo/", "")
			if code != http.StatusOK || !strings.Contains(body, "signald") || !strings.Contains(body, "app.js") {
				t.Fatalf("GET /demo/: %d %.200s", code, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("GET /demo/: Content-Type %q", ct)
			}
			if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("GET /demo/: Content-Security-Policy %q", csp)
			}
			if code, hdr, _ := md.do(t, "GET", "/demo", ""); code != http.StatusOK || hdr.Get("Content-Type") == "" {
				t.Errorf("GET /demo (redirected to /demo/): %d", code)
			}
			for _, f := range []string{"/demo/app.js", "/demo/signald-client.js", "/demo/style.css"} {
				code, hdr, body := md.do(t, "GET", f, "")
				if code != http.StatusOK || len(body) < 100 {
					t.Errorf("GET %s: %d, %d bytes", f, code, len(body))
				}
				if strings.HasSuffix(f, ".js") && !strings.Contains(hdr.Get("Content-Type"), "javascript") {
					t.Errorf("GET %s: Content-Type %q: browsers refuse modules not served as JavaScript", f, hdr.Get("Content-Type"))
				}
			}
			code, _, body = md.do(t, "GET", "/demo/config.json", "")
			if code != http.StatusOK || !strings.Contains(body, `"dev":true`) {
				t.Errorf("GET /demo/config.json: %d %s", code, body)
			}

			// A minted token logs alice in.
			code, _, body = md.do(t, "GET", "/demo/token?user=alice", "")
			if code != http.StatusOK {
				t.Fatalf("GET /demo/token?user=alice: %d %s", code, body)
			}
			tok := decode[struct{ UserID, UserSig string }](t, json.RawMessage(body))
			if tok.UserID != "alice" {
				t.Errorf("token for %q, want alice", tok.UserID)
			}
			if err := auth.NewVerifier([]byte(app.DevJWTSecret), 0).Verify("alice", tok.UserSig); err != nil {
				t.Errorf("the minted userSig does not verify: %v", err)
			}
			dm := &daemon{t: t, ws: "ws" + strings.TrimPrefix(md.base, "http") + "/v1/ws"}
			c := dm.dial()
			if f := call(t, c, protocol.OpLogin, map[string]any{"userID": "alice", "userSig": tok.UserSig}); f.Code != 0 {
				t.Fatalf("login with the demo token: %d %s", f.Code, f.Desc)
			}

			for _, bad := range []struct{ query, says string }{
				{"", "empty"},
				{"?user=", "empty"},
				{"?user=" + strings.Repeat("x", 129), "128"},
				{"?user=al%0Aice", "control"},
				{"?user=al%E2%80%AEice", "control"},
			} {
				code, hdr, body := md.do(t, "GET", "/demo/token"+bad.query, "")
				if code != http.StatusBadRequest || !strings.Contains(hdr.Get("Content-Type"), "json") || !strings.Contains(body, bad.says) {
					t.Errorf("GET /demo/token%s: %d %s %s, want 400 saying %q", bad.query, code, hdr.Get("Content-Type"), body, bad.says)
				}
			}
			if code, _, body := md.do(t, "GET", "/demo/token?user="+strings.Repeat("x", 128), ""); code != http.StatusOK {
				t.Errorf("a user ID of 128 bytes: %d %s", code, body)
			}

			// The group endpoint fills group "demo", which inviteInGroup then uses.
			code, _, body = md.do(t, "POST", "/demo/group", `{"members":["alice","bob","carol"]}`)
			if code != http.StatusOK || !strings.Contains(body, `"members":["alice","bob","carol"]`) {
				t.Fatalf("POST /demo/group: %d %s", code, body)
			}
			f := mustCall(t, c, protocol.OpInviteInGroup, map[string]any{"groupID": "demo", "inviteeList": []string{"bob", "carol"}, "data": ""})
			if len(f.Data) < 3 {
				t.Errorf("inviteInGroup in the demo group: %s", f.Data)
			}
			for _, bad := range []struct{ body, says string }{
				{`{"members":[]}`, "empty"},
				{`{"members":["ok","bad\u0007"]}`, "control"},
				{`{"members":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}`, "16"},
				{`not json`, "JSON"},
				{`{"members":["a"],"admin":true}`, "JSON"},
			} {
				code, _, body := md.do(t, "POST", "/demo/group", bad.body)
				if code != http.StatusBadRequest || !strings.Contains(body, bad.says) {
					t.Errorf("POST /demo/group %s: %d %s, want 400 saying %q", bad.body, code, body, bad.says)
				}
			}
		})
	}
}

// TestDemoSettings: the demo is absent without --dev and --demo; --demo
// alone serves the page but not the endpoints that mint tokens or change
// groups (the page then asks for a pasted userSig); --dev --demo=false and
// SIGNALD_DEMO=false turn it off.
func TestDemoSettings(t *testing.T) {
	for _, c := range []struct {
		name      string
		args      []string
		env       map[string]string
		page, dev bool
	}{
		{"production defaults", nil, secrets, false, false},
		{"--demo without --dev", []string{"--demo"}, secrets, true, false},
		{"SIGNALD_DEMO=true without --dev", nil, withEnv(map[string]string{"SIGNALD_DEMO": "true"}), true, false},
		{"--dev --demo=false", []string{"--dev", "--demo=false"}, nil, false, false},
		{"SIGNALD_DEMO=false with --dev", []string{"--dev"}, map[string]string{"SIGNALD_DEMO": "false"}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			apptest.CheckLeaks(t)
			md := startMain(t, c.args, c.env)
			code, _, _ := md.do(t, "GET", "/demo/", "")
			if c.page != (code == http.StatusOK) {
				t.Errorf("GET /demo/: %d, want page served %v", code, c.page)
			}
			if !c.page && code != http.StatusNotFound {
				t.Errorf("GET /demo/ without the demo: %d, want 404", code)
			}
			if c.page {
				if code, _, body := md.do(t, "GET", "/demo/config.json", ""); code != http.StatusOK || !strings.Contains(body, `"dev":false`) {
					t.Errorf("GET /demo/config.json: %d %s, want dev false", code, body)
				}
			}
			if code, _, body := md.do(t, "GET", "/demo/token?user=alice", ""); code != http.StatusNotFound || strings.Contains(body, "userSig") {
				t.Errorf("GET /demo/token outside --dev: %d %s, want 404", code, body)
			}
			if code, _, _ := md.do(t, "POST", "/demo/group", `{"members":["alice","bob"]}`); code == http.StatusOK {
				t.Errorf("POST /demo/group outside --dev: %d", code)
			}
			// The WebSocket is there all the same.
			if code, _, _ := md.do(t, "GET", "/healthz", ""); code != http.StatusOK {
				t.Errorf("/healthz: %d", code)
			}
		})
	}
}
