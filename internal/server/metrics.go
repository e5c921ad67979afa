package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/signald/signald/internal/protocol"
)

type metrics struct {
	wsOpen     prometheus.Gauge
	logins     *prometheus.CounterVec
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	closed     *prometheus.CounterVec
	slowClosed prometheus.Counter
	catchUps   *prometheus.CounterVec
	gapCatchUp prometheus.Histogram
	refused    *prometheus.CounterVec
	resumes    *prometheus.CounterVec
	replayed   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		wsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signald_websocket_connections",
			Help: "Open WebSocket connections, logged in or not.",
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_logins_total",
			Help: "Login attempts by result code (0 is success).",
		}, []string{"code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_requests_total",
			Help: "Requests answered, by op and reply code.",
		}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signald_request_duration_seconds",
			Help:    "Time from reading a request to queueing its reply, by op.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_connections_closed_by_server_total",
			Help: closedHelp(),
		}, []string{"reason"}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signald_slow_clients_closed_total",
			Help: "Connections closed because their client did not read: the send queue was full, or a frame was not taken within the write timeout.",
		}),
	}
	m.catchUps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signald_catchups_total",
		Help: "Connections brought up to date from their user's kept events after missing some (a Pub/Sub gap), by result: caught_up, resume (missed events no longer kept: closed 1012 to resume), failed (the bus failed; tried again).",
	}, []string{"result"})
	m.gapCatchUp = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "signald_gap_catchup_seconds",
		Help:    "From a restored Pub/Sub subscription until every connection of its users was checked and caught up.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signald_connections_refused_total",
		Help: "Connections answered 503, by reason: connections (the server was at SIGNALD_MAX_CONNECTIONS), unauthenticated (at SIGNALD_MAX_UNAUTHENTICATED WebSockets not logged in).",
	}, []string{"reason"})
	m.resumes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signald_resumes_total",
		Help: "Logins with a lastEventID, by result: recovered (every event after it was replayed), not_recovered (no longer kept, or unknown: the user was rung again for its pending invitations instead).",
	}, []string{"result"})
	m.replayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signald_events_replayed_total",
		Help: "Kept events sent again to a client that resumed.",
	})
	for _, r := range []string{"recovered", "not_recovered"} {
		m.resumes.WithLabelValues(r)
	}
	m.logins.WithLabelValues("0")
	for op := range handlers {
		m.requests.WithLabelValues(op, "0")
		m.latency.WithLabelValues(op)
	}
	m.requests.WithLabelValues(protocol.OpLogin, "0")
	m.latency.WithLabelValues(protocol.OpLogin)
	for _, r := range closeReasons {
		m.closed.WithLabelValues(r.label)
	}
	for _, r := range []string{"connections", "unauthenticated"} {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"caught_up", "resume", "failed"} {
		m.catchUps.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.wsOpen, m.logins, m.requests, m.latency, m.closed, m.slowClosed, m.catchUps, m.gapCatchUp, m.refused, m.resumes, m.replayed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// resumed counts a login with a lastEventID, and the events it replays.
func (m *metrics) resumed(recovered bool, events int) {
	if recovered {
		m.resumes.WithLabelValues("recovered").Inc()
		m.replayed.Add(float64(events))
	} else {
		m.resumes.WithLabelValues("not_recovered").Inc()
	}
}
