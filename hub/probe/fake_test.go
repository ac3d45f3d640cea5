package probe

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCam is a deliberately misbehaving RTSP server for the cases a real
// server will not produce: silence, 500s, malformed RTP, broken SDP.
// Each accepted connection runs behave.
type fakeCam struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{}
}

// hold waits for d or until the fake is closed.
func (f *fakeCam) hold(d time.Duration) {
	select {
	case <-f.done:
	case <-time.After(d):
	}
}

func startFake(t testing.TB, behave func(f *fakeCam, c net.Conn, rw *bufio.ReadWriter)) *fakeCam {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting fake RTSP server: %v", err)
	}
	f := &fakeCam{ln: ln, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			if f.closed {
				f.mu.Unlock()
				c.Close()
				return
			}
			f.conns[c] = struct{}{}
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer func() {
					f.mu.Lock()
					delete(f.conns, c)
					f.mu.Unlock()
					c.Close()
				}()
				behave(f, c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)))
			}()
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *fakeCam) addr() string { return f.ln.Addr().String() }

func (f *fakeCam) url(path string) string { return "rtsp://" + f.addr() + "/" + path }

func (f *fakeCam) close() {
	f.mu.Lock()
	if !f.closed {
		close(f.done)
	}
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}

// rtspRequest is the little of a request the fake needs.
type rtspRequest struct {
	method, uri string
	cseq        string
}

func readRequest(rw *bufio.ReadWriter) (rtspRequest, error) {
	var r rtspRequest
	first := true
	for {
		line, err := rw.ReadString('\n')
		if err != nil {
			return r, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if first {
				continue
			}
			return r, nil
		}
		if first {
			parts := strings.SplitN(line, " ", 3)
			if len(parts) >= 2 {
				r.method, r.uri = parts[0], parts[1]
			}
			first = false
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "CSeq") {
			r.cseq = strings.TrimSpace(v)
		}
	}
}

func reply(rw *bufio.ReadWriter, status string, cseq string, headers []string, body string) error {
	fmt.Fprintf(rw, "RTSP/1.0 %s\r\nCSeq: %s\r\n", status, cseq)
	for _, h := range headers {
		fmt.Fprintf(rw, "%s\r\n", h)
	}
	if body != "" {
		fmt.Fprintf(rw, "Content-Length: %d\r\n", len(body))
	}
	fmt.Fprintf(rw, "\r\n%s", body)
	return rw.Flush()
}

// The SPS/PPS of devices/rtspcam's clip (320x240 constrained baseline).
const clipSprop = "Z0LAC9oFB+wEQAAAAwBAAAAFI8UKqA==,aM4Ecg=="

func fakeSDP(addr, sprop string) string {
	return "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1;sprop-parameter-sets=" + sprop + "\r\n" +
		"a=control:trackID=0\r\n"
}

// handshake answers OPTIONS, DESCRIBE, SETUP and PLAY like a camera, then
// returns so the caller can stream; later requests (TEARDOWN) are read and
// ignored in the background.
func handshake(f *fakeCam, rw *bufio.ReadWriter, sprop string) bool {
	for {
		req, err := readRequest(rw)
		if err != nil {
			return false
		}
		switch req.method {
		case "OPTIONS":
			err = reply(rw, "200 OK", req.cseq, []string{"Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"}, "")
		case "DESCRIBE":
			err = reply(rw, "200 OK", req.cseq, []string{
				"Content-Base: rtsp://" + f.addr() + "/fake/",
				"Content-Type: application/sdp",
			}, fakeSDP(f.addr(), sprop))
		case "SETUP":
			err = reply(rw, "200 OK", req.cseq, []string{
				"Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
				"Session: 12345678;timeout=60",
			}, "")
		case "PLAY":
			if err := reply(rw, "200 OK", req.cseq, []string{"Session: 12345678"}, ""); err != nil {
				return false
			}
			go func() {
				for {
					if _, err := readRequest(rw); err != nil {
						return
					}
				}
			}()
			return true
		default:
			err = reply(rw, "405 Method Not Allowed", req.cseq, nil, "")
		}
		if err != nil {
			return false
		}
	}
}

// rtpFrame builds one RTP packet over interleaved channel 0.
func rtpFrame(seq uint16, ts uint32, marker, padding bool, payload []byte) []byte {
	b := make([]byte, 4+12+len(payload))
	b[0] = '$'
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:], uint16(12+len(payload)))
	b[4] = 0x80
	if padding {
		b[4] |= 0x20
	}
	b[5] = 96
	if marker {
		b[5] |= 0x80
	}
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint32(b[8:], ts)
	binary.BigEndian.PutUint32(b[12:], 0x1234abcd)
	copy(b[16:], payload)
	return b
}

// Malformed RTP payloads that make vdk v0.0.27 panic in its reader goroutine.
var (
	// STAP-A whose only aggregation unit has size 0: vdk reads the unit's
	// NAL header past the end of the packet.
	payloadZeroSizeSTAPA = []byte{0x18, 0x00, 0x00}
	// An SPS NAL unit of 2 bytes: vdk reads sps[1..3] without a length check.
	payloadTwoByteSPS = []byte{0x67, 0x42}
	// 8 payload bytes claiming 12 bytes of RTP padding: vdk checks the
	// padding against an offset that ignores the 4-byte interleave header.
	payloadOversizedPadding = []byte{0x41, 0x9a, 0, 0, 0, 0, 0, 12}
)

// malformedBehavior sends the bad packet first (a handshake waits for the
// first packet, so vdk's demuxer meets it), then a few good frames.
func malformedBehavior(bad []byte, padding bool) func(f *fakeCam, c net.Conn, rw *bufio.ReadWriter) {
	return func(f *fakeCam, c net.Conn, rw *bufio.ReadWriter) {
		if !handshake(f, rw, clipSprop) {
			return
		}
		var seq uint16 = 1
		ts := uint32(90000)
		c.Write(rtpFrame(seq, ts, true, padding, bad))
		for i := 0; i < 3; i++ {
			seq++
			ts += 9000
			c.Write(rtpFrame(seq, ts, true, false, []byte{0x41, 0x9a, 0x02, 0x03, 0x04}))
			f.hold(100 * time.Millisecond)
		}
		// Hold the connection open like a camera would.
		f.hold(10 * time.Second)
	}
}

// silentBehavior accepts TCP and never answers.
func silentBehavior(f *fakeCam, c net.Conn, rw *bufio.ReadWriter) {
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// status500Behavior answers every request with 500.
func status500Behavior(f *fakeCam, c net.Conn, rw *bufio.ReadWriter) {
	for {
		req, err := readRequest(rw)
		if err != nil {
			return
		}
		if err := reply(rw, "500 Internal Server Error", req.cseq, nil, ""); err != nil {
			return
		}
	}
}

// stapKeyframeBehavior streams 10 fps video whose keyframes (every 5
// frames) come as one STAP-A packet holding SPS, PPS and a small IDR slice,
// as many cameras send small keyframes.
func stapKeyframeBehavior(f *fakeCam, c net.Conn, rw *bufio.ReadWriter) {
	if !handshake(f, rw, clipSprop) {
		return
	}
	sps := []byte{0x67, 0x42, 0xc0, 0x0b, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x05, 0x23, 0xc5, 0x0a, 0xa8}
	pps := []byte{0x68, 0xce, 0x04, 0x72}
	idr := append([]byte{0x65, 0x88, 0x84}, make([]byte, 300)...)
	stap := []byte{0x18}
	for _, n := range [][]byte{sps, pps, idr} {
		stap = binary.BigEndian.AppendUint16(stap, uint16(len(n)))
		stap = append(stap, n...)
	}
	pframe := append([]byte{0x41, 0x9a}, make([]byte, 100)...)
	var seq uint16 = 1
	ts := uint32(1000)
	next := time.Now()
	for i := 0; ; i++ {
		p := pframe
		if i%5 == 0 {
			p = stap
		}
		if _, err := c.Write(rtpFrame(seq, ts, true, false, p)); err != nil {
			return
		}
		seq++
		ts += 9000
		next = next.Add(100 * time.Millisecond)
		select {
		case <-f.done:
			return
		case <-time.After(time.Until(next)):
		}
	}
}

// spsFloodBehavior sends 300 in-band SPS units alternating between two
// valid variants, each a "codec change" for vdk, and then nothing.
func spsFloodBehavior(f *fakeCam, c net.Conn, rw *bufio.ReadWriter) {
	if !handshake(f, rw, clipSprop) {
		return
	}
	a := []byte{0x67, 0x42, 0xc0, 0x0b, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x05, 0x23, 0xc5, 0x0a, 0xa8}
	b := append([]byte(nil), a...)
	b[3] = 0x0c // level 1.2 instead of 1.1: still a valid SPS
	for i := 0; i < 300; i++ {
		p := a
		if i%2 == 1 {
			p = b
		}
		if _, err := c.Write(rtpFrame(uint16(i+1), 9000, false, false, p)); err != nil {
			return
		}
	}
	f.hold(10 * time.Second)
}

// shortSpropBehavior announces a 2-byte SPS in the SDP, which vdk parses
// inside Dial on the caller's goroutine.
func shortSpropBehavior(f *fakeCam, c net.Conn, rw *bufio.ReadWriter) {
	handshake(f, rw, "Z0I=,aM4Ecg==")
	f.hold(5 * time.Second)
}
