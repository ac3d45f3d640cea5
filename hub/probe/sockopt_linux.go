package probe

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// setRcvLowat sets SO_RCVLOWAT: epoll reports the socket readable only
// once n bytes are buffered, so a reader that waits for readiness before
// reading wakes once per n bytes instead of once per packet.
func setRcvLowat(c *net.TCPConn, n int) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		ok = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n) == nil
	})
	return ok
}

// batchReader reads a TCP connection for the sampler.
//
// Two things make a plain net.Conn Read costly per packet, and profiling
// showed them to be most of a sample's CPU: a Read returns whatever few
// bytes have arrived (SO_RCVLOWAT only gates readiness), so while a camera
// sends it returns about one packet per call; and every blocking-capable
// system call wakes the Go runtime's sysmon thread, which then spins
// through several short sleeps. So batchReader reads with a raw read(2)
// (the socket is non-blocking: it cannot block, so it need not tell the
// scheduler), and once batching is on it first waits for readiness, which
// with a raised low-water mark means "that many bytes are waiting", then
// takes them all in one call.
type batchReader struct {
	c     *net.TCPConn
	rc    syscall.RawConn
	batch bool
}

func newBatchReader(c *net.TCPConn) *batchReader {
	rc, _ := c.SyscallConn()
	return &batchReader{c: c, rc: rc}
}

// rawRead is read(2) on a non-blocking descriptor.
func rawRead(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (b *batchReader) Read(p []byte) (int, error) {
	if b.rc == nil {
		return b.c.Read(p)
	}
	var n int
	var rerr error
	waited := !b.batch
	err := b.rc.Read(func(fd uintptr) bool {
		if !waited {
			waited = true
			return false // wait for readiness (the low-water mark) first
		}
		n, rerr = rawRead(fd, p)
		return !errors.Is(rerr, syscall.EAGAIN) && !errors.Is(rerr, syscall.EINTR)
	})
	if err != nil {
		// A deadline: readiness is edge-triggered, so bytes already
		// waiting below a new edge would never wake us. Take them
		// without waiting before reporting the timeout.
		_ = b.rc.Control(func(fd uintptr) { n, rerr = rawRead(fd, p) })
		if n > 0 {
			return n, nil
		}
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 {
		return 0, errEOF
	}
	return n, nil
}
