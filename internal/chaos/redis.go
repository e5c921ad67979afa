package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is the run's redis-server. It keeps its port and directory
// across restarts, so that the instances find it again with its data (AOF,
// fsync on every write: a graceful restart loses nothing).
type redisServer struct {
	bin  string
	addr string
	args []string
	out  *outputTail

	mu sync.Mutex
	p  *proc // guarded by mu; the current generation
}

// startRedis starts redis-server in dir on a free port, trying another
// port if the one picked was taken meanwhile.
func startRedis(ctx context.Context, bin, dir string, rng *rand.Rand, out *outputTail) (*redisServer, error) {
	if bin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return nil, fmt.Errorf("redis-server not on PATH (make deps installs it): %w", err)
		}
		bin = p
	}
	var last error
	for range 3 {
		port, err := freePort(rng)
		if err != nil {
			return nil, err
		}
		r := &redisServer{
			bin:  bin,
			addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			args: []string{
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--dir", dir, "--daemonize", "no", "--logfile", "",
				"--appendonly", "yes", "--appendfsync", "always", "--save", "",
			},
			out: out,
		}
		mark := out.mark()
		if last = r.start(ctx); last == nil {
			return r, nil
		}
		r.kill()
		if !out.containsSince(mark, "in use") {
			break
		}
	}
	return nil, fmt.Errorf("redis-server: %w", last)
}

// start starts a generation and waits until it answers PING (it answers
// LOADING while it reads its AOF).
func (r *redisServer) start(ctx context.Context) error {
	r.out.note("starting redis-server")
	p, err := startProc(r.bin, r.args, nil, r.out)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.p = p
	r.mu.Unlock()
	deadline := time.Now().Add(startLimit)
	for {
		if !p.running() {
			return fmt.Errorf("%w: %s", errExited, p.status())
		}
		err := redisPing(r.addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v: %w", startLimit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

func (r *redisServer) current() *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// running reports whether the current generation runs.
func (r *redisServer) running() bool {
	p := r.current()
	return p != nil && p.running()
}

// stopGraceful sends SIGTERM (Redis flushes its AOF and exits) and waits
// for the exit.
func (r *redisServer) stopGraceful(ctx context.Context) error {
	p := r.current()
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	r.out.note("SIGTERM sent")
	return p.waitExit(ctx, startLimit)
}

// restart starts a stopped server again on the same port and directory.
func (r *redisServer) restart(ctx context.Context) error {
	if r.running() {
		return fmt.Errorf("redis-server is still running")
	}
	return r.start(ctx)
}

// killPubSub runs CLIENT KILL TYPE pubsub and returns how many connections
// Redis closed.
func (r *redisServer) killPubSub(ctx context.Context) (int64, error) {
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Int64()
}

// kill ends the current generation (SIGKILL) and waits for it.
func (r *redisServer) kill() {
	if p := r.current(); p != nil {
		p.kill()
	}
}
