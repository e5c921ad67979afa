package chaos

import "syscall"

// sysProcAttr puts a started process in a group of its own and has the
// kernel kill it when the harness dies without cleaning up (a panic, or go
// test's -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
