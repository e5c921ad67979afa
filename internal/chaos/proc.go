package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// outputTail keeps the end of what the processes of one name (every
// generation of one instance) wrote, for the report; when file is set, it
// also gets everything.
type outputTail struct {
	mu    sync.Mutex
	buf   []byte    // guarded by mu; at most 2*keepBytes bytes
	total int64     // guarded by mu: bytes ever written
	file  io.Writer // guarded by mu; nil: none
}

// keepBytes bounds what outputTail holds in memory.
const keepBytes = 256 << 10

func (o *outputTail) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	o.total += int64(len(p))
	if len(o.buf) > 2*keepBytes {
		o.buf = append(o.buf[:0], o.buf[len(o.buf)-keepBytes:]...)
	}
	if o.file != nil {
		_, _ = o.file.Write(p)
	}
	return len(p), nil
}

// note writes a line of the harness's own between the process's lines.
func (o *outputTail) note(format string, args ...any) {
	_, _ = fmt.Fprintf(o, "---- chaos: "+format+" ----\n", args...)
}

// lastLines returns the last n lines.
func (o *outputTail) lastLines(n int) string {
	o.mu.Lock()
	s := string(o.buf)
	o.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		return fmt.Sprintf("[%d earlier lines left out]\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "\n")
	}
	return strings.Join(lines, "\n")
}

// mark returns a position for containsSince.
func (o *outputTail) mark() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// containsSince reports whether what was written after mark (as far as it
// is still kept) contains s.
func (o *outputTail) containsSince(mark int64, s string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := int64(len(o.buf)) - (o.total - mark)
	return strings.Contains(string(o.buf[max(n, 0):]), s)
}

// proc is one started process. It runs in a process group of its own, so
// that kill reaches anything it forked (redis-server forks to rewrite its
// AOF); on Linux the kernel kills it if the harness dies first.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for; then state is set
	state  *os.ProcessState
}

// startProc starts bin with args and the harness's environment without any
// SIGNALD_ variable, plus env. A goroutine waits for it; kill (or the
// process's own exit) ends that goroutine.
func startProc(bin string, args, env []string, out io.Writer) (*proc, error) {
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGNALD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

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
		return fmt.Sprintf("pid %d, running", p.pid())
	}
	return fmt.Sprintf("pid %d, %v", p.pid(), p.state)
}

// signal sends sig to the process itself (not its group).
func (p *proc) signal(sig syscall.Signal) error {
	if !p.running() {
		return fmt.Errorf("pid %d had already exited: %v", p.pid(), p.state)
	}
	return p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL to the process group and waits until the process is
// gone.
func (p *proc) kill() {
	if p.running() {
		killGroup(p.pid())
	}
	<-p.exited
}

// waitExit waits until the process has exited, at most limit.
func (p *proc) waitExit(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.exited:
		return nil
	case <-t.C:
		return fmt.Errorf("pid %d still running after %v", p.pid(), limit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errExited is returned by readiness waits on a process that is gone.
var errExited = errors.New("process exited")
