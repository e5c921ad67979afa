//go:build unix

package app

import "syscall"

// fileLimit returns the process's limit on open files (its soft limit,
// which the Go runtime raises to the hard one at start), 0 if unknown.
func fileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<30 {
		return 0
	}
	return int(l.Cur)
}
