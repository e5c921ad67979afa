package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU returns the CPU time (user + system) this process has used. The
// report sets it beside the server's CPU so that a reader can tell whether
// the load tool, not the server, was the limit.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MachineCPU is the whole machine's CPU accounting from /proc/stat, in
// clock ticks. Busy over total between two readings says how loaded the
// machine was, which matters when the bench and the server share it.
type MachineCPU struct {
	Total, Idle uint64
	OK          bool
}

// ReadMachineCPU reads the aggregate "cpu" line of /proc/stat; OK is false
// where there is none (not Linux).
func ReadMachineCPU() MachineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}
	}
	return parseProcStat(string(b))
}

func parseProcStat(s string) MachineCPU {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return MachineCPU{}
	}
	var m MachineCPU
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return MachineCPU{}
		}
		m.Total += n
		if i == 3 || i == 4 { // idle, iowait
			m.Idle += n
		}
	}
	m.OK = true
	return m
}

// BusyPct returns the share of the machine's CPU capacity that was busy
// from before to m, in percent; -1 when unknown.
func (m MachineCPU) BusyPct(before MachineCPU) float64 {
	if !m.OK || !before.OK || m.Total <= before.Total {
		return -1
	}
	total := float64(m.Total - before.Total)
	return 100 * (total - float64(m.Idle-before.Idle)) / total
}

// RaiseNoFile lifts the soft limit on open files to the hard limit, so
// that tens of thousands of connections are possible, and returns the limit
// now in force. (Go does this itself since 1.19 on most platforms; doing it
// here makes it explicit and reportable.)
func RaiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

// ReadLoadAvg returns the 1-minute load average of /proc/loadavg (the
// processes running or waiting for a CPU, all of them); -1 where there is
// none (not Linux).
func ReadLoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	return parseLoadAvg(string(b))
}

func parseLoadAvg(s string) float64 {
	f := strings.Fields(s)
	if len(f) < 1 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return -1
	}
	return v
}
