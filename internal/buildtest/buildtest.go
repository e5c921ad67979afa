// Package buildtest builds signald for tests that run it as a process of
// its own (the system tests, the fault-injection test), with the go on
// PATH. For tests only.
package buildtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the directory of the go.mod the tests run in.
func ModuleRoot() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// Signald runs `go build -o dir/signald ./cmd/signald` in the module root
// and returns the binary's path.
func Signald(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "signald")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/signald")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/signald: %w\n%s", err, out)
	}
	return bin, nil
}
