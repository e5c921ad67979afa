//go:build !linux

package chaos

import (
	"os"
	"syscall"
)

// sysProcAttr: elsewhere than Linux a started process keeps the harness's
// group and nothing kills it if the harness dies; the harness is meant for
// Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the process pid (elsewhere than Linux: only it).
func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
