// Package redistest gives tests a real Redis.
//
// Addr and NewClient use the server named by SIGNALD_TEST_REDIS_ADDR (the
// Makefile starts one private redis-server and sets it), or else one
// redis-server started for the whole test binary and stopped by Main.
// StartServer starts a dedicated server for a test that needs to stop it.
//
// Test packages share one Redis, so every test works under its own key
// prefix from NewClient.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// EnvAddr names the environment variable holding the address of a Redis
// to use instead of starting one.
const EnvAddr = "SIGNALD_TEST_REDIS_ADDR"

const notFound = "redis-server not found: run `make test`, which installs it"

var (
	mainCalled atomic.Bool

	sharedOnce sync.Once
	sharedMu   sync.Mutex
	sharedSrv  *Server // guarded by sharedMu
	sharedErr  error   // guarded by sharedMu
)

// Main runs the tests of a package that uses Addr or NewClient, then stops
// the redis-server that Addr started, if any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	sharedMu.Lock()
	srv := sharedSrv
	sharedMu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	os.Exit(code)
}

// Addr returns the address of the Redis that tests of this process share.
func Addr(t testing.TB) string {
	t.Helper()
	if a := os.Getenv(EnvAddr); a != "" {
		return a
	}
	if !mainCalled.Load() {
		t.Fatal("redistest: call redistest.Main(m) from TestMain, so that the redis-server started for the tests is stopped")
	}
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "signald-redis-")
		var srv *Server
		if err == nil {
			srv, err = start(dir, true, nil)
		}
		sharedMu.Lock()
		sharedSrv, sharedErr = srv, err
		sharedMu.Unlock()
	})
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedSrv.Addr
}

// NewClient returns a client of the shared Redis and a key prefix of its
// own ("t:<random>:"), so that tests and packages running at once never
// see each other's keys. At the end of the test the keys under the prefix
// are deleted and the client is closed.
func NewClient(t testing.TB) (*redis.Client, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: Addr(t)})
	prefix := "t:" + rand.Text()[:16] + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeleteKeys(ctx, c, prefix); err != nil {
			t.Logf("redistest: deleting keys under %q: %v", prefix, err)
		}
		c.Close()
	})
	return c, prefix
}

// DeleteKeys deletes every key that starts with prefix, which must hold no
// glob characters.
func DeleteKeys(ctx context.Context, c *redis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// StartServer starts a redis-server of the test's own, on a free loopback
// port, with args appended to its command line (for instance
// "--cluster-enabled", "yes"; relative paths are inside the server's own
// directory). stop kills it and waits for it to exit; it is also called at
// the end of the test, and may be called more than once.
func StartServer(t testing.TB, args ...string) (addr string, stop func()) {
	t.Helper()
	srv, err := start(t.TempDir(), false, args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv.Addr, srv.Stop
}

// Server is one redis-server process started by this package.
type Server struct {
	Addr string

	cmd       *exec.Cmd
	dir       string
	removeDir bool          // dir is ours to delete on Stop
	exited    chan struct{} // closed when cmd has been waited for
	stopOnce  sync.Once
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
		if s.removeDir {
			os.RemoveAll(s.dir)
		}
	})
}

// start starts redis-server in dir, retrying on another port if the one it
// picked was taken in the meantime.
func start(dir string, removeDir bool, extra []string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if removeDir {
			os.RemoveAll(dir)
		}
		return nil, errors.New(notFound)
	}
	var lastErr error
	for range 5 {
		var srv *Server
		srv, lastErr = startOnce(bin, dir, extra)
		if lastErr == nil {
			srv.removeDir = removeDir
			return srv, nil
		}
	}
	if removeDir {
		os.RemoveAll(dir)
	}
	return nil, lastErr
}

func startOnce(bin, dir string, extra []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log")
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", logFile,
		"--daemonize", "no",
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: starting redis-server: %w", err)
	}
	srv := &Server{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd:    cmd,
		dir:    dir,
		exited: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		close(srv.exited)
	}()
	if err := waitReady(srv.Addr, logFile, srv.exited); err != nil {
		srv.Stop()
		log, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("redistest: redis-server on %s: %w\n%s", srv.Addr, err, lastLines(string(log), 20))
	}
	return srv, nil
}

// waitReady waits until the server at addr answers PING, and checks that
// it is the one started with logFile: the port, free when it was picked,
// may have been taken since by a server another test process started, and
// then this one cannot bind it.
func waitReady(addr, logFile string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := Ping(addr); err == nil {
			got, err := configGet(addr, "logfile")
			if err != nil {
				return fmt.Errorf("asking who answers: %w", err)
			}
			if got != logFile {
				return fmt.Errorf("another server answers there (its log file is %q)", got)
			}
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING: %w", err)
		}
		select {
		case <-exited:
			return errors.New("exited before answering PING")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Ping sends PING to the Redis at addr over a fresh connection, without
// go-redis and its retries, and reports whether it answered PONG.
func Ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// configGet returns the value of the configuration parameter param of the
// Redis at addr, over a fresh connection (RESP2, without go-redis).
func configGet(addr, param string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(conn, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(param), param); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if line != "*2\r\n" {
		return "", fmt.Errorf("CONFIG GET %s answered %q", param, strings.TrimSpace(line))
	}
	var value string
	for range 2 { // the name, then the value
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, "$"), "\r\n"))
		if !strings.HasPrefix(line, "$") || err != nil || n < 0 {
			return "", fmt.Errorf("CONFIG GET %s answered %q", param, strings.TrimSpace(line))
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		value = string(b[:n])
	}
	return value, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// IgnoreServer is the leak check's option (leaktest.Check) for the wait on
// the redis-server shared by a package's tests, which the first test that
// uses it starts and TestMain stops.
func IgnoreServer() goleak.Option {
	return goleak.IgnoreAnyFunction("github.com/signald/signald/internal/redistest.startOnce.func1")
}
