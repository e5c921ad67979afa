package app_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signald/signald/internal/app"
)

// run runs the command line with env as the environment and returns what it
// printed on stdout and stderr.
func run(args []string, env map[string]string) (stdout, stderr string, err error) {
	var out, errOut strings.Builder
	err = app.Main(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestHelpAndVersion: asking for help or the version is answered on stdout
// and is no error, for the program and each command; the top-level usage
// names every command.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}} {
		out, errOut, err := run(args, nil)
		if err != nil || errOut != "" {
			t.Errorf("signald %v: %v, stderr %q", args, err, errOut)
		}
		for _, cmd := range []string{"serve", "token", "version", "help"} {
			if !strings.Contains(out, "signald "+cmd) && !strings.Contains(out, "signald ["+cmd+"]") {
				t.Errorf("signald %v does not list %s:\n%s", args, cmd, out)
			}
		}
	}
	for _, args := range [][]string{{"serve", "-h"}, {"serve", "--help"}, {"--addr", ":1", "-h"}} {
		out, _, err := run(args, nil)
		if err != nil || !strings.Contains(out, "-jwt-secret") || !strings.Contains(out, "SIGNALD_ADDR") {
			t.Errorf("signald %v: %v\n%s", args, err, out)
		}
	}
	if out, _, err := run([]string{"token", "-h"}, nil); err != nil || !strings.Contains(out, "-user") {
		t.Errorf("signald token -h: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if out, _, err := run(args, nil); err != nil || !strings.HasPrefix(out, "signald ") || !strings.Contains(out, "protocol 1") {
			t.Errorf("signald %v: %v %q", args, err, out)
		}
	}
	if _, _, err := run([]string{"frobnicate"}, nil); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("an unknown command: %v", err)
	}
}

// TestHelpShowsNoSecret: -h prints each flag's default, which comes from
// the environment; secrets, and a Redis URL with its password, are not shown.
func TestHelpShowsNoSecret(t *testing.T) {
	env := map[string]string{
		"SIGNALD_JWT_SECRET":          "jwt-secret-that-must-not-be-printed",
		"SIGNALD_ADMIN_TOKEN":         "admin-token-that-must-not-be-printed",
		"SIGNALD_PUSH_WEBHOOK_SECRET": "whsec_bXVzdC1ub3QtYmUtcHJpbnRlZA==",
		"SIGNALD_REDIS_URL":           "redis://:redis-password@localhost:6379",
	}
	out, _, _ := run([]string{"serve", "-h"}, env)
	out2, _, _ := run([]string{"token", "-h"}, env)
	for _, v := range env {
		if strings.Contains(out+out2, v) {
			t.Errorf("-h shows %q", v)
		}
	}
}

// TestTokenRefusesExtraArguments: `signald token alice` does not mint a
// token for the empty user, or ignore "alice".
func TestTokenRefusesExtraArguments(t *testing.T) {
	out, _, err := run([]string{"token", "--dev", "--user", "alice", "bob"}, nil)
	if err == nil || out != "" || !strings.Contains(err.Error(), `"bob"`) {
		t.Fatalf("token with an extra argument: %v, printed %q", err, out)
	}
}

// TestRefusesToStartMisconfigured: settings that would start a server
// other than the one asked for stop the start, with a message that says
// what to do.
func TestRefusesToStartMisconfigured(t *testing.T) {
	long := strings.Repeat("k", app.MinSecretBytes)
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"cluster mode without a URL runs on nothing", []string{"--redis-mode", "cluster"},
			map[string]string{"SIGNALD_JWT_SECRET": long, "SIGNALD_ADMIN_TOKEN": long}, []string{"SIGNALD_REDIS_URL"}},
		{"sentinel mode without a URL", nil,
			map[string]string{"SIGNALD_JWT_SECRET": long, "SIGNALD_ADMIN_TOKEN": long, "SIGNALD_REDIS_MODE": "sentinel"}, []string{"SIGNALD_REDIS_URL"}},
		{"a short userSig secret", nil,
			map[string]string{"SIGNALD_JWT_SECRET": "changeme", "SIGNALD_ADMIN_TOKEN": long}, []string{"SIGNALD_JWT_SECRET", "32", "openssl rand"}},
		{"a short admin token", nil,
			map[string]string{"SIGNALD_JWT_SECRET": long, "SIGNALD_ADMIN_TOKEN": "CHANGE-ME-admin-token"}, []string{"SIGNALD_ADMIN_TOKEN", "32", "openssl rand"}},
	} {
		_, _, err := run(append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...), c.env)
		if err == nil {
			t.Errorf("%s: started", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", c.name, err, w)
			}
		}
	}
}

// TestReadmeListsEverySetting: every flag of `signald serve` has a row in
// the README's settings table that names both the flag and its
// environment variable.
func TestReadmeListsEverySetting(t *testing.T) {
	help, _, err := run([]string{"serve", "-h"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "| `SIGNALD_") {
			rows = append(rows, l)
		}
	}
	flagLine := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	envName := regexp.MustCompile(`\((SIGNALD_[A-Z0-9_]+)\)`)
	lines := strings.Split(help, "\n")
	n := 0
	for i, l := range lines {
		m := flagLine.FindStringSubmatch(l)
		if m == nil || i+1 == len(lines) {
			continue
		}
		flagName := "--" + m[1]
		env := envName.FindStringSubmatch(l + lines[i+1])
		if env == nil {
			t.Errorf("flag %s names no environment variable in -h", flagName)
			continue
		}
		n++
		found := false
		for _, r := range rows {
			if strings.Contains(r, "`"+env[1]+"`") && strings.Contains(r, "`"+flagName+"`") {
				found = true
			}
		}
		if !found {
			t.Errorf("README's settings table has no row with `%s` and `%s`", env[1], flagName)
		}
	}
	if n < 40 {
		t.Fatalf("read %d flags from -h", n)
	}
}

// TestReadmeMapPointsAtRealCode: the README's "Where each behaviour is
// decided" names files and methods that exist, so that the map does not
// rot as the code moves.
func TestReadmeMapPointsAtRealCode(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "## Where each behaviour is decided")
	if !ok {
		t.Fatal("the README has no section \"Where each behaviour is decided\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var code strings.Builder
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, _ := os.ReadFile(path)
			code.Write(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	paths, methods := 0, 0
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(section, -1) {
		tok := m[1]
		if p := strings.Fields(tok)[0]; strings.HasPrefix(p, "internal/") {
			paths++
			if _, err := os.Stat("../../" + p); err != nil {
				t.Errorf("the map names %s, which does not exist", p)
			}
		}
		if mm := regexp.MustCompile(`\(\*(\w+)\)\.(\w+)`).FindStringSubmatch(tok); mm != nil {
			methods++
			if !regexp.MustCompile(`func \(\w+ \*` + mm[1] + `\) ` + mm[2] + `\(`).MatchString(code.String()) {
				t.Errorf("the map names (*%s).%s, which does not exist", mm[1], mm[2])
			}
		}
	}
	if paths < 10 || methods < 5 {
		t.Fatalf("read %d paths and %d methods from the map", paths, methods)
	}
}
