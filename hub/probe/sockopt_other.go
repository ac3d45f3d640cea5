//go:build !linux

package probe

import "net"

// setRcvLowat is Linux-only; elsewhere the reader wakes per packet.
func setRcvLowat(*net.TCPConn, int) bool { return false }

type batchReader struct {
	c     *net.TCPConn
	batch bool
}

func newBatchReader(c *net.TCPConn) *batchReader { return &batchReader{c: c} }

func (b *batchReader) Read(p []byte) (int, error) { return b.c.Read(p) }
