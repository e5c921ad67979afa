package demo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type groups struct {
	added [][]string
	err   error
}

func (g *groups) AddMembers(_ context.Context, groupID string, members []string) ([]string, error) {
	if g.err != nil {
		return nil, g.err
	}
	if groupID != GroupID {
		return nil, errors.New("wrong group " + groupID)
	}
	g.added = append(g.added, members)
	return members, nil
}

func serve(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec
}

// TestHandler: the page and its config always; the token and group
// endpoints only with a Dev, each refusing bad input with a 400 that says
// why, and a failing store with a 503.
func TestHandler(t *testing.T) {
	g := &groups{}
	dev, err := Handler(&Dev{MintToken: func(u string) (string, error) { return "sig-" + u, nil }, Groups: g})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := Handler(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name         string
		h            http.Handler
		method, path string
		body         string
		status       int
		says         string
	}{
		{"page", dev, "GET", "/demo/", "", 200, "<title>"},
		{"page outside dev", prod, "GET", "/demo/", "", 200, "<title>"},
		{"the SDK", prod, "GET", "/demo/signald-client.js", "", 200, "SignalingClient"},
		{"config", dev, "GET", "/demo/config.json", "", 200, `"dev":true`},
		{"config outside dev", prod, "GET", "/demo/config.json", "", 200, `"dev":false`},
		{"token", dev, "GET", "/demo/token?user=alice", "", 200, `"userSig":"sig-alice"`},
		{"no user", dev, "GET", "/demo/token", "", 400, "empty"},
		{"long user", dev, "GET", "/demo/token?user=" + strings.Repeat("u", 129), "", 400, "128"},
		{"control character", dev, "GET", "/demo/token?user=a%00b", "", 400, "control"},
		{"no token outside dev", prod, "GET", "/demo/token?user=alice", "", 404, ""},
		{"group", dev, "POST", "/demo/group", `{"members":["alice","bob"]}`, 200, `"groupID":"demo"`},
		{"group: two objects", dev, "POST", "/demo/group", `{"members":["a"]}{}`, 400, "one JSON object"},
		{"group: unknown field", dev, "POST", "/demo/group", `{"members":["a"],"groupID":"x"}`, 400, "members"},
		{"group: too big", dev, "POST", "/demo/group", `{"members":["` + strings.Repeat("a", 5000) + `"]}`, 400, "4 KiB"},
		{"no group outside dev", prod, "POST", "/demo/group", `{"members":["alice"]}`, 405, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(t, c.h, c.method, c.path, c.body)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.says) {
				t.Errorf("%s %s: %d %.300s, want %d saying %q", c.method, c.path, rec.Code, rec.Body.String(), c.status, c.says)
			}
			if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", got)
			}
		})
	}
	if len(g.added) != 1 {
		t.Errorf("AddMembers called %d times, want once", len(g.added))
	}

	g.err = errors.New("redis down")
	if rec := serve(t, dev, "POST", "/demo/group", `{"members":["alice"]}`); rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "redis") {
		t.Errorf("a failing store: %d %s, want 503 without the store's error", rec.Code, rec.Body.String())
	}
	if _, err := Handler(&Dev{Groups: g}); err == nil {
		t.Error("a Dev without MintToken was taken")
	}
}
