// Package auth checks the userSig a client presents at login (api/README.md §5)
// and mints userSigs for tools and tests.
//
// A userSig is a JWT signed with HS256 by the app's backend using the secret
// it shares with signald. Its sub claim names the user it was issued for and
// exp bounds its life; nbf and iat, when present, are honoured. Every check
// allows the same small leeway, because the backend's clock and ours drift.
//
// Verify reports failures as one of four sentinel errors so that the protocol
// edge can map each to its wire code without knowing about JWTs:
//
//	ErrEmpty     70002  no userSig at all
//	ErrInvalid   70003  anything that is not a well-formed, HS256-signed,
//	                    currently valid token with a string sub and an exp
//	ErrExpired   70001  a genuine token whose exp has passed
//	ErrWrongUser 70013  a genuine token issued for another userID
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Verify. Each returned error wraps exactly one of them.
var (
	// ErrEmpty: no userSig was presented (protocol code 70002).
	ErrEmpty = errors.New("userSig empty")
	// ErrInvalid: the userSig is malformed, not signed with HS256 by our
	// secret, lacks sub or exp, or is not valid yet (protocol code 70003).
	ErrInvalid = errors.New("userSig invalid")
	// ErrExpired: the userSig is genuine but its exp has passed, leeway
	// included (protocol code 70001). Clients should fetch a fresh one.
	ErrExpired = errors.New("userSig expired")
	// ErrWrongUser: the userSig is genuine but was issued for another user
	// (protocol code 70013).
	ErrWrongUser = errors.New("userSig issued for another userID")
)

// algorithm is the only signing method accepted or produced. Pinning it is
// what keeps "none" and public-key algorithms (where a shared secret could be
// misused as a public key) from ever being honoured.
const algorithm = "HS256"

// Verifier checks userSigs against one shared secret. It is safe for
// concurrent use once configured.
type Verifier struct {
	// Now returns the current time; nil means time.Now. Tests set it to pin
	// the clock. Set it before the first Verify, never concurrently with one.
	Now func() time.Time

	secret []byte
	leeway time.Duration
}

// NewVerifier returns a Verifier for userSigs signed with secret, allowing
// leeway of clock skew on exp, nbf and iat. The protocol's default leeway is
// 5 s; it is not implied here, so that the configuration states it once. A
// negative leeway counts as zero. The secret is copied. An empty secret makes
// every userSig invalid: HMAC with an empty key is forgeable by anyone, so
// failing closed is the only safe reading of that misconfiguration.
func NewVerifier(secret []byte, leeway time.Duration) *Verifier {
	return &Verifier{
		secret: append([]byte(nil), secret...),
		leeway: max(leeway, 0),
	}
}

// Verify checks that userSig is a valid token issued for userID. It returns
// nil or an error wrapping exactly one of ErrEmpty, ErrInvalid, ErrExpired
// and ErrWrongUser. The checks run in the order a client can act on: a
// token we cannot trust at all is ErrInvalid even when it also looks expired,
// and a genuine but expired token is ErrExpired even when its sub is wrong
// (its holder needs a fresh one either way). The caller validates userID
// itself (a missing userID is a different protocol error); Verify only
// compares it with sub.
func (v *Verifier) Verify(userID, userSig string) error {
	if userSig == "" {
		return ErrEmpty
	}
	// A JWS in compact form is base64url and dots, nothing else. Go's
	// base64 decoder skips CR and LF, so without this check a token with
	// line breaks (or anything smuggled after them) would pass.
	if i := strings.IndexFunc(userSig, notCompactJWS); i >= 0 {
		return fmt.Errorf("%w: character %q at %d is not part of a compact JWS", ErrInvalid, userSig[i], i)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{algorithm}),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	// MapClaims rather than RegisteredClaims: encoding/json matches struct
	// fields case-insensitively, which would let "SUB" or "Exp" stand in for
	// the registered claims; a map keeps claim names exact, as RFC 7519 wants.
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(userSig, claims, v.key)
	switch {
	case err == nil:
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		// Malformed, wrong algorithm, unverifiable or bad signature: the
		// parser stops before looking at claims, so nothing in the token can
		// be believed.
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %v", ErrExpired, err)
	default:
		// Not valid yet, issued in the future, missing exp, or a
		// registered claim of the wrong type.
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}

	sub, err := claims.GetSubject()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if sub == "" {
		return fmt.Errorf("%w: sub claim is required", ErrInvalid)
	}
	if sub != userID {
		// Neither value is echoed: the message may reach logs, and the
		// caller already knows userID.
		return fmt.Errorf("%w: sub does not match the login userID", ErrWrongUser)
	}
	return nil
}

// notCompactJWS reports a rune that cannot appear in a compact JWS.
func notCompactJWS(r rune) bool {
	switch {
	case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		return false
	}
	return true
}

// key hands the parser our secret; the parser has already checked the
// algorithm against the allowed list before calling it.
func (v *Verifier) key(*jwt.Token) (any, error) {
	if len(v.secret) == 0 {
		return nil, errors.New("no secret configured")
	}
	return v.secret, nil
}

// Mint returns an HS256 userSig for userID, issued at now and expiring ttl
// later. The app's backend does this in production; signald mints only for
// its token command and for tests. Times are whole seconds (NumericDate as
// most JWT libraries read it), so the token may live up to a second less than
// ttl.
func Mint(secret []byte, userID string, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("auth: mint: empty secret")
	case userID == "":
		return "", errors.New("auth: mint: empty userID")
	case !utf8.ValidString(userID):
		// JSON would replace the bad bytes, so sub would never match.
		return "", errors.New("auth: mint: userID is not valid UTF-8")
	case ttl <= 0:
		return "", fmt.Errorf("auth: mint: ttl %v is not positive", ttl)
	}
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": userID,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	})
	s, err := token.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	return s, nil
}
