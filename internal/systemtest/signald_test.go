package systemtest

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// httpClient keeps no idle connections, so that none outlives a test.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// instance is one signald process.
type instance struct {
	*proc
	node string
	addr string // 127.0.0.1:port
}

// deployment is what the instances of one test share: a Redis (its URL
// and mode), a key prefix, and settings.
type deployment struct {
	t         *testing.T
	redisURL  string
	redisMode string            // single, sentinel or cluster
	prefix    string            // SIGNALD_REDIS_PREFIX, own to the test
	settings  map[string]string // further SIGNALD_* variables
	wrap      []string          // a command that runs signald, such as prlimit; none when empty
}

func newDeployment(t *testing.T, redisURL, mode string, settings map[string]string) *deployment {
	t.Helper()
	requireBinary(t)
	return &deployment{
		t: t, redisURL: redisURL, redisMode: mode,
		prefix:   "st:" + rand.Text()[:12] + ":",
		settings: settings,
	}
}

// start starts signald instance node on a free port and waits until its
// /readyz answers 200.
func (d *deployment) start(node string) *instance {
	d.t.Helper()
	return d.startWith(node, nil)
}

// startWith is start with settings of this instance's own, which win over
// the deployment's. The port can be taken by another process between being
// picked and being bound: then it starts again on another.
func (d *deployment) startWith(node string, own map[string]string) *instance {
	d.t.Helper()
	for attempt := 0; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(d.t))
		env := []string{
			"SIGNALD_ADDR=" + addr,
			"SIGNALD_LOG_FORMAT=text",
			"SIGNALD_REDIS_URL=" + d.redisURL,
			"SIGNALD_REDIS_MODE=" + d.redisMode,
			"SIGNALD_REDIS_PREFIX=" + d.prefix,
			"SIGNALD_NODE_ID=" + node,
		}
		for k, v := range d.settings {
			if _, ok := own[k]; !ok {
				env = append(env, k+"="+v)
			}
		}
		for k, v := range own {
			env = append(env, k+"="+v)
		}
		cmd := append(append(append([]string{}, d.wrap...), signaldBin), "serve", "--dev")
		in := &instance{proc: startProc(d.t, "signald "+node, env, cmd[0], cmd[1:]...), node: node, addr: addr}
		err := in.waitReady(waitFor)
		if err == nil {
			return in
		}
		if attempt < 2 && strings.Contains(in.out.String(), "address already in use") {
			continue
		}
		d.t.Fatalf("signald %s on %s not ready: %v", node, addr, err)
	}
}

// startN starts instances node1…noden.
func (d *deployment) startN(n int) []*instance {
	d.t.Helper()
	var ins []*instance
	for i := range n {
		ins = append(ins, d.start(fmt.Sprintf("node%d", i+1)))
	}
	return ins
}

func (in *instance) ws() string { return "ws://" + in.addr + "/v1/ws" }

func (in *instance) url(path string) string { return "http://" + in.addr + path }

// readyz returns the status of GET /readyz, or an error when nothing
// answers.
func (in *instance) readyz() (int, error) {
	return httpStatus(in.url("/readyz"))
}

// waitReady waits until /readyz answers 200, failing early if the process
// exits.
func (in *instance) waitReady(limit time.Duration) error {
	return in.waitReadyz(limit, http.StatusOK)
}

// waitReadyz waits until /readyz answers want.
func (in *instance) waitReadyz(limit time.Duration, want int) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if !in.running() {
			return fmt.Errorf("%w: %s", errExited, in.status())
		}
		code, err := in.readyz()
		if err == nil && code == want {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("/readyz answered %d", code)
		}
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("/readyz not %d within %v; last: %v", want, limit, last)
}

// mustReadyz waits until /readyz answers want, failing the test otherwise.
func (in *instance) mustReadyz(want int) {
	in.t.Helper()
	if err := in.waitReadyz(waitFor, want); err != nil {
		in.t.Fatalf("signald %s: %v", in.node, err)
	}
}

// allReadyz waits until every one of ins answers want on /readyz, asking
// them all at once (a /readyz that waits for an unreachable store can take
// seconds).
func allReadyz(t *testing.T, want int, ins ...*instance) {
	t.Helper()
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() { errs[i] = in.waitReadyz(waitFor, want) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("signald %s: %v", ins[i].node, err)
		}
	}
}

// metric returns the value of the Prometheus sample named exactly name (with
// its labels, if any) on /metrics; 0 when it is absent.
func (in *instance) metric(name string) float64 {
	in.t.Helper()
	_, body := httpGet(in.t, in.url("/metrics"))
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				in.t.Fatalf("metric %s: %q", name, l)
			}
			return f
		}
	}
	return 0
}

func httpStatus(url string) (int, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
