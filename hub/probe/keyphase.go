package probe

import "time"

// Keyframe-aligned samples.
//
// A sample measures whole keyframe intervals, so it reads from its first
// frame to its second keyframe. A camera that streams continuously and
// lets a new client join wherever the encoder is (the simulator does; so
// do cameras that serve every client from one encoder) is joined mid-GOP:
// with the common 2 s GOP a sample then reads 2 to 4 s of video, 3 s on
// average, and a 1080p sample's cost is its wake-ups, one or two per frame.
//
// The camera's keyframes come at a steady period on its own clock. A
// sample that saw two of them knows that period (from their RTP
// timestamps) and when the last one arrived; the next sample, a minute
// later, sends PLAY just before the next keyframe is due, so it reads one
// GOP and little more. Only the wait before PLAY moves: the connection,
// DESCRIBE and SETUP happen at once, and the wait (at most one period)
// counts neither in time to first frame nor in the probe's duration.
//
// A camera that starts every session with a keyframe needs none of this
// and gets none (its first frame was a keyframe). A wrong guess (a camera
// that changed its GOP, a slow PLAY) costs what a sample costs without
// alignment, and the sample it makes corrects the phase for the next.

// keyPhase is what the supervisor keeps about one camera's keyframes.
type keyPhase struct {
	at     time.Time     // the last keyframe's arrival (wall clock)
	period time.Duration // from one keyframe to the next
	lead   time.Duration // PLAY this long before the keyframe is due
}

// playLeadMargin is sent ahead of the measured PLAY-to-first-frame time:
// the keyframe's arrival jitter and the clocks' drift over a sample
// interval are both well under it. Each millisecond of lead costs a
// millisecond of video read; arriving late costs a whole GOP.
const playLeadMargin = 100 * time.Millisecond

// observe updates the phase from a sample's measurement.
func (p *keyPhase) observe(m measurement) {
	*p = keyPhase{}
	if !m.Up || m.KeyPeriod <= 0 || m.LastKeyAt == 0 || m.PlayToFrame <= 0 {
		return
	}
	// Unaligned, the first frame was a keyframe: the camera starts
	// sessions with one. (Aligned, that is the aim, not the camera.)
	if m.Waited == 0 && m.TTFK-m.TTFF < m.KeyPeriod/time.Duration(max(m.KeyframeInterval, 1))/2 {
		return
	}
	*p = keyPhase{at: time.Unix(0, m.LastKeyAt), period: m.KeyPeriod, lead: m.PlayToFrame + playLeadMargin}
}

// apply asks job j to wait for the next keyframe before PLAY.
func (p keyPhase) apply(j *job) {
	if p.period <= 0 || p.period > j.MaxSampleWindow {
		return
	}
	j.KeyAt, j.KeyPeriod, j.PlayLead = p.at.UnixNano(), p.period, p.lead
}

// playWait is how long a sample waits before PLAY so the first frame
// arrives lead ahead of the next keyframe due after now; 0 without a
// phase or if the wait would be longer than one period.
func (j job) playWait(now time.Time) time.Duration {
	if j.KeyPeriod <= 0 || j.KeyAt == 0 {
		return 0
	}
	key := time.Unix(0, j.KeyAt)
	ready := now.Add(j.PlayLead)
	if ready.After(key) {
		n := ready.Sub(key)/j.KeyPeriod + 1
		key = key.Add(n * j.KeyPeriod)
	}
	w := key.Sub(ready)
	if w < 0 || w > j.KeyPeriod {
		return 0
	}
	return w
}
