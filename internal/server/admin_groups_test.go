package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/group"
	"github.com/signald/signald/internal/memstore"
	"github.com/signald/signald/internal/redisstore"
)

const adminToken = "s3cret-admin-token-of-32-bytes!!"

// logBuffer collects log output written from server goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startAdmin serves the admin API of a server on groups over a real HTTP
// server for the test's lifetime and returns its URL and log.
func startAdmin(t *testing.T, groups group.Store, token string) (string, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := &Server{d: Deps{Groups: groups, AdminToken: token, Logger: logger,
		PushEnabled: func(device.Platform) bool { return true }}, log: logger}
	if d, ok := groups.(Devices); ok {
		s.d.Devices = d
	}
	s.adminAPI = s.newAdminAPI()
	srv := httptest.NewServer(s.adminAPI)
	t.Cleanup(srv.Close)
	return srv.URL, logs
}

// storeWith returns a memory store holding groups.
func storeWith(t *testing.T, groups map[string][]string) *memstore.Store {
	t.Helper()
	s := memstore.New()
	for g, members := range groups {
		if _, err := s.AddMembers(context.Background(), g, members); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// groupsOf returns the members of each of names in s; a missing group is
// absent.
func groupsOf(t *testing.T, s group.Store, names []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, g := range names {
		m, err := s.Members(context.Background(), g)
		if errors.Is(err, group.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			m = []string{}
		}
		out[g] = m
	}
	return out
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request; auth is the Authorization header, none if empty.
func do(t *testing.T, method, url, auth, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// checkResponse compares status and body; a JSON body must be the exact
// compact JSON given (plus the encoder's newline) with a JSON content type,
// and a 204 must be empty.
func checkResponse(t *testing.T, got response, wantStatus int, wantBody string) {
	t.Helper()
	if got.status != wantStatus {
		t.Errorf("status = %d, want %d (body %q)", got.status, wantStatus, got.body)
	}
	if wantStatus == http.StatusNoContent {
		if got.body != "" {
			t.Errorf("body = %q, want empty", got.body)
		}
		return
	}
	if got.body != wantBody+"\n" {
		t.Errorf("body = %q, want %q", got.body, wantBody+"\n")
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

func TestAdminAuth(t *testing.T) {
	const unauthorized = `{"error":"missing or invalid admin token"}`
	tests := []struct {
		name  string
		token string // configured admin token
		auth  string // Authorization header sent; "" sends none
		want  int
	}{
		{"no header", adminToken, "", http.StatusUnauthorized},
		{"Bearer with no token", adminToken, "Bearer", http.StatusUnauthorized},
		{"Bearer and a space", adminToken, "Bearer ", http.StatusUnauthorized},
		{"Bearer and spaces", adminToken, "Bearer    ", http.StatusUnauthorized},
		{"wrong token", adminToken, "Bearer not-the-token", http.StatusUnauthorized},
		{"prefix of the token", adminToken, "Bearer " + adminToken[:len(adminToken)-1], http.StatusUnauthorized},
		{"first byte of the token", adminToken, "Bearer " + adminToken[:1], http.StatusUnauthorized},
		{"token with a suffix", adminToken, "Bearer " + adminToken + "x", http.StatusUnauthorized},
		{"token in other case", adminToken, "Bearer " + strings.ToUpper(adminToken), http.StatusUnauthorized},
		{"token without scheme", adminToken, adminToken, http.StatusUnauthorized},
		{"Basic scheme", adminToken, "Basic " + adminToken, http.StatusUnauthorized},
		{"scheme glued to token", adminToken, "Bearer" + adminToken, http.StatusUnauthorized},
		{"right token", adminToken, "Bearer " + adminToken, http.StatusOK},
		{"scheme in lower case", adminToken, "bearer " + adminToken, http.StatusOK},
		{"two spaces before token", adminToken, "Bearer  " + adminToken, http.StatusOK},
		{"no token configured, empty bearer", "", "Bearer ", http.StatusUnauthorized},
		{"no token configured, bare Bearer", "", "Bearer", http.StatusUnauthorized},
		{"no token configured, some token", "", "Bearer x", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := storeWith(t, map[string][]string{"g": {"a"}})
			url, _ := startAdmin(t, store, tt.token)
			for _, path := range []string{"/v1/groups/g/members", "/v1/users/a/devices"} {
				got := do(t, http.MethodGet, url+path, tt.auth, "")
				if tt.want == http.StatusOK {
					if got.status != http.StatusOK {
						t.Errorf("%s: %d %s", path, got.status, got.body)
					}
					continue
				}
				checkResponse(t, got, http.StatusUnauthorized, unauthorized)
				if h := got.header.Get("WWW-Authenticate"); h != "Bearer" {
					t.Errorf("WWW-Authenticate = %q, want Bearer", h)
				}
			}
		})
	}
}

// TestAdminAuthBeforeEverything checks that without the token nothing else
// is looked at: not the route, the method nor the body, and nothing changes.
func TestAdminAuthBeforeEverything(t *testing.T) {
	tests := []struct {
		name, method, path, body string
	}{
		{"unknown path", http.MethodGet, "/nope", ""},
		{"wrong method", http.MethodPost, "/v1/groups/g/members", ""},
		{"malformed body", http.MethodPut, "/v1/groups/g/members", "{"},
		{"a change", http.MethodPut, "/v1/groups/g/members", `{"members":["mallory"]}`},
		{"invalid groupID", http.MethodGet, "/v1/groups/%ff/members", ""},
		{"delete group", http.MethodDelete, "/v1/groups/g", ""},
		{"a device", http.MethodPut, "/v1/users/a/devices/d", `{"platform":"webhook","token":"t"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := storeWith(t, map[string][]string{"g": {"a"}})
			url, logs := startAdmin(t, store, adminToken)
			got := do(t, tt.method, url+tt.path, "Bearer wrong", tt.body)
			checkResponse(t, got, http.StatusUnauthorized, `{"error":"missing or invalid admin token"}`)
			if after := groupsOf(t, store, []string{"g"}); !slices.Equal(after["g"], []string{"a"}) {
				t.Errorf("an unauthorized request changed the group: %v", after)
			}
			if strings.Contains(logs.String(), "wrong") {
				t.Errorf("log contains the presented token:\n%s", logs)
			}
		})
	}
}

// TestAdminGroupsAPI drives every route of the group admin API over real
// HTTP against the memory store, and checks the answer and the groups
// after.
func TestAdminGroupsAPI(t *testing.T) {
	long := strings.Repeat("x", 128)
	// many returns n distinct userIDs, sorted, and their JSON array.
	many := func(n int) ([]string, string) {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("u%05d", i)
		}
		return ids, `["` + strings.Join(ids, `","`) + `"]`
	}
	ids10000, json10000 := many(10_000)
	_, json10001 := many(10_001)
	tests := []struct {
		name       string
		groups     map[string][]string // store contents before the request
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string              // exact JSON, for every status but 204
		wantGroups map[string][]string // store contents after; nil: unchanged
		wantAllow  string              // Allow header on 405
	}{
		// PUT members.
		{
			name: "put creates group", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["b","a"]}`,
			wantStatus: 200, wantBody: `{"groupID":"g1","members":["a","b"]}`,
			wantGroups: map[string][]string{"g1": {"a", "b"}},
		},
		{
			name: "put adds to existing group", groups: map[string][]string{"g1": {"c", "a"}},
			method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["b","a"]}`,
			wantStatus: 200, wantBody: `{"groupID":"g1","members":["a","b","c"]}`,
			wantGroups: map[string][]string{"g1": {"a", "b", "c"}},
		},
		{
			name: "put empty list creates empty group", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":[]}`,
			wantStatus: 200, wantBody: `{"groupID":"g1","members":[]}`,
			wantGroups: map[string][]string{"g1": {}},
		},
		{
			name: "put empty list keeps members", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":[]}`,
			wantStatus: 200, wantBody: `{"groupID":"g1","members":["a"]}`,
		},
		{
			name: "put with whitespace around the object", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       " \n{\"members\": [\"a\"]}\n\t ",
			wantStatus: 200, wantBody: `{"groupID":"g1","members":["a"]}`,
			wantGroups: map[string][]string{"g1": {"a"}},
		},
		{
			name: "put non-ASCII and escaped IDs", method: http.MethodPut, path: "/v1/groups/gr%C3%BCppe/members",
			body:       `{"members":["zoë","a/b","\u00e9"]}`,
			wantStatus: 200, wantBody: `{"groupID":"grüppe","members":["a/b","zoë","é"]}`,
			wantGroups: map[string][]string{"grüppe": {"a/b", "zoë", "é"}},
		},
		{
			name: "put groupID with escaped slash", method: http.MethodPut, path: "/v1/groups/a%2Fb/members",
			body:       `{"members":["u"]}`,
			wantStatus: 200, wantBody: `{"groupID":"a/b","members":["u"]}`,
			wantGroups: map[string][]string{"a/b": {"u"}},
		},
		{
			name: "put groupID with escaped percent", method: http.MethodPut, path: "/v1/groups/100%25/members",
			body:       `{"members":["u"]}`,
			wantStatus: 200, wantBody: `{"groupID":"100%","members":["u"]}`,
			wantGroups: map[string][]string{"100%": {"u"}},
		},
		{
			name: "put 128-byte IDs", method: http.MethodPut, path: "/v1/groups/" + long + "/members",
			body:       `{"members":["` + long + `"]}`,
			wantStatus: 200, wantBody: `{"groupID":"` + long + `","members":["` + long + `"]}`,
			wantGroups: map[string][]string{long: {long}},
		},
		{
			name: "put malformed JSON", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a",}`,
			wantStatus: 400, wantBody: `{"error":"malformed body: invalid character '}' looking for beginning of value"}`,
		},
		{
			name: "put truncated JSON", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a"`,
			wantStatus: 400, wantBody: `{"error":"malformed body: truncated JSON"}`,
		},
		{
			name: "put empty body", method: http.MethodPut, path: "/v1/groups/g1/members",
			wantStatus: 400, wantBody: `{"error":"malformed body: empty"}`,
		},
		{
			name: "put unknown field", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a"],"admins":["b"]}`,
			wantStatus: 400, wantBody: `{"error":"malformed body: unknown field \"admins\""}`,
		},
		{
			name: "put trailing object", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a"]}{"members":["b"]}`,
			wantStatus: 400, wantBody: `{"error":"malformed body: unexpected data after the JSON object"}`,
		},
		{
			name: "put trailing garbage", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a"]} x`,
			wantStatus: 400, wantBody: `{"error":"malformed body: unexpected data after the JSON object"}`,
		},
		{
			name: "put body an array", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `["a"]`,
			wantStatus: 400, wantBody: `{"error":"malformed body: not a JSON object"}`,
		},
		{
			name: "put body null", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `null`,
			wantStatus: 400, wantBody: `{"error":"members is required"}`,
		},
		{
			name: "put members missing", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{}`,
			wantStatus: 400, wantBody: `{"error":"members is required"}`,
		},
		{
			name: "put members null", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":null}`,
			wantStatus: 400, wantBody: `{"error":"members is required"}`,
		},
		{
			name: "put members a string", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":"a"}`,
			wantStatus: 400, wantBody: `{"error":"members must be an array of strings"}`,
		},
		{
			name: "put members numbers", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a",1]}`,
			wantStatus: 400, wantBody: `{"error":"members must be an array of strings"}`,
		},
		{
			name: "put members with null element", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a",null]}`,
			wantStatus: 400, wantBody: `{"error":"members[1] is empty: invalid parameters"}`,
		},
		{
			name: "put empty userID", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["a",""]}`,
			wantStatus: 400, wantBody: `{"error":"members[1] is empty: invalid parameters"}`,
		},
		{
			name: "put userID too long", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["` + long + `x"]}`,
			wantStatus: 400, wantBody: `{"error":"members[0] is longer than 128 bytes: invalid parameters"}`,
		},
		{
			name: "put body not UTF-8", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       "{\"members\":[\"a\xffb\"]}",
			wantStatus: 400, wantBody: `{"error":"malformed body: not valid UTF-8"}`,
		},
		{
			name: "put 10000 members", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":` + json10000 + `}`,
			wantStatus: 200, wantBody: `{"groupID":"g1","members":` + json10000 + `}`,
			wantGroups: map[string][]string{"g1": ids10000},
		},
		{
			name: "put 10001 members", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":` + json10001 + `}`,
			wantStatus: 400, wantBody: `{"error":"too many members: 10001, at most 10000 per request"}`,
		},
		{
			name: "put body over 1 MiB", method: http.MethodPut, path: "/v1/groups/g1/members",
			body:       `{"members":["` + strings.Repeat("a", 1<<20) + `"]}`,
			wantStatus: 413, wantBody: `{"error":"body larger than 1048576 bytes"}`,
		},
		{
			name: "put groupID too long", method: http.MethodPut, path: "/v1/groups/" + long + "x/members",
			body:       `{"members":["a"]}`,
			wantStatus: 400, wantBody: `{"error":"groupID is longer than 128 bytes: invalid parameters"}`,
		},
		{
			name: "put groupID not UTF-8", method: http.MethodPut, path: "/v1/groups/%ff/members",
			body:       `{"members":["a"]}`,
			wantStatus: 400, wantBody: `{"error":"groupID is not valid UTF-8: invalid parameters"}`,
		},
		{
			name: "put groupID upper-case escape not UTF-8", method: http.MethodPut, path: "/v1/groups/%FF/members",
			body:       `{"members":["a"]}`,
			wantStatus: 400, wantBody: `{"error":"groupID is not valid UTF-8: invalid parameters"}`,
		},

		// GET members.
		{
			name: "get members", groups: map[string][]string{"g1": {"b", "a"}},
			method: http.MethodGet, path: "/v1/groups/g1/members",
			wantStatus: 200, wantBody: `{"groupID":"g1","members":["a","b"]}`,
		},
		{
			name: "get empty group", groups: map[string][]string{"g1": {}},
			method: http.MethodGet, path: "/v1/groups/g1/members",
			wantStatus: 200, wantBody: `{"groupID":"g1","members":[]}`,
		},
		{
			name: "get missing group", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodGet, path: "/v1/groups/g2/members",
			wantStatus: 404, wantBody: `{"error":"group not found"}`,
		},

		// DELETE a member.
		{
			name: "delete member", groups: map[string][]string{"g1": {"a", "b"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members/a",
			wantStatus: 204,
			wantGroups: map[string][]string{"g1": {"b"}},
		},
		{
			name: "delete last member keeps group", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members/a",
			wantStatus: 204,
			wantGroups: map[string][]string{"g1": {}},
		},
		{
			name: "delete non-member", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members/zed",
			wantStatus: 204,
		},
		{
			name: "delete member with escaped slash", groups: map[string][]string{"g1": {"a/b", "a"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members/a%2Fb",
			wantStatus: 204,
			wantGroups: map[string][]string{"g1": {"a"}},
		},
		{
			name: "delete member of missing group", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g2/members/a",
			wantStatus: 404, wantBody: `{"error":"group not found"}`,
		},
		{
			name: "delete member userID too long", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members/" + long + "x",
			wantStatus: 400, wantBody: `{"error":"userID is longer than 128 bytes: invalid parameters"}`,
		},
		{
			name: "delete member userID not UTF-8", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members/%c3%28",
			wantStatus: 400, wantBody: `{"error":"userID is not valid UTF-8: invalid parameters"}`,
		},

		// DELETE a group.
		{
			name: "delete group", groups: map[string][]string{"g1": {"a"}, "g2": {"b"}},
			method: http.MethodDelete, path: "/v1/groups/g1",
			wantStatus: 204,
			wantGroups: map[string][]string{"g2": {"b"}},
		},
		{
			name: "delete empty group", groups: map[string][]string{"g1": {}},
			method: http.MethodDelete, path: "/v1/groups/g1",
			wantStatus: 204,
			wantGroups: map[string][]string{},
		},
		{
			name: "delete missing group", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g2",
			wantStatus: 404, wantBody: `{"error":"group not found"}`,
		},

		// Unknown paths and wrong methods.
		{
			name: "empty groupID", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodGet, path: "/v1/groups//members",
			wantStatus: 400, wantBody: `{"error":"groupID is empty: invalid parameters"}`,
		},
		{
			name: "delete member with no userID", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members/",
			wantStatus: 400, wantBody: `{"error":"userID is empty"}`,
		},
		{name: "root", method: http.MethodGet, path: "/", wantStatus: 404, wantBody: `{"error":"not found"}`},
		{name: "groups collection", method: http.MethodGet, path: "/v1/groups", wantStatus: 404, wantBody: `{"error":"not found"}`},
		{name: "other version", method: http.MethodGet, path: "/v2/groups/g1/members", wantStatus: 404, wantBody: `{"error":"not found"}`},
		{name: "too deep", method: http.MethodDelete, path: "/v1/groups/g1/members/a/b", wantStatus: 404, wantBody: `{"error":"not found"}`},
		{name: "unknown sub-resource", method: http.MethodGet, path: "/v1/groups/g1/admins", wantStatus: 404, wantBody: `{"error":"not found"}`},
		{
			name: "post members", method: http.MethodPost, path: "/v1/groups/g1/members", body: `{"members":[]}`,
			wantStatus: 405, wantBody: `{"error":"method not allowed"}`, wantAllow: "GET, PUT",
		},
		{
			name: "delete members collection", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodDelete, path: "/v1/groups/g1/members",
			wantStatus: 405, wantBody: `{"error":"method not allowed"}`, wantAllow: "GET, PUT",
		},
		{
			name: "get group", groups: map[string][]string{"g1": {"a"}},
			method: http.MethodGet, path: "/v1/groups/g1",
			wantStatus: 405, wantBody: `{"error":"method not allowed"}`, wantAllow: "DELETE",
		},
		{
			name: "put member", method: http.MethodPut, path: "/v1/groups/g1/members/a",
			wantStatus: 405, wantBody: `{"error":"method not allowed"}`, wantAllow: "DELETE",
		},
		{
			name: "unknown method", method: "BREW", path: "/v1/groups/g1/members",
			wantStatus: 405, wantBody: `{"error":"method not allowed"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := storeWith(t, tt.groups)
			url, _ := startAdmin(t, store, adminToken)
			got := do(t, tt.method, url+tt.path, "Bearer "+adminToken, tt.body)
			checkResponse(t, got, tt.wantStatus, tt.wantBody)
			if tt.wantAllow != "" {
				if allow := got.header.Values("Allow"); len(allow) != 1 || allow[0] != tt.wantAllow {
					t.Errorf("Allow headers %q, want one: %q", allow, tt.wantAllow)
				}
			}
			var names []string
			for g := range tt.groups {
				names = append(names, g)
			}
			for g := range tt.wantGroups {
				names = append(names, g)
			}
			wantGroups := tt.wantGroups
			if wantGroups == nil {
				wantGroups = groupsOf(t, storeWith(t, tt.groups), names)
			}
			if gotGroups := groupsOf(t, store, names); fmt.Sprint(gotGroups) != fmt.Sprint(wantGroups) {
				t.Errorf("groups after = %v, want %v", gotGroups, wantGroups)
			}
		})
	}
}

// TestAdminStoreErrors: with its store unreachable (a Redis that is not
// there), every admin request answers 503 without the cause, which is
// logged.
func TestAdminStoreErrors(t *testing.T) {
	// Nothing listens on port 1, and no test binds it: a port just freed
	// may be taken by another test meanwhile.
	addr := "127.0.0.1:1"
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	store, err := redisstore.New(redisstore.Options{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct {
		method, path, body string
	}{
		{http.MethodPut, "/v1/groups/g/members", `{"members":["a"]}`},
		{http.MethodGet, "/v1/groups/g/members", ""},
		{http.MethodDelete, "/v1/groups/g/members/a", ""},
		{http.MethodDelete, "/v1/groups/g", ""},
	} {
		t.Run(req.method+" "+req.path, func(t *testing.T) {
			url, logs := startAdmin(t, store, adminToken)
			got := do(t, req.method, url+req.path, "Bearer "+adminToken, req.body)
			checkResponse(t, got, http.StatusServiceUnavailable, `{"error":"store unavailable; the request may or may not have taken effect"}`)
			if log := logs.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, addr) {
				t.Errorf("the store error is not logged with its cause:\n%s", log)
			}
			if strings.Contains(got.body, addr) {
				t.Errorf("body %q leaks the store error", got.body)
			}
		})
	}
}

// TestUnauthorizedLogIsBounded: strangers sending requests with huge paths
// cannot fill the log: each leaves one line of bounded size.
func TestUnauthorizedLogIsBounded(t *testing.T) {
	url, logs := startAdmin(t, memstore.New(), adminToken)
	path := "/v1/groups/" + strings.Repeat("a", 60_000) + "/members"
	for range 10 {
		if r := do(t, http.MethodGet, url+path, "", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", r.status)
		}
	}
	if n := len(logs.String()); n > 10*1024 {
		t.Fatalf("ten unauthorized requests with 60 KB paths wrote %d bytes of log", n)
	}
}
