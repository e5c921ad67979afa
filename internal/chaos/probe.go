package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// pollEvery is how often a wait on something that cannot be awaited any
// other way (an HTTP status, a Redis reply) asks again.
const pollEvery = 50 * time.Millisecond

// startLimit bounds the wait for a started process to be ready. It is a
// failure deadline, generous for a busy machine, never a pause.
const startLimit = 60 * time.Second

// freePort returns a loopback port that was free a moment ago, taken below
// the kernel's ephemeral range: processes are restarted on the same port,
// and a port in that range could meanwhile become the local end of one of
// the harness's own client connections.
func freePort(rng *rand.Rand) (int, error) {
	lo, hi := 10000, ephemeralLow()-1
	if hi-lo < 1000 {
		lo, hi = 1024, 65535 // an odd range: take any port
	}
	var last error
	for range 50 {
		port := lo + rng.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			last = err
			continue
		}
		_ = l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port in %d–%d: %w", lo, hi, last)
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// redisPing sends PING over a fresh connection, without go-redis and its
// retries, and reports whether the server answered PONG (not LOADING).
func redisPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
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

// httpClient keeps no idle connections, so that none outlives a run.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// httpStatus returns the status of GET url.
func httpStatus(url string) (int, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// errAddrInUse reports a process that could not bind the port it was
// given.
var errAddrInUse = errors.New("address already in use")
