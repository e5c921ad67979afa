// Package demo serves signald's demo page at /demo: a small call app, built
// on the TypeScript SDK (clients/js), that lets two people ring each other
// from two browser tabs. Its files are embedded in the binary, so that the
// page needs nothing but signald; static/signald-client.js is the SDK's
// browser bundle, committed as built (clients/js `npm run bundle`; a test
// there fails when it is stale).
//
// Routes, all under /demo:
//
//	GET  /demo/             the page (index.html, app.js, style.css, the SDK)
//	GET  /demo/config.json  {"dev": bool, "group": "demo"}: whether the dev
//	                        endpoints below exist, so the page knows whether
//	                        to ask for a pasted userSig
//	GET  /demo/token?user=U {"userID": U, "userSig": "..."}          dev only
//	POST /demo/group        {"members": [...]} → {"groupID", "members"} dev only
//
// The dev endpoints mint tokens for anyone and change group membership
// without the admin token, so they exist only when the handler is given a
// Dev (signald --dev); otherwise they are 404 like any unknown path, and the
// page asks the user to paste a userSig that the app's backend minted.
package demo

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/signald/signald/internal/ids"
)

//go:embed static
var files embed.FS

// GroupID is the group the page's group call rings.
const GroupID = "demo"

// Limits of the dev endpoints: a user ID as the protocol allows it, and a
// demo group of a few people.
const (
	maxIDBytes   = 128
	maxMembers   = 16
	maxBodyBytes = 4 << 10
)

// Groups is what the demo needs of group membership (group.Store has it).
type Groups interface {
	// AddMembers creates the group if needed, adds members and returns
	// every member, sorted.
	AddMembers(ctx context.Context, groupID string, members []string) ([]string, error)
}

// Dev holds what the development-only endpoints need. Both are required.
type Dev struct {
	// MintToken returns a userSig for user, signed with the server's secret.
	MintToken func(user string) (string, error)
	// Groups receives the members of the demo group.
	Groups Groups
}

// Handler serves the demo under /demo. With dev nil (outside --dev) it
// serves the page only.
func Handler(dev *Dev) (http.Handler, error) {
	if dev != nil && (dev.MintToken == nil || dev.Groups == nil) {
		return nil, errors.New("demo: Dev needs MintToken and Groups")
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	fileServer := http.StripPrefix("/demo", http.FileServerFS(static))
	mux.Handle("GET /demo/", noCache(fileServer))
	mux.Handle("GET /demo", http.RedirectHandler("/demo/", http.StatusMovedPermanently))
	mux.HandleFunc("GET /demo/config.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"dev": dev != nil, "group": GroupID})
	})
	if dev != nil {
		mux.HandleFunc("GET /demo/token", dev.token)
		mux.HandleFunc("POST /demo/group", dev.group)
	}
	return securityHeaders(mux), nil
}

// token answers GET /demo/token?user=U with a userSig for U.
func (d *Dev) token(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if err := ids.Check(user, maxIDBytes); err != nil {
		writeError(w, http.StatusBadRequest, "user "+err.Error()+": pick a name of 1 to 128 bytes without control characters")
		return
	}
	tok, err := d.MintToken(user)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "could not mint a userSig")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"userID": user, "userSig": tok})
}

// group answers POST /demo/group {"members": [...]}: it adds them to the
// demo group, so that they can ring each other with inviteInGroup.
func (d *Dev) group(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Members []string `json:"members"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, `want a JSON body {"members": ["alice", "bob", ...]} of at most 4 KiB`)
		return
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "want one JSON object")
		return
	}
	switch {
	case len(body.Members) == 0:
		writeError(w, http.StatusBadRequest, "members is empty: name the people of the demo group")
		return
	case len(body.Members) > maxMembers:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("at most %d members at once", maxMembers))
		return
	}
	for _, m := range body.Members {
		if err := ids.Check(m, maxIDBytes); err != nil {
			writeError(w, http.StatusBadRequest, "member "+err.Error())
			return
		}
	}
	members, err := d.Groups.AddMembers(r.Context(), GroupID, body.Members)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the group store failed; try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"groupID": GroupID, "members": members})
}

// noCache makes browsers revalidate the page's files, so that a new signald
// is never paired with an old cached app.js.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// securityHeaders keeps the page to its own scripts and its own server: it
// loads nothing from elsewhere and connects only to the signald it came from.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": strings.TrimSpace(msg)})
}
