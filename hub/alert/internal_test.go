package alert

import (
	"strings"
	"testing"
	"time"
)

func TestOpenTime(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	market := []Hours{{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat"}, From: "06:00", To: "18:00"}}
	night := []Hours{{From: "22:00", To: "02:00"}}
	for _, h := range append(market, night...) {
		if err := h.parse(); err != nil {
			t.Fatal(err)
		}
	}
	if err := market[0].parse(); err != nil {
		t.Fatal(err)
	}
	if err := night[0].parse(); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-11-27 is a Friday.
	cases := []struct {
		hours    []Hours
		from, to string
		want     time.Duration
	}{
		{nil, "2026-11-27 10:00", "2026-11-27 13:30", 3*time.Hour + 30*time.Minute},
		{market, "2026-11-27 10:00", "2026-11-27 13:30", 3*time.Hour + 30*time.Minute},
		// Quiet from 17:00 Friday: one hour Friday, none overnight, two
		// Saturday morning.
		{market, "2026-11-27 17:00", "2026-11-28 08:00", 3 * time.Hour},
		// Closed on Sunday.
		{market, "2026-11-28 17:00", "2026-11-30 07:00", 2 * time.Hour},
		{market, "2026-11-27 19:00", "2026-11-27 23:00", 0},
		// A window over midnight.
		{night, "2026-11-27 21:00", "2026-11-28 01:00", 3 * time.Hour},
		{night, "2026-11-28 01:00", "2026-11-28 23:00", 2 * time.Hour},
	}
	for _, c := range cases {
		if got := openTime(c.hours, at(c.from), at(c.to), loc, 1000*time.Hour); got != c.want {
			t.Errorf("%v from %s to %s: %v, want %v", c.hours, c.from, c.to, got, c.want)
		}
	}
	// A board dead for a year costs a few days of walking, not 365.
	start := time.Now()
	if got := openTime(market, at("2025-11-27 10:00"), at("2026-11-27 10:00"), loc, 2*time.Hour); got < 2*time.Hour {
		t.Errorf("a year of silence counted as %v", got)
	}
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Errorf("took %v", d)
	}
	if _, _, ok := night[0].window(at("2026-11-28 01:30")); !ok {
		t.Error("01:30 is inside 22:00-02:00")
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration][2]string{
		0:                               {"0 giây", "0s"},
		45 * time.Second:                {"45 giây", "45s"},
		12*time.Minute + 34*time.Second: {"12 phút 34 giây", "12m 34s"},
		time.Hour + 5*time.Minute + 9*time.Second: {"1 giờ 5 phút", "1h 5m"},
		26 * time.Hour:                {"1 ngày 2 giờ", "1d 2h"},
		49*time.Hour + 30*time.Minute: {"2 ngày 1 giờ", "2d 1h"},
	} {
		if got := [2]string{durationText(d, vi), durationText(d, en)}; got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

// TestTrack drives the state machine with observations a probe every
// second would give.
func TestTrack(t *testing.T) {
	sp := &spec{name: CameraDown, forDur: 10 * time.Second, recoverFor: 2, flapThreshold: 3, flapWindow: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tr track
	fired, resolved := 0, 0
	run := func(pattern string, from int) int {
		for i, c := range pattern {
			now := t0.Add(time.Duration(from+i) * time.Second)
			o := obs{cond: good, n: 1}
			if c == 'x' {
				o = obs{cond: bad, start: now, reason: "not_found"}
			}
			f, r := tr.step(o, now, sp)
			if f != nil {
				fired++
			}
			if r != nil {
				resolved++
			}
		}
		return from + len(pattern)
	}
	// Down 9 s: nothing; a single good probe does not end the episode;
	// down again: the episode goes on and fires 10 s after it began.
	s := run("xxxxxxxxx", 0)
	if fired != 0 {
		t.Fatal("fired before for")
	}
	s = run(".x", s)
	if fired != 1 || tr.alert.Since != t0 || tr.alert.Flapping {
		t.Fatalf("fired %d, alert %+v", fired, tr.alert)
	}
	// Two good probes resolve it (not flapping).
	s = run("..", s)
	if resolved != 1 || tr.alert != nil || !tr.since.IsZero() {
		t.Fatalf("resolved %d", resolved)
	}
	// Flapping: down 3, up 3, ... Each up is long enough to end a
	// pending episode, each down too short to fire; the third down within
	// the minute fires once, flagged flapping, and while flapping it does
	// not resolve until it stays up for `for`.
	tr, fired, resolved = track{}, 0, 0
	for range 8 {
		s = run("xxx...", s)
	}
	if fired != 1 || resolved != 0 || tr.alert == nil || !tr.alert.Flapping || tr.alert.Flaps < 6 {
		t.Fatalf("flapping: fired %d, resolved %d, alert %+v", fired, resolved, tr.alert)
	}
	// Up since the last three probes: six more make 8 s up, under `for`.
	s = run(strings.Repeat(".", 6), s)
	if resolved != 0 {
		t.Fatal("a flapping alert resolved before staying up for `for`")
	}
	run("..", s) // 10 s up
	if resolved != 1 || fired != 1 {
		t.Fatalf("after settling: fired %d, resolved %d", fired, resolved)
	}
}

func TestValidate(t *testing.T) {
	var c Config
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("the zero config has problems: %v", ps)
	}
	if c.Rules.CameraDown.For != Duration(30*time.Second) || c.Rules.CameraDown.RecoverFor != 2 || c.Rules.QRBoardSilent.For != Duration(2*time.Hour) || *c.RepeatInterval != Duration(4*time.Hour) {
		t.Errorf("defaults: %+v", c)
	}
	neg := Duration(-time.Second)
	bad := Config{
		Rules: Rules{CameraDown: CameraDownRule{RuleBase: RuleBase{RecoverFor: -1, Severity: "loud"}},
			CameraDegraded: CameraDegradedRule{Grade: "meh"},
			QRBoardSilent:  BoardSilentRule{OpeningHours: []Hours{{From: "25:00", To: "18:00"}}}},
		RepeatInterval: &neg,
		Timezone:       "Mars/Olympus",
		Notifiers: []Notifier{
			{Type: "pager"},
			{Type: "webhook"},
			{Type: "webhook", Name: "x", URL: "http://a/", TemplateFile: "/nonexistent.tmpl"},
			{Type: "webhook", Name: "x", URL: "http://a/", Template: "{{ .Nope "},
			{Type: "mqtt", QoS: new(int)},
		},
		Silences: []Silence{{Comment: "no matcher", Start: time.Now(), End: time.Now().Add(time.Hour)}, {Matcher: Matcher{Device: "gate"}}},
	}
	*bad.Notifiers[4].QoS = 3
	got := map[string]bool{}
	for _, p := range bad.Validate() {
		got[p.Key()] = true
	}
	for _, k := range []string{"rules.camera_down.recover_for", "rules.camera_down.severity", "rules.camera_degraded.grade",
		"rules.qr_board_silent.opening_hours[0]", "repeat_interval", "timezone", "notifiers[0].type", "notifiers[1].url",
		"notifiers[2].template_file", "notifiers[3].name", "notifiers[3].template", "notifiers[4].qos", "silences[0]", "silences[1]"} {
		if !got[k] {
			t.Errorf("no problem reported for %s (got %v)", k, got)
		}
	}
}

// TestAlertmanagerEndsAtAtSendTime: a firing notice made long ago (it
// waited while Alertmanager was down) still arrives with an endsAt in the
// future: counted from the send, not from when the notice was made.
func TestAlertmanagerEndsAtAtSendTime(t *testing.T) {
	am := &alertmanager{cfg: &Notifier{ResendInterval: Duration(time.Minute)}}
	made := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sent := made.Add(30 * time.Minute)
	n := &Notification{Kind: KindFiring, State: KindFiring, Alert: CameraDown, Since: made.Add(-time.Minute), At: made,
		Reason: "refused", Detail: "connection refused"}
	a := am.toAM(n, sent)
	if !a.EndsAt.Equal(sent.Add(4 * time.Minute)) {
		t.Errorf("endsAt %v, want send time + 4 resend intervals (%v)", a.EndsAt, sent.Add(4*time.Minute))
	}
	if d := a.Annotations["description"]; d != "connection refused" {
		t.Errorf("description %q repeats itself", d)
	}
	n.Detail = "after 3 s"
	if d := am.toAM(n, sent).Annotations["description"]; d != "connection refused. after 3 s" {
		t.Errorf("description %q", d)
	}
	res := *n
	end := made.Add(time.Hour)
	res.State, res.Kind, res.ResolvedAt = KindResolved, KindResolved, &end
	if a := am.toAM(&res, sent.Add(time.Hour)); !a.EndsAt.Equal(end) {
		t.Errorf("resolved endsAt %v, want %v", a.EndsAt, end)
	}
}

// TestFlapSinceNotBeforeLastResolution: a camera that flapped, fired,
// resolved and then flaps again gets a new alert whose since is in the
// new flapping, not in the outages already told.
func TestFlapSinceNotBeforeLastResolution(t *testing.T) {
	sp := &spec{name: CameraDown, forDur: 10 * time.Second, recoverFor: 2, flapThreshold: 3, flapWindow: 10 * time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tr track
	sec := 0
	var fired []*Alert
	var resolved []*Alert
	run := func(pattern string) {
		for _, c := range pattern {
			now := t0.Add(time.Duration(sec) * time.Second)
			sec++
			o := obs{cond: good, n: 1}
			if c == 'x' {
				o = obs{cond: bad, start: now, reason: "refused"}
			}
			f, r := tr.step(o, now, sp)
			if f != nil {
				c := *f
				fired = append(fired, &c)
			}
			if r != nil {
				resolved = append(resolved, r)
			}
		}
	}
	run("xx..xx..xx..") // three short outages: fires, flapping
	run(strings.Repeat(".", 12))
	if len(fired) != 1 || len(resolved) != 1 || !fired[0].Since.Equal(t0) {
		t.Fatalf("first episode: fired %v resolved %v", fired, resolved)
	}
	lastEnd := *resolved[0].ResolvedAt
	run("xx..xx..xx..") // flaps again within the window
	if len(fired) != 2 {
		t.Fatalf("second episode fired %d times in all", len(fired))
	}
	if !fired[1].Since.After(lastEnd) {
		t.Errorf("second alert since %v, not after the first one's end %v", fired[1].Since, lastEnd)
	}
}

// TestResolvedAtFirstGoodProbe: the outage reported ends at the first good
// probe (from the device's state), not when recover_for probes later the
// hub resolved it.
func TestResolvedAtFirstGoodProbe(t *testing.T) {
	sp := &spec{name: CameraDown, forDur: 5 * time.Second, recoverFor: 3}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tr track
	for i := range 10 {
		tr.step(obs{cond: bad, start: t0, reason: "timeout"}, t0.Add(time.Duration(i)*time.Second), sp)
	}
	up := t0.Add(10 * time.Second)
	var res *Alert
	for i := range 3 {
		_, r := tr.step(obs{cond: good, n: 1, start: up}, up.Add(time.Duration(i+1)*2*time.Second), sp)
		if r != nil {
			res = r
		}
	}
	if res == nil || !res.ResolvedAt.Equal(up) || res.Duration(time.Time{}) != 10*time.Second {
		t.Fatalf("resolved %+v", res)
	}
}

// TestZaloText: Vietnamese with diacritics, within Zalo's 2000 characters
// counted as characters, not bytes.
func TestZaloText(t *testing.T) {
	loc := time.FixedZone("ICT", 7*3600)
	since := time.Date(2026, 11, 27, 1, 2, 0, 0, time.UTC)
	end := since.Add(16 * time.Second)
	n := &Notification{Kind: KindResolved, State: KindResolved, Alert: CameraDown, Severity: "critical", Site: "tan-ngu-2",
		SiteName: "Thôn Tân Ngữ 2", Device: "gate", DeviceName: "Cổng làng", Since: since, ResolvedAt: &end, At: end.Add(2 * time.Second)}
	got := zaloText(n, loc)
	want := "✅ Camera có hình trở lại: Cổng làng – Thôn Tân Ngữ 2\nGián đoạn 16 giây (từ 08:02 27/11/2026 đến 08:02 27/11/2026)"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	n.Kind, n.State, n.ResolvedAt, n.Reason = KindFiring, KindFiring, nil, "no_video"
	n.DeviceName = strings.Repeat("Đường làng ", 400)
	got = zaloText(n, loc)
	if r := []rune(got); len(r) != 2000 || !strings.HasPrefix(got, "🔴 Camera mất hình: Đường làng") {
		t.Errorf("%d characters: %.60q", len(r), got)
	}
}

// TestClassifyZalo: Zalo's codes and words map to the fixed reasons, and
// only recipient/group/bad-request failures are permanent.
func TestClassifyZalo(t *testing.T) {
	for _, c := range []struct {
		code      int
		msg       string
		reason    string
		permanent bool
	}{
		{-216, "Access token is invalid", ReasonToken, false},
		{-32, "Exceeded the quota", ReasonQuota, false},
		{-230, "User has not interacted with the OA", ReasonRecipient, true},
		{-224, "OA has not been verified", ReasonGroup, true},
		{-204, "Invalid message", ReasonBadRequest, true},
		{-999, "group not found", ReasonGroup, true},
		{-998, "something odd", ReasonOther, false},
	} {
		e := classifyZalo(c.code, c.msg)
		if e.reason != c.reason || e.permanent != c.permanent {
			t.Errorf("%d %q: %s permanent=%v", c.code, c.msg, e.reason, e.permanent)
		}
	}
}

// TestFrigateDownTitles: the notice titles of FrigateDown in both
// languages (docs/terms.md, a_FrigateDown).
func TestFrigateDownTitles(t *testing.T) {
	n := &Notification{Alert: FrigateDown, State: KindFiring, Kind: KindFiring, Reason: "offline"}
	if v, e := title(n, vi), title(n, en); v != "Frigate mất kết nối" || e != "Frigate offline" {
		t.Errorf("firing: %q / %q", v, e)
	}
	n.State, n.Kind = KindResolved, KindResolved
	if v, e := title(n, vi), title(n, en); v != "Frigate kết nối lại" || e != "Frigate back online" {
		t.Errorf("resolved: %q / %q", v, e)
	}
}
