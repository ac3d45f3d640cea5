package alert

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"villagehub/hub/testenv"
)

// simClock is a fake clock shared by the notifier and the fake Zalo.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *simClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestZaloNinetyDays runs 90 days of token rotation on a fake clock
// against the fake Zalo (access tokens of 25 h, single-use refresh tokens,
// 200-with-error answers), in 5-minute steps doing what the notifier's
// background loop does (renew when due) plus: an alert every 6 hours, a
// kill -9 of the hub every 9 days right after a refresh (a new notifier
// reads the persisted state), and a 30-hour Zalo outage in the middle
// (longer than a token's life). It prints the figures for the report:
// notices sent / delivered, refreshes, refusals, and the longest time the
// hub held no valid token.
func TestZaloNinetyDays(t *testing.T) {
	clk := &simClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fz, first := testenv.NewFakeZalo(t)
	fz.Now = clk.Now
	dir := t.TempDir()
	secret, rt := filepath.Join(dir, "secret"), filepath.Join(dir, "refresh")
	if err := os.WriteFile(secret, []byte(fz.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rt, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Notifiers: []Notifier{{Type: "zalo", Name: "zalo-sim", AppID: fz.AppID, SecretKeyFile: secret,
		RefreshTokenFile: rt, GroupID: "g1", APIURL: fz.URL, OAuthURL: fz.URL}}}
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	deps := notifierDeps{HTTP: &http.Client{Timeout: 5 * time.Second}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Loc: time.UTC, DataDir: filepath.Join(dir, "data"), Now: clk.Now}
	boot := func() *zalo {
		z, err := newZalo(&cfg.Notifiers[0], deps)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	z := boot()
	ctx := context.Background()

	const (
		days      = 90
		stepEvery = 5 * time.Minute
		alertGap  = 6 * time.Hour
	)
	outageFrom := clk.Now().Add(45 * 24 * time.Hour)
	outageTo := outageFrom.Add(30 * time.Hour)
	end := clk.Now().Add(days * 24 * time.Hour)
	var (
		made, delivered, restarts int
		queue                     []*Notification // undelivered, in order
		gap, longest              time.Duration
		gapFrom                   time.Time
		nextAlert                 = clk.Now()
		nextKill                  = clk.Now().Add(9 * 24 * time.Hour)
		worstDelay                time.Duration
	)
	for clk.Now().Before(end) {
		now := clk.Now()
		fz.SetDown(!now.Before(outageFrom) && now.Before(outageTo))
		// The background loop: renew when due; errors are retried next step.
		if z.nextMaintenance() == 0 {
			before := z.refreshes.Load()
			_ = z.maintain(ctx)
			if z.refreshes.Load() > before && now.After(nextKill) {
				// kill -9 right after a refresh, before any send.
				z, nextKill = boot(), now.Add(9*24*time.Hour)
				restarts++
			}
		}
		if !now.Before(nextAlert) {
			made++
			queue = append(queue, &Notification{Key: now.String(), Kind: KindFiring, State: KindFiring, Alert: CameraDown,
				Severity: "critical", Site: "tan-ngu-2", Device: "gate", Since: now, At: now})
			nextAlert = now.Add(alertGap)
		}
		for len(queue) > 0 {
			if err := z.deliver(ctx, queue[0]); err != nil {
				if classify(err).permanent {
					t.Fatalf("permanent failure at %v: %v", now, err)
				}
				break // in order: wait for the next step
			}
			worstDelay = max(worstDelay, now.Sub(queue[0].At))
			delivered++
			queue = queue[1:]
		}
		z.mu.Lock()
		tok := z.st.AccessToken
		z.mu.Unlock()
		if fz.ValidAccessToken(tok) {
			gapFrom = time.Time{}
		} else {
			if gapFrom.IsZero() {
				gapFrom = now
			}
			gap = now.Sub(gapFrom) + stepEvery
			longest = max(longest, gap)
		}
		clk.Add(stepEvery)
	}
	refreshes, refused, invalid, _ := fz.Counts()
	t.Logf("90 days (fake clock, 5-min steps, token life 25h, 30h Zalo outage, hub kill -9 after a refresh every 9 days):")
	t.Logf("  alerts made %d, delivered %d, still queued %d; worst delivery delay %v", made, delivered, len(queue), worstDelay)
	t.Logf("  refreshes %d, refresh refusals %d, sends refused for a bad token %d, restarts %d", refreshes, refused, invalid, restarts)
	t.Logf("  longest time without a valid access token: %v (the Zalo outage was 30h)", longest)
	if refused != 0 || delivered != made || len(queue) != 0 || restarts < 8 {
		t.Errorf("made %d delivered %d queued %d refused %d restarts %d", made, delivered, len(queue), refused, restarts)
	}
	// A token renewed 10 minutes ahead never lapses outside the outage;
	// in it, the gap is at most the outage minus what the last token had
	// left, plus a step.
	if longest > 30*time.Hour {
		t.Errorf("longest gap %v", longest)
	}
	// One refresh per token life (25h less a 10-minute margin), plus one
	// at the start: 87 in 90 days.
	if want := days*24*60/(25*60-10) + 1; refreshes < want-1 || refreshes > want+2 {
		t.Errorf("%d refreshes in %d days with 25h tokens", refreshes, days)
	}
	fi, err := os.Stat(filepath.Join(dir, "data", "zalo", "zalo-sim.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", fi, err)
	}
}
