package influx

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// record builds one sealed record from lines.
func record(lines ...string) []byte {
	b := make([]byte, recHeaderLen)
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	sealRecord(b, len(lines))
	return b
}

func mustWrite(t *testing.T, s *spool, rec []byte, n int) {
	t.Helper()
	p, err := s.write(rec, n)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := s.syncTo(p); err != nil {
		t.Fatalf("syncTo: %v", err)
	}
}

// drain reads everything durable and confirms it; it returns the lines.
func drain(t *testing.T, s *spool, batch int) []string {
	t.Helper()
	var out []string
	for {
		lines, n, end, err := s.next(nil, batch)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if n == 0 {
			return out
		}
		got := strings.Split(strings.TrimSuffix(string(lines), "\n"), "\n")
		if len(got) != n {
			t.Fatalf("next returned %d lines for n=%d", len(got), n)
		}
		out = append(out, got...)
		if err := s.confirm(end, n); err != nil {
			t.Fatalf("confirm: %v", err)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	return m
}

func TestSpoolRollsReadsAndDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, minSpoolMaxBytes, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3000 {
		l := fmt.Sprintf("m,k=v f=%di,pad=%q %d", i, strings.Repeat("p", 150), i)
		want = append(want, l)
		mustWrite(t, s, record(l), 1)
	}
	if n := len(segFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments after 3000 records of a 1 MiB spool with %d-byte segments, want several", n, s.segMax)
	}
	got := drain(t, s, 700)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("read back %d lines, not the %d written in order", len(got), len(want))
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Errorf("%d segments left after everything was confirmed, want only the active one", n)
	}
	if s.waiting() != 0 {
		t.Errorf("waiting = %d after the drain", s.waiting())
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: nothing waits, nothing is replayed.
	s2, err := openSpool(dir, minSpoolMaxBytes, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	if s2.waiting() != 0 {
		t.Errorf("reopened spool has %d points waiting, want 0", s2.waiting())
	}
}

func TestSpoolRecoveryCutsTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, minSpoolMaxBytes, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, record("a f=1i 1", "a f=2i 2"), 2)
	mustWrite(t, s, record("a f=3i 3"), 1)
	s.close()

	// A crash in the middle of a write leaves half a record.
	seg := segFiles(t, dir)[0]
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	torn := record("a f=4i 4", "a f=5i 5")
	f.Write(torn[:len(torn)-3])
	f.Close()
	before, _ := os.Stat(seg)

	var visited []string
	s2, err := openSpool(dir, minSpoolMaxBytes, testLogger(), func(l []byte) { visited = append(visited, string(l)) })
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(seg)
	if after.Size() != before.Size()-int64(len(torn)-3) {
		t.Errorf("segment is %d bytes after recovery, want the torn %d bytes cut", after.Size(), len(torn)-3)
	}
	if s2.waiting() != 3 {
		t.Errorf("waiting = %d after recovery, want 3", s2.waiting())
	}
	if strings.Join(visited, "|") != "a f=1i 1|a f=2i 2|a f=3i 3" {
		t.Errorf("visited %q", visited)
	}
	// Appends go on after the cut.
	mustWrite(t, s2, record("a f=6i 6"), 1)
	if got := drain(t, s2, 10); strings.Join(got, "|") != "a f=1i 1|a f=2i 2|a f=3i 3|a f=6i 6" {
		t.Errorf("drained %q", got)
	}
	s2.close()
}

func TestSpoolCheckpointResumesAndSurvivesCorruption(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, minSpoolMaxBytes, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustWrite(t, s, record(fmt.Sprintf("a f=%di %d", i, i)), 1)
	}
	lines, n, end, err := s.next(nil, 4)
	if err != nil || n != 4 {
		t.Fatalf("next: %d lines, %v", n, err)
	}
	_ = lines
	if err := s.confirm(end, n); err != nil {
		t.Fatal(err)
	}
	// Read further without confirming, as a Run killed mid-write would.
	if _, n, _, _ := s.next(nil, 3); n != 3 {
		t.Fatalf("second next: %d", n)
	}
	s.close()

	s2, err := openSpool(dir, minSpoolMaxBytes, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s2.waiting() != 6 {
		t.Errorf("waiting after reopen = %d, want 6 (read but unconfirmed points come back)", s2.waiting())
	}
	if got := drain(t, s2, 100); len(got) != 6 || got[0] != "a f=4i 4" {
		t.Errorf("resumed at %q", got)
	}
	s2.close()

	// A corrupt checkpoint replays everything still on disk: harmless,
	// since a replayed point overwrites itself in InfluxDB.
	s3, _ := openSpool(dir, minSpoolMaxBytes, testLogger(), nil)
	for i := 10; i < 12; i++ {
		mustWrite(t, s3, record(fmt.Sprintf("a f=%di %d", i, i)), 1)
	}
	s3.close()
	os.WriteFile(filepath.Join(dir, checkpointName), []byte("garbage garbage garbage"), 0o640)
	s4, err := openSpool(dir, minSpoolMaxBytes, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s4.close()
	if s4.waiting() < 2 {
		t.Errorf("waiting after a corrupt checkpoint = %d, want at least the 2 unconfirmed", s4.waiting())
	}
}

func TestSpoolGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 64<<20, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var wg sync.WaitGroup
	var mu sync.Mutex // callers serialise write, as Writer.mu does
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				mu.Lock()
				p, err := s.write(record(fmt.Sprintf("g%d f=%di 1", g, i)), 1)
				mu.Unlock()
				if err == nil {
					err = s.syncTo(p)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if s.waiting() != 1600 {
		t.Errorf("waiting = %d, want 1600", s.waiting())
	}
	if got := drain(t, s, 5000); len(got) != 1600 {
		t.Errorf("drained %d lines, want 1600", len(got))
	}
}

func TestSpoolFullRefuses(t *testing.T) {
	s, err := openSpool(t.TempDir(), minSpoolMaxBytes, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	rec := record(strings.Repeat("x", 1000) + " f=1i 1")
	written := 0
	for {
		p, err := s.write(rec, 1)
		if errors.Is(err, ErrSpoolFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s.syncTo(p)
		written += len(rec)
	}
	if int64(written) > minSpoolMaxBytes || int64(written) < minSpoolMaxBytes-int64(2*len(rec)) {
		t.Errorf("spool refused after %d bytes, limit %d", written, minSpoolMaxBytes)
	}
	// Confirming the first segment frees its space.
	for s.diskBytes.Load() > minSpoolMaxBytes-s.segMax {
		_, n, end, err := s.next(nil, 50)
		if err != nil || n == 0 {
			t.Fatalf("next: %d, %v", n, err)
		}
		s.confirm(end, n)
	}
	if _, err := s.write(rec, 1); err != nil {
		t.Errorf("write after space came back: %v", err)
	}
}

func TestEncodeEscapesAndRejects(t *testing.T) {
	w := &Writer{series: map[string]*seriesTimes{}}
	ts := time.Unix(0, 1700000000123456789)
	cases := []struct {
		p    Point
		want string
	}{
		{QRScans("s 1", "b,1", "mqtt", 3, ts), `qr_scans,board=b\,1,site=s\ 1,source=mqtt scans=3i 1700000000123456789`},
		{Point{Measurement: "m,x y", Tags: []Tag{{"k=", "v=1"}, {"empty", ""}}, Fields: []Field{
			String("s", `say "hi" \ there`+"\nnext"), Bool("b", false), Float("f", 1.5e-7), Int("i", -4)}, Time: ts},
			`m\,x\ y,k\==v\=1 s="say \"hi\" \\ there next",b=false,f=1.5e-07,i=-4i 1700000000123456789`},
		{MotionStart("s1", "gate", "", -1, ts), `camera_motion,camera=gate,site=s1 active=true 1700000000123456789`},
	}
	for _, c := range cases {
		b, err := w.encode(nil, &c.p, 0)
		if err != nil {
			t.Errorf("encode %v: %v", c.p, err)
			continue
		}
		if got := strings.TrimSuffix(string(b), "\n"); got != c.want {
			t.Errorf("encode:\n got %s\nwant %s", got, c.want)
		}
		if k := string(lineKey(b[:len(b)-1])); !strings.HasPrefix(c.want, k+" ") {
			t.Errorf("lineKey = %q", k)
		}
		if tm, ok := lineTime(b[:len(b)-1]); !ok || tm != ts.UnixNano() {
			t.Errorf("lineTime = %d, %v", tm, ok)
		}
	}
	bad := []Point{
		{Measurement: "", Fields: []Field{Int("a", 1)}},
		{Measurement: "m"},
		{Measurement: "m", Fields: []Field{Float("a", posInf())}},
		{Measurement: "m", Tags: []Tag{{"k", "a\\b"}}, Fields: []Field{Int("a", 1)}},
		{Measurement: "m\n", Fields: []Field{Int("a", 1)}},
		{Measurement: "m", Fields: []Field{{Key: "zero"}}},
		{Measurement: "m", Fields: []Field{Int("a", 1)}, Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, p := range bad {
		if _, err := w.encode(nil, &p, 1); !errors.Is(err, errInvalidPoint) {
			t.Errorf("encode %+v: err %v, want errInvalidPoint", p, err)
		}
	}
}

func posInf() float64 { var z float64; return 1 / z }

func TestTimestampsUniquePerSeries(t *testing.T) {
	w := &Writer{series: map[string]*seriesTimes{}}
	ts := time.Unix(0, 1_000_000_000)
	var buf []byte
	seen := map[string]bool{}
	add := func(p Point) string {
		start := len(buf)
		var err error
		buf, err = w.encode(buf, &p, 5)
		if err != nil {
			t.Fatal(err)
		}
		line := string(bytes.TrimSuffix(buf[start:], []byte("\n")))
		tm, _ := lineTime([]byte(line))
		key := string(lineKey([]byte(line))) + fmt.Sprint(tm)
		if seen[key] {
			t.Fatalf("timestamp reused in a series: %s", line)
		}
		seen[key] = true
		return line
	}
	// A burst of 1000 reports in the same instant, two boards interleaved.
	for range 1000 {
		add(QRScans("s", "b1", "mqtt", 1, ts))
		add(QRScans("s", "b2", "mqtt", 1, ts))
	}
	// Points of b1 a few nanoseconds later also move on.
	add(QRScans("s", "b1", "mqtt", 1, ts.Add(1)))
	add(QRScans("s", "b1", "mqtt", 1, ts.Add(500)))
	if l := add(QRScans("s", "b1", "mqtt", 1, ts.Add(5000))); !strings.HasSuffix(l, " 1000005000") {
		t.Errorf("free timestamp moved: %s", l)
	}
	// Another series keeps its requested time.
	if l := add(QRScans("s", "b3", "mqtt", 1, ts)); !strings.HasSuffix(l, " 1000000000") {
		t.Errorf("first point of a series moved: %s", l)
	}
	// A late, out-of-order point that does not collide keeps its time.
	if l := add(QRScans("s", "b3", "mqtt", 1, ts.Add(-time.Second))); !strings.HasSuffix(l, " 0") {
		t.Errorf("late point moved: %s", l)
	}
	// Zero time means now (5 here).
	if l := add(Point{Measurement: "m", Fields: []Field{Int("a", 1)}}); !strings.HasSuffix(l, " 5") {
		t.Errorf("zero time: %s", l)
	}
}
