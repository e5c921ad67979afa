package chaos

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The well-known secrets of `signald serve --dev` (app.DevJWTSecret and
// app.DevAdminToken), repeated here so that the harness depends on the
// server only through its processes.
const (
	devJWTSecret  = "signald-dev-secret"
	devAdminToken = "signald-dev-admin-token"
)

// deployment is the run's processes: one Redis and the instances sharing
// it under a key prefix of the run's own.
type deployment struct {
	redis     *redisServer
	instances []*instance
	prefix    string      // SIGNALD_REDIS_PREFIX of the run
	outs      []namedTail // every process's output, for the report
	files     []*os.File  // LogDir's files; closed by close

	rngMu sync.Mutex
	rng   *rand.Rand // guarded by rngMu
}

type namedTail struct {
	name string
	out  *outputTail
}

// startDeployment starts Redis in dir and cfg.Instances instances, each
// ready before it returns. On error everything started is killed.
func startDeployment(ctx context.Context, cfg *Config, dir string, rng *rand.Rand) (_ *deployment, err error) {
	d := &deployment{rng: rng}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	rout, err := d.newTail(cfg, "redis")
	if err != nil {
		return nil, err
	}
	d.redis, err = startRedis(ctx, cfg.RedisServerBin, dir, rng, rout)
	if err != nil {
		return nil, err
	}
	prefix := "chaos:" + crand.Text()[:10] + ":"
	d.prefix = prefix
	for i := range cfg.Instances {
		node := fmt.Sprintf("i%d", i+1)
		out, err := d.newTail(cfg, node)
		if err != nil {
			return nil, err
		}
		in, err := d.startInstance(ctx, cfg, node, prefix, out)
		if err != nil {
			return nil, err
		}
		d.instances = append(d.instances, in)
	}
	return d, nil
}

// newTail makes the output collector of one process name.
func (d *deployment) newTail(cfg *Config, name string) (*outputTail, error) {
	out := &outputTail{}
	if cfg.LogDir != "" {
		f, err := os.Create(filepath.Join(cfg.LogDir, name+".log"))
		if err != nil {
			return nil, err
		}
		d.files = append(d.files, f)
		out.file = f
	}
	d.outs = append(d.outs, namedTail{name, out})
	return out, nil
}

// startInstance starts one instance on a free port, another one if the
// port was taken meanwhile.
func (d *deployment) startInstance(ctx context.Context, cfg *Config, node, prefix string, out *outputTail) (*instance, error) {
	var last error
	for range 3 {
		d.rngMu.Lock()
		port, err := freePort(d.rng)
		d.rngMu.Unlock()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		in := &instance{node: node, addr: addr, bin: cfg.SignaldBin, out: out, env: instanceEnv(addr, d.redis.addr, prefix, node)}
		if last = in.start(ctx); last == nil {
			return in, nil
		}
		if !errors.Is(last, errAddrInUse) {
			break
		}
	}
	return nil, last
}

// instanceEnv is the configuration of every instance: many kept events so
// that no resume falls off the kept window, a long retention so that
// getSignalingInfo answers at the end, a short claim lease so that a dead
// instance's work is taken over within the drain, and no rate limit to
// speak of.
func instanceEnv(addr, redisAddr, prefix, node string) []string {
	return []string{
		"SIGNALD_ADDR=" + addr,
		"SIGNALD_REDIS_URL=redis://" + redisAddr + "/0",
		"SIGNALD_REDIS_PREFIX=" + prefix,
		"SIGNALD_NODE_ID=" + node,
		"SIGNALD_EVENTS_KEPT=100000",
		"SIGNALD_EVENTS_KEPT_BYTES=1073741824", // and in bytes: a resume never falls off the kept window
		"SIGNALD_RETENTION=15m",
		"SIGNALD_CLAIM_LEASE=" + claimLease.String(),
		"SIGNALD_RATE_LIMIT=1000",
		"SIGNALD_RATE_BURST=2000",
		"SIGNALD_LOG_FORMAT=json",
		"SIGNALD_DRAIN_PERIOD=0s",
	}
}

// pick returns a random instance that is up, or any instance when none
// is.
func (d *deployment) pick() *instance {
	var up []*instance
	for _, in := range d.instances {
		if in.isUp() {
			up = append(up, in)
		}
	}
	if len(up) == 0 {
		up = d.instances
	}
	d.rngMu.Lock()
	defer d.rngMu.Unlock()
	return up[d.rng.IntN(len(up))]
}

// ensureUp starts Redis and every instance that is not running, and waits
// until every instance is ready (its store reachable).
func (d *deployment) ensureUp(ctx context.Context) error {
	if !d.redis.running() {
		if err := d.redis.restart(ctx); err != nil {
			return err
		}
	}
	for _, in := range d.instances {
		if p := in.current(); p == nil || !p.running() {
			if err := in.restart(ctx); err != nil {
				return err
			}
			continue
		}
		if err := in.waitReady(ctx, in.current()); err != nil {
			return fmt.Errorf("signald %s: %w", in.node, err)
		}
	}
	return nil
}

// putGroup creates a group with members through the admin API of the
// first instance.
func (d *deployment) putGroup(ctx context.Context, groupID string, members []string) error {
	body, err := json.Marshal(map[string][]string{"members": members})
	if err != nil {
		return err
	}
	u := "http://" + d.instances[0].addr + "/v1/groups/" + url.PathEscape(groupID) + "/members"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+devAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("PUT %s: %s: %s", u, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// tails returns the last n lines of every process's output.
func (d *deployment) tails(n int) string {
	var b strings.Builder
	for _, t := range d.outs {
		fmt.Fprintf(&b, "---- output of %s ----\n%s\n", t.name, t.out.lastLines(n))
	}
	return b.String()
}

// close kills every process and waits for them.
func (d *deployment) close() {
	for _, in := range d.instances {
		in.kill()
	}
	if d.redis != nil {
		d.redis.kill()
	}
	for _, f := range d.files {
		_ = f.Close()
	}
}
