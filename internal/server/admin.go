package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
)

// newAdminAPI returns the admin HTTP API for the app's backend, which
// routes its own full paths:
//
//	/v1/groups/...  group membership (admin_groups.go, api/README.md §9)
//	/v1/users/...   device registrations (admin_devices.go, api/README.md §13)
//
// Every request must carry "Authorization: Bearer <admin token>"; the
// check runs before routing, so that without the token not even the set
// of paths can be probed. An empty token refuses every request rather than
// admitting anyone with an empty bearer. Every error answer is JSON
// {"error": "..."}; the statuses of domain errors come from one table
// (codes.go).
func (s *Server) newAdminAPI() http.Handler {
	a := &adminAuth{s: s, hasToken: s.d.AdminToken != ""}
	if a.hasToken {
		a.tokenHash = sha256.Sum256([]byte(s.d.AdminToken))
	} else {
		s.log.Warn("admin API has no token configured; every request will be refused")
	}
	r := chi.NewRouter()
	r.Use(a.authenticate)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		adminError(w, http.StatusNotFound, "not found")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 §15.5.6: a 405 lists the methods the resource has, in
		// one Allow header.
		path := req.URL.RawPath
		if path == "" {
			path = req.URL.Path
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), m, path) {
				allow = append(allow, m)
			}
		}
		w.Header().Del("Allow")
		w.Header().Set("Allow", strings.Join(allow, ", "))
		adminError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	s.groupRoutes(r)
	s.deviceRoutes(r)
	return r
}

// adminAuth checks the admin token.
type adminAuth struct {
	s *Server
	// tokenHash is SHA-256 of the admin token. Comparing fixed-size hashes
	// keeps the comparison constant-time in the token's length too, which
	// subtle.ConstantTimeCompare on the raw strings would leak.
	tokenHash [sha256.Size]byte
	hasToken  bool
}

func (a *adminAuth) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r.Header.Get("Authorization")) {
			// Warn, not error: a stranger knocking is not a fault of ours,
			// but repeated knocks are worth seeing.
			a.s.log.WarnContext(r.Context(), "admin API: unauthorized request",
				"method", bounded(r.Method), "path", bounded(r.URL.Path), "client", a.s.clientAddr(r))
			w.Header().Set("WWW-Authenticate", "Bearer")
			adminError(w, http.StatusUnauthorized, "missing or invalid admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether header is "Bearer <the admin token>". The scheme
// is case-insensitive (RFC 9110 §11.1); the token is not.
func (a *adminAuth) authorized(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !a.hasToken {
		return false
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) == 1
}

// bounded cuts a client's string for a log line: a stranger must not be
// able to write megabytes of log with one request.
func bounded(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is already sent; a failed write means the client left.
	_ = json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, status int, msg string) {
	adminJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}
