package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// maxDetails bounds the examples kept of each count.
const maxDetails = 20

// Report is the outcome of a run: the oracle's counts with examples, and
// what the run did.
type Report struct {
	Lost         int // (device, event) pairs promised and never received
	Duplicated   int // events kept twice, or repeated or out of order on one connection
	Inconsistent int // final states disagreeing with replies or events, and other contract breaches
	Unrecovered  int // devices ever answered recovered:false (their events are not counted)
	// Excused counts expected (device, event) pairs not required because
	// the device's own request may have caused the event without the
	// device learning so (see Check). Informational.
	Excused int

	LostDetails, DuplicatedDetails, InconsistentDetails, UnrecoveredDetails []string

	Stats  Stats
	Faults []FaultRecord
	// Logs holds the tail of every process's output when the run failed,
	// or always with Config.Verbose.
	Logs string

	lostItems []lostItem // what LostDetails are about, for diagnoseLosses
}

// Stats describes what a run did.
type Stats struct {
	Seed                      uint64
	Instances, Users, Devices int
	Load, Total               time.Duration
	Invitations               int                    // checked
	States                    map[string]int         // final invitee states
	Requests                  map[string]map[int]int // op → code → count (CodeNoReply: no reply)
	Events                    int                    // event frames received
	Logins, Resumes           int                    // successful; resumes are logins with lastEventID
	FailedLogins              int
	FaultCounts               map[FaultKind]int
}

// OK reports whether nothing was lost, duplicated, inconsistent or
// unrecovered.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Inconsistent == 0 && r.Unrecovered == 0
}

// Line is the report's last line: "lost=N duplicated=N inconsistent=N".
func (r *Report) Line() string {
	return fmt.Sprintf("lost=%d duplicated=%d inconsistent=%d", r.Lost, r.Duplicated, r.Inconsistent)
}

func addDetail(list *[]string, s string) {
	if len(*list) < maxDetails {
		*list = append(*list, s)
	}
}

func (r *Report) addLost(s string)         { addDetail(&r.LostDetails, s) }
func (r *Report) addDuplicated(s string)   { addDetail(&r.DuplicatedDetails, s) }
func (r *Report) addInconsistent(s string) { addDetail(&r.InconsistentDetails, s) }
func (r *Report) addUnrecovered(s string)  { addDetail(&r.UnrecoveredDetails, s) }

// Print writes the report for people, ending with Line.
func (r *Report) Print(w io.Writer) error {
	var b strings.Builder
	s := r.Stats
	fmt.Fprintf(&b, "signald chaos run: seed %d, %d instances, %d users, %d devices; load %s, whole run %s\n",
		s.Seed, s.Instances, s.Users, s.Devices, s.Load.Round(time.Second), s.Total.Round(time.Second))
	fmt.Fprintf(&b, "faults: %s\n", faultSummary(s.FaultCounts))
	for _, f := range r.Faults {
		fmt.Fprintf(&b, "  %s %-13s %-26s took %s\n", at(f.At), f.Kind, f.Target, f.Took.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "invitations checked: %d; final invitee states: %s\n", s.Invitations, countSummary(s.States))
	fmt.Fprintf(&b, "requests (op: code=count, -1 = no reply):\n")
	ops := make([]string, 0, len(s.Requests))
	for op := range s.Requests {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		codes := make([]int, 0, len(s.Requests[op]))
		for c := range s.Requests[op] {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		var parts []string
		for _, c := range codes {
			parts = append(parts, fmt.Sprintf("%d=%d", c, s.Requests[op][c]))
		}
		fmt.Fprintf(&b, "  %-17s %s\n", op, strings.Join(parts, " "))
	}
	fmt.Fprintf(&b, "events received: %d; logins: %d (%d resumes), failed logins: %d\n", s.Events, s.Logins, s.Resumes, s.FailedLogins)
	fmt.Fprintf(&b, "unrecovered devices: %d; expected events excused (own request, outcome unknown, resumed past): %d\n", r.Unrecovered, r.Excused)
	section := func(title string, n int, details []string) {
		if n == 0 {
			return
		}
		fmt.Fprintf(&b, "%s: %d", title, n)
		if n > len(details) {
			fmt.Fprintf(&b, " (first %d)", len(details))
		}
		b.WriteString("\n")
		for _, d := range details {
			fmt.Fprintf(&b, "  - %s\n", d)
		}
	}
	section("LOST", r.Lost, r.LostDetails)
	section("DUPLICATED", r.Duplicated, r.DuplicatedDetails)
	section("INCONSISTENT", r.Inconsistent, r.InconsistentDetails)
	section("UNRECOVERED", r.Unrecovered, r.UnrecoveredDetails)
	if r.Logs != "" {
		b.WriteString(r.Logs)
	}
	b.WriteString(r.Line())
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func faultSummary(m map[FaultKind]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range AllFaults {
		if n := m[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	return strings.Join(parts, " ")
}

func countSummary(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
