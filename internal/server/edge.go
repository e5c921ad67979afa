package server

import (
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the whole HTTP surface on one listener: the public part
// (PublicHandler) and the admin part (AdminHandler), for a server with no
// separate admin listener.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	s.public(r)
	s.admin(r, false)
	return r
}

// PublicHandler serves what clients and load balancers need: the WebSocket
// and the health checks. With a separate admin listener (SIGNALD_ADMIN_ADDR)
// nothing else faces the internet.
func (s *Server) PublicHandler() http.Handler {
	r := chi.NewRouter()
	s.public(r)
	return r
}

// AdminHandler serves what only operators and the app's backend need: the
// metrics, the admin API, the profiler, and the health checks too (a
// scraper may probe them there).
func (s *Server) AdminHandler() http.Handler {
	r := chi.NewRouter()
	s.health(r)
	s.admin(r, true)
	return r
}

func (s *Server) public(r chi.Router) {
	r.Get("/v1/ws", s.serveWS)
	s.health(r)
	if s.d.Demo != nil {
		r.Handle("/demo", s.d.Demo)
		r.Handle("/demo/*", s.d.Demo)
	}
}

func (s *Server) health(r chi.Router) {
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	r.Get("/readyz", s.serveReady)
}

func (s *Server) admin(r chi.Router, withPprof bool) {
	r.Handle("/v1/groups/*", s.adminAPI)
	r.Handle("/v1/users/*", s.adminAPI)
	r.Handle("/metrics", promhttp.HandlerFor(s.d.Gatherer, promhttp.HandlerOpts{}))
	if withPprof {
		r.HandleFunc("/debug/pprof/*", pprof.Index)
		r.HandleFunc("/debug/pprof/profile", pprof.Profile)
		r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}

// originAllowed reports whether a browser's Origin may open a WebSocket:
// none (not a browser), the server's own host, or one matching a pattern of
// SIGNALD_ALLOWED_ORIGINS (path.Match on the host, case-insensitive). It is
// the check websocket.Accept makes; making it here lets the refusal say
// which setting to change, and be logged.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range s.cfg.OriginPatterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// refuseOrigin answers a WebSocket from a browser origin that is not
// allowed, and warns about it once per origin per minute: a web app
// deployed on a new domain fails this way, and its operator must be able
// to see why without flooding the log.
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if s.originLog.allow(origin, time.Now()) {
		s.log.Warn("WebSocket refused: browser origin not allowed; add it to SIGNALD_ALLOWED_ORIGINS",
			"origin", bounded(origin), "host", bounded(r.Host), "client", s.clientAddr(r))
	}
	http.Error(w, "origin not allowed: the server's SIGNALD_ALLOWED_ORIGINS does not list this page's origin", http.StatusForbidden)
}

// onceAMinute remembers when it last allowed each key, for at most
// maxKeys keys (then it forgets them all: a flood of distinct origins is
// logged at most maxKeys times a minute).
type onceAMinute struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const maxOriginKeys = 1000

func (o *onceAMinute) allow(key string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t, ok := o.last[key]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if o.last == nil || len(o.last) >= maxOriginKeys {
		o.last = make(map[string]time.Time)
	}
	o.last[key] = now
	return true
}

// clientAddr is the address of the client behind r, for logs: the TCP
// peer, or, when the peer is a trusted proxy (SIGNALD_TRUSTED_PROXIES),
// the address the proxies say they served: the last one in
// X-Forwarded-For that is not itself a trusted proxy. A client can write
// anything into the header, so only what trusted proxies appended is
// believed.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	hops := r.Header.Values("X-Forwarded-For")
	addrs := make([]string, 0, len(hops))
	for _, h := range hops {
		for a := range strings.SplitSeq(h, ",") {
			addrs = append(addrs, strings.TrimSpace(a))
		}
	}
	client := host
	for i := len(addrs) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(addrs[i])
		if err != nil {
			break // garbage: believe nothing before it
		}
		client = a.Unmap().String()
		if !s.trusted(client) {
			break
		}
	}
	return client
}

func (s *Server) trusted(host string) bool {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
