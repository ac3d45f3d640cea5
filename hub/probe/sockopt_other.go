//go:build !linux

package probe

import "net"

// rawReader is Linux-only; elsewhere the sampler reads the connection.
type rawReader struct{ c *net.TCPConn }

func newRawReader(c *net.TCPConn) *rawReader { return &rawReader{c: c} }

func (b *rawReader) Read(p []byte) (int, error) { return b.c.Read(p) }
