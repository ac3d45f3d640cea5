package auth

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// The gate bounds what a client can hold before it has said who it is.
//
// mochi starts two goroutines and its buffers for every accepted
// connection and then waits for CONNECT with no deadline, outside
// max_connections. A few thousand sockets that never speak took the hub
// from 39 MB to 913 MB and used up its file descriptors (issue 12). So a
// listener asks Admit before handing a connection to mochi: it is refused
// (closed at once) past max_pending connections still waiting for CONNECT,
// or past max_pending_per_source from one address, and it gets a deadline
// of connect_timeout for its TLS handshake and CONNECT. Once CONNECT has
// been read (OnConnect), the connection leaves the gate and counts against
// max_connections and max_connections_per_user instead.

// Admit decides whether a freshly accepted connection may wait for its
// CONNECT. It returns the connection to hand to the broker (wrapped, with
// a deadline set), or false, having closed it.
func (h *Hook) Admit(c net.Conn) (net.Conn, bool) {
	src := sourceOf(c.RemoteAddr())
	s := h.set.Load()
	h.gateMu.Lock()
	reason := -1
	switch {
	case h.pendingConns >= s.maxPending:
		reason = refusedMaxPending
	case h.pendingBySrc[src] >= s.maxPendingPerSource:
		reason = refusedMaxPendingPerSource
	default:
		h.pendingConns++
		h.pendingBySrc[src]++
	}
	h.gateMu.Unlock()
	if reason >= 0 {
		h.refused[reason].Add(1)
		h.logf("MQTT connection refused before CONNECT: too many connections waiting", "reason", refusedReasons[reason], "remote", src)
		_ = c.Close()
		return nil, false
	}
	_ = c.SetDeadline(time.Now().Add(s.connectTimeout))
	tc := &trackedConn{Conn: c, h: h, src: src}
	tc.pending.Store(true)
	return tc, true
}

// Finished is told how the broker's handling of an admitted connection
// ended, to count connections closed for never sending CONNECT in time.
func (h *Hook) Finished(c net.Conn, err error) {
	tc := tracked(c)
	if tc == nil || err == nil {
		return
	}
	if tc.pending.Load() && (errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err)) {
		h.connectTimeouts.Add(1)
		h.logf("MQTT connection closed: no CONNECT within connect_timeout", "remote", tc.src)
	}
}

// AcceptFailed counts a listener's failed accept (e.g. out of file
// descriptors), which the listener retries after a pause.
func (h *Hook) AcceptFailed(listener string, err error) {
	h.acceptErrors.Add(1)
	h.lastAcceptErr.Store(time.Now().UnixNano())
	h.logf("MQTT listener cannot accept connections; retrying", "listener", listener, "err", err)
}

// AcceptHealthy reports whether no listener failed to accept within the
// last few seconds: while one does, the broker is not ready.
func (h *Hook) AcceptHealthy() error {
	if t := h.lastAcceptErr.Load(); t != 0 && time.Since(time.Unix(0, t)) < acceptErrorWindow {
		return errors.New("an MQTT listener failed to accept connections within the last 5s (out of file descriptors?)")
	}
	return nil
}

const acceptErrorWindow = 5 * time.Second

// PendingConnections is how many connections have not sent CONNECT yet.
func (h *Hook) PendingConnections() int {
	h.gateMu.Lock()
	defer h.gateMu.Unlock()
	return h.pendingConns
}

// connected moves a connection out of the gate once its CONNECT is read.
func (h *Hook) connected(cl *mqtt.Client) *trackedConn {
	tc := tracked(cl.Net.Conn)
	if tc != nil && tc.pending.CompareAndSwap(true, false) {
		h.leaveGate(tc.src)
	}
	return tc
}

func (h *Hook) leaveGate(src string) {
	h.gateMu.Lock()
	h.pendingConns--
	if h.pendingBySrc[src]--; h.pendingBySrc[src] <= 0 {
		delete(h.pendingBySrc, src)
	}
	h.gateMu.Unlock()
}

// trackedConn is an admitted connection: it leaves the gate when CONNECT
// arrives or, at the latest, when it closes, and gives back its account's
// connection slot when it closes.
type trackedConn struct {
	net.Conn
	h       *Hook
	src     string
	pending atomic.Bool
	once    sync.Once
	release atomic.Pointer[func()]
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.pending.CompareAndSwap(true, false) {
			c.h.leaveGate(c.src)
		}
		if f := c.release.Load(); f != nil {
			(*f)()
		}
	})
	return err
}

// tracked finds the trackedConn under c (directly, or under TLS).
func tracked(c net.Conn) *trackedConn {
	for range 3 {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func sourceOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// account is the key an account's connections are counted under.
func account(cl *mqtt.Client) string { return string(cl.Properties.Username) }

func remoteAddr(cl *mqtt.Client) net.Addr {
	if cl.Net.Conn != nil {
		return cl.Net.Conn.RemoteAddr()
	}
	return &net.TCPAddr{}
}

// takeSlot counts a connection against its account, or reports that the
// account has max_connections_per_user already.
func (h *Hook) takeSlot(cl *mqtt.Client, max int) bool {
	key := account(cl)
	h.gateMu.Lock()
	if h.perAccount[key] >= max {
		h.gateMu.Unlock()
		return false
	}
	h.perAccount[key]++
	h.gateMu.Unlock()
	var once sync.Once
	rel := func() {
		once.Do(func() {
			h.slots.Delete(cl)
			h.gateMu.Lock()
			if h.perAccount[key]--; h.perAccount[key] <= 0 {
				delete(h.perAccount, key)
			}
			h.gateMu.Unlock()
		})
	}
	h.slots.Store(cl, rel)
	if tc := tracked(cl.Net.Conn); tc != nil {
		tc.release.Store(&rel)
	}
	return true
}

// giveSlot gives back a client's account slot (on disconnect; the tracked
// connection's Close does it too when the broker never gets that far).
func (h *Hook) giveSlot(cl *mqtt.Client) {
	if f, ok := h.slots.LoadAndDelete(cl); ok {
		f.(func())()
	}
}
