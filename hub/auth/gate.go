package auth

import (
	"container/list"
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
// (closed at once) past max_pending_per_source connections from one
// address still waiting for CONNECT; past max_pending in all, the one that
// has waited longest is closed to make room (a device sends CONNECT within
// milliseconds of connecting, so it is never the oldest: an attacker
// holding idle sockets from many addresses cannot keep devices out, it
// only churns its own sockets). Each gets a deadline of connect_timeout
// for its TLS handshake and CONNECT. Once CONNECT has
// been read (OnConnect), the connection leaves the gate and counts against
// max_connections and max_connections_per_user instead.

// Admit decides whether a freshly accepted connection may wait for its
// CONNECT. It returns the connection to hand to the broker (wrapped, with
// a deadline set), or false, having closed it.
func (h *Hook) Admit(c net.Conn) (net.Conn, bool) {
	src := sourceOf(c.RemoteAddr())
	s := h.set.Load()
	tc := &trackedConn{Conn: c, h: h, src: src}
	tc.pending.Store(true)
	var victim *trackedConn
	h.gateMu.Lock()
	if h.pendingBySrc[src] >= s.maxPendingPerSource {
		h.gateMu.Unlock()
		h.refused[refusedMaxPendingPerSource].Add(1)
		h.gateLogf("MQTT connection refused before CONNECT: too many connections from this address waiting", "max_pending_per_source", s.maxPendingPerSource, "remote", src)
		_ = c.Close()
		return nil, false
	}
	for e := h.pendingList.Front(); e != nil && h.pendingList.Len() >= s.maxPending; {
		next := e.Next()
		if v := e.Value.(*trackedConn); v.pending.CompareAndSwap(true, false) {
			h.removeLocked(v)
			victim = v
			break
		}
		e = next
	}
	h.pendingBySrc[src]++
	tc.elem = h.pendingList.PushBack(tc)
	h.gateMu.Unlock()
	if victim != nil {
		h.refused[refusedMaxPending].Add(1)
		h.gateLogf("MQTT connection closed before CONNECT: max_pending reached, the longest waiting is closed", "max_pending", s.maxPending, "remote", victim.src)
		_ = victim.Conn.Close()
	}
	tc.deadline = time.Now().Add(s.connectTimeout)
	_ = c.SetDeadline(tc.deadline)
	return tc, true
}

// Rearm sets the gate's deadline again on an admitted connection that is
// still waiting for CONNECT (net/http clears deadlines when a WebSocket
// upgrade takes the connection over).
func (h *Hook) Rearm(c net.Conn) {
	if tc := tracked(c); tc != nil && tc.pending.Load() {
		_ = tc.Conn.SetDeadline(tc.deadline)
		tc.set.Store(0) // not what SetDeadline last set: its next call sets exactly
	}
}

// Finished is told how the broker's handling of an admitted connection
// ended, to count connections closed for never sending CONNECT in time.
func (h *Hook) Finished(c net.Conn, err error) {
	tc := tracked(c)
	if tc == nil || err == nil {
		return
	}
	if !tc.sawConnect.Load() && (errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err)) {
		h.connectTimeouts.Add(1)
		h.gateLogf("MQTT connection closed: no CONNECT within connect_timeout", "remote", tc.src)
	}
}

// AcceptFailed counts a listener's failed accept (e.g. out of file
// descriptors), which the listener retries after a pause.
func (h *Hook) AcceptFailed(listener string, err error) {
	h.acceptErrors.Add(1)
	h.lastAcceptErr.Store(time.Now().UnixNano())
	h.gateLogf("MQTT listener cannot accept connections; retrying", "listener", listener, "err", err)
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
	return h.pendingList.Len()
}

// connected moves a connection out of the gate once its CONNECT is read.
func (h *Hook) connected(cl *mqtt.Client) *trackedConn {
	tc := tracked(cl.Net.Conn)
	if tc == nil {
		return nil
	}
	tc.sawConnect.Store(true)
	if tc.pending.CompareAndSwap(true, false) {
		h.leaveGate(tc)
	}
	return tc
}

// leaveGate takes tc out of the gate; the caller has just turned its
// pending flag off.
func (h *Hook) leaveGate(tc *trackedConn) {
	h.gateMu.Lock()
	h.removeLocked(tc)
	h.gateMu.Unlock()
}

func (h *Hook) removeLocked(tc *trackedConn) {
	if tc.elem != nil {
		h.pendingList.Remove(tc.elem)
		tc.elem = nil
	}
	if h.pendingBySrc[tc.src]--; h.pendingBySrc[tc.src] <= 0 {
		delete(h.pendingBySrc, tc.src)
	}
}

// trackedConn is an admitted connection: it leaves the gate when CONNECT
// arrives or, at the latest, when it closes, and gives back its account's
// connection slot when it closes.
type trackedConn struct {
	net.Conn
	h       *Hook
	src     string
	pending atomic.Bool
	// sawConnect: its CONNECT was read (a later timeout is not a
	// connection that never spoke).
	sawConnect atomic.Bool
	deadline   time.Time     // for the TLS handshake and CONNECT
	elem       *list.Element // in Hook.pendingList; guarded by gateMu
	once       sync.Once
	release    atomic.Pointer[func()]
	// set is the deadline last given to the connection by SetDeadline
	// (Unix ns; noDeadline; 0 while not known, e.g. the gate's own).
	set atomic.Int64
}

// deadlineSlack is how much later than asked SetDeadline may leave a
// connection's deadline.
const deadlineSlack = time.Second

// SetDeadline moves the connection's deadline only when it must. mochi
// sets every client's deadline to now + 1.5 x keep-alive after every
// packet it reads (none for a keep-alive of 0), and each change re-arms a
// runtime timer: 3 % of the hub's CPU in the embedded-broker bench's
// profile. A later deadline is given slack of a second and is not moved
// again until a request passes it, so a busy connection re-arms its timer
// about once a second; a dead client is dropped at most a second after
// its keep-alive allows. An earlier deadline (more than the slack) is set
// at once, and so is none unless none is already set.
func (c *trackedConn) SetDeadline(t time.Time) error {
	cur := c.set.Load() // > 0: that deadline; noDeadline; 0: not known
	v := int64(noDeadline)
	switch {
	case t.IsZero():
		if cur == noDeadline {
			return nil
		}
	case cur > 0:
		n := t.UnixNano()
		if n <= cur && cur-n <= int64(deadlineSlack) {
			return nil // already set, at most the slack later
		}
		if n > cur {
			t = t.Add(deadlineSlack)
		}
		v = t.UnixNano()
	default:
		v = t.UnixNano()
	}
	if err := c.Conn.SetDeadline(t); err != nil {
		return err
	}
	c.set.Store(v)
	return nil
}

// noDeadline in trackedConn.set: the connection has no deadline.
const noDeadline = -1

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.pending.CompareAndSwap(true, false) {
			c.h.leaveGate(c)
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
	if _, ok := h.slots.Load(cl); ok {
		return true // this connection holds its slot already
	}
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

// Sockets is how many connections the limits let the broker hold at once
// (max_connections plus max_pending), for checking the open-file limit.
func (h *Hook) Sockets() int {
	s := h.set.Load()
	return int(s.maxConnections) + s.maxPending
}

// gateLogf logs at warn, about once a second: a flood of sockets has its
// own allowance, so it neither fills the log nor hides login failures.
func (h *Hook) gateLogf(msg string, args ...any) {
	if h.gateLog.Allow() {
		h.log.Warn(msg, args...)
	}
}

// ConnectTimeout is the current connect_timeout.
func (h *Hook) ConnectTimeout() time.Duration { return h.set.Load().connectTimeout }
