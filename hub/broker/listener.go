package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"log/slog"

	"github.com/mochi-mqtt/server/v2/listeners"

	"villagehub/hub/auth"
)

// guardedTCP is the broker's TCP (and TLS) listener, used instead of
// mochi's listeners.TCP for two reasons (issue 12):
//
//   - mochi's accept loop returns on any error, so one EMFILE ("too many
//     open files") left plain MQTT dead for good while the hub still said
//     it was ready. This one pauses (5 ms, doubling to 1 s) and accepts
//     again, and the broker reports not ready while accepts fail.
//   - every accepted connection first passes the auth hook's gate
//     (auth.Hook.Admit): bounded connections waiting for CONNECT, per
//     source and in all, each with a deadline for its TLS handshake and
//     CONNECT. The TLS handshake runs in the connection's own goroutine
//     (on its first read), under that deadline.
type guardedTCP struct {
	id, address string
	tls         *tls.Config
	gate        *auth.Hook
	guard       *attachGuard
	ln          net.Listener
	log         *slog.Logger
	end         atomic.Bool
	closed      chan struct{}
	closeOnce   sync.Once
	mu          sync.Mutex
}

func newGuardedTCP(id, address string, tc *tls.Config, gate *auth.Hook) *guardedTCP {
	return &guardedTCP{id: id, address: address, tls: tc, gate: gate, closed: make(chan struct{})}
}

func (l *guardedTCP) ID() string       { return l.id }
func (l *guardedTCP) Protocol() string { return "tcp" }

func (l *guardedTCP) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *guardedTCP) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

// Accept backoff after a failed accept.
const (
	minAcceptPause = 5 * time.Millisecond
	maxAcceptPause = time.Second
)

func (l *guardedTCP) Serve(establish listeners.EstablishFn) {
	var pause time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.end.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, or a transient network error:
			// wait and try again rather than stop serving.
			pause = min(max(minAcceptPause, 2*pause), maxAcceptPause)
			l.gate.AcceptFailed(l.id, err)
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return
			}
			continue
		}
		pause = 0
		if l.end.Load() {
			conn.Close()
			return
		}
		c, ok := l.gate.Admit(conn)
		if !ok {
			continue
		}
		go func() {
			defer func() { _ = c.Close() }() // c: the TLS connection, once made
			if !l.guard.enter() {
				return // the broker is stopping
			}
			defer l.guard.leave()
			if l.tls != nil {
				c = tls.Server(c, l.tls)
			}
			err := establish(l.id, c)
			l.gate.Finished(c, err)
		}()
	}
}

func (l *guardedTCP) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end.CompareAndSwap(false, true) {
		closeClients(l.id)
	}
	l.closeOnce.Do(func() { close(l.closed) })
	if l.ln != nil {
		_ = l.ln.Close()
	}
}
