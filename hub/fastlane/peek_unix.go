//go:build unix

package fastlane

import (
	"errors"
	"net"
	"syscall"
	"time"
)

var errNoPeek = errors.New("fastlane: cannot peek at this connection")

// peek reads the connection's first bytes into buf without consuming them
// (recv with MSG_PEEK through Go's poller), waiting for more while
// more(buf[:n]) says so, at most until timeout. A connection it cannot
// peek at (not a socket) returns errNoPeek.
func peek(c net.Conn, buf []byte, timeout time.Duration, more func([]byte) bool) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errNoPeek
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, errNoPeek
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	defer c.SetReadDeadline(time.Time{})
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		m, _, e := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			return false // nothing yet: wait for the poller
		case e != nil:
			rerr = e
			return true
		case m == 0:
			rerr = errors.New("closed before sending anything")
			return true
		}
		n = m
		// Partial data already seen wakes the (edge-triggered) poller
		// only when more arrives, so waiting for it here is right.
		return m == len(buf) || !more(buf[:m])
	})
	if err != nil && n > 0 {
		return n, nil // timed out with a prefix: decide on what came
	}
	if err != nil {
		return 0, err
	}
	return n, rerr
}
