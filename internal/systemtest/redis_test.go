package systemtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/redistest"
)

// redisServer is a redis-server process on a port of its own that stays
// the same across restarts, so that clients configured with its address
// find it again.
type redisServer struct {
	t    *testing.T
	name string
	port int
	addr string
	dir  string   // its working directory (AOF, nodes.conf, sentinel.conf)
	args []string // the whole command line after the binary
	p    *proc
}

func redisBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not on PATH: run `make deps` (it installs Debian's redis-server and redis-tools)")
	}
	return p
}

// startRedis starts redis-server on a free loopback port in a directory of
// its own, with nothing persisted unless extra says so; extra is appended to
// the command line (later options win). When the port turns out to be
// taken, it starts again on another.
func startRedis(t *testing.T, name string, extra ...string) *redisServer {
	t.Helper()
	return startRedisWith(t, name, nil, func(int) []string { return extra })
}

// startRedisWith starts redis-server with pre before the common options
// (a configuration file) and extra(port) after them.
func startRedisWith(t *testing.T, name string, pre []string, extra func(port int) []string) *redisServer {
	t.Helper()
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		args := append([]string{}, pre...)
		args = append(args,
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--daemonize", "no",
			"--logfile", "",
			"--save", "",
			"--appendonly", "no",
		)
		args = append(args, extra(port)...)
		r := &redisServer{t: t, name: name, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, args: args}
		err := r.start()
		if err == nil {
			return r
		}
		if attempt < 2 && strings.Contains(r.p.out.String(), "in use") {
			r.p.kill()
			continue
		}
		t.Fatalf("%s: %v", name, err)
	}
}

// start starts the server (again) with its command line and waits until
// it answers PING.
func (r *redisServer) start() error {
	r.t.Helper()
	r.p = startProc(r.t, r.name, nil, redisBin(r.t), r.args...)
	return r.waitPing(waitFor)
}

// restart starts a stopped server again on the same port and directory.
func (r *redisServer) restart() {
	r.t.Helper()
	if r.p.running() {
		r.t.Fatalf("%s is still running", r.name)
	}
	if err := r.start(); err != nil {
		r.t.Fatalf("restart %s: %v", r.name, err)
	}
}

// stop ends the server with SIGTERM (it writes what it persists and
// exits) and waits for it.
func (r *redisServer) stop() {
	r.t.Helper()
	r.p.stopWith(syscall.SIGTERM, waitFor)
}

// waitPing waits until the server answers PING with PONG (not LOADING).
func (r *redisServer) waitPing(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if !r.p.running() {
			return fmt.Errorf("%w: %s\n%s", errExited, r.p.status(), lastLines(r.p.out.String(), 20))
		}
		if last = redistest.Ping(r.addr); last == nil {
			return nil
		}
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("no PONG within %v: %v", limit, last)
}

// do runs one command on the server, over a connection of its own and
// without retries, and returns its reply.
func (r *redisServer) do(args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Do(ctx, args...).Result()
}

// startCluster starts n redis-servers with cluster mode on, makes them one
// cluster of n masters with redis-cli --cluster create, and waits until
// every node says cluster_state:ok and knows the others.
func startCluster(t *testing.T, n int) []*redisServer {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not on PATH: run `make deps` (it installs Debian's redis-tools)")
	}
	var nodes []*redisServer
	var addrs []string
	for i := range n {
		r := startRedisWith(t, fmt.Sprintf("redis cluster node %d", i+1), nil, func(int) []string {
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				// Not port+10000, which can be above 65535 or taken.
				"--cluster-port", strconv.Itoa(freePort(t)),
				"--cluster-node-timeout", "5000",
			}
		})
		nodes = append(nodes, r)
		addrs = append(addrs, r.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, r := range nodes {
		eventually(t, r.name+" cluster_state:ok", func() error {
			v, err := r.do("CLUSTER", "INFO")
			if err != nil {
				return err
			}
			info, _ := v.(string)
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				return fmt.Errorf("CLUSTER INFO: %s", strings.ReplaceAll(strings.TrimSpace(info), "\r\n", " "))
			}
			return nil
		})
	}
	return nodes
}

// sentinelSet is a primary, its replica and one sentinel watching them as
// "mymaster".
type sentinelSet struct {
	primary, replica, sentinel *redisServer
}

const masterName = "mymaster"

// startSentinelSet starts a primary, a replica of it, waits until the
// replica is in sync, then starts a sentinel that fails over after the
// primary has been unreachable for 1 s, and waits until the sentinel knows
// the replica (it can only promote a replica it knows).
func startSentinelSet(t *testing.T) *sentinelSet {
	t.Helper()
	s := &sentinelSet{}
	// No 5 s wait before the first full sync of the replica.
	s.primary = startRedis(t, "redis primary", "--repl-diskless-sync-delay", "0")
	s.replica = startRedis(t, "redis replica", "--replicaof", "127.0.0.1", strconv.Itoa(s.primary.port))
	eventually(t, "replica in sync", func() error {
		v, err := s.replica.do("INFO", "replication")
		if err != nil {
			return err
		}
		if info, _ := v.(string); !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica INFO: %s", strings.ReplaceAll(strings.TrimSpace(info), "\r\n", " "))
		}
		return nil
	})
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\n", masterName, s.primary.port, masterName, masterName)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s.sentinel = startRedisWith(t, "redis sentinel", []string{conf, "--sentinel"}, func(int) []string { return nil })
	eventually(t, "sentinel knows the replica", func() error {
		v, err := s.sentinel.do("SENTINEL", "REPLICAS", masterName)
		if err != nil {
			return err
		}
		if !strings.Contains(fmt.Sprint(v), strconv.Itoa(s.replica.port)) {
			return fmt.Errorf("SENTINEL REPLICAS: %v", v)
		}
		return nil
	})
	return s
}

// masterAddr asks the sentinel where the primary is.
func (s *sentinelSet) masterAddr() (string, error) {
	v, err := s.sentinel.do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)
	if err != nil {
		return "", err
	}
	hp, ok := v.([]any)
	if !ok || len(hp) != 2 {
		return "", fmt.Errorf("GET-MASTER-ADDR-BY-NAME answered %v", v)
	}
	return net.JoinHostPort(fmt.Sprint(hp[0]), fmt.Sprint(hp[1])), nil
}
