package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// instance is one signald instance. It keeps its address across restarts,
// like a pod behind a stable name, so that the devices' choice of where to
// reconnect stays simple.
type instance struct {
	node string // SIGNALD_NODE_ID
	addr string // 127.0.0.1:port
	bin  string
	env  []string
	out  *outputTail

	mu sync.Mutex
	p  *proc // guarded by mu; the current generation
	up bool  // guarded by mu: ready, and not being stopped
}

// start starts a generation and waits until /readyz answers 200. A port
// taken meanwhile by another process is reported as errAddrInUse.
func (in *instance) start(ctx context.Context) error {
	mark := in.out.mark()
	in.out.note("starting signald %s on %s", in.node, in.addr)
	p, err := startProc(in.bin, []string{"serve", "--dev"}, in.env, in.out)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.p = p
	in.mu.Unlock()
	if err := in.waitReady(ctx, p); err != nil {
		p.kill()
		if in.out.containsSince(mark, "address already in use") {
			return fmt.Errorf("%s: %w", in.addr, errAddrInUse)
		}
		return fmt.Errorf("signald %s: %w", in.node, err)
	}
	in.mu.Lock()
	in.up = true
	in.mu.Unlock()
	return nil
}

// waitReady polls /readyz until it answers 200, failing early if the
// process exits.
func (in *instance) waitReady(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(startLimit)
	var last error
	for {
		if !p.running() {
			return fmt.Errorf("%w: %s", errExited, p.status())
		}
		code, err := httpStatus("http://" + in.addr + "/readyz")
		if err == nil && code == http.StatusOK {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("/readyz answered %d", code)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v: %v", startLimit, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// isUp reports whether devices may connect to it.
func (in *instance) isUp() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.up && in.p.running()
}

func (in *instance) current() *proc {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.p
}

// stop ends the current generation with sig (SIGKILL: the whole group) and
// waits for it to exit. A SIGTERM'd signald closes its connections with
// 1012 and exits within its shutdown timeout (15 s).
func (in *instance) stop(ctx context.Context, sig syscall.Signal) error {
	in.mu.Lock()
	in.up = false
	p := in.p
	in.mu.Unlock()
	in.out.note("sending %v", sig)
	if sig == syscall.SIGKILL {
		p.kill()
		return nil
	}
	if err := p.signal(sig); err != nil {
		return err
	}
	return p.waitExit(ctx, startLimit)
}

// restart starts a stopped instance again on its address. The port is
// below the ephemeral range, so nothing of ours can hold it; a stranger
// that took it is waited out for a while.
func (in *instance) restart(ctx context.Context) error {
	if p := in.current(); p != nil && p.running() {
		return fmt.Errorf("signald %s is still running", in.node)
	}
	deadline := time.Now().Add(startLimit)
	for {
		err := in.start(ctx)
		if err == nil || !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// kill ends the current generation, if any, and waits for it.
func (in *instance) kill() {
	in.mu.Lock()
	in.up = false
	p := in.p
	in.mu.Unlock()
	if p != nil {
		p.kill()
	}
}
