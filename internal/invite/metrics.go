package invite

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's: what it did with calls, and how its store and
// outbox fared. Every labelled series it can ever report is created at
// registration, at 0, so that rate() and absent() work before the first
// event.
type metrics struct {
	invitations   *prometheus.CounterVec
	invitees      prometheus.Histogram
	outcomes      *prometheus.CounterVec
	ringToAnswer  *prometheus.HistogramVec
	timeoutsFired prometheus.Counter
	lateness      prometheus.Histogram
	active        prometheus.Gauge
	storeErrors   *prometheus.CounterVec

	announceRetries  prometheus.Counter
	announceTakeover prometheus.Counter
	announceBacklog  prometheus.GaugeFunc
}

// The kinds of call, as metrics label them.
const (
	kindOneToOne = "one_to_one" // invite
	kindGroup    = "group"      // inviteInGroup
)

// storeOps are the op label values of signald_store_errors_total.
var storeOps = []string{"group", "admit", "create", "accept", "reject", "cancel", "modify", "get", "pending", "timeout", "claim", "announced"}

func (m *metrics) register(reg prometheus.Registerer, backlog func() int) error {
	m.invitations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signald_invitations_total",
		Help: "Invitations created here, by kind: one_to_one (invite) or group (inviteInGroup).",
	}, []string{"kind"})
	m.invitees = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "signald_invitation_invitees",
		Help:    "Invitees per invitation created here: how many devices a call rings.",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256},
	})
	m.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signald_invitee_outcomes_total",
		Help: "Invitees whose part in a call ended, by kind of call (one_to_one, group) and outcome: accepted, rejected, cancelled (by the inviter), timeout. Counted by the instance that applied the change, once across instances.",
	}, []string{"kind", "outcome"})
	m.ringToAnswer = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "signald_ring_to_answer_seconds",
		Help:    "From an invitation's creation until an invitee answered it, by answer: accepted or rejected.",
		Buckets: []float64{.25, .5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300},
	}, []string{"outcome"})
	m.timeoutsFired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signald_timeouts_fired_total",
		Help: "Invitations whose deadline passed with invitees still pending, fired by this instance.",
	})
	m.lateness = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "signald_timeout_lateness_seconds",
		Help:    "How long after its deadline a timeout fired here was taken up: claimed, then applied and announced at once.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "signald_active_invitations",
		Help: "Invitations created by this instance minus those ended by it; on several instances sum them.",
	})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signald_store_errors_total",
		Help: "Store calls that failed for a reason other than the request itself (the store was unreachable or failing), by operation.",
	}, []string{"op"})
	m.announceRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signald_announcements_retried_total",
		Help: "Announcements of committed changes tried again because publishing them failed (the event bus's backend was unreachable).",
	})
	m.announceTakeover = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signald_announcements_taken_over_total",
		Help: "Outbox entries claimed because their announcer did not finish within the claim lease (it died, or its backend failed).",
	})
	m.announceBacklog = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signald_announcements_backlog",
		Help: "Invitations whose announcement failed here and waits to be tried again.",
	}, func() float64 { return float64(backlog()) })

	for _, k := range []string{kindOneToOne, kindGroup} {
		m.invitations.WithLabelValues(k)
		for _, o := range []State{StateAccepted, StateRejected, StateCancelled, StateTimeout} {
			m.outcomes.WithLabelValues(k, string(o))
		}
	}
	for _, o := range []State{StateAccepted, StateRejected} {
		m.ringToAnswer.WithLabelValues(string(o))
	}
	for _, op := range storeOps {
		m.storeErrors.WithLabelValues(op)
	}
	for _, c := range []prometheus.Collector{m.invitations, m.invitees, m.outcomes, m.ringToAnswer,
		m.timeoutsFired, m.lateness, m.active, m.storeErrors,
		m.announceRetries, m.announceTakeover, m.announceBacklog} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("invite: register metrics: %w", err)
		}
	}
	return nil
}

func kindOf(inv *Invitation) string {
	if inv.GroupID != "" {
		return kindGroup
	}
	return kindOneToOne
}

// created counts a new invitation.
func (m *metrics) created(inv *Invitation) {
	m.invitations.WithLabelValues(kindOf(inv)).Inc()
	m.invitees.Observe(float64(len(inv.Invitees)))
}

// changed counts the invitees a change applied at now (ms) moved out of
// pending, and how long an answer took.
func (m *metrics) changed(out Outcome, now int64) {
	if len(out.Changed) == 0 {
		return // modify
	}
	inv := out.Invitation
	state := inv.States[out.Changed[0]]
	m.outcomes.WithLabelValues(kindOf(inv), string(state)).Add(float64(len(out.Changed)))
	if state == StateAccepted || state == StateRejected {
		m.ringToAnswer.WithLabelValues(string(state)).Observe(float64(now-inv.CreatedAt) / 1000)
	}
}
