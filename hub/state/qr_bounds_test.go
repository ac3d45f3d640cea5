package state

import (
	"math"
	"testing"
	"time"

	"villagehub/hub/event"
)

// TestQRBounds: a report past the per-report or per-hour bound, or older
// than the horizon, is rejected and leaves the counter as it was, so the
// board's real reports after it count as if it never came.
func TestQRBounds(t *testing.T) {
	b := qrBounds{perReport: 100, perHour: 250, maxPast: 48 * time.Hour}
	now := t0
	var c qrCounter
	step := func(boot string, total int64, ts time.Time, hasTS bool, want int64, wantR event.Reason) {
		t.Helper()
		n, r := c.applyBounded([]byte(boot), total, ts, hasTS, now, b)
		if n != want || r != wantR {
			t.Fatalf("%s/%d: got %d %v, want %d %v", boot, total, n, r, want, wantR)
		}
	}
	step("a", 50, now, true, 50, event.OK)
	step("a", math.MaxInt64, now, true, 0, event.Implausible)
	step("evil", math.MaxInt64, now, true, 0, event.Implausible) // a new boot is not remembered either
	step("a", 151, now, true, 0, event.Implausible)              // +101 > 100
	step("a", 150, now, true, 100, event.OK)                     // the jump changed nothing: +100 counts
	step("a", 160, now.Add(-49*time.Hour), true, 0, event.StaleTS)
	step("a", 160, time.Time{}, false, 10, event.OK) // no ts: time received
	step("b", 100, now, true, 0, event.Implausible)  // 160+100 > 250 this hour
	step("b", 90, now, true, 90, event.OK)
	now = now.Add(time.Hour) // a new hour, a new allowance
	step("a", 260, now, true, 100, event.OK)
	if len(c.Epochs) != 2 {
		t.Errorf("epochs %+v: rejected boots must not be remembered", c.Epochs)
	}
}
