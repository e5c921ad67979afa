package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Figure is one named number of the report. Key is for JSON readers, Label
// for people; both keep the order the report was built in.
type Figure struct {
	Key   string  `json:"key"`
	Label string  `json:"label"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// Section is an ordered list of figures under a heading.
type Section struct {
	Name    string   `json:"name"`
	Figures []Figure `json:"figures"`
}

func (s *Section) add(key, label string, v float64, unit string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	s.Figures = append(s.Figures, Figure{key, label, v, unit})
}

// Latency is a histogram's summary in milliseconds.
type Latency struct {
	Name   string  `json:"name"`
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"minMs"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Report is the outcome of one run: what the bench measured, what the
// server and Redis say it cost, and what the bench itself used.
type Report struct {
	Scenario        string    `json:"scenario"`
	Target          string    `json:"target"`
	Prefix          string    `json:"prefix"`
	Started         time.Time `json:"started"`
	WallSeconds     float64   `json:"wallSeconds"`
	MeasuredSeconds float64   `json:"measuredSeconds"` // the window throughput and costs refer to
	Interrupted     bool      `json:"interrupted"`

	// Ops counts the scenario's successful units of work (OpName says
	// which), Failed the ones that failed; ErrorPct = Failed/(Ops+Failed).
	OpName   string  `json:"opName"`
	Ops      int64   `json:"ops"`
	Failed   int64   `json:"failed"`
	ErrorPct float64 `json:"errorPct"`

	// Failures are guarantees the run saw broken (a connection closed, an
	// event lost): any one fails Check, whatever -max-error-pct says.
	Failures []string `json:"failures,omitempty"`

	Sections    []*Section       `json:"sections"`
	Latencies   []Latency        `json:"latencies"`
	Errors      map[string]int64 `json:"errors"`
	RedisTop    []NamedStat      `json:"redisTopCommands,omitempty"`
	Notes       []string         `json:"notes,omitempty"`
	Config      Config           `json:"config"`
	GeneratedBy string           `json:"generatedBy"`
}

// section returns the section called name, creating it at the end.
func (r *Report) section(name string) *Section {
	for _, s := range r.Sections {
		if s.Name == name {
			return s
		}
	}
	s := &Section{Name: name}
	r.Sections = append(r.Sections, s)
	return s
}

// Figure returns a figure by section and key, for tests and callers that
// check results.
func (r *Report) Figure(section, key string) (float64, bool) {
	for _, s := range r.Sections {
		if s.Name != section {
			continue
		}
		for _, f := range s.Figures {
			if f.Key == key {
				return f.Value, true
			}
		}
	}
	return 0, false
}

// addLatency adds a histogram's summary unless it recorded nothing.
func (r *Report) addLatency(name string, h *Histogram) {
	s := h.Summarize()
	if s.Count == 0 {
		return
	}
	r.Latencies = append(r.Latencies, Latency{
		Name: name, Count: s.Count, MinMs: ms(s.Min), MeanMs: ms(s.Mean),
		P50Ms: ms(s.P50), P90Ms: ms(s.P90), P99Ms: ms(s.P99), MaxMs: ms(s.Max),
	})
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// fail records a broken guarantee.
func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// setOutcome fills the success and failure counts.
func (r *Report) setOutcome(opName string, ops int64, errs *ErrorCounter) {
	r.OpName, r.Ops, r.Failed = opName, ops, errs.Total()
	r.Errors = errs.Snapshot()
	if n := r.Ops + r.Failed; n > 0 {
		r.ErrorPct = 100 * float64(r.Failed) / float64(n)
	}
}

// Check returns an error when the run should count as failed: nothing
// succeeded, more than maxErrorPct percent failed, or a guarantee was
// broken (Failures).
func (r *Report) Check(maxErrorPct float64) error {
	switch {
	case len(r.Failures) > 0:
		return errors.New(strings.Join(r.Failures, "; "))
	case r.Ops == 0:
		return fmt.Errorf("no %s succeeded", r.OpName)
	case r.ErrorPct > maxErrorPct:
		return fmt.Errorf("error rate %.3g%% exceeds -max-error-pct %g%% (%d of %d failed)",
			r.ErrorPct, maxErrorPct, r.Failed, r.Ops+r.Failed)
	}
	return nil
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// formatValue prints integers without decimals and other values with three
// significant decimals at most.
func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	switch a := math.Abs(v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// Print writes the report as aligned tables.
func (r *Report) Print(w io.Writer) error {
	var b strings.Builder
	status := ""
	if r.Interrupted {
		status = "  (interrupted)"
	}
	fmt.Fprintf(&b, "signald-bench %s   target %s   prefix %s\n", r.Scenario, r.Target, r.Prefix)
	fmt.Fprintf(&b, "wall %.2f s   measured %.2f s%s\n", r.WallSeconds, r.MeasuredSeconds, status)
	fmt.Fprintf(&b, "%s: %d ok, %d failed (%.3g%% errors)\n\n", r.OpName, r.Ops, r.Failed, r.ErrorPct)

	t := table{leftLast: true}
	for _, s := range r.Sections {
		if len(s.Figures) == 0 {
			continue
		}
		t.row(strings.ToUpper(s.Name))
		for _, f := range s.Figures {
			t.row("  "+f.Label, formatValue(f.Value), f.Unit)
		}
		t.row()
	}
	t.write(&b)

	if len(r.Latencies) > 0 {
		t = table{}
		t.row("LATENCY (ms)", "count", "p50", "p90", "p99", "max", "mean")
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
		for _, l := range r.Latencies {
			t.row("  "+l.Name, strconv.FormatUint(l.Count, 10), f(l.P50Ms), f(l.P90Ms), f(l.P99Ms), f(l.MaxMs), f(l.MeanMs))
		}
		t.row()
		t.write(&b)
	}

	t = table{}
	if len(r.Errors) == 0 {
		t.row("ERRORS", "none")
	} else {
		t.row("ERRORS", "count")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			t.row("  "+k, strconv.FormatInt(r.Errors[k], 10))
		}
	}
	t.row()
	t.write(&b)

	if len(r.Failures) > 0 {
		b.WriteString("FAILED CHECKS\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		b.WriteString("\n")
	}

	if len(r.RedisTop) > 0 {
		t = table{}
		t.row("REDIS TOP COMMANDS (measured window)", "calls", "usec")
		for _, c := range r.RedisTop {
			t.row("  "+c.Name, strconv.FormatInt(c.Calls, 10), strconv.FormatInt(c.Usec, 10))
		}
		t.row()
		t.write(&b)
	}
	if len(r.Notes) > 0 {
		b.WriteString("NOTES\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// table aligns rows: the first column left, the others right. (tabwriter
// aligns every column the same way, which reads badly for labels.) Widths
// count runes, so that labels with arrows line up.
type table struct {
	rows     [][]string
	leftLast bool // the last column (units) is left-aligned too
}

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	var width []int
	for _, r := range t.rows {
		if len(r) < 2 { // headings and blank lines do not set widths
			continue
		}
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		for i, c := range r {
			switch {
			case len(r) == 1:
				b.WriteString(c)
			case i == 0:
				b.WriteString(c + strings.Repeat(" ", width[0]-utf8.RuneCountInString(c)))
			case t.leftLast && i == len(r)-1:
				b.WriteString(" " + c)
			default:
				b.WriteString("  " + strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)) + c)
			}
		}
		b.WriteString("\n")
	}
}
