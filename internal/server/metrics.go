package server

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	wsOpen     prometheus.Gauge
	logins     *prometheus.CounterVec
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	closed     *prometheus.CounterVec
	slowClosed prometheus.Counter
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
			Help: "Connections the server closed, by reason: policy (login deadline, failed login, too slow), restart.",
		}, []string{"reason"}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signald_slow_clients_closed_total",
			Help: "Connections closed because their send queue was full.",
		}),
	}
	for _, c := range []prometheus.Collector{m.wsOpen, m.logins, m.requests, m.latency, m.closed, m.slowClosed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
