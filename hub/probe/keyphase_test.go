package probe

import (
	"testing"
	"time"

	"villagehub/devices/rtspcam"
)

// playWait aims the first frame lead ahead of the next keyframe due, never
// waits more than a period, and does nothing without a phase.
func TestPlayWait(t *testing.T) {
	key := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	j := job{KeyAt: key.UnixNano(), KeyPeriod: 2 * time.Second, PlayLead: 130 * time.Millisecond}
	for _, c := range []struct {
		after time.Duration // now, after the known keyframe
		want  time.Duration
	}{
		{500 * time.Millisecond, 1370 * time.Millisecond},  // next key at +2 s
		{1869 * time.Millisecond, time.Millisecond},        // just in time for +2 s
		{1900 * time.Millisecond, 1970 * time.Millisecond}, // too late for +2 s: +4 s
		{60100 * time.Millisecond, 1770 * time.Millisecond},
		{-time.Second, 870 * time.Millisecond}, // the phase's own key still ahead
	} {
		if got := j.playWait(key.Add(c.after)); got != c.want {
			t.Errorf("%v after the keyframe: wait %v, want %v", c.after, got, c.want)
		}
	}
	if w := j.playWait(key.Add(-10 * time.Second)); w != 0 {
		t.Errorf("a phase far in the future: wait %v, want none", w)
	}
	if w := (job{}).playWait(key); w != 0 {
		t.Errorf("no phase: wait %v", w)
	}
}

// The supervisor hands a sample the phase the camera's previous sample
// saw when that sample joined mid-GOP or was itself aligned, never to a
// handshake; a failed sample, or an unaligned one that started on a
// keyframe (a camera that starts sessions with one), clears it.
func TestKeyPhaseInSchedule(t *testing.T) {
	h := newSchedHarness(t, Config{Defaults: Settings{Interval: 10 * time.Second, SampleInterval: 60 * time.Second}})
	h.sup.SetTargets([]Target{{ID: "gate", URL: "rtsp://127.0.0.1:9/gate"}})
	keyAt := time.Date(2026, 12, 3, 8, 0, 3, 0, time.UTC)
	midGOP := measurement{Up: true, Codec: "h264", FPS: 25, KeyframeInterval: 50, TTFF: 40 * time.Millisecond,
		TTFK: 1200 * time.Millisecond, KeyPeriod: 2 * time.Second, LastKeyAt: keyAt.UnixNano(), PlayToFrame: 30 * time.Millisecond}
	onKey := midGOP
	onKey.TTFK = onKey.TTFF
	alignedOnKey := onKey
	alignedOnKey.Waited = 1500 * time.Millisecond
	down := measurement{Reason: ReasonTimeout, Detail: "no answer"}

	sample := func(i int) job {
		t.Helper()
		for range 8 { // handshakes until the sample is due
			jobs, _ := h.dispatch()
			if len(jobs) == 1 && jobs[0].Mode == ModeSample {
				return jobs[0]
			}
			if len(jobs) == 1 {
				if jobs[0].KeyPeriod != 0 {
					t.Errorf("step %d: a handshake carries a keyframe phase", i)
				}
				h.sup.handle(workerEvent{w: h.w, resp: &response{ID: jobs[0].ID, M: measurement{Up: true}}})
			}
			h.clock.Advance(10 * time.Second)
		}
		t.Fatalf("step %d: no sample due", i)
		return job{}
	}
	for i, st := range []struct {
		answer    measurement
		wantPhase bool // in the next sample
	}{
		{midGOP, true}, {onKey, false}, {midGOP, true}, {alignedOnKey, true}, {down, false}, {midGOP, true},
	} {
		j := sample(i)
		h.sup.handle(workerEvent{w: h.w, resp: &response{ID: j.ID, M: st.answer}})
		h.clock.Advance(10 * time.Second)
		next := sample(i)
		got := next.KeyPeriod == 2*time.Second && next.KeyAt == keyAt.UnixNano() && next.PlayLead == 130*time.Millisecond
		none := next.KeyPeriod == 0 && next.KeyAt == 0 && next.PlayLead == 0
		if (st.wantPhase && !got) || (!st.wantPhase && !none) {
			t.Errorf("step %d: next sample's phase %v/%v/%v, want phase %v", i, next.KeyAt, next.KeyPeriod, next.PlayLead, st.wantPhase)
		}
		plain := next
		plain.KeyPeriod = 0
		if next.hardDeadline() != plain.hardDeadline()+next.KeyPeriod {
			t.Errorf("step %d: the deadline does not allow for the wait", i)
		}
		// Answer the sample the loop will dispatch again: hand it back.
		h.sup.handle(workerEvent{w: h.w, resp: &response{ID: next.ID, M: st.answer}})
	}
}

// Against a camera that keeps streaming and lets clients join mid-GOP
// (the simulator: a keyframe every second), a sample aligned by the
// previous one's phase waits before PLAY, starts within a few frames of a
// keyframe, reads about one GOP instead of up to two, and measures the
// same figures; the wait counts neither in time to first frame nor in
// the duration.
func TestAlignedSamples(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "gate", rtspcam.CameraOptions{})
	want := clipStats(t)
	gop := time.Duration(float64(want.KeyframeInterval) / want.FPS * float64(time.Second))
	set := Settings{SampleWindow: 2 * time.Second, MaxSampleWindow: 6 * time.Second, NoVideoTimeout: 3 * time.Second}

	var ph keyPhase
	first := probeAligned(t, cam.URL(), ModeSample, set, &ph)
	if !first.Up || first.KeyPeriod != gop || first.LastKeyAt == 0 || first.Waited != 0 {
		t.Fatalf("first sample: up %v, key period %v (want %v), last key %v, waited %v", first.Up, first.KeyPeriod, gop, first.LastKeyAt, first.Waited)
	}
	// Join mid-GOP until the phase is worth using (a first sample that
	// happened to start on a keyframe leaves none).
	for i := 0; ph.period == 0 && i < 5; i++ {
		first = probeAligned(t, cam.URL(), ModeSample, set, &ph)
	}
	if ph.period != gop {
		t.Fatalf("no keyframe phase after joining mid-GOP: %+v", ph)
	}
	const n = 4
	onKey := 0
	for i := range n {
		m := probeAligned(t, cam.URL(), ModeSample, set, &ph)
		if !m.Up || m.Waited <= 0 || m.Waited > gop {
			t.Fatalf("aligned sample %d: up %v %s, waited %v", i, m.Up, m.Detail, m.Waited)
		}
		if m.TTFF > 500*time.Millisecond || m.Duration-m.TTFF > set.SampleWindow+gop/2 {
			t.Errorf("aligned sample %d: TTFF %v, duration %v count the wait of %v", i, m.TTFF, m.Duration, m.Waited)
		}
		if !within(m.FPS, want.FPS, 0.05) || m.KeyframeInterval != want.KeyframeInterval || !within(m.BitrateBps, want.BitsPerSecond, 0.05) {
			t.Errorf("aligned sample %d: fps %.2f keyint %d bitrate %.0f, want %.0f, %d, %.0f", i, m.FPS, m.KeyframeInterval, m.BitrateBps, want.FPS, want.KeyframeInterval, want.BitsPerSecond)
		}
		// Started within three frames (0.1 s each) before a keyframe.
		if m.TTFK-m.TTFF <= 300*time.Millisecond {
			onKey++
		}
	}
	// Joining at random, a sample starts that close to a keyframe about one
	// time in three; a busy machine may make one PLAY late.
	if onKey < n-1 {
		t.Errorf("%d of %d aligned samples started within 0.3 s of a keyframe", onKey, n)
	}
}
