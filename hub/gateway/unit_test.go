package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"villagehub/hub/scan"
)

func TestPrintedURLs(t *testing.T) {
	var w bytes.Buffer
	gw := LinkConfig{PublicURL: "https://qr.thanhhoa.gov.vn/", Broker: LinkBroker{URL: "tcp://b:1883"}, Place: Place{Village: "tan-ngu-2"}}
	fn := PrintedURLs("http://192.168.1.10:8080", gw, &w)
	if u, err := fn("market-07"); err != nil || u != "https://qr.thanhhoa.gov.vn/q/tan-ngu-2/market-07" {
		t.Errorf("gateway URL %q %v", u, err)
	}
	if w.Len() != 0 {
		t.Errorf("warned about a reachable gateway address: %s", w.String())
	}
	fn = PrintedURLs("http://192.168.1.10:8080", LinkConfig{}, &w)
	if u, _ := fn("market-07"); u != "http://192.168.1.10:8080/q/market-07" || !strings.Contains(w.String(), "WARNING: http.public_url") {
		t.Errorf("hub URL %q, warning %q", u, w.String())
	}
}

// The same scan written twice is the same InfluxDB line (a retry
// overwrites itself); the unique point is the same for any scan of the
// same phone, board and window.
func TestRecordLinesIdempotent(t *testing.T) {
	at := time.Date(2026, 12, 2, 9, 30, 1, 234567891, time.UTC).UnixNano()
	r := record{At: at, Class: scan.ClassHuman, Unique: true, HasVisit: true, Province: "thanh-hoa", Village: "tan-ngu-2", Hub: "hub1", Site: "s", Board: "market-07"}
	copy(r.ID[:], "0123456789abcdef")
	copy(r.Visit[:], "visitvisitvisit!")
	line := r.appendTo(nil)
	back, err := parseRecord(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil || back != r {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, r)
	}
	w := 30 * time.Second
	a, n, err := r.appendLines(nil, w)
	b, _, _ := back.appendLines(nil, w)
	if err != nil || n != 2 || !bytes.Equal(a, b) {
		t.Fatalf("lines differ or wrong: %v %d\n%s\n%s", err, n, a, b)
	}
	if !strings.Contains(string(a), "qr_scans,board=market-07,hub=hub1,province=thanh-hoa,site=s,village=tan-ngu-2,source=printed scans=1i ") ||
		!strings.Contains(string(a), "qr_visits,board=market-07,hub=hub1,province=thanh-hoa,site=s,village=tan-ngu-2,class=unique visits=1i ") {
		t.Fatalf("lines:\n%s", a)
	}
	later := r
	later.At += int64(10 * time.Second) // same fixed window (…:30–…:60)
	copy(later.ID[:], "fedcba9876543210")
	c, _, _ := later.appendLines(nil, w)
	if strings.Split(string(a), "\n")[1] != strings.Split(string(c), "\n")[1] {
		t.Fatalf("two scans of one phone in one window give different unique points:\n%s\n%s", a, c)
	}
	if strings.Split(string(a), "\n")[0] == strings.Split(string(c), "\n")[0] {
		t.Fatal("two scans give the same scan point")
	}
}

// The journal survives a reopen with each consumer's cursor, drops a
// partly written last line, and deletes segments both consumers passed.
func TestJournalCursors(t *testing.T) {
	for _, sync := range []bool{true, false} { // write groups with fsync; mapped
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) { testJournalCursors(t, sync) })
	}
}

func testJournalCursors(t *testing.T, sync bool) {
	dir := t.TempDir()
	j, err := openJournal(dir, sync, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	j.segMax = 64
	for i := range 10 {
		if err := j.append([]byte(strings.Repeat("x", 20) + string(rune('0'+i)) + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	readAll := func(j *journal, name string, advance bool) []string {
		var out []string
		for {
			lines, next, err := j.read(name, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) == 0 {
				return out
			}
			out = append(out, strings.Split(strings.TrimSpace(string(lines)), "\n")...)
			if advance {
				if err := j.advance(name, next); err != nil {
					t.Fatal(err)
				}
			}
			if !advance {
				return out
			}
		}
	}
	if got := readAll(j, "a", true); len(got) != 10 {
		t.Fatalf("a read %d lines", len(got))
	}
	j.close()
	// A kill during a write leaves half a line.
	segs, _ := j.segments()
	last := filepath.Join(dir, segName(segs[len(segs)-1]))
	f, _ := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("half a li")
	f.Close()
	j, err = openJournal(dir, sync, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	// Closed before the directory is removed: a mapped journal makes its
	// next segment ready in the background, and that file must not appear
	// while TempDir's cleanup empties the directory.
	t.Cleanup(func() { j.close() })
	if got := readAll(j, "a", true); len(got) != 0 {
		t.Fatalf("a read again after reopen: %q", got)
	}
	if got := readAll(j, "b", true); len(got) != 10 {
		t.Fatalf("b read %d lines, want 10: %q", len(got), got)
	}
	j.append([]byte("after\n"))
	if got := readAll(j, "b", true); len(got) != 1 || got[0] != "after" {
		t.Fatalf("b after reopen read %q", got)
	}
	if segs, _ := j.segments(); len(segs) > 2 {
		t.Fatalf("segments passed by both consumers kept: %v", segs)
	}
}

// openMapped opens a journal in a new directory with the segment mapped
// (journal_sync off) and consumer "a".
func openMapped(t *testing.T) (*journal, string) {
	t.Helper()
	if !canMap {
		t.Skip("the journal is mapped only on Linux") // not a server test: nothing to start
	}
	dir := t.TempDir()
	j, err := openJournal(dir, false, "a")
	if err != nil {
		t.Fatal(err)
	}
	return j, dir
}

// reopenAfterKill opens dir's journal again as after a kill -9 of the
// process holding j (never closed). A killed process writes no more, so
// j's spare segment, if one is still being made, is finished and dropped
// first (TestJournalSpareSegment plants the spare file a kill leaves).
func reopenAfterKill(t *testing.T, j *journal, dir string) *journal {
	t.Helper()
	j.mu.Lock()
	j.dropSpare()
	j.mu.Unlock()
	j2, err := openJournal(dir, false, "a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.close() })
	return j2
}

// A mapped journal rolls onto a spare segment made ready in the
// background (written zeros, mapped, pages touched), so that no copy
// under the append lock takes a page fault; a spare left by a kill is
// deleted on open and never read as a segment.
func TestJournalSpareSegment(t *testing.T) {
	j, dir := openMapped(t)
	j.segMax = 4096
	line := []byte(strings.Repeat("s", 99) + "\n")
	if err := j.append(line); err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	if j.ready == nil {
		j.mu.Unlock()
		t.Fatal("no spare segment on its way after the first mapping")
	}
	sp := <-j.ready // wait until it is ready, then put it back
	j.ready <- sp
	j.mu.Unlock()
	if sp.err != nil || len(sp.m) != 4096 {
		t.Fatalf("spare: %d bytes mapped, %v", len(sp.m), sp.err)
	}
	if fi, err := os.Stat(sp.f.Name()); err != nil || fi.Size() != 4096 || filepath.Dir(sp.f.Name()) != dir {
		t.Fatalf("spare file %s: %v %v", sp.f.Name(), fi, err)
	}
	for range 41 { // 41 lines of 100 bytes fill segment 1; the 42nd rolls
		if err := j.append(line); err != nil {
			t.Fatal(err)
		}
	}
	j.mu.Lock()
	seg, same := j.seg, len(j.m) > 0 && &j.m[0] == &sp.m[0]
	j.mu.Unlock()
	if seg != 2 || !same {
		t.Fatalf("segment %d, on the spare's mapping: %v", seg, same)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(2))); err != nil {
		t.Fatal(err)
	}
	// A kill: the spare's file stays, full of zeros. Reopened, it is gone
	// and the lines are all there, once.
	left := filepath.Join(dir, "spare-1-1.tmp")
	if err := os.WriteFile(left, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	j2 := reopenAfterKill(t, j, dir)
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare left by a kill still there: %v", err)
	}
	if got := readToEnd(t, j2, "a", 1<<20); !bytes.Equal(got, bytes.Repeat(line, 42)) {
		t.Fatalf("after the kill: read %d bytes, want %d", len(got), 42*len(line))
	}
}

// A gateway killed with its segment mapped leaves the segment at its full
// preallocated size, zeros after the last line, maybe half a line copied:
// reopening keeps every whole line once, drops the rest, and appends
// after them; a reader never sees the zeros.
func TestJournalMappedKill(t *testing.T) {
	j, dir := openMapped(t)
	for i := range 5 {
		if err := j.append(fmt.Appendf(nil, "line-%d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	lines, _, err := j.read("a", 1<<20)
	if err != nil || string(lines) != "line-0\nline-1\nline-2\nline-3\nline-4\n" {
		t.Fatalf("read from the mapped segment: %q %v", lines, err)
	}
	// The kill: half a line copied, no close (the mapping and the
	// preallocated size stay as they are).
	copy(j.m[j.off:], "line-5 half")
	fi, err := os.Stat(filepath.Join(dir, segName(j.seg)))
	if err != nil || fi.Size() != defaultSegMax {
		t.Fatalf("mapped segment size %v %v, want the preallocated %d", fi.Size(), err, defaultSegMax)
	}
	j2 := reopenAfterKill(t, j, dir)
	if j2.off != int64(len("line-0\n")*5) {
		t.Fatalf("reopened at %d, want after the 5 whole lines", j2.off)
	}
	if err := j2.append([]byte("line-6\n")); err != nil {
		t.Fatal(err)
	}
	if got := readToEnd(t, j2, "a", 1<<20); string(got) != "line-0\nline-1\nline-2\nline-3\nline-4\nline-6\n" {
		t.Fatalf("after the kill: %q", got)
	}
	unmapSegment(j.m)
}

// A file system that cannot map the segment (the file already extended
// by the preallocation, as on a real failure after fallocate) makes the
// journal write instead: every line is kept, with no zeros between them.
func TestJournalMapFallback(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir, false, "a")
	if err != nil {
		t.Fatal(err)
	}
	j.mapped = true
	tries := 0
	j.mapFn = func(f *os.File, size int64) ([]byte, error) {
		tries++
		if err := f.Truncate(size); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: no such device", errMapUnsupported)
	}
	for i := range 3 {
		if err := j.append(fmt.Appendf(nil, "line-%d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if j.mapped || tries != 1 {
		t.Fatalf("after a failed mapping: mapped %v, %d tries; want writes after one try", j.mapped, tries)
	}
	if got := readToEnd(t, j, "a", 1<<20); string(got) != "line-0\nline-1\nline-2\n" {
		t.Fatalf("read %q", got)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, segName(1)))
	if err != nil || fi.Size() != int64(len("line-0\n")*3) {
		t.Fatalf("segment %v %v, want just the three lines", fi.Size(), err)
	}
}

// readToEnd reads what the named consumer has not taken, in reads of at
// most max bytes, advancing its cursor.
func readToEnd(t *testing.T, j *journal, name string, max int) []byte {
	t.Helper()
	var all []byte
	for {
		lines, next, err := j.read(name, max)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 0 {
			return all
		}
		all = append(all, lines...)
		if err := j.advance(name, next); err != nil {
			t.Fatal(err)
		}
	}
}

// Concurrent appenders never interleave lines, whether they copy into the
// mapped segment, write in groups, or return before the write (async);
// after close every line is there, across segment rolls.
func TestJournalAsyncAndConcurrent(t *testing.T) {
	for _, mode := range []string{"mapped", "groups", "async"} {
		async := mode
		dir := t.TempDir()
		j, err := openJournal(dir, false, "a")
		if err != nil {
			t.Fatal(err)
		}
		if j.mapped != canMap {
			t.Fatalf("journal_sync off: mapped %v, want %v", j.mapped, canMap)
		}
		j.mapped = mode == "mapped" && canMap
		j.async = mode == "async"
		j.segMax = 4096
		done := make(chan struct{})
		for w := range 8 {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := range 200 {
					if err := j.append(fmt.Appendf(nil, "w%d-%03d %s\n", w, i, strings.Repeat("x", 40))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		for range 8 {
			<-done
		}
		if err := j.close(); err != nil {
			t.Fatal(err)
		}
		j, err = openJournal(dir, false, "a")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(string(readToEnd(t, j, "a", 1<<16))), "\n") {
			if len(l) != 47 || seen[l] {
				t.Fatalf("%s: torn or repeated line %q", async, l)
			}
			seen[l] = true
		}
		if len(seen) != 1600 {
			t.Fatalf("%s: read %d lines, want 1600", async, len(seen))
		}
		j.close()
	}
}

// Config errors name the file, line and key; an unknown key is refused;
// a secret file readable by others is refused without quoting it.
func TestGatewayConfigErrors(t *testing.T) {
	_, err := ParseConfig("gw.yaml", []byte("listen: 127.0.0.1:0\npublic_url: qr.example.org\nbroker: { url: \"tcp://b:1883\", password: hunter2-secret }\n"))
	if err == nil || !strings.Contains(err.Error(), "gw.yaml:2: public_url") || !strings.Contains(err.Error(), "qr.salt_file") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
	if _, err := ParseConfig("gw.yaml", []byte("public_url: https://qr.example.org\nbogus: 1\n")); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
	dir := t.TempDir()
	salt := filepath.Join(dir, "salt")
	os.WriteFile(salt, []byte("very-secret-salt-value-0123456789abcdef"), 0o644)
	if _, err := readSecret(salt, "qr.salt_file"); err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "very-secret") {
		t.Fatalf("world-readable secret: %v", err)
	}
	os.Chmod(salt, 0o600)
	c, err := ParseConfig("gw.yaml", []byte("public_url: https://qr.example.org\nbroker: { url: \"tcp://b:1883\" }\nqr: { salt_file: "+salt+" }\n"))
	if err != nil || c.Listen != DefaultListen || c.TopicPrefix != "village" || c.Sync() || c.Broker.ClientID == "" || c.QR.MaxClients != DefaultMaxClients {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	if sc, err := c.scanConfig(make([]byte, 32)); err != nil || sc.MaxClients != DefaultMaxClients {
		t.Fatalf("the scan rules get max_clients %d (%v), want the gateway's %d", sc.MaxClients, err, DefaultMaxClients)
	}
	// A request id header is believed only from the load balancer: it
	// needs trusted_proxies, and must be a header name.
	for yaml, want := range map[string]string{
		"qr:\n  salt_file: " + salt + "\n  request_id_header: X-Request-ID\n":                            "gw.yaml:5: qr.request_id_header: needs qr.trusted_proxies",
		"qr:\n  salt_file: " + salt + "\n  trusted_proxies: [10.0.0.2]\n  request_id_header: \"X Id\"\n": "gw.yaml:6: qr.request_id_header: must be a header name",
	} {
		_, err := ParseConfig("gw.yaml", []byte("public_url: https://qr.example.org\nbroker: { url: \"tcp://b:1883\" }\n"+yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}

// A sink's batch (up to maxRead bytes) is turned into InfluxDB lines in
// place, each board's tags escaped once: the lines are the records' own,
// and what it allocates grows with its lines, not with their square.
// The first version copied the rest of the batch for every line (a
// string conversion), which took half the gateway's CPU under load.
func TestInfluxBatchLinear(t *testing.T) {
	g := &Gateway{window: 30 * time.Second}
	g.m = newMetrics(g)
	var batch, want []byte
	const lines = 6000
	points := 0
	classes := []scan.Class{scan.ClassHuman, scan.ClassHuman, scan.ClassBot, scan.ClassRateLimited}
	for i := range lines {
		r := record{At: int64(i) * int64(time.Millisecond), Class: classes[i%len(classes)], Unique: i%2 == 0, HasVisit: i%3 == 0,
			Province: "thanh-hoa", District: "ngoc-lac", Commune: "minh-son", Village: "cho-ban", Hub: "hub-cb", Site: "cho-ban", Board: fmt.Sprintf("sap-%03d", i%300)}
		if i%7 == 0 {
			r.District, r.Hub = "", "" // left out of the tags
		}
		r.ID[0], r.ID[1] = byte(i), byte(i>>8)
		batch = r.appendTo(batch)
		var n int
		var err error
		if want, n, err = r.appendLines(want, g.window); err != nil {
			t.Fatal(err)
		}
		points += n
		if i == lines/2 {
			batch = append(batch, "not a journal line\n"...)
		}
	}
	batch = bytes.TrimSuffix(batch, []byte("\n")) // the last line without its newline is still read
	if len(batch) > maxRead {
		t.Fatalf("batch of %d bytes is more than a sink takes (%d)", len(batch), maxRead)
	}
	out := make([]byte, 0, 4<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, n := g.influxBatch(out, batch)
	runtime.ReadMemStats(&after)
	if n != points {
		t.Errorf("%d points, want %d", n, points)
	}
	// The cached series give the same lines as each record's own.
	if !bytes.Equal(out, want) {
		t.Errorf("batch lines differ from the records' own lines")
	}
	if got := testutil.ToFloat64(g.m.journalErrors); got != 1 {
		t.Errorf("malformed lines counted: %v, want 1", got)
	}
	perLine := (after.TotalAlloc - before.TotalAlloc) / lines
	t.Logf("%d bytes allocated per journal line (batch %d bytes)", perLine, len(batch))
	if perLine > 2048 {
		t.Errorf("%d bytes allocated per journal line: the batch is being copied per line", perLine)
	}
}

// appendLines is a record's own lines, its series built afresh: the
// reference the cached series are held to.
func (r *record) appendLines(b []byte, window time.Duration) ([]byte, int, error) {
	s, err := newSeries(r)
	if err != nil {
		return b, 0, err
	}
	b, n := r.appendSeries(b, s, window)
	return b, n, nil
}
