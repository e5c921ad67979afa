package systemtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitFor bounds every wait on an event; it is a failure deadline, never a
// pause: tests go on as soon as what they wait for happens.
const waitFor = 15 * time.Second

// pollEvery is how often a wait on something that cannot be awaited any
// other way (an HTTP status, a Redis reply) asks again.
const pollEvery = 20 * time.Millisecond

// logBuffer collects a process's output for printing when a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one process started by a test. It is killed (SIGKILL) and waited
// for at the end of the test, if it has not exited before; when the test
// has failed, its output is logged then.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	out    *logBuffer
	exited chan struct{} // closed once cmd has been waited for
	err    error         // cmd.Wait's result; set before exited is closed
}

// startProc starts bin with args, the environment of the test binary
// without any SIGNALD_ variable plus env, and its stdout and stderr
// collected.
func startProc(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGNALD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out := new(logBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("---- output of %s (%s) ----\n%s", name, p.status(), lastLines(out.String(), 300))
		}
	})
	return p
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) status() string {
	if p.running() {
		return fmt.Sprintf("pid %d, running", p.cmd.Process.Pid)
	}
	return fmt.Sprintf("pid %d, %v", p.cmd.Process.Pid, p.cmd.ProcessState)
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

// stopWith sends sig and waits up to timeout for the process to exit; it
// fails the test if it does not.
func (p *proc) stopWith(sig syscall.Signal, timeout time.Duration) {
	p.t.Helper()
	p.signal(sig)
	p.waitExit(timeout)
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("%s had already exited: %s", p.name, p.status())
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.name, err)
	}
}

// waitExit waits up to timeout for the process to exit, and fails the test
// if it does not.
func (p *proc) waitExit(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %v", p.name, timeout)
	}
}

// exitCode is the process's exit status: 0 after a clean exit, -1 when a
// signal ended it.
func (p *proc) exitCode() int {
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

// freePort returns a loopback port that was free a moment ago. Another
// process may take it before ours binds it; starters retry on that.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// eventually calls check every pollEvery until it returns nil or waitFor has
// passed, and then fails the test with check's last error.
func eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	eventuallyWithin(t, waitFor, what, check)
}

func eventuallyWithin(t testing.TB, limit time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(pollEvery)
	}
}

// errExited is returned by readiness checks of a process that is gone.
var errExited = errors.New("process exited")

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		return fmt.Sprintf("[%d earlier lines left out]\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "\n")
	}
	return strings.Join(lines, "\n")
}
