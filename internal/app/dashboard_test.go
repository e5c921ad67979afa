package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/apptest"
)

// The Grafana dashboard and the Prometheus alerts of deploy/ ask only for
// series that signald exposes: a renamed metric or a mistyped label value
// would otherwise leave a panel empty and an alert silent, with nothing to
// say so.

const (
	dashboardFile = "../../deploy/grafana/signald.json"
	alertsFile    = "../../deploy/prometheus/alerts.yaml"
)

// promQuery is one PromQL expression and where it is written, for messages.
type promQuery struct {
	file  string // deploy/...
	where string // `panel "Connections" (target A)`, `alert SignaldDown`, ...
	expr  string
	prose bool // an alert's annotations: text that may name metrics
}

// grafanaDashboard is what these tests read of a dashboard's JSON.
type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string             `json:"expr"`
		RefID      string             `json:"refId"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaVariable struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Query      json.RawMessage    `json:"query"` // a string, or {"query": "..."}
	Datasource *grafanaDatasource `json:"datasource"`
}

// dsVariable is how every panel names its data source: the dashboard's
// datasource variable, so that it imports into any Grafana.
const dsVariable = "${datasource}"

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels returns the dashboard's panels, rows and the panels inside
// collapsed rows included.
func allPanels(d grafanaDashboard) []grafanaPanel {
	var out []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// panelsOf returns the panels that show something: all but rows.
func panelsOf(d grafanaDashboard) []grafanaPanel {
	return slices.DeleteFunc(allPanels(d), func(p grafanaPanel) bool { return p.Type == "row" })
}

// variableQuery returns a query variable's PromQL, whichever of Grafana's
// two shapes it is in.
func variableQuery(v grafanaVariable) string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

// dashboardQueries returns every expression of the dashboard: each panel's
// targets and each query variable's.
func dashboardQueries(d grafanaDashboard) []promQuery {
	var qs []promQuery
	for _, p := range panelsOf(d) {
		for _, tg := range p.Targets {
			qs = append(qs, promQuery{file: dashboardFile, where: fmt.Sprintf("panel %q (target %s)", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			qs = append(qs, promQuery{file: dashboardFile, where: fmt.Sprintf("variable %q", v.Name), expr: variableQuery(v)})
		}
	}
	return qs
}

// alertRule is one rule of alerts.yaml as a line scan reads it.
type alertRule struct {
	name        string // "alert SignaldDown"
	expr        string
	annotations map[string]string // key → its first line ("|" for a block)
	notes       string            // the annotations' lines
}

// alertRules reads alerts.yaml with a line scan, as go.mod has no YAML
// library: `- alert: Name` (or `- record:`) starts a rule; its `expr:` is
// the rest of that line, or a block scalar (`|`, `>`): the lines indented
// deeper than the key. Annotations are the keys indented under
// `annotations:`.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	indentOf := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	// block returns the lines after i indented deeper than indent.
	block := func(i, indent int) string {
		var b []string
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) != "" && indentOf(lines[j]) <= indent {
				break
			}
			b = append(b, strings.TrimSpace(lines[j]))
		}
		return strings.TrimSpace(strings.Join(b, "\n"))
	}
	var rules []alertRule
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "#") {
			continue
		}
		for _, kind := range []string{"alert", "record"} {
			if name, ok := strings.CutPrefix(l, "- "+kind+":"); ok {
				rules = append(rules, alertRule{name: kind + " " + strings.TrimSpace(name), annotations: map[string]string{}})
			}
		}
		if len(rules) == 0 {
			continue
		}
		r := &rules[len(rules)-1]
		if rest, ok := strings.CutPrefix(l, "expr:"); ok {
			rest = strings.TrimSpace(rest)
			if strings.HasPrefix(rest, "|") || strings.HasPrefix(rest, ">") {
				r.expr = block(i, indentOf(lines[i]))
			} else {
				r.expr = strings.Trim(rest, `"'`)
			}
		}
		if l == "annotations:" {
			indent := indentOf(lines[i])
			r.notes = block(i, indent)
			for j := i + 1; j < len(lines) && (strings.TrimSpace(lines[j]) == "" || indentOf(lines[j]) > indent); j++ {
				key, value, ok := strings.Cut(strings.TrimSpace(lines[j]), ":")
				if ok && indentOf(lines[j]) == indent+2 {
					r.annotations[key] = strings.TrimSpace(value)
				}
			}
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rule found", alertsFile)
	}
	return rules
}

// selectorRE finds the metric names of an expression, with the label
// matchers that follow one; matcherRE splits those.
var (
	selectorRE = regexp.MustCompile(`\b((?:signald|go|process)_[a-z0-9_]+)\b(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	literalsRE = regexp.MustCompile(`^[A-Za-z0-9_.+]+(\|[A-Za-z0-9_.+]+)*$`)
	upRE       = regexp.MustCompile(`\bup\{`)
	// labelValuesRE is Grafana's label_values(series, label).
	labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)
)

// selector is one metric name an expression asks for, with the label values
// it requires: each element of want is one combination that some series
// must have (a matcher label=~"a|b" asks for both a and b).
type selector struct {
	metric string
	want   []map[string]string
	regex  map[string]*regexp.Regexp // label=~ matchers that are not plain alternatives
}

// selectorsOf returns the selectors of expr. Matchers that scraping
// satisfies (job, instance), negative ones, and Grafana variables ($job)
// require nothing of signald and are left out.
func selectorsOf(expr string) []selector {
	var out []selector
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		s := selector{metric: m[1], want: []map[string]string{{}}, regex: map[string]*regexp.Regexp{}}
		for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			label, op, value := mm[1], mm[2], mm[3]
			if label == "job" || label == "instance" || op == "!=" || op == "!~" || strings.Contains(value, "$") {
				continue
			}
			values := []string{value}
			if op == "=~" {
				if !literalsRE.MatchString(value) {
					if re, err := regexp.Compile("^(?:" + value + ")$"); err == nil {
						s.regex[label] = re
					} // else promtool reports it (TestDashboardQueriesParse, make check-rules)
					continue
				}
				values = strings.Split(value, "|")
			}
			var next []map[string]string
			for _, w := range s.want {
				for _, v := range values {
					c := maps.Clone(w)
					c[label] = v
					next = append(next, c)
				}
			}
			s.want = next
		}
		out = append(out, s)
	}
	return out
}

// exposition is a /metrics page: each sample's name, as Prometheus stores
// it (a histogram's are name_bucket, name_sum, name_count), with the label
// sets it has samples for.
type exposition map[string][]map[string]string

func parseExposition(body string) exposition {
	e := exposition{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		end := strings.IndexAny(l, "{ ")
		if end < 0 {
			continue
		}
		labels := map[string]string{}
		if l[end] == '{' {
			last := strings.LastIndex(l, "}")
			for _, m := range matcherRE.FindAllStringSubmatch(l[end:last+1], -1) {
				labels[m[1]] = m[3]
			}
		}
		e[l[:end]] = append(e[l[:end]], labels)
	}
	return e
}

// missing returns why s finds nothing in e, or "". A histogram is queried
// by its samples' names (_bucket, _sum, _count), but prose may name it by
// its own.
func (e exposition) missing(s selector, prose bool) string {
	series, ok := e[s.metric]
	if !ok {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if _, ok := e[s.metric+suffix]; ok && prose {
				return ""
			} else if ok {
				return "is a histogram: query " + s.metric + "_bucket, _sum or _count"
			}
		}
		return "is not exposed"
	}
	for _, w := range s.want {
		found := slices.ContainsFunc(series, func(labels map[string]string) bool {
			for k, v := range w {
				if labels[k] != v {
					return false
				}
			}
			for k, re := range s.regex {
				if !re.MatchString(labels[k]) {
					return false
				}
			}
			return true
		})
		if !found {
			var m []string
			for k, v := range w {
				m = append(m, fmt.Sprintf("%s=%q", k, v))
			}
			for k, re := range s.regex {
				m = append(m, fmt.Sprintf("%s=~%q", k, re))
			}
			slices.Sort(m)
			return "has no series {" + strings.Join(m, ", ") + "}"
		}
	}
	return ""
}

// TestDashboardIsImportable: the dashboard is JSON that Grafana imports
// anywhere: every panel has a title and a query, and takes its data source
// from the datasource variable.
func TestDashboardIsImportable(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("the dashboard needs a title and a uid: %q %q", d.Title, d.UID)
	}
	vars := map[string]grafanaVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("no datasource variable of Prometheus data sources: %+v", v)
	}
	for _, name := range []string{"job", "instance"} {
		if v := vars[name]; v.Type != "query" || v.Datasource == nil || v.Datasource.UID != dsVariable || variableQuery(v) == "" {
			t.Errorf("variable %s: want a query variable on %s: %+v", name, dsVariable, v)
		}
	}
	panels := panelsOf(d)
	if len(panels) < 20 {
		t.Fatalf("%d panels", len(panels))
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d) {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is not within Grafana's 24 columns", p.Title, p.GridPos)
		}
	}
	for _, p := range panels {
		if strings.TrimSpace(p.Title) == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != dsVariable {
			t.Errorf("panel %q: data source %+v, want %s", p.Title, p.Datasource, dsVariable)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: target %s has no expression", p.Title, tg.RefID)
			}
			if tg.Datasource == nil || tg.Datasource.UID != dsVariable {
				t.Errorf("panel %q: target %s's data source %+v, want %s", p.Title, tg.RefID, tg.Datasource, dsVariable)
			}
		}
	}
}

// TestDashboardAlertsHaveRunbooks: every alert says what it is and what to
// do, and has an expression.
func TestDashboardAlertsHaveRunbooks(t *testing.T) {
	for _, r := range alertRules(t) {
		if r.expr == "" {
			t.Errorf("%s has no expr", r.name)
		}
		if !strings.HasPrefix(r.name, "alert ") {
			continue
		}
		for _, key := range []string{"summary", "runbook"} {
			if r.annotations[key] == "" {
				t.Errorf("%s has no %s annotation", r.name, key)
			}
		}
	}
}

// TestDashboardAndAlertsQueryLiveMetrics: every metric the dashboard and the
// alerts query (or a runbook names), with every label value they ask for,
// is on the /metrics of a signald just started: the signald_ ones on a
// daemon on Redis with every push platform on, the Go runtime's and the
// process's on `signald serve` as the command line wires it.
func TestDashboardAndAlertsQueryLiveMetrics(t *testing.T) {
	apptest.CheckLeaks(t)
	queries := dashboardQueries(readDashboard(t))
	for _, r := range alertRules(t) {
		queries = append(queries,
			promQuery{file: alertsFile, where: r.name, expr: r.expr},
			promQuery{file: alertsFile, where: r.name + "'s annotations", expr: r.notes, prose: true})
	}

	o, _ := withPush(t, apptest.Options(t, "redis"))
	dm := startDaemon(t, o)
	_, body := dm.get("/metrics")
	daemon := parseExposition(body)
	process := parseExposition(serveMetrics(t))

	shown := map[string]bool{} // metrics the dashboard queries
	for _, q := range queries {
		file := strings.TrimPrefix(q.file, "../../")
		sels := selectorsOf(q.expr)
		if len(sels) == 0 && !q.prose && !upRE.MatchString(q.expr) { // up: Prometheus's own
			t.Errorf("%s: %s queries no signald_, go_ or process_ metric: %s", file, q.where, q.expr)
		}
		for _, s := range sels {
			e, on := daemon, "a fresh signald's /metrics"
			if !strings.HasPrefix(s.metric, "signald_") {
				e, on = process, "the /metrics of `signald serve`"
			}
			if why := e.missing(s, q.prose); why != "" {
				t.Errorf("%s: %s queries %s, which %s on %s", file, q.where, s.metric, why, on)
			}
			if q.file == dashboardFile {
				shown[s.metric] = true
			}
		}
	}
	// What the dashboard must show.
	for _, m := range []string{
		"signald_websocket_connections", "signald_connections", "signald_unauthenticated_connections", "signald_online_users",
		"signald_logins_total", "signald_requests_total", "signald_request_duration_seconds_bucket",
		"signald_invitations_total", "signald_invitee_outcomes_total", "signald_ring_to_answer_seconds_bucket",
		"signald_timeouts_fired_total", "signald_timeout_lateness_seconds_bucket", "signald_store_errors_total", "signald_store_up",
		"signald_catchups_total", "signald_gap_catchup_seconds_bucket", "signald_resumes_total", "signald_events_replayed_total",
		"signald_pushes_total", "signald_push_latency_seconds_bucket", "signald_connections_closed_by_server_total",
		"signald_slow_clients_closed_total", "signald_announcements_backlog", "signald_announcements_retried_total",
		"process_resident_memory_bytes", "go_goroutines",
	} {
		if !shown[m] {
			t.Errorf("%s has no panel that queries %s", strings.TrimPrefix(dashboardFile, "../../"), m)
		}
	}
}

// serveMetrics runs `signald serve --dev` as main does, on a loopback port,
// and returns its /metrics page: the Go runtime's and the process's
// collectors are the command line's, not app.Start's.
func serveMetrics(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &listenLog{addr: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		done <- app.Main(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--log-format", "text"},
			func(string) string { return "" }, &bytes.Buffer{}, logs)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("signald serve: %v", err)
			}
		case <-time.After(waitFor):
			t.Errorf("signald serve did not stop within %v", waitFor)
		}
	}()
	var addr string
	select {
	case addr = <-logs.addr:
	case err := <-done:
		done <- err
		t.Fatalf("signald serve stopped before listening: %v\n%s", err, logs.String())
	case <-time.After(waitFor):
		t.Fatalf("signald serve did not log its address within %v:\n%s", waitFor, logs.String())
	}
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics of signald serve: %v", err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics of signald serve: %d %v", resp.StatusCode, err)
	}
	return b.String()
}

// listenLog is the log of `signald serve`: it hands over the address of
// its "signald listening" line, once.
type listenLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer // guarded by mu
	sent bool         // guarded by mu
	addr chan string
}

var listeningRE = regexp.MustCompile(`msg="signald listening" addr=(\S+)`)

func (l *listenLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if m := listeningRE.FindSubmatch(l.buf.Bytes()); m != nil && !l.sent {
		l.sent = true
		l.addr <- string(m[1])
	}
	return len(p), nil
}

func (l *listenLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestDashboardQueriesParse: Prometheus parses every query of the dashboard
// (Grafana's variables replaced by what they stand for, and
// label_values(series, label) by its series), checked by promtool as
// recording rules, as it checks alerts.yaml.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("no promtool (Debian package prometheus; make deps installs it)")
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".+", "$instance", ".+")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	queries := dashboardQueries(readDashboard(t))
	for i, q := range queries {
		promql := labelValuesRE.ReplaceAllString(vars.Replace(q.expr), "$1")
		expr, err := json.Marshal(promql) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "      - record: query_%d\n        expr: %s\n", i, expr)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		// promtool names a failing rule by its index: say which panel it is.
		msg := string(out)
		for i := len(queries) - 1; i >= 0; i-- {
			msg = strings.ReplaceAll(msg, fmt.Sprintf("query_%d", i), queries[i].where)
		}
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, msg)
	}
}
