package influx_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

// The outage test runs writers in child processes (this test binary,
// re-executed) so that it can kill -9 them. helperEnv carries the child's
// job; TestMain runs it instead of the tests. The parent steers the child
// through its stdin, so that what the child has done when the parent acts
// (stops InfluxDB, kills it) is decided by the test, not by timing.
const helperEnv = "VILLAGEHUB_INFLUX_TEST_HELPER"

type helperJob struct {
	URL        string
	SpoolDir   string
	FirstBatch int // the first batch the child appends
	BatchLen   int // points per Append
	Series     int
	WriteBatch int   // Config.BatchSize
	SpoolMax   int64 // Config.SpoolMaxBytes
}

func TestMain(m *testing.M) {
	if job := os.Getenv(helperEnv); job != "" {
		os.Exit(helperMain(job))
	}
	os.Exit(m.Run())
}

// helperMain forwards to InfluxDB from the start and obeys commands read
// from stdin, one a line:
//
//	append N   append batches up to N-1, printing "acked B" once batch B
//	           is durable
//	waiting    print "waiting W", the points not yet confirmed
//
// It runs until killed (or until its stdin closes).
func helperMain(jobJSON string) int {
	var job helperJob
	if err := json.Unmarshal([]byte(jobJSON), &job); err != nil {
		fmt.Fprintln(os.Stderr, "bad job:", err)
		return 2
	}
	w, err := influx.New(influx.Config{
		URL: job.URL, Bucket: testenv.InfluxBucket, BatchSize: job.WriteBatch,
		FlushInterval: 20 * time.Millisecond, Timeout: 2 * time.Second, MaxRetryInterval: 200 * time.Millisecond,
		SpoolDir: job.SpoolDir, SpoolMaxBytes: job.SpoolMax,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "influx.New:", err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	go func() {
		if err := w.Run(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "Run:", err)
			os.Exit(3)
		}
	}()
	b := job.FirstBatch
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "append":
			upTo, _ := strconv.Atoi(arg)
			for ; b < upTo; b++ {
				if err := w.Append(seqBatch(b, job.BatchLen, job.Series)); err != nil {
					fmt.Fprintln(os.Stderr, "Append:", err)
					return 4
				}
				fmt.Fprintf(out, "acked %d\n", b)
				out.Flush()
			}
		case "waiting":
			fmt.Fprintf(out, "waiting %d\n", w.Waiting())
			out.Flush()
		default:
			fmt.Fprintln(os.Stderr, "unknown command:", in.Text())
			return 2
		}
	}
	return 0
}

// seqBatch is batch b: points seq = b*n .. b*n+n-1, series "d<seq % series>",
// timestamps set by Append.
func seqBatch(b, n, series int) []influx.Point {
	pts := make([]influx.Point, n)
	for i := range pts {
		seq := b*n + i
		pts[i] = influx.Point{
			Measurement: "outage",
			Tags:        []influx.Tag{{Key: "dev", Value: "d" + strconv.Itoa(seq%series)}},
			Fields:      []influx.Field{influx.Int("seq", int64(seq))},
		}
	}
	return pts
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startChild(t *testing.T, job helperJob) *child {
	t.Helper()
	js, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting writer process: %v", err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// send writes one command to the child.
func (c *child) send(t *testing.T, format string, args ...any) {
	t.Helper()
	if _, err := fmt.Fprintf(c.stdin, format+"\n", args...); err != nil {
		t.Fatalf("writing to the writer process: %v", err)
	}
}

// waiting asks the child how many points wait in its spool.
func (c *child) waiting(t *testing.T) int {
	t.Helper()
	c.send(t, "waiting")
	n := -1
	c.waitFor(t, new(int), func(l string) bool {
		v, ok := strings.CutPrefix(l, "waiting ")
		if ok {
			n, _ = strconv.Atoi(v)
		}
		return ok
	})
	return n
}

// kill sends SIGKILL and returns the lines the child printed before dying
// that nobody read yet. (The pipe is read to its end before Wait closes it,
// or the last "acked" lines could be lost.)
func (c *child) kill() []string {
	if c.cmd.ProcessState != nil {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	var rest []string
	for l := range c.lines {
		rest = append(rest, l)
	}
	c.cmd.Wait()
	return rest
}

// lastAcked updates acked from "acked N" lines.
func lastAcked(acked *int, lines []string) {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "acked "); ok {
			*acked, _ = strconv.Atoi(v)
		}
	}
}

// waitFor reads the child's output until pred accepts a line; it returns
// the last "acked" batch seen.
func (c *child) waitFor(t *testing.T, lastAcked *int, pred func(string) bool) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("writer process exited early: %v", c.cmd.Wait())
			}
			if v, ok := strings.CutPrefix(l, "acked "); ok {
				*lastAcked, _ = strconv.Atoi(v)
			}
			if pred(l) {
				return
			}
		case <-timeout:
			t.Fatalf("writer process: no expected output within 60s")
		}
	}
}

// TestOutageKillRestartExactlyOnce: InfluxDB goes down while 50,000 points
// are appended; the writer process is killed with SIGKILL during the outage,
// a new writer continues on the same spool, InfluxDB comes back, a third
// writer is killed while draining, and a last one finishes. Every point
// whose Append returned is in InfluxDB exactly once; the batch in flight at
// the kill is there entirely or not at all.
func TestOutageKillRestartExactlyOnce(t *testing.T) {
	const (
		batches  = 100
		batchLen = 500
		series   = 10
	)
	in := testenv.StartInflux(t)
	spoolDir := t.TempDir()
	job := helperJob{URL: in.URL(), SpoolDir: spoolDir, BatchLen: batchLen, Series: series, WriteBatch: 1000}

	c1 := startChild(t, job)
	acked := -1
	c1.send(t, "append 21")
	c1.waitFor(t, &acked, func(l string) bool { return l == "acked 20" })
	in.Stop() // the outage begins; appends go on
	c1.send(t, "append %d", batches)
	c1.waitFor(t, &acked, func(l string) bool { return l == "acked 60" })
	lastAcked(&acked, c1.kill()) // it may have printed more before dying
	inFlight := acked + 1
	t.Logf("writer 1 killed with %d batches acked; batch %d was in flight", acked+1, inFlight)

	// A new writer on the same spool appends the rest while InfluxDB is
	// still down. (The in-flight batch is not re-sent: the test checks that
	// it is all-or-nothing.) It runs on a fake clock, so that the attempts
	// it makes during the outage can be counted exactly.
	cfg := testConfig(in, spoolDir)
	clk := testenv.NewClock(time.Now())
	cfg2 := cfg
	cfg2.Now, cfg2.After = clk.Now, clk.After
	w2, err := influx.New(cfg2)
	if err != nil {
		t.Fatalf("reopening spool: %v", err)
	}
	recovered := w2.Waiting()
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- w2.Run(ctx2) }()
	for b := inFlight + 1; b < batches; b++ {
		if err := w2.Append(seqBatch(b, batchLen, series)); err != nil {
			t.Fatalf("Append during outage: %v", err)
		}
	}
	// The recovered backlog fills a batch: Run sends it at once, fails,
	// and backs off. Two attempts, one back-off apart.
	clk.WaitForWaiters(t, 1, clockWait)
	if v := metricValue(t, w2, "villagehub_influx_write_errors_total", "class", "network"); v != 1 {
		t.Errorf("network errors = %v after the first attempt during the outage, want 1", v)
	}
	if w2.Stale(time.Minute) {
		t.Errorf("Stale(1m) = true before a minute passed on the writer's clock")
	}
	clk.Advance(time.Minute)
	if !w2.Stale(time.Minute - time.Nanosecond) {
		t.Errorf("Stale(1m) = false after a minute of outage with points waiting")
	}
	clk.WaitForWaiters(t, 1, clockWait)
	if v := metricValue(t, w2, "villagehub_influx_write_errors_total", "class", "network"); v != 2 {
		t.Errorf("network errors = %v after the second attempt, want 2", v)
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("Run: %v", err)
	}
	waiting := w2.Waiting()
	if err := w2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("writer 2: recovered %d points from the spool, %d waiting at close", recovered, waiting)

	// InfluxDB comes back; a writer process drains and is killed mid-way.
	in.Start()
	c3 := startChild(t, helperJob{URL: in.URL(), SpoolDir: spoolDir, BatchLen: batchLen, Series: series, WriteBatch: 500})
	testenv.WaitFor(t, 60*time.Second, "the third writer to drain half the spool", func() bool {
		return c3.waiting(t) < int(waiting)/2
	})
	c3.kill()

	// The last writer drains the rest.
	w4 := startWriter(t, cfg)
	t.Logf("writer 4: %d points still waiting after the kill during the drain", w4.Waiting())
	waitDrained(t, w4, 60*time.Second)

	// Every seq exactly once, in the right series.
	rows := query(t, in, fmt.Sprintf(`from(bucket: %q)
  |> range(start: 2000-01-01T00:00:00Z, stop: 2100-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "outage" and r._field == "seq")
  |> keep(columns: ["dev", "_value"])`, testenv.InfluxBucket))
	seen := make(map[int64]int, len(rows))
	perSeries := map[string]int{}
	for _, r := range rows {
		seq := r["_value"].(int64)
		seen[seq]++
		perSeries[r["dev"].(string)]++
		if want := fmt.Sprintf("d%d", seq%series); r["dev"] != want {
			t.Fatalf("seq %d in series %v, want %s", seq, r["dev"], want)
		}
	}
	inFlightPresent := 0
	for seq := range int64(batches * batchLen) {
		b := int(seq) / batchLen
		switch {
		case b == inFlight:
			inFlightPresent += seen[seq]
		case seen[seq] != 1:
			t.Fatalf("seq %d (batch %d) is in InfluxDB %d times, want exactly once", seq, b, seen[seq])
		}
	}
	if inFlightPresent != 0 && inFlightPresent != batchLen {
		t.Fatalf("in-flight batch %d: %d of %d points in InfluxDB, want all or none", inFlight, inFlightPresent, batchLen)
	}
	want := (batches-1)*batchLen + inFlightPresent
	if len(rows) != want {
		t.Fatalf("%d points in InfluxDB, want %d", len(rows), want)
	}
	// count() per series, as an operator would check it.
	counts := countsBySeries(t, in, "outage", "seq", "dev", time.Unix(0, 0))
	for dev, n := range perSeries {
		if counts[dev] != int64(n) {
			t.Errorf("count() for %s = %d, want %d", dev, counts[dev], n)
		}
	}
	t.Logf("%d points in InfluxDB exactly once (in-flight batch present: %v)", len(rows), inFlightPresent > 0)
	_ = io.Discard
}

// TestKillLoop kills writer processes at random moments while they append
// and forward to a live InfluxDB through a small spool (segments roll and
// are deleted all the time), restarting each time on the same spool.
// Every acknowledged batch ends up in InfluxDB exactly once; each batch in
// flight at a kill is there entirely or not at all.
func TestKillLoop(t *testing.T) {
	const (
		batchLen = 200
		series   = 7
		kills    = 8
	)
	in := testenv.StartInflux(t)
	spoolDir := t.TempDir()
	next := 0
	var inFlight []int
	for k := range kills {
		c := startChild(t, helperJob{URL: in.URL(), SpoolDir: spoolDir, FirstBatch: next,
			BatchLen: batchLen, Series: series, WriteBatch: 700, SpoolMax: 2 << 20})
		acked := next - 1
		c.send(t, "append %d", next+100_000)
		// The kill lands a varying number of batches in, while the child
		// keeps appending (and forwarding, and rolling segments).
		killAt := "acked " + strconv.Itoa(next+3+(k*13)%40)
		c.waitFor(t, &acked, func(l string) bool { return l == killAt })
		lastAcked(&acked, c.kill())
		inFlight = append(inFlight, acked+1)
		next = acked + 2
	}
	cfg := testConfig(in, spoolDir)
	cfg.SpoolMaxBytes = 2 << 20
	w := startWriter(t, cfg)
	waitDrained(t, w, 60*time.Second)

	rows := query(t, in, fmt.Sprintf(`from(bucket: %q)
  |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "outage" and r._field == "seq")
  |> keep(columns: ["_value"])`, testenv.InfluxBucket))
	seen := make(map[int64]int, len(rows))
	for _, r := range rows {
		seen[r["_value"].(int64)]++
	}
	skipped := map[int]bool{}
	for _, b := range inFlight {
		skipped[b] = true
		n := 0
		for i := range batchLen {
			n += seen[int64(b*batchLen+i)]
		}
		if n != 0 && n != batchLen {
			t.Errorf("in-flight batch %d: %d of %d points in InfluxDB, want all or none", b, n, batchLen)
		}
	}
	for b := range next - 1 {
		if skipped[b] {
			continue
		}
		for i := range batchLen {
			if n := seen[int64(b*batchLen+i)]; n != 1 {
				t.Fatalf("seq %d (acked batch %d) in InfluxDB %d times, want 1", b*batchLen+i, b, n)
			}
		}
	}
	t.Logf("%d kills, %d batches acked, %d points in InfluxDB", kills, next-1-len(inFlight), len(rows))
}
