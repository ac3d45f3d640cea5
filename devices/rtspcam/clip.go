package rtspcam

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// clipH264 is a 2-second H.264 Annex-B elementary stream: 320x240, 10 fps,
// constrained baseline, an IDR (with SPS and PPS) every 10 frames, no SEI,
// an access unit delimiter before every frame (used here to split frames).
// Despite slices=1, the zerolatency tune's sliced threads cut every frame
// into two slices, which keeps multi-slice frames covered; and the second
// IDR's first slice is small enough that the packetizer aggregates it with
// SPS and PPS into one STAP-A packet, as small keyframes from real cameras
// are. It was made once, with Debian 12's ffmpeg 5.1, by:
//
//	ffmpeg -f lavfi -i "testsrc=size=320x240:rate=10" -frames:v 20 \
//	  -c:v libx264 -profile:v baseline -preset veryfast -tune zerolatency \
//	  -pix_fmt yuv420p \
//	  -x264-params "keyint=10:min-keyint=10:scenecut=0:bframes=0:slices=1" \
//	  -crf 30 -bsf:v "filter_units=remove_types=6,h264_metadata=aud=insert" \
//	  -f h264 clip.h264
//
// Committing the bytes (15 KB) keeps the simulator free of ffmpeg at run time.
//
//go:embed clip.h264
var clipH264 []byte

// clipFPS is the rate the clip was encoded at.
const clipFPS = 10

// rtpPayloadType is the dynamic payload type announced in the SDP.
const rtpPayloadType = 96

// clip is the encoded clip, packetized once and shared read-only by every
// camera: serving 500 cameras costs one copy of the payloads.
type clip struct {
	fps              float64
	sps, pps         []byte
	width, height    int
	frames           []clipFrame
	keyframeInterval int
	vclBytes         int // bytes of slice NAL units (what a probe can count)
}

type clipFrame struct {
	key      bool
	payloads [][]byte // RTP payloads, in order; the last one carries the marker bit
}

var (
	loadedClip     *clip
	loadedClipErr  error
	loadedClipOnce sync.Once
)

func sharedClip() (*clip, error) {
	loadedClipOnce.Do(func() {
		loadedClip, loadedClipErr = parseClip(clipH264, clipFPS)
	})
	return loadedClip, loadedClipErr
}

// parseClip splits an Annex-B stream into access units (at each access unit
// delimiter), makes sure every IDR frame carries SPS and PPS in band (as
// cameras do, so a reader joining late can decode), and packetizes each
// frame with gortsplib's RFC 6184 encoder.
func parseClip(b []byte, fps float64) (*clip, error) {
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("parsing clip: %w", err)
	}

	c := &clip{fps: fps}
	var aus [][][]byte
	var cur [][]byte
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
			if len(cur) > 0 {
				aus = append(aus, cur)
			}
			cur = nil
			continue
		case h264.NALUTypeSPS:
			if c.sps == nil {
				c.sps = n
			}
		case h264.NALUTypePPS:
			if c.pps == nil {
				c.pps = n
			}
		}
		cur = append(cur, n)
	}
	if len(cur) > 0 {
		aus = append(aus, cur)
	}
	if c.sps == nil || c.pps == nil {
		return nil, fmt.Errorf("parsing clip: no SPS/PPS")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		return nil, fmt.Errorf("parsing clip SPS: %w", err)
	}
	c.width, c.height = sps.Width(), sps.Height()

	forma := &format.H264{PayloadTyp: rtpPayloadType, PacketizationMode: 1, SPS: c.sps, PPS: c.pps}
	enc, err := forma.CreateEncoder()
	if err != nil {
		return nil, fmt.Errorf("creating H.264 packetizer: %w", err)
	}

	lastKey := -1
	for i, au := range aus {
		var f clipFrame
		var hasSPS, hasPPS bool
		var slices [][]byte
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeIDR:
				f.key = true
				slices = append(slices, n)
				c.vclBytes += len(n)
			case h264.NALUTypeNonIDR:
				slices = append(slices, n)
				c.vclBytes += len(n)
			case h264.NALUTypeSPS:
				hasSPS = true
			case h264.NALUTypePPS:
				hasPPS = true
			}
		}
		if len(slices) == 0 {
			return nil, fmt.Errorf("parsing clip: access unit %d has no slice", i)
		}
		out := au
		if f.key && (!hasSPS || !hasPPS) {
			out = append([][]byte{c.sps, c.pps}, au...)
		}
		pkts, err := enc.Encode(out)
		if err != nil {
			return nil, fmt.Errorf("packetizing frame %d: %w", i, err)
		}
		for _, p := range pkts {
			f.payloads = append(f.payloads, p.Payload)
		}
		if f.key {
			if lastKey >= 0 {
				c.keyframeInterval = i - lastKey
			}
			lastKey = i
		}
		c.frames = append(c.frames, f)
	}
	if !c.frames[0].key {
		return nil, fmt.Errorf("parsing clip: first frame is not a keyframe")
	}
	if c.keyframeInterval == 0 {
		c.keyframeInterval = len(c.frames)
	}
	return c, nil
}

// ClipStats describes the stream every simulated camera sends, so tests can
// compare what a probe measures against what was actually sent.
type ClipStats struct {
	Codec            string  // "h264"
	Width, Height    int     // pixels
	FPS              float64 // nominal frame rate
	KeyframeInterval int     // frames from one IDR to the next
	Frames           int     // frames in one loop of the clip
	// BitsPerSecond counts slice NAL units only (no SPS/PPS/AUD, no RTP
	// headers): the video payload rate a receiver sees.
	BitsPerSecond float64
}

// Clip returns the figures of the embedded clip.
func Clip() (ClipStats, error) {
	c, err := sharedClip()
	if err != nil {
		return ClipStats{}, err
	}
	return c.stats(), nil
}

// ClipStats returns the figures of the clip this server sends.
func (s *Server) ClipStats() ClipStats { return s.clip.stats() }

func (c *clip) stats() ClipStats {
	return ClipStats{
		Codec:            "h264",
		Width:            c.width,
		Height:           c.height,
		FPS:              c.fps,
		KeyframeInterval: c.keyframeInterval,
		Frames:           len(c.frames),
		BitsPerSecond:    float64(c.vclBytes) * 8 / (float64(len(c.frames)) / c.fps),
	}
}
