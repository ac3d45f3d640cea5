package auth

import (
	"net"
	"testing"
	"time"
)

// deadlineConn records the deadlines given to the connection.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

// TestSetDeadlineCoarse: mochi's deadline after every packet re-arms the
// connection's timer about once a second, never earlier than asked and at
// most deadlineSlack later; an earlier deadline and none are set at once.
func TestSetDeadlineCoarse(t *testing.T) {
	rec := &deadlineConn{}
	c := &trackedConn{Conn: rec}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ka := 90 * time.Second // 1.5 x a keep-alive of 60 s
	// The first deadline is set as asked.
	c.SetDeadline(t0.Add(ka))
	if len(rec.set) != 1 || !rec.set[0].Equal(t0.Add(ka)) {
		t.Fatalf("first deadline: %v", rec.set)
	}
	// Packets every 10 ms for 5 s: about one re-arm a second.
	for ms := 10; ms <= 5000; ms += 10 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		c.SetDeadline(now.Add(ka))
		got := rec.set[len(rec.set)-1]
		if got.Before(now.Add(ka)) || got.After(now.Add(ka+deadlineSlack)) {
			t.Fatalf("at +%d ms the deadline is %v, want within [%v, +%v]", ms, got, now.Add(ka), deadlineSlack)
		}
	}
	if n := len(rec.set); n < 4 || n > 7 {
		t.Errorf("%d deadlines set for 500 packets over 5 s, want about one a second", n)
	}
	// An earlier deadline (a shorter timeout) is set exactly, at once.
	n := len(rec.set)
	early := t0.Add(6 * time.Second)
	c.SetDeadline(early)
	if len(rec.set) != n+1 || !rec.set[n].Equal(early) {
		t.Fatalf("earlier deadline: %v", rec.set[n:])
	}
	// No deadline is passed on once (a keep-alive of 0 asks after every
	// packet), and the next one is set exactly.
	n = len(rec.set)
	for range 3 {
		c.SetDeadline(time.Time{})
	}
	if len(rec.set) != n+1 || !rec.set[n].IsZero() {
		t.Fatalf("no deadline, asked three times: %v", rec.set[n:])
	}
	next := t0.Add(time.Minute)
	c.SetDeadline(next)
	if !rec.set[len(rec.set)-1].Equal(next) {
		t.Fatalf("after none: %v, want %v", rec.set[len(rec.set)-1], next)
	}
}
