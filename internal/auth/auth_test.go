package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signald/signald/internal/auth"
)

var (
	secret = []byte("test-secret-0123456789")
	// now is the verifier's pinned clock; every token below is relative to it.
	now = time.Unix(1_700_000_000, 0)
)

const leeway = 5 * time.Second

var sentinels = []error{auth.ErrEmpty, auth.ErrInvalid, auth.ErrExpired, auth.ErrWrongUser}

func newVerifier() *auth.Verifier {
	v := auth.NewVerifier(secret, leeway)
	v.Now = func() time.Time { return now }
	return v
}

// claims returns the usual claims for alice, valid at now, with overrides
// applied; an override of nil removes the claim.
func claims(overrides map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "alice",
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// sign signs c with the given method and key through golang-jwt.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// handmade builds a token from raw header and claims JSON, signed with
// HMAC-SHA256 under key whatever the header claims, as an attacker would.
func handmade(header, payload string, key []byte) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// checkSentinel fails unless err is nil when want is nil, or wraps want and
// no other sentinel.
func checkSentinel(t testing.TB, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Verify = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("Verify = %v, want it to wrap %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("Verify = %v wraps %v as well as %v", err, s, want)
		}
	}
}

func TestVerify(t *testing.T) {
	hs256 := jwt.SigningMethodHS256
	tests := []struct {
		name   string
		userID string
		sig    func(t *testing.T) string
		want   error
	}{
		{"valid", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(nil))
		}, nil},
		{"empty userSig", "alice", func(*testing.T) string { return "" }, auth.ErrEmpty},
		{"CR LF after the signature", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(nil)) + "\r\n"
		}, auth.ErrInvalid},
		{"line break inside the signature", "alice", func(t *testing.T) string {
			s := sign(t, hs256, secret, claims(nil))
			return s[:len(s)-4] + "\n" + s[len(s)-4:]
		}, auth.ErrInvalid},
		{"trailing space", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(nil)) + " "
		}, auth.ErrInvalid},
		{"other secret", "alice", func(t *testing.T) string {
			return sign(t, hs256, []byte("another-secret"), claims(nil))
		}, auth.ErrInvalid},
		{"alg none", "alice", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))
		}, auth.ErrInvalid},
		{"alg none handmade, empty signature", "alice", func(*testing.T) string {
			enc := base64.RawURLEncoding
			return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
				enc.EncodeToString([]byte(`{"sub":"alice","exp":1700003600}`)) + "."
		}, auth.ErrInvalid},
		{"HS512 with the right secret", "alice", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS512, secret, claims(nil))
		}, auth.ErrInvalid},
		{"HS384 with the right secret", "alice", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS384, secret, claims(nil))
		}, auth.ErrInvalid},
		{"RS256 header, HMAC signature with the secret", "alice", func(*testing.T) string {
			return handmade(`{"alg":"RS256","typ":"JWT"}`, `{"sub":"alice","exp":1700003600}`, secret)
		}, auth.ErrInvalid},
		{"lower-case hs256", "alice", func(*testing.T) string {
			return handmade(`{"alg":"hs256","typ":"JWT"}`, `{"sub":"alice","exp":1700003600}`, secret)
		}, auth.ErrInvalid},
		{"no alg", "alice", func(*testing.T) string {
			return handmade(`{"typ":"JWT"}`, `{"sub":"alice","exp":1700003600}`, secret)
		}, auth.ErrInvalid},
		{"handmade HS256 control", "alice", func(*testing.T) string {
			return handmade(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"alice","exp":1700003600}`, secret)
		}, nil},
		{"garbage", "alice", func(*testing.T) string { return "not a token" }, auth.ErrInvalid},
		{"three dots", "alice", func(*testing.T) string { return ".." }, auth.ErrInvalid},
		{"four segments", "alice", func(*testing.T) string { return "a.b.c.d" }, auth.ErrInvalid},
		{"bad base64", "alice", func(*testing.T) string { return "!!!.???.***" }, auth.ErrInvalid},
		{"header not JSON", "alice", func(*testing.T) string {
			return handmade(`not json`, `{"sub":"alice","exp":1700003600}`, secret)
		}, auth.ErrInvalid},
		{"claims not an object", "alice", func(*testing.T) string {
			return handmade(`{"alg":"HS256"}`, `["alice"]`, secret)
		}, auth.ErrInvalid},
		{"truncated signature", "alice", func(t *testing.T) string {
			s := sign(t, hs256, secret, claims(nil))
			return s[:len(s)-4]
		}, auth.ErrInvalid},
		{"whitespace", "alice", func(*testing.T) string { return " " }, auth.ErrInvalid},
		{"expired by 10s", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}))
		}, auth.ErrExpired},
		{"expired by exactly the leeway", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"exp": now.Add(-leeway).Unix()}))
		}, auth.ErrExpired},
		{"expired by 2s, within leeway", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"exp": now.Add(-2 * time.Second).Unix()}))
		}, nil},
		{"nbf 60s in the future", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"nbf": now.Add(time.Minute).Unix()}))
		}, auth.ErrInvalid},
		{"nbf 3s in the future, within leeway", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"nbf": now.Add(3 * time.Second).Unix()}))
		}, nil},
		{"iat 60s in the future", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"iat": now.Add(time.Minute).Unix()}))
		}, auth.ErrInvalid},
		{"iat 3s in the future, within leeway", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"iat": now.Add(3 * time.Second).Unix()}))
		}, nil},
		{"no iat", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"iat": nil}))
		}, nil},
		{"missing exp", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"exp": nil}))
		}, auth.ErrInvalid},
		{"exp a string", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"exp": "tomorrow"}))
		}, auth.ErrInvalid},
		{"exp in upper case only", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"exp": nil, "EXP": now.Add(time.Hour).Unix()}))
		}, auth.ErrInvalid},
		{"missing sub", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"sub": nil}))
		}, auth.ErrInvalid},
		{"empty sub", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"sub": ""}))
		}, auth.ErrInvalid},
		{"sub in upper case only", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"sub": nil, "SUB": "alice"}))
		}, auth.ErrInvalid},
		{"sub a number", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"sub": 42}))
		}, auth.ErrInvalid},
		{"sub an array", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"sub": []string{"alice"}}))
		}, auth.ErrInvalid},
		{"sub null", "alice", func(*testing.T) string {
			return handmade(`{"alg":"HS256"}`, `{"sub":null,"exp":1700003600}`, secret)
		}, auth.ErrInvalid},
		{"sub mismatch", "bob", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(nil))
		}, auth.ErrWrongUser},
		{"sub differs only in case", "Alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(nil))
		}, auth.ErrWrongUser},
		{"empty userID", "", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(nil))
		}, auth.ErrWrongUser},
		// Precedence between failures.
		{"expired and other secret", "alice", func(t *testing.T) string {
			return sign(t, hs256, []byte("another-secret"), claims(map[string]any{"exp": now.Add(-time.Hour).Unix()}))
		}, auth.ErrInvalid},
		{"expired and sub mismatch", "bob", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"exp": now.Add(-time.Hour).Unix()}))
		}, auth.ErrExpired},
		{"expired and missing sub", "alice", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"sub": nil, "exp": now.Add(-time.Hour).Unix()}))
		}, auth.ErrExpired},
		{"missing sub and other secret", "alice", func(t *testing.T) string {
			return sign(t, hs256, []byte("another-secret"), claims(map[string]any{"sub": nil}))
		}, auth.ErrInvalid},
		{"nbf in the future and sub mismatch", "bob", func(t *testing.T) string {
			return sign(t, hs256, secret, claims(map[string]any{"nbf": now.Add(time.Minute).Unix()}))
		}, auth.ErrInvalid},
	}
	v := newVerifier()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSentinel(t, v.Verify(tt.userID, tt.sig(t)), tt.want)
		})
	}
}

func TestVerifyEmptySecretFailsClosed(t *testing.T) {
	// HMAC accepts an empty key, so a token "signed" with it is easy to
	// forge; a Verifier without a secret must accept nothing.
	v := auth.NewVerifier(nil, leeway)
	v.Now = func() time.Time { return now }
	sig := sign(t, jwt.SigningMethodHS256, []byte{}, claims(nil))
	checkSentinel(t, v.Verify("alice", sig), auth.ErrInvalid)
}

func TestNewVerifierCopiesSecret(t *testing.T) {
	key := []byte("mutable-secret")
	v := auth.NewVerifier(key, leeway)
	v.Now = func() time.Time { return now }
	sig := sign(t, jwt.SigningMethodHS256, []byte("mutable-secret"), claims(nil))
	copy(key, "XXXXXXXXXXXXXX")
	checkSentinel(t, v.Verify("alice", sig), nil)
}

func TestVerifyNegativeLeewayIsZero(t *testing.T) {
	v := auth.NewVerifier(secret, -time.Hour)
	v.Now = func() time.Time { return now }
	sig := sign(t, jwt.SigningMethodHS256, secret, claims(nil))
	checkSentinel(t, v.Verify("alice", sig), nil)
}

func TestVerifyDefaultClock(t *testing.T) {
	// With Now unset the Verifier reads the real clock: a token minted now
	// is valid, one minted a day ago for an hour is expired.
	v := auth.NewVerifier(secret, leeway)
	fresh, err := auth.Mint(secret, "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	checkSentinel(t, v.Verify("alice", fresh), nil)
	stale, err := auth.Mint(secret, "alice", time.Hour, time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	checkSentinel(t, v.Verify("alice", stale), auth.ErrExpired)
}

func TestMint(t *testing.T) {
	sig, err := auth.Mint(secret, "alice", time.Hour, now)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	// The token is HS256 with exactly sub, iat and exp.
	got := jwt.MapClaims{}
	tok, err := jwt.NewParser(jwt.WithoutClaimsValidation()).ParseWithClaims(sig, got,
		func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		t.Fatalf("parse minted token: %v", err)
	}
	if alg := tok.Header["alg"]; alg != "HS256" {
		t.Errorf("alg = %v, want HS256", alg)
	}
	want := map[string]any{
		"sub": "alice",
		"iat": float64(now.Unix()),
		"exp": float64(now.Add(time.Hour).Unix()),
	}
	if len(got) != len(want) {
		t.Errorf("claims = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("claim %s = %v (%T), want %v", k, got[k], got[k], w)
		}
	}

	// And it verifies until ttl (plus leeway) has passed.
	for _, tc := range []struct {
		at   time.Time
		want error
	}{
		{now, nil},
		{now.Add(time.Hour + leeway - time.Second), nil},
		{now.Add(time.Hour + leeway), auth.ErrExpired},
		{now.Add(-time.Minute), auth.ErrInvalid}, // used before it was issued
	} {
		v := auth.NewVerifier(secret, leeway)
		v.Now = func() time.Time { return tc.at }
		t.Run(tc.at.Sub(now).String(), func(t *testing.T) {
			checkSentinel(t, v.Verify("alice", sig), tc.want)
		})
	}
}

func TestMintErrors(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		userID string
		ttl    time.Duration
	}{
		{"empty secret", nil, "alice", time.Hour},
		{"empty userID", secret, "", time.Hour},
		{"invalid UTF-8 userID", secret, "al\xffice", time.Hour},
		{"zero ttl", secret, "alice", 0},
		{"negative ttl", secret, "alice", -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := auth.Mint(tt.secret, tt.userID, tt.ttl, now)
			if err == nil {
				t.Fatalf("Mint = %q, nil; want an error", sig)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	valid, err := auth.Mint(secret, "alice", time.Hour, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("alice", valid)
	f.Add("bob", valid)
	f.Add("alice", "")
	f.Add("alice", "a.b.c")
	f.Add("alice", strings.Repeat(".", 5))
	f.Add("", valid[:len(valid)/2])
	f.Add("alice", handmade(`{"alg":"none"}`, `{"sub":"alice","exp":1e300}`, secret))
	f.Add("alice", handmade(`{"alg":"HS256"}`, `{"sub":"alice","exp":-1e300,"nbf":"x"}`, secret))
	f.Add("alice", handmade(`{"alg":"HS256"}`, `{"sub":{"a":1},"exp":1700003600,"iat":null}`, secret))
	v := newVerifier()
	f.Fuzz(func(t *testing.T, userID, userSig string) {
		err := v.Verify(userID, userSig)
		if err == nil {
			return
		}
		n := 0
		for _, s := range sentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("Verify(%q, %q) = %v, wraps %d sentinels, want exactly 1", userID, userSig, err, n)
		}
	})
}

// FuzzVerifySigned signs fuzzed header and claims JSON with the right secret,
// so that the fuzzer gets past the signature check and into claim handling,
// which FuzzVerify's random strings rarely reach.
func FuzzVerifySigned(f *testing.F) {
	f.Add("alice", `{"alg":"HS256"}`, `{"sub":"alice","exp":1700003600}`)
	f.Add("alice", `{"alg":"HS256"}`, `{"sub":"alice","exp":1699999990,"nbf":1700000060}`)
	f.Add("alice", `{"alg":"HS256"}`, `{"sub":7,"exp":"1700003600","iat":[]}`)
	f.Add("bob", `{"alg":"HS256","typ":"JWT"}`, `{"sub":"alice","exp":1e308,"iat":-1e308}`)
	f.Add("alice", `{"alg":"none"}`, `{"sub":"alice","exp":1700003600}`)
	f.Add("alice", `{"alg":"HS256"}`, `null`)
	v := newVerifier()
	f.Fuzz(func(t *testing.T, userID, header, payload string) {
		userSig := handmade(header, payload, secret)
		err := v.Verify(userID, userSig)
		if err == nil {
			return
		}
		n := 0
		for _, s := range sentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("Verify(%q, header %q, claims %q) = %v, wraps %d sentinels, want exactly 1", userID, header, payload, err, n)
		}
	})
}
