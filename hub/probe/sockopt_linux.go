package probe

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// rawReader reads a TCP connection for the sampler.
//
// Every blocking-capable system call wakes the Go runtime's sysmon
// thread, which then spins through several short sleeps: with a read per
// packet or two, that was a third of a sample's CPU in perf. The socket is
// non-blocking, so rawReader reads it with a raw read(2), which cannot
// block and so need not tell the scheduler, and waits for readiness
// through the runtime's poller (and the connection's deadlines) only when
// the socket is empty.
//
// (Raising SO_RCVLOWAT to wake once per half frame halved the CPU again,
// but a receiver that does not read also delays its ACKs, and a camera
// whose TCP uses Nagle's algorithm (GStreamer's does) then holds the tail
// of each frame for the 40 ms delayed-ACK timer: the probe changed the
// stream it measured, fps off by 1.5%. So no low-water mark.)
type rawReader struct {
	c  *net.TCPConn
	rc syscall.RawConn
}

func newRawReader(c *net.TCPConn) *rawReader {
	rc, _ := c.SyscallConn()
	return &rawReader{c: c, rc: rc}
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

func (b *rawReader) Read(p []byte) (int, error) {
	if b.rc == nil {
		return b.c.Read(p)
	}
	var n int
	var rerr error
	err := b.rc.Read(func(fd uintptr) bool {
		n, rerr = rawRead(fd, p)
		// EAGAIN: wait for readiness, then call again.
		return !errors.Is(rerr, syscall.EAGAIN) && !errors.Is(rerr, syscall.EINTR)
	})
	if err != nil {
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
