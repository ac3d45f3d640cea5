package probe

import (
	"encoding/hex"
	"testing"

	"github.com/deepch/vdk/codec/h265parser"
)

// SPS NAL units written by Debian 12's ffmpeg 5.1 with libx265 3.5:
//
//	ffmpeg -f lavfi -i testsrc=size=WxH:rate=5 -frames:v 1 -c:v libx265 \
//	  [-x265-params min-cu-size=16] -f hevc out.hevc
//
// The picture is coded in whole minimum coding blocks, with a conformance
// window cropping the excess: with 16x16 blocks (as camera encoders and
// GStreamer's x265enc use) 1080 rows are coded as 1088; with x265's
// default 8x8, 478 rows are coded as 480, while 1080 and 720 need no crop.
var x265SPS = []struct {
	size          string
	hex           string
	width, height int
	vdkHeight     int // what vdk v0.0.27 reports (the coded height)
}{
	{"1920x1080 min-cu-size=16", "4201010408000003009e08000003000078900078100220f89cb2b327265780b7020200040000030004000003001420", 1920, 1080, 1088},
	{"1920x1080", "4201010408000003009e0800000300007890007810021cb2cacd24995e02dc080800100000030010000003005080", 1920, 1080, 1080},
	{"1280x720", "4201010408000003009e0800000300005d9000501005a2cb2b349265780b702020004000000300400000030142", 1280, 720, 720},
	{"848x478", "4201010408000003009e0800000300005a9000d4403c3ef2cacd24995e02dc080800100000030010000003005080", 848, 478, 480},
}

func TestH265ResolutionAppliesConformanceWindow(t *testing.T) {
	for _, c := range x265SPS {
		sps, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		w, h, ok := h265Resolution(sps)
		if !ok || w != c.width || h != c.height {
			t.Errorf("%s: h265Resolution = %dx%d ok=%v, want %dx%d", c.size, w, h, ok, c.width, c.height)
		}
		// vdk-findings.md finding 13: vdk drops the conformance window.
		info, err := h265parser.ParseSPS(sps)
		if err != nil {
			t.Fatalf("%s: vdk ParseSPS: %v", c.size, err)
		}
		if int(info.Width) != c.width || int(info.Height) != c.vdkHeight {
			t.Errorf("%s: vdk reports %dx%d; finding 13 expects %dx%d (if vdk now crops, update the finding)",
				c.size, info.Width, info.Height, c.width, c.vdkHeight)
		}
	}
	for _, bad := range [][]byte{nil, {0x42, 0x01}, {0x42, 0x01, 0x01, 0x04, 0x08}, {0x40, 0x01, 0xff, 0xff, 0xff, 0xff}} {
		if w, h, ok := h265Resolution(bad); ok {
			t.Errorf("h265Resolution(%x) = %dx%d, want not ok", bad, w, h)
		}
	}
}
