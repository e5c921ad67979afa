package redistest

import "syscall"

// sysProcAttr has the kernel kill redis-server when the test binary dies
// without running Main's cleanup (a panic, or go test's -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
