package systemtest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// signaldBin is the signald binary TestMain built; "" with -short.
var signaldBin string

// moduleRoot is the directory of go.mod, for the deploy/ files.
var moduleRoot string

// TestMain builds cmd/signald once into a temporary directory, runs the
// tests, and removes the directory.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "signald-systemtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "systemtest:", err)
		os.Exit(1)
	}
	bin, err := buildSignald(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "systemtest:", err)
		os.Exit(1)
	}
	signaldBin = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildSignald runs `go build -o dir/signald ./cmd/signald` in the module
// root, with the go on PATH.
func buildSignald(dir string) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	root := filepath.Dir(mod)
	moduleRoot = root
	bin := filepath.Join(dir, "signald")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/signald")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/signald: %w\n%s", err, out)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "systemtest: built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
	}
	return bin, nil
}

// requireBinary skips t with -short, where nothing was built.
func requireBinary(t *testing.T) {
	t.Helper()
	if signaldBin == "" {
		t.Skip("system tests start processes; skipped with -short")
	}
}

// requireTool skips t when name is not on PATH, saying how to get it.
func requireTool(t *testing.T, name, how string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not on PATH: %s", name, how)
	}
	return p
}
