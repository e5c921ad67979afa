package systemtest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/signald/signald/internal/buildtest"
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

// buildSignald builds cmd/signald into dir and notes the module root.
func buildSignald(dir string) (string, error) {
	root, err := buildtest.ModuleRoot()
	if err != nil {
		return "", err
	}
	moduleRoot = root
	start := time.Now()
	bin, err := buildtest.Signald(dir)
	if err == nil && testing.Verbose() {
		fmt.Fprintf(os.Stderr, "systemtest: built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
	}
	return bin, err
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
