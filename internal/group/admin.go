package group

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/signald/signald/internal/ids"
)

// Limits on admin requests. They bound the memory and store work one request
// can cause; real groups are far smaller.
const (
	// maxBodyBytes caps a request body; a full 10,000-member request with
	// 100-byte IDs fits comfortably.
	maxBodyBytes = 1 << 20
	// maxIDBytes caps a groupID or userID, which end up in store keys.
	maxIDBytes = 128
	// maxMembersPerRequest caps the members of one PUT.
	maxMembersPerRequest = 10_000
)

// NewAdminHandler returns the admin HTTP API of PROTOCOL.md §8, serving its
// full paths (/v1/groups/...) so that it can be mounted at the server root.
//
// Every request must carry "Authorization: Bearer <token>"; the check runs
// before routing, so that without the token not even the set of paths can be
// probed. An empty token refuses every request rather than admitting anyone
// with an empty bearer: a missing configuration must not open the API.
// Every error answer is JSON {"error": "..."}. Store failures other than
// ErrNotFound are 503 and logged on logger, since the caller cannot tell
// whether they took effect and an operator needs to know.
//
// NewAdminHandler panics if store or logger is nil: both are wiring, not
// input.
func NewAdminHandler(store Store, token string, logger *slog.Logger) http.Handler {
	if store == nil {
		panic("group: NewAdminHandler: nil Store")
	}
	if logger == nil {
		panic("group: NewAdminHandler: nil logger")
	}
	a := &adminAPI{store: store, logger: logger, hasToken: token != ""}
	if a.hasToken {
		a.tokenHash = sha256.Sum256([]byte(token))
	} else {
		logger.Warn("group admin API has no token configured; every request will be refused")
	}

	r := chi.NewRouter()
	r.Use(a.authenticate)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// chi drops the Allow header when the 405 handler is replaced, and
		// RFC 9110 requires it, so recompute it from the routes.
		path := req.URL.RawPath
		if path == "" {
			path = req.URL.Path
		}
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), m, path) {
				w.Header().Add("Allow", m)
			}
		}
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.Put("/v1/groups/{groupID}/members", a.addMembers)
	r.Get("/v1/groups/{groupID}/members", a.members)
	r.Delete("/v1/groups/{groupID}/members/{userID}", a.removeMember)
	r.Delete("/v1/groups/{groupID}", a.deleteGroup)
	return r
}

// adminAPI holds what the admin handlers share. It is immutable after
// NewAdminHandler, hence safe for concurrent requests.
type adminAPI struct {
	store  Store
	logger *slog.Logger
	// tokenHash is SHA-256 of the admin token. Comparing fixed-size hashes
	// keeps the comparison constant-time in the token's length too, which
	// subtle.ConstantTimeCompare on the raw strings would leak.
	tokenHash [sha256.Size]byte
	hasToken  bool
}

// membersRequest is the body of PUT /v1/groups/{groupID}/members. Members is
// a pointer so that a missing or null list can be told from an empty one.
type membersRequest struct {
	Members *[]string `json:"members"`
}

// membersResponse answers PUT and GET on /v1/groups/{groupID}/members.
type membersResponse struct {
	GroupID string   `json:"groupID"`
	Members []string `json:"members"`
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

// errorResponse is the body of every error answer.
type errorResponse struct {
	Error string `json:"error"`
}

func (a *adminAPI) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r.Header.Get("Authorization")) {
			// Warn, not error: a stranger knocking is not a fault of ours,
			// but repeated knocks are worth seeing.
			a.logger.WarnContext(r.Context(), "group admin API: unauthorized request",
				"method", bounded(r.Method), "path", bounded(r.URL.Path), "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, "missing or invalid admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether header is "Bearer <the admin token>". The scheme
// is case-insensitive (RFC 9110 §11.1); the token is not.
func (a *adminAPI) authorized(header string) bool {
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

func (a *adminAPI) addMembers(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	members, status, msg := decodeMembers(w, r)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	all, err := a.store.AddMembers(r.Context(), groupID, members)
	if err != nil {
		a.storeError(w, r, "AddMembers", groupID, err)
		return
	}
	writeMembers(w, groupID, all)
}

func (a *adminAPI) members(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	all, err := a.store.Members(r.Context(), groupID)
	if err != nil {
		a.storeError(w, r, "Members", groupID, err)
		return
	}
	writeMembers(w, groupID, all)
}

func (a *adminAPI) removeMember(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	userID, ok := pathID(w, r, "userID")
	if !ok {
		return
	}
	if err := a.store.RemoveMember(r.Context(), groupID, userID); err != nil {
		a.storeError(w, r, "RemoveMember", groupID, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *adminAPI) deleteGroup(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	if err := a.store.Delete(r.Context(), groupID); err != nil {
		a.storeError(w, r, "Delete", groupID, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// storeError answers a failed store call: 404 for a missing group, else 503.
// Only the 503 is logged; its cause stays in the log, not in the answer.
func (a *adminAPI) storeError(w http.ResponseWriter, r *http.Request, op, groupID string, err error) {
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "group not found")
		return
	}
	a.logger.ErrorContext(r.Context(), "group admin API: store failed",
		"op", op, "groupID", groupID, "err", err)
	writeError(w, http.StatusServiceUnavailable, "store unavailable")
}

// pathID returns the decoded, validated path parameter key, or answers 400
// and returns false.
func pathID(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	id := chi.URLParam(r, key)
	// chi matches on RawPath when the request has one (so that an escaped
	// "/" stays inside its segment), and then hands back escaped values.
	if r.URL.RawPath != "" {
		unescaped, err := url.PathUnescape(id)
		if err != nil {
			writeError(w, http.StatusBadRequest, key+" is not a valid path segment")
			return "", false
		}
		id = unescaped
	}
	if err := validateID(id); err != nil {
		writeError(w, http.StatusBadRequest, key+" "+err.Error())
		return "", false
	}
	return id, true
}

// validateID checks a groupID or userID. Both become parts of store keys
// and of JSON, so they must be valid UTF-8 and short.
func validateID(id string) error { return ids.Check(id, maxIDBytes) }

// decodeMembers reads and validates a membersRequest. It returns the members
// sorted and without duplicates, or a non-zero status and an error message.
func decodeMembers(w http.ResponseWriter, r *http.Request) (members []string, status int, msg string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		status, msg := bodyError(err)
		return nil, status, msg
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD and store
	// a userID nobody can log in as; refuse it instead.
	if !utf8.Valid(body) {
		return nil, http.StatusBadRequest, "malformed body: not valid UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req membersRequest
	if err := dec.Decode(&req); err != nil {
		status, msg := bodyError(err)
		return nil, status, msg
	}
	// A second value, or anything but whitespace, after the object is as
	// malformed as a broken object.
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, http.StatusBadRequest, "malformed body: unexpected data after the JSON object"
	}
	if req.Members == nil {
		return nil, http.StatusBadRequest, "members is required"
	}
	members = *req.Members
	if len(members) > maxMembersPerRequest {
		return nil, http.StatusBadRequest,
			fmt.Sprintf("too many members: %d, at most %d per request", len(members), maxMembersPerRequest)
	}
	for i, m := range members {
		if err := validateID(m); err != nil {
			return nil, http.StatusBadRequest, fmt.Sprintf("members[%d] %v", i, err)
		}
	}
	members = slices.Clone(members)
	slices.Sort(members)
	return slices.Compact(members), 0, ""
}

// bodyError turns a JSON decoding error into a status and a message that
// names the problem without Go type names.
func bodyError(err error) (int, string) {
	var (
		tooLarge *http.MaxBytesError
		typeErr  *json.UnmarshalTypeError
		syntax   *json.SyntaxError
	)
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBodyBytes)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "malformed body: empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "malformed body: truncated JSON"
	case errors.As(err, &syntax):
		return http.StatusBadRequest, "malformed body: " + err.Error()
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return http.StatusBadRequest, "malformed body: not a JSON object"
		}
		return http.StatusBadRequest, "members must be an array of strings"
	default:
		// Unknown fields land here ("json: unknown field \"x\"").
		return http.StatusBadRequest, "malformed body: " + strings.TrimPrefix(err.Error(), "json: ")
	}
}

func writeMembers(w http.ResponseWriter, groupID string, members []string) {
	if members == nil {
		// A group with no members answers [], never null.
		members = []string{}
	}
	writeJSON(w, http.StatusOK, membersResponse{GroupID: groupID, Members: members})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is already sent; a failed write means the client left.
	_ = json.NewEncoder(w).Encode(v)
}
