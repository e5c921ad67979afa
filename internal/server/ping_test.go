package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// pipeListener hands an http.Server the server ends of in-memory pipes, so
// that a WebSocket runs inside a synctest bubble, on its fake clock.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial returns the client end of a new pipe whose server end l accepts.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestPingsGoOutEveryInterval: a connection is pinged once per
// PingInterval, not once per two (a load balancer's idle timeout is often
// 60 s: pings every 50 s instead of 25 s come close to it). On synctest's
// clock the count is exact.
func TestPingsGoOutEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.LoginDeadline = time.Hour // the client never logs in: it only answers pings
		s := &Server{cfg: cfg, d: Deps{Logger: slog.New(slog.DiscardHandler)}, log: slog.New(slog.DiscardHandler)}
		m, err := newMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		s.m = m

		ln := newPipeListener()
		served := make(chan *conn, 1)
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				t.Error(err)
				return
			}
			c := newConn(s, ws)
			served <- c
			c.run()
		})}
		go func() { _ = hs.Serve(ln) }()

		var pings atomic.Int64
		ctx := context.Background()
		ws, _, err := websocket.Dial(ctx, "ws://pipe/", &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.dial, DisableKeepAlives: true}},
			OnPingReceived: func(context.Context, []byte) bool {
				pings.Add(1)
				return true // answer it
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		readCtx := ws.CloseRead(ctx) // reads, so that pings are answered
		c := <-served

		const intervals = 10
		time.Sleep(intervals*cfg.PingInterval + cfg.PingInterval/2)
		synctest.Wait()
		if got := pings.Load(); got != intervals {
			t.Errorf("%d pings in %d ping intervals, want %d", got, intervals, intervals)
		}

		c.stop(closeShutdown, false)
		<-readCtx.Done()
		_ = ws.CloseNow()
		_ = hs.Close()
		if err := hs.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})
}
