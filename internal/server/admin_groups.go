package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/signald/signald/internal/invite"
)

// Limits on group admin requests. They bound the memory and store work one
// request can cause; real groups are far smaller.
const (
	// maxGroupBody caps a request body; a full 10,000-member request with
	// 100-byte IDs fits comfortably.
	maxGroupBody = 1 << 20
	// maxMembersPerRequest caps the members of one PUT.
	maxMembersPerRequest = 10_000
)

// groupRoutes serves the group membership API of api/README.md §9:
//
//	PUT    /v1/groups/{groupID}/members           {"members": [...]}  → 200 {"groupID","members"}
//	GET    /v1/groups/{groupID}/members                              → 200 {"groupID","members"}
//	DELETE /v1/groups/{groupID}/members/{userID}                     → 204
//	DELETE /v1/groups/{groupID}                                      → 204
//
// 404 for a missing group, 400 for a malformed body or ID (an empty userID
// included), 503 when the store failed (logged: the caller cannot tell
// whether it took effect, and an operator needs to know).
func (s *Server) groupRoutes(r chi.Router) {
	r.Put("/v1/groups/{groupID}/members", s.addMembers)
	r.Get("/v1/groups/{groupID}/members", s.members)
	r.Delete("/v1/groups/{groupID}/members/{userID}", s.removeMember)
	// An empty userID is a malformed request, not a missing resource.
	r.Delete("/v1/groups/{groupID}/members/", func(w http.ResponseWriter, _ *http.Request) {
		adminError(w, http.StatusBadRequest, "userID is empty")
	})
	r.Delete("/v1/groups/{groupID}", s.deleteGroup)
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

func (s *Server) addMembers(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	members, status, msg := decodeMembers(w, r)
	if status != 0 {
		adminError(w, status, msg)
		return
	}
	all, err := s.d.Groups.AddMembers(r.Context(), groupID, members)
	if err != nil {
		s.adminFail(w, r, err)
		return
	}
	writeMembers(w, groupID, all)
}

func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	all, err := s.d.Groups.Members(r.Context(), groupID)
	if err != nil {
		s.adminFail(w, r, err)
		return
	}
	writeMembers(w, groupID, all)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	userID, ok := pathID(w, r, "userID")
	if !ok {
		return
	}
	if err := s.d.Groups.RemoveMember(r.Context(), groupID, userID); err != nil {
		s.adminFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(w, r, "groupID")
	if !ok {
		return
	}
	if err := s.d.Groups.Delete(r.Context(), groupID); err != nil {
		s.adminFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pathID returns the decoded path parameter key, checked as the domain
// checks every ID (invite.CheckID), or answers 400 and returns false.
func pathID(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	id := chi.URLParam(r, key)
	// chi matches on RawPath when the request has one (so that an escaped
	// "/" stays inside its segment), and then hands back escaped values.
	if r.URL.RawPath != "" {
		unescaped, err := url.PathUnescape(id)
		if err != nil {
			adminError(w, http.StatusBadRequest, key+" is not a valid path segment")
			return "", false
		}
		id = unescaped
	}
	if err := invite.CheckID(key, id); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return id, true
}

// decodeMembers reads and validates a membersRequest. It returns the members
// sorted and without duplicates, or a non-zero status and an error message.
func decodeMembers(w http.ResponseWriter, r *http.Request) (members []string, status int, msg string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxGroupBody))
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
		if err := invite.CheckID(fmt.Sprintf("members[%d]", i), m); err != nil {
			return nil, http.StatusBadRequest, err.Error()
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
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxGroupBody)
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
	adminJSON(w, http.StatusOK, membersResponse{GroupID: groupID, Members: members})
}
