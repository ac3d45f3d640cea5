package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	gsdp "github.com/bluenviron/gortsplib/v4/pkg/sdp"
	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/deepch/vdk/format/rtsp/sdp"
	"github.com/deepch/vdk/format/rtspv2"
)

// Samples read RTP themselves instead of through vdk. Profiling a 1080p25
// H.264 camera at 4.9 Mb/s showed vdk's reader costing about 45 ms of CPU
// per sample: it sets a deadline, allocates and copies every RTP packet
// (and again every reassembled NAL unit), and hands each NAL unit over a
// channel, so the Go scheduler wakes two goroutines per packet. This
// sampler reads the TCP-interleaved stream on one goroutine through one
// 64 KiB buffer and parses RTP in place without allocating; on Linux it
// reads with raw read(2) calls (rawReader). The RTSP messages themselves
// are gortsplib's (base, auth, headers, description), so digest
// authentication and SDP parsing are a well-tested library's. See
// docs/rtsp-probe.md ("Cost").

// sampleBufSize holds the largest interleaved frame (4 + 65535 bytes).
const sampleBufSize = 4 + 65535 + 1

// rtspSession is one minimal RTSP client session over TCP.
type rtspSession struct {
	nc      net.Conn
	br      *bufio.Reader
	timeout time.Duration
	cseq    int
	user    string
	pass    string
	sender  *auth.Sender
	session string
}

var errEOF = io.EOF

// errSample carries a reason and a detail out of the sampler.
type errSample struct{ reason, detail string }

func (e *errSample) Error() string { return e.detail }

func (s *rtspSession) do(req *base.Request) (*base.Response, error) {
	for attempt := 0; ; attempt++ {
		s.cseq++
		if req.Header == nil {
			req.Header = base.Header{}
		}
		req.Header["CSeq"] = base.HeaderValue{fmt.Sprint(s.cseq)}
		req.Header["User-Agent"] = base.HeaderValue{"villagehub-probe"}
		if s.session != "" {
			req.Header["Session"] = base.HeaderValue{s.session}
		}
		delete(req.Header, "Authorization")
		if s.sender != nil {
			s.sender.AddAuthorization(req)
		}
		buf, err := req.Marshal()
		if err != nil {
			return nil, err
		}
		_ = s.nc.SetDeadline(time.Now().Add(s.timeout))
		if _, err := s.nc.Write(buf); err != nil {
			return nil, err
		}
		res, err := s.readResponse()
		if err != nil {
			return nil, err
		}
		if res.StatusCode == base.StatusUnauthorized && attempt == 0 && s.sender == nil && (s.user != "" || s.pass != "") {
			se, err := auth.NewSender(res.Header["WWW-Authenticate"], s.user, s.pass)
			if err != nil {
				return nil, liberrors.ErrClientBadStatusCode{Code: res.StatusCode, Message: res.StatusMessage}
			}
			s.sender = se
			continue
		}
		if res.StatusCode != base.StatusOK {
			return nil, liberrors.ErrClientBadStatusCode{Code: res.StatusCode, Message: res.StatusMessage}
		}
		return res, nil
	}
}

// readResponse reads the next RTSP response, skipping interleaved frames
// and requests from the server.
func (s *rtspSession) readResponse() (*base.Response, error) {
	for {
		b, err := s.br.Peek(4)
		if err != nil {
			return nil, err
		}
		switch {
		case b[0] == '$':
			n := int(binary.BigEndian.Uint16(b[2:]))
			if _, err := s.br.Discard(4 + n); err != nil {
				return nil, err
			}
		case b[0] == 'R' && b[1] == 'T':
			var res base.Response
			if err := res.Unmarshal(s.br); err != nil {
				return nil, &errSample{ReasonProtocol, "malformed RTSP response"}
			}
			return &res, nil
		default:
			var req base.Request
			if err := req.Unmarshal(s.br); err != nil {
				return nil, &errSample{ReasonProtocol, "malformed RTSP message"}
			}
		}
	}
}

// teardown tells the camera we are leaving, without waiting for its answer.
func (s *rtspSession) teardown(u *base.URL) {
	s.cseq++
	req := base.Request{Method: base.Teardown, URL: u, Header: base.Header{
		"CSeq": base.HeaderValue{fmt.Sprint(s.cseq)}, "Session": base.HeaderValue{s.session}}}
	if s.sender != nil {
		s.sender.AddAuthorization(&req)
	}
	if buf, err := req.Marshal(); err == nil {
		_ = s.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = s.nc.Write(buf)
	}
}

// sampleStream runs a sample probe: DESCRIBE, SETUP of the first video
// track over TCP, PLAY, then reads video as described in
// docs/rtsp-probe.md.
func sampleStream(ctx context.Context, j job, start time.Time) (m measurement) {
	u, err := base.ParseURL(j.URL)
	if err != nil || u.Host == "" {
		m.fail(ReasonOther, "invalid RTSP URL")
		return m
	}
	host := u.Host
	if u.Port() == "" {
		port := "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	d := net.Dialer{Timeout: j.Timeout}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		m.Reason, m.Detail = classifySampleError(ctx, j, err)
		return m
	}
	tcp, _ := nc.(*net.TCPConn)
	if u.Scheme == "rtsps" {
		tc := tls.Client(nc, &tls.Config{ServerName: u.Hostname()})
		_ = tc.SetDeadline(time.Now().Add(j.Timeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			m.Reason, m.Detail = classifySampleError(ctx, j, err)
			return m
		}
		nc = tc
	}
	defer nc.Close()
	// Cancelling the probe interrupts any read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()

	var src io.Reader = nc
	if tcp != nil && u.Scheme == "rtsp" {
		src = newRawReader(tcp)
	}
	s := &rtspSession{nc: nc, br: bufio.NewReaderSize(src, sampleBufSize), timeout: j.Timeout}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	plain := u.CloneWithoutCredentials()

	res, err := s.do(&base.Request{Method: base.Describe, URL: plain, Header: base.Header{"Accept": base.HeaderValue{"application/sdp"}}})
	if err != nil {
		m.Reason, m.Detail = classifySampleError(ctx, j, err)
		return m
	}
	var sd gsdp.SessionDescription
	var desc description.Session
	if err := sd.Unmarshal(res.Body); err != nil {
		m.fail(ReasonProtocol, "malformed stream description (SDP)")
		return m
	}
	if err := desc.Unmarshal(&sd); err != nil {
		m.fail(ReasonProtocol, "malformed stream description (SDP): "+err.Error())
		return m
	}
	var video *description.Media
	for _, md := range desc.Medias {
		if md.Type == description.MediaTypeVideo && len(md.Formats) > 0 {
			video = md
			break
		}
	}
	if video == nil {
		m.fail(ReasonNoVideo, "the stream has no video track")
		return m
	}
	var kind codecKind
	switch f := video.Formats[0].(type) {
	case *format.H264:
		kind, m.Codec = codecH264, "h264"
		if w, h, ok := h264Resolution(f.SPS); ok {
			m.Width, m.Height = w, h
		}
	case *format.H265:
		kind, m.Codec = codecH265, "h265"
		if w, h, ok := h265Resolution(f.SPS); ok {
			m.Width, m.Height = w, h
		}
	case *format.MJPEG:
		kind, m.Codec = codecMJPEG, "mjpeg"
	default:
		m.Codec = strings.ToLower(f.Codec())
		m.fail(ReasonNoVideo, "codec "+m.Codec+" is not supported by the sampler (H.264, H.265 and MJPEG are)")
		return m
	}
	// a=framerate, as vdk reads it (gortsplib's description drops it).
	if _, medias := sdp.Parse(string(res.Body)); len(medias) > 0 {
		for _, md := range medias {
			if md.AVType == rtspv2.VIDEO {
				m.SDPFPS = md.FPS
				break
			}
		}
	}

	baseURL := findBaseURL(&sd, res, plain)
	trackURL, err := video.URL(baseURL)
	if err != nil {
		m.fail(ReasonProtocol, "invalid track control URL in the SDP")
		return m
	}
	unicast := headers.TransportDeliveryUnicast
	tr := headers.Transport{Protocol: headers.TransportProtocolTCP, Delivery: &unicast, InterleavedIDs: &[2]int{0, 1}}
	res, err = s.do(&base.Request{Method: base.Setup, URL: trackURL, Header: base.Header{"Transport": tr.Marshal()}})
	if err != nil {
		m.Reason, m.Detail = classifySampleError(ctx, j, err)
		return m
	}
	var sess headers.Session
	if err := sess.Unmarshal(res.Header["Session"]); err != nil {
		m.fail(ReasonProtocol, "the camera's SETUP reply has no valid Session")
		return m
	}
	s.session = sess.Session
	rtpCh := 0
	var got headers.Transport
	if err := got.Unmarshal(res.Header["Transport"]); err == nil && got.InterleavedIDs != nil {
		rtpCh = got.InterleavedIDs[0]
	}
	if w := j.playWait(time.Now()); w > 0 {
		t := time.NewTimer(w)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			m.Reason, m.Detail = classifySampleError(ctx, j, ctx.Err())
			return m
		}
		m.Waited = w
		start = start.Add(w)
	}
	played := time.Now()
	if _, err := s.do(&base.Request{Method: base.Play, URL: baseURL, Header: base.Header{"Range": base.HeaderValue{"npt=0.000-"}}}); err != nil {
		m.Reason, m.Detail = classifySampleError(ctx, j, err)
		return m
	}
	defer s.teardown(baseURL)

	r := reader{kind: kind, j: j, start: start, played: played, m: &m, rtpCh: byte(rtpCh)}
	r.read(ctx, s.br, nc)
	return m
}

// findBaseURL is the URL SETUP and PLAY are relative to (RFC 2326 C.1.1),
// as gortsplib's client finds it.
func findBaseURL(sd *gsdp.SessionDescription, res *base.Response, u *base.URL) *base.URL {
	if control, ok := sd.Attribute("control"); ok && control != "*" {
		if ret, err := base.ParseURL(control); err == nil {
			return ret
		}
	}
	if cb, ok := res.Header["Content-Base"]; ok && len(cb) == 1 {
		raw := cb[0]
		if strings.HasPrefix(raw, "/") {
			raw = u.Scheme + "://" + u.Host + raw
		}
		if ret, err := base.ParseURL(raw); err == nil {
			return ret
		}
	}
	return u
}

func h264Resolution(sps []byte) (w, h int, ok bool) {
	if len(sps) <= 4 {
		return 0, 0, false
	}
	var s mch264.SPS
	if err := s.Unmarshal(sps); err != nil || s.Width() <= 0 || s.Height() <= 0 {
		return 0, 0, false
	}
	return s.Width(), s.Height(), true
}

type codecKind int

const (
	codecH264 codecKind = iota + 1
	codecH265
	codecMJPEG
)

// reader measures the video of one sample.
type reader struct {
	kind   codecKind
	j      job
	start  time.Time
	played time.Time // PLAY sent
	m      *measurement
	rtpCh  byte

	frames     []frameRec
	keys       int
	curTS      uint32
	prevMarker bool
	sps        []byte
}

func (r *reader) read(ctx context.Context, br *bufio.Reader, nc net.Conn) {
	var (
		windowEnd, maxEnd time.Time // zero until the first frame
		windowOver        bool
		watchdog          = time.Now().Add(r.j.NoVideoTimeout)
	)
	setDeadline := func() {
		dl := watchdog
		if !windowEnd.IsZero() {
			if !windowOver && windowEnd.Before(dl) {
				dl = windowEnd
			}
			if maxEnd.Before(dl) {
				dl = maxEnd
			}
		}
		_ = nc.SetReadDeadline(dl)
	}
	setDeadline()
	for {
		hdr, err := br.Peek(4)
		if err == nil && hdr[0] != '$' {
			// An RTSP message from the camera (a keep-alive reply, or a
			// request such as ANNOUNCE/GET_PARAMETER): skip it.
			if hdr[0] == 'R' && hdr[1] == 'T' {
				var res base.Response
				err = res.Unmarshal(br)
			} else {
				var req base.Request
				err = req.Unmarshal(br)
			}
			if err != nil && !isTimeout(err) {
				r.m.fail(ReasonProtocol, "the camera's stream is out of sync (neither RTP nor RTSP)")
				return
			}
			if err == nil {
				continue
			}
		}
		if err == nil {
			n := int(binary.BigEndian.Uint16(hdr[2:]))
			var pkt []byte
			pkt, err = br.Peek(4 + n)
			if err == nil {
				now := time.Now()
				opened := len(r.frames)
				key := r.keys
				if hdr[1] == r.rtpCh {
					r.packet(pkt[4:], now)
				}
				_, _ = br.Discard(4 + n)
				if len(r.frames) > opened {
					watchdog = now.Add(r.j.NoVideoTimeout)
					if opened == 0 {
						windowEnd = now.Add(r.j.SampleWindow)
						maxEnd = now.Add(r.j.MaxSampleWindow)
					}
					if !windowOver && (!now.Before(windowEnd) || r.covers(r.j.SampleWindow)) {
						windowOver = true
					}
					setDeadline()
				}
				if windowOver && r.keys > key && r.keys >= 2 {
					break
				}
				continue
			}
		}
		// A read error: a deadline (ours or the probe's), or the end.
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				r.m.fail(ReasonTimeout, "sample did not finish in time")
			} else {
				r.m.fail(ReasonOther, "probe cancelled")
			}
			return
		case isTimeout(err) && !now.Before(watchdog):
			if len(r.frames) == 0 {
				r.m.fail(ReasonNoVideo, fmt.Sprintf("no video frame within %s of PLAY", r.j.NoVideoTimeout))
			} else {
				r.m.fail(ReasonNoVideo, fmt.Sprintf("video stopped for %s after %d frames", r.j.NoVideoTimeout, len(r.frames)))
			}
			return
		case isTimeout(err) && !maxEnd.IsZero() && !now.Before(maxEnd):
			r.finish()
			return
		case isTimeout(err) && !windowEnd.IsZero() && !now.Before(windowEnd):
			windowOver = true
			if r.keys >= 2 {
				r.finish()
				return
			}
			setDeadline()
			continue
		case isTimeout(err):
			setDeadline() // woke early (lowat or scheduling): wait on
			continue
		}
		if windowOver && len(r.frames) >= 2 {
			break // enough video before the end
		}
		r.m.fail(ReasonNoVideo, fmt.Sprintf("the stream ended after %d frames", len(r.frames)))
		return
	}
	r.finish()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// packet accounts one RTP packet. Malformed packets are skipped: every
// index is checked, so no stream can crash the sampler.
func (r *reader) packet(p []byte, now time.Time) {
	if len(p) < 12 || p[0]>>6 != 2 {
		return
	}
	off := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 { // header extension
		if len(p) < off+4 {
			return
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(p[off+2:]))
	}
	end := len(p)
	if p[0]&0x20 != 0 { // padding
		end -= int(p[end-1])
	}
	if off >= end {
		return
	}
	marker := p[1]&0x80 != 0
	ts := binary.BigEndian.Uint32(p[4:])
	payload := p[off:end]

	newFrame := len(r.frames) == 0 || ts != r.curTS
	if r.kind == codecMJPEG && r.prevMarker {
		newFrame = true // RFC 2435: the marker bit ends each frame
	}
	r.prevMarker = marker
	if newFrame {
		r.frames = append(r.frames, frameRec{at: now, ts: ts})
		r.curTS = ts
	}
	f := &r.frames[len(r.frames)-1]
	var n int
	var key bool
	switch r.kind {
	case codecH264:
		n, key = r.h264(payload)
	case codecH265:
		n, key = r.h265(payload)
	case codecMJPEG:
		n, key = r.mjpeg(payload)
	}
	f.bytes += n
	if key && !f.key {
		f.key = true
		r.keys++
	}
}

func (r *reader) h264(p []byte) (n int, key bool) {
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		return r.h264NAL(p)
	case t == 24: // STAP-A
		for q := p[1:]; len(q) >= 2; {
			size := int(binary.BigEndian.Uint16(q))
			if size == 0 || len(q) < 2+size {
				return n, key
			}
			un, uk := r.h264NAL(q[2 : 2+size])
			n, key = n+un, key || uk
			q = q[2+size:]
		}
	case t == 28: // FU-A
		if len(p) < 2 {
			return 0, false
		}
		start, ut := p[1]&0x80 != 0, p[1]&0x1f
		if ut >= 1 && ut <= 5 {
			n = len(p) - 2
			if start {
				n++ // the NAL header the fragments share
			}
			key = start && ut == 5
		}
	}
	return n, key
}

// h264NAL accounts one whole NAL unit: slices count as video payload, an
// SPS that differs from the last one updates the resolution.
func (r *reader) h264NAL(nal []byte) (n int, key bool) {
	switch t := nal[0] & 0x1f; {
	case t >= 1 && t <= 5:
		return len(nal), t == 5
	case t == 7:
		if !bytes.Equal(nal, r.sps) {
			r.sps = append(r.sps[:0], nal...)
			if w, h, ok := h264Resolution(nal); ok {
				r.m.Width, r.m.Height = w, h
			}
		}
	}
	return 0, false
}

func isIRAP(t byte) bool { return t >= 16 && t <= 21 }

func (r *reader) h265(p []byte) (n int, key bool) {
	if len(p) < 2 {
		return 0, false
	}
	switch t := (p[0] >> 1) & 0x3f; {
	case t <= 47:
		return r.h265NAL(p)
	case t == 48: // aggregation packet
		for q := p[2:]; len(q) >= 2; {
			size := int(binary.BigEndian.Uint16(q))
			if size < 2 || len(q) < 2+size {
				return n, key
			}
			un, uk := r.h265NAL(q[2 : 2+size])
			n, key = n+un, key || uk
			q = q[2+size:]
		}
	case t == 49: // fragmentation unit
		if len(p) < 3 {
			return 0, false
		}
		start, ut := p[2]&0x80 != 0, p[2]&0x3f
		if ut <= 31 {
			n = len(p) - 3
			if start {
				n += 2
			}
			key = start && isIRAP(ut)
		}
	}
	return n, key
}

func (r *reader) h265NAL(nal []byte) (n int, key bool) {
	if len(nal) < 2 {
		return 0, false
	}
	switch t := (nal[0] >> 1) & 0x3f; {
	case t <= 31:
		return len(nal), isIRAP(t)
	case t == 33:
		if !bytes.Equal(nal, r.sps) {
			r.sps = append(r.sps[:0], nal...)
			if w, h, ok := h265Resolution(nal); ok {
				r.m.Width, r.m.Height = w, h
			}
		}
	}
	return 0, false
}

// mjpeg accounts an RTP/JPEG packet (RFC 2435). Every JPEG frame stands
// alone, so each is a keyframe; the size comes from the main header of a
// frame's first packet (in units of 8 pixels, so at most 2040x2040).
func (r *reader) mjpeg(p []byte) (n int, key bool) {
	if len(p) < 8 {
		return 0, false
	}
	fragOff := int(p[1])<<16 | int(p[2])<<8 | int(p[3])
	typ, q := p[4], p[5]
	off := 8
	if typ >= 64 && typ <= 127 {
		off += 4 // restart marker header
	}
	if q >= 128 && fragOff == 0 {
		if len(p) < off+4 {
			return 0, false
		}
		off += 4 + int(binary.BigEndian.Uint16(p[off+2:])) // quantization tables
	}
	if off > len(p) {
		return 0, false
	}
	if fragOff == 0 {
		if w, h := int(p[6])*8, int(p[7])*8; w > 0 && h > 0 {
			r.m.Width, r.m.Height = w, h
		}
		key = true
	}
	return len(p) - off, key
}

// finish turns the frames seen into the figures.
func (r *reader) finish() {
	m, frames := r.m, r.frames
	if len(frames) == 0 {
		m.fail(ReasonNoVideo, fmt.Sprintf("no video frame within %s of PLAY", r.j.NoVideoTimeout))
		return
	}
	m.Up = true
	m.TTFF = frames[0].at.Sub(r.start)
	var keyIdx []int
	for i, f := range frames {
		if f.key {
			keyIdx = append(keyIdx, i)
		}
	}
	if len(keyIdx) > 0 {
		m.TTFK = frames[keyIdx[0]].at.Sub(r.start)
	}
	// Measure over whole keyframe intervals when possible: a window cut
	// anywhere else over- or under-counts the large keyframes.
	from, to := 0, len(frames)-1
	m.PlayToFrame = frames[0].at.Sub(r.played)
	if len(keyIdx) >= 2 {
		from, to = keyIdx[0], keyIdx[len(keyIdx)-1]
		last, prev := frames[keyIdx[len(keyIdx)-1]], frames[keyIdx[len(keyIdx)-2]]
		m.KeyframeInterval = keyIdx[len(keyIdx)-1] - keyIdx[len(keyIdx)-2]
		m.LastKeyAt = last.at.UnixNano()
		m.KeyPeriod = rtpSpan(prev.ts, last.ts)
	}
	if span := frames[to].at.Sub(frames[from].at).Seconds(); to > from && span > 0 {
		bytes := 0
		if len(keyIdx) >= 2 {
			for _, f := range frames[from:to] {
				bytes += f.bytes
			}
		} else {
			for _, f := range frames[from+1 : to+1] {
				bytes += f.bytes
			}
		}
		gop := 1
		if len(keyIdx) >= 2 {
			gop = keyIdx[1] - keyIdx[0]
		}
		m.FPS = frameRate(frames[from:to+1], gop)
		// bytes are those of to-from frames: over the time those frames
		// cover at the measured frame rate, so the bitrate follows the same
		// clock as fps (the camera's while delivery keeps up) and a busy
		// receiver's late first or last frame does not skew it.
		m.BitrateBps = float64(bytes) * 8 / span
		if m.FPS > 0 {
			m.BitrateBps = float64(bytes) * 8 * m.FPS / float64(to-from)
		}
	}
}

// videoClock is the RTP clock rate of every video payload format the
// sampler reads.
const videoClock = 90000

// covers says whether the frames seen span w of video on the camera's
// clock, counting the last frame's half of a frame interval: a keyframe
// due exactly w after the first frame then ends the window even when it
// arrives a little early, instead of the sample waiting a whole GOP more.
func (r *reader) covers(w time.Duration) bool {
	n := len(r.frames)
	if n < 2 {
		return false
	}
	last := r.frames[n-1].ts
	return rtpSpan(r.frames[0].ts, last)+rtpSpan(r.frames[n-2].ts, last)/2 >= w
}

// rtpSpan is the video time from RTP timestamp a to b (b later, modulo
// the 32-bit wrap).
func rtpSpan(a, b uint32) time.Duration {
	return time.Duration(b-a) * time.Second / videoClock
}

// frameRate is the stream's frame rate over frames: from the camera's own
// RTP timestamps (the capture clock, as ffprobe reads it), which a busy
// receiver cannot skew, unless the frames arrived markedly slower than
// their timestamps say (a stalled camera or a congested link: what was
// delivered is what the village sees), or the timestamps are unusable.
func frameRate(frames []frameRec, gop int) float64 {
	arrival := fitFPS(frames, gop)
	n := len(frames) - 1
	if n < 1 {
		return arrival
	}
	span := frames[n].ts - frames[0].ts // uint32: wraps correctly
	if span == 0 || span > 1<<31 {
		return arrival // not increasing: a camera that stamps nothing useful
	}
	media := float64(n) * videoClock / float64(span)
	if arrival < 0.9*media || arrival > 1.5*media {
		return arrival
	}
	return media
}

// fitFPS is the frame rate of frames (at least two, in arrival order,
// from a keyframe to a keyframe when gop > 1, gop being the frames from
// one keyframe to the next; gop 1 for all-intra streams or when
// keyframes are unknown).
//
// Counting only the first and last arrival puts both ends' jitter into
// the result (40 ms at either end of a 2 s window is 2%). A least-squares
// line through all arrivals averages random jitter but not a pattern that
// repeats with every keyframe interval (a large keyframe arriving late and
// the frames after it bunched up). So fitFPS averages the arrival
// differences of all pairs of frames k apart, k a whole number of keyframe
// intervals close to half the span: each pair is in the same phase of
// such a pattern, and random jitter is averaged over the pairs.
func fitFPS(frames []frameRec, gop int) float64 {
	n := len(frames) - 1
	if n < 1 {
		return 0
	}
	gop = max(gop, 1)
	k := gop * max(1, int(math.Round(float64(n)/2/float64(gop))))
	k = min(k, n)
	var sum time.Duration
	for i := 0; i+k <= n; i++ {
		sum += frames[i+k].at.Sub(frames[i].at)
	}
	if sum <= 0 {
		return 0
	}
	return float64(k) / (sum.Seconds() / float64(n-k+1))
}

// classifySampleError maps the sampler's errors onto a reason.
func classifySampleError(ctx context.Context, j job, err error) (reason, detail string) {
	var es *errSample
	var bad liberrors.ErrClientBadStatusCode
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &es):
		return es.reason, es.detail
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ReasonTimeout, fmt.Sprintf("no complete RTSP handshake within %s", j.Timeout)
	case ctx.Err() != nil:
		return ReasonOther, "probe cancelled"
	case errors.As(err, &bad):
		r := statusReason(int(bad.Code))
		if r == ReasonUnauthorized {
			return r, fmt.Sprintf("credentials missing or rejected (%d)", bad.Code)
		}
		return r, fmt.Sprintf("camera replied %d %s", bad.Code, bad.Message)
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused, "connection refused"
	case errors.As(err, &dnsErr):
		return ReasonOther, "host not found"
	case isTimeout(err):
		return ReasonTimeout, fmt.Sprintf("no answer within %s", j.Timeout)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ReasonTimeout, "host unreachable"
	case isConnDrop(err):
		// gortsplib-based servers close the connection after a 401 to
		// wrong credentials; the reply was read, so this is a drop during
		// SETUP/PLAY or before any answer.
		return ReasonProtocol, "the camera dropped the connection during the handshake"
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return ReasonOther, "TLS certificate not trusted"
	}
	return ReasonOther, "RTSP handshake failed"
}
