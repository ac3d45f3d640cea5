package testenv

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC)
	c := NewClock(start)
	select {
	case got := <-c.After(0):
		if !got.Equal(start) {
			t.Errorf("After(0) fired with %v, want %v", got, start)
		}
	default:
		t.Fatal("After(0) did not fire at once")
	}

	// Another goroutine blocks on two waits; the test sees them without
	// polling, and Advance fires exactly those that are due.
	fired := make(chan time.Duration, 2)
	go func() {
		for _, d := range []time.Duration{3 * time.Second, time.Second} {
			ch := c.After(d)
			go func() { <-ch; fired <- d }()
		}
	}()
	if left := c.WaitForWaiters(t, 2, 10*time.Second); len(left) != 2 || left[0] != time.Second || left[1] != 3*time.Second {
		t.Fatalf("waiters %v, want [1s 3s]", left)
	}
	c.Advance(999 * time.Millisecond)
	select {
	case d := <-fired:
		t.Fatalf("the %v wait fired after 999ms", d)
	default:
	}
	if d := c.AdvanceToNext(t, 10*time.Second); d != time.Millisecond {
		t.Errorf("AdvanceToNext moved %v, want 1ms", d)
	}
	if d := <-fired; d != time.Second {
		t.Errorf("fired the %v wait, want the 1s one", d)
	}
	c.Advance(time.Hour)
	if d := <-fired; d != 3*time.Second {
		t.Errorf("fired the %v wait, want the 3s one", d)
	}
	if got, want := c.Now(), start.Add(time.Hour+time.Second); !got.Equal(want) {
		t.Errorf("Now = %v, want %v", got, want)
	}
	if left := c.Waiters(); len(left) != 0 {
		t.Errorf("waiters left: %v", left)
	}
}

func TestNoonZone(t *testing.T) {
	loc := NoonZone(t)
	now := time.Now().In(loc)
	since := time.Duration(now.Hour())*time.Hour + time.Duration(now.Minute())*time.Minute
	// A minute of slack: the test's clock reading is not NoonZone's.
	if since < 11*time.Hour+29*time.Minute || since > 12*time.Hour+31*time.Minute {
		t.Errorf("in %s it is %s, want about noon", loc, now.Format("15:04"))
	}
}
