package influx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// DeadLetterFile is the name of the dead-letter file in the spool directory:
// points InfluxDB refused as malformed (or that could not be encoded), each
// line preceded by a "# <time> <reason>" comment, so the file can be fixed
// and re-imported with `influx write` / `influx -import`.
const DeadLetterFile = "dead-letter.lp"

var errClosed = errors.New("influx writer closed")

// Retry back-off: the first retry after about initialRetryInterval, each
// next one twice as late, up to Config.MaxRetryInterval; every wait is
// spread by ±retryJitter of itself.
const (
	initialRetryInterval = 100 * time.Millisecond
	retryJitter          = 0.5
)

// clockFunc gives the back-off library the writer's clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// Writer spools points durably and forwards them to InfluxDB.
//
// Append makes points durable on local disk; Run forwards them in order and
// removes them from the spool only after InfluxDB confirmed the write. A
// point is therefore either in the spool or in InfluxDB at every moment,
// across crashes and kill -9 (see docs/influxdb.md).
type Writer struct {
	cfg    Config
	log    *slog.Logger
	spool  *spool
	client influxdb2.Client
	api    api.WriteAPIBlocking

	extraTags []byte // ",key=value..." from cfg.Tags

	// mu serialises encoding, timestamp assignment and spool writes; the
	// fsync that follows runs outside it so that appenders share it.
	mu        sync.Mutex
	closed    bool
	buf       []byte
	series    map[string]*seriesTimes
	runCancel context.CancelFunc
	runDone   chan struct{}

	dlMu sync.Mutex
	dl   *os.File

	opened       time.Time
	waitingSince atomic.Int64 // unix ns when the spool last went from empty to non-empty
	lastSuccess  atomic.Int64 // unix ns of the last confirmed write
	m            *metrics
}

// New opens (or creates) the spool in cfg.SpoolDir, recovering whatever a
// previous process left there, and prepares the InfluxDB client. It does not
// contact InfluxDB: the hub must start even while InfluxDB is down.
func New(cfg Config) (*Writer, error) {
	if !cfg.Enabled() {
		return nil, errors.New("influx.url: required (e.g. http://127.0.0.1:8086)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.SpoolDir == "" {
		return nil, errors.New("influx.spool_dir: required (the hub sets it to <data_dir>/influx-spool)")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "influx")
	w := &Writer{
		cfg:    cfg,
		log:    log,
		series: make(map[string]*seriesTimes),
		opened: cfg.Now(),
		m:      newMetrics(),
	}
	for _, t := range cfg.Tags {
		if t.Key != "" && t.Value != "" {
			w.extraTags = append(append(append(append(w.extraTags, ','), t.Key...), '='), t.Value...)
		}
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, log, func(line []byte) {
		if ts, ok := lineTime(line); ok {
			w.seriesFor(lineKey(line)).mark(ts)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("opening influx spool in %s: %w", cfg.SpoolDir, err)
	}
	w.spool = sp
	if n := sp.waiting(); n > 0 {
		w.waitingSince.Store(cfg.Now().UnixNano())
		log.Info("influx spool recovered points waiting for InfluxDB", "points", n, "bytes", sp.diskBytes.Load())
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 4
	if u, _ := url.Parse(cfg.URL); u.Scheme == "https" || cfg.TLS != (TLSConfig{}) {
		tc, err := cfg.TLS.load()
		if err != nil {
			sp.close()
			return nil, err
		}
		transport.TLSClientConfig = tc
	}
	opts := influxdb2.DefaultOptions().
		SetHTTPClient(&http.Client{Transport: transport}).
		SetUseGZip(cfg.Gzip).
		SetPrecision(time.Nanosecond).
		SetApplicationName("villagehub").
		SetLogLevel(0) // the client's own logger would print to stderr; we log with slog
	w.client = influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	w.api = w.client.WriteAPIBlocking(cfg.Org, cfg.Bucket)
	return w, nil
}

// Append encodes points, gives each a timestamp that is unique within its
// series, and returns once they are durable in the spool (written and
// fdatasynced). It never waits for InfluxDB.
//
// Concurrent and back-to-back calls share one fdatasync (group commit): a
// call returns after at most the fsync in progress when it wrote plus one
// more, typically well under a millisecond on an SSD.
//
// It returns ErrSpoolFull (wrapped or not; test with errors.Is) when the
// spool has reached SpoolMaxBytes or the disk is full: nothing was spooled
// and the caller should stop acknowledging its input and retry later.
// Points that cannot be encoded (NaN, empty measurement, control characters
// in a tag) go to the dead-letter file and do not fail the call.
func (w *Writer) Append(points []Point) error {
	if len(points) == 0 {
		return nil
	}
	return w.spoolRecords(func(buf []byte) ([]byte, int, []deadPoint) {
		now := w.cfg.Now().UnixNano()
		var bad []deadPoint
		total := 0
		for i := 0; i < len(points); {
			// One record per BatchSize points (or segment's worth of bytes):
			// a record is what the forwarder sends whole.
			recStart := len(buf)
			buf = append(buf, make([]byte, recHeaderLen)...)
			n := 0
			for ; i < len(points) && n < w.cfg.BatchSize && int64(len(buf)-recStart) < w.spool.segMax; i++ {
				var err error
				lineStart := len(buf)
				if buf, err = w.encode(buf, &points[i], now); err != nil {
					bad = append(bad, deadPoint{line: describe(&points[i]), reason: err.Error()})
					buf = buf[:lineStart]
					continue
				}
				n++
			}
			if n == 0 {
				buf = buf[:recStart]
				continue
			}
			sealRecord(buf[recStart:], n)
			total += n
		}
		return buf, total, bad
	})
}

// spoolRecords appends the records build writes into the buffer it is
// given, makes them durable (group commit) and dead-letters the points
// build could not encode. build runs under w.mu.
func (w *Writer) spoolRecords(build func(buf []byte) ([]byte, int, []deadPoint)) error {
	if w.spool.full() {
		w.m.spoolFull.Inc()
		return ErrSpoolFull
	}
	if w.spool.waiting() == 0 {
		w.waitingSince.Store(w.cfg.Now().UnixNano())
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosed
	}
	buf, total, bad := build(w.buf[:0])
	w.buf = buf
	var end pos
	var err error
	if total > 0 {
		end, err = w.spool.write(buf, total)
	}
	if cap(w.buf) > 4<<20 {
		w.buf = nil // do not keep a huge buffer after one huge Append
	}
	w.mu.Unlock()

	if err != nil {
		// Nothing spooled; the caller retries the whole call, so the
		// unencodable points are dead-lettered then, once.
		if errors.Is(err, ErrSpoolFull) {
			w.m.spoolFull.Inc()
		}
		return err
	}
	if total > 0 {
		if err := w.spool.syncTo(end); err != nil {
			return err
		}
		w.m.spooled.Add(float64(total))
	}
	if len(bad) > 0 {
		if err := w.deadLetter(bad, "not encodable"); err != nil {
			return err
		}
	}
	return nil
}

// AppendLines spools lines already encoded with AppendLine, keeping their
// timestamps: the caller made them unique per series, and writing the same
// lines again (a replay after a crash) then overwrites them in InfluxDB
// instead of adding to them. n is the number of lines. Durability, group
// commit and ErrSpoolFull are as for Append.
func (w *Writer) AppendLines(lines []byte, n int) error {
	if n == 0 {
		return nil
	}
	return w.spoolRecords(func(buf []byte) ([]byte, int, []deadPoint) {
		total := 0
		for len(lines) > 0 {
			// One record per BatchSize lines (or segment's worth of bytes).
			recStart := len(buf)
			buf = append(buf, make([]byte, recHeaderLen)...)
			k := 0
			for len(lines) > 0 && k < w.cfg.BatchSize && int64(len(buf)-recStart) < w.spool.segMax {
				i := bytes.IndexByte(lines, '\n')
				if i < 0 {
					i = len(lines) - 1
				}
				buf = w.appendTagged(buf, lines[:i+1])
				lines = lines[i+1:]
				k++
			}
			sealRecord(buf[recStart:], k)
			total += k
		}
		return buf, total, nil
	})
}

// appendTagged appends one encoded line with Config.Tags added to its key.
func (w *Writer) appendTagged(b, line []byte) []byte {
	if len(w.extraTags) == 0 {
		return append(b, line...)
	}
	k := len(lineKey(line))
	b = append(b, line[:k]...)
	b = append(b, w.extraTags...)
	return append(b, line[k:]...)
}

// encode appends one line for p, with a timestamp unique in its series.
func (w *Writer) encode(b []byte, p *Point, now int64) ([]byte, error) {
	start := len(b)
	b, err := appendKey(b, p)
	if err != nil {
		return b, fmt.Errorf("%w: %v", errInvalidPoint, err)
	}
	b = append(b, w.extraTags...)
	keyEnd := len(b)
	if b, err = appendFields(b, p); err != nil {
		return b, fmt.Errorf("%w: %v", errInvalidPoint, err)
	}
	ts := now
	if !p.Time.IsZero() {
		if p.Time.Before(minTime) || p.Time.After(maxTime) {
			return b, fmt.Errorf("%w: time %s outside InfluxDB's range", errInvalidPoint, p.Time.Format(time.RFC3339))
		}
		ts = p.Time.UnixNano()
	}
	ts = w.seriesFor(b[start:keyEnd]).use(ts)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ts, 10)
	return append(b, '\n'), nil
}

func (w *Writer) seriesFor(key []byte) *seriesTimes {
	if st, ok := w.series[string(key)]; ok {
		return st
	}
	st := &seriesTimes{}
	w.series[string(key)] = st
	return st
}

// seriesTimes remembers the timestamps most recently used in one series.
// InfluxDB keeps one value per series, field and timestamp, so two points
// of a series with the same timestamp would overwrite each other (two QR
// reports in the same instant would lose a scan). A timestamp already used
// is moved to the first free nanosecond after it. Used timestamps are kept
// as a few runs of consecutive nanoseconds, so a burst of any length in one
// instant costs one run; a point older than every remembered run (a late,
// out-of-order report) is not checked.
type seriesTimes struct {
	runs [8]struct{ lo, hi int64 }
	n    int   // runs in use
	next int   // ring position of the next new run
	last int64 // largest timestamp used
}

func (s *seriesTimes) use(t int64) int64 {
	if s.n > 0 && t <= s.last {
		for moved := true; moved; {
			moved = false
			for i := range s.n {
				if r := s.runs[i]; r.lo <= t && t <= r.hi {
					t = r.hi + 1
					moved = true
				}
			}
		}
	}
	s.mark(t)
	return t
}

// mark records t as used.
func (s *seriesTimes) mark(t int64) {
	if t > s.last || s.n == 0 {
		s.last = t
	}
	for i := range s.n {
		if r := &s.runs[i]; t == r.hi+1 {
			r.hi = t
			return
		} else if r.lo <= t && t <= r.hi {
			return
		}
	}
	s.runs[s.next] = struct{ lo, hi int64 }{t, t}
	s.next = (s.next + 1) % len(s.runs)
	s.n = min(s.n+1, len(s.runs))
}

type deadPoint struct {
	line   string
	reason string
}

// deadLetter appends points to the dead-letter file and fsyncs it: a point
// leaves the spool for the dead-letter file, never for nowhere.
func (w *Writer) deadLetter(points []deadPoint, kind string) error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	if w.dl == nil {
		f, err := os.OpenFile(filepath.Join(w.cfg.SpoolDir, DeadLetterFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("opening influx dead-letter file: %w", err)
		}
		w.dl = f
	}
	var b []byte
	now := w.cfg.Now().UTC().Format(time.RFC3339Nano)
	for _, p := range points {
		b = append(b, "# "...)
		b = append(b, now...)
		b = append(b, ' ')
		b = append(b, oneLine(p.reason)...)
		b = append(b, '\n')
		b = append(b, p.line...)
		if len(p.line) == 0 || p.line[len(p.line)-1] != '\n' {
			b = append(b, '\n')
		}
	}
	if _, err := w.dl.Write(b); err != nil {
		return fmt.Errorf("writing influx dead-letter file: %w", err)
	}
	if err := w.dl.Sync(); err != nil {
		return fmt.Errorf("syncing influx dead-letter file: %w", err)
	}
	w.m.deadLetter.Add(float64(len(points)))
	w.log.Warn("influx points moved to the dead-letter file", "points", len(points), "kind", kind,
		"reason", oneLine(points[0].reason), "file", filepath.Join(w.cfg.SpoolDir, DeadLetterFile))
	return nil
}

// describe renders a point that could not be encoded, as a comment line.
func describe(p *Point) string {
	b := []byte("# unencodable point: ")
	b = strconv.AppendQuote(b, p.Measurement)
	for _, t := range p.Tags {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, t.Key)
		b = append(b, '=')
		b = strconv.AppendQuote(b, t.Value)
	}
	for _, f := range p.Fields {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, f.Key)
		b = append(b, ':')
		b = fmt.Appendf(b, "%#v", f.Value())
	}
	b = append(b, ' ')
	b = append(b, p.Time.UTC().Format(time.RFC3339Nano)...)
	return oneLine(string(b)) + "\n"
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	if len(b) > 500 {
		b = append(b[:500], "..."...)
	}
	return string(b)
}

// Run forwards spooled points to InfluxDB until ctx ends (then it returns
// nil) or the spool fails (then it returns the error). One goroutine, in
// spool order: batches of up to BatchSize points, sent as soon as a batch is
// full or its oldest point waited FlushInterval, retried with exponential
// backoff on network errors, timeouts, 5xx and 429 (honouring Retry-After),
// split to isolate points InfluxDB refuses as malformed.
func (w *Writer) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosed
	}
	if w.runCancel != nil {
		w.mu.Unlock()
		return errors.New("influx writer: Run is already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	w.runCancel, w.runDone = cancel, done
	w.mu.Unlock()
	defer func() {
		cancel()
		w.mu.Lock()
		w.runCancel, w.runDone = nil, nil
		w.mu.Unlock()
		close(done)
	}()

	w.spool.rewind()
	var lines []byte
	var pendingSince time.Time
	// The flush timer: one per deadline, kept across wake-ups by new
	// appends, so that a burst of appends does not make a timer each.
	var flushC <-chan time.Time
	var flushAt time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		unread := w.spool.unread()
		if unread == 0 {
			pendingSince = time.Time{}
			select {
			case <-w.spool.notify:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if pendingSince.IsZero() {
			pendingSince = w.cfg.Now()
		}
		if unread < int64(w.cfg.BatchSize) {
			deadline := pendingSince.Add(w.cfg.FlushInterval)
			if wait := deadline.Sub(w.cfg.Now()); wait > 0 {
				if flushC == nil || !flushAt.Equal(deadline) {
					flushC, flushAt = w.cfg.After(wait), deadline
				}
				select {
				case <-w.spool.notify:
					continue
				case <-flushC:
					flushC = nil
				case <-ctx.Done():
					return nil
				}
			}
		}
		var n int
		var end pos
		var err error
		lines, n, end, err = w.spool.next(lines[:0], w.cfg.BatchSize)
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		if err := w.deliver(ctx, lines, n); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := w.spool.confirm(end, n); err != nil {
			return err
		}
		pendingSince = w.cfg.Now()
		if cap(lines) > 16<<20 {
			lines = nil
		}
	}
}

// Error classes for villagehub_influx_write_errors_total.
const (
	classNetwork     = "network"
	classTimeout     = "timeout"
	classServerError = "server_error"
	classRateLimited = "rate_limited"
	classBadRequest  = "bad_request"
	classOther       = "other"
)

var errorClasses = []string{classNetwork, classTimeout, classServerError, classRateLimited, classBadRequest, classOther}

// deliver writes n lines to InfluxDB, retrying until it succeeds or ctx
// ends. Lines InfluxDB refuses as malformed end in the dead-letter file.
func (w *Writer) deliver(ctx context.Context, lines []byte, n int) error {
	// The client takes a string; copying ~80 bytes a point is cheap next to
	// the HTTP round trip, and the spool buffer stays ours.
	body := string(lines)
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initialRetryInterval),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(retryJitter), // many hubs sharing one InfluxDB do not retry in step
		backoff.WithMaxInterval(w.cfg.MaxRetryInterval),
		backoff.WithMaxElapsedTime(0), // never give up: the points wait on disk
		backoff.WithClockProvider(clockFunc(w.cfg.Now)),
	)
	failures := 0
	var firstFailure time.Time
	var lastLog time.Time
	for {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
		err := w.api.WriteRecord(rctx, body)
		cancel()
		w.m.duration.Observe(time.Since(start).Seconds())
		if err == nil {
			w.m.written.Add(float64(n))
			w.lastSuccess.Store(w.cfg.Now().UnixNano())
			if failures > 0 {
				w.log.Info("influx writes recovered", "failed_attempts", failures, "after", w.cfg.Now().Sub(firstFailure).Round(time.Millisecond))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		class, retryAfter := classify(err)
		w.m.errors.WithLabelValues(class).Inc()
		if class == classBadRequest {
			return w.split(ctx, lines, n, err)
		}
		if failures == 0 {
			firstFailure = w.cfg.Now()
		}
		failures++
		// The jitter may take the back-off above its cap; the cap wins.
		wait := min(bo.NextBackOff(), w.cfg.MaxRetryInterval)
		if retryAfter > wait {
			wait = retryAfter
		}
		if now := w.cfg.Now(); lastLog.IsZero() || now.Sub(lastLog) > time.Minute {
			lastLog = now
			attrs := []any{"class", class, "err", err, "points_waiting", w.spool.waiting(),
				"failed_attempts", failures, "retry_in", wait.Round(time.Millisecond)}
			if h := hint(err); h != "" {
				attrs = append(attrs, "hint", h)
			}
			w.log.Warn("influx write failed; points stay in the spool and are retried", attrs...)
		}
		select {
		case <-w.cfg.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// split isolates malformed points by halving the batch. A batch InfluxDB
// refused may have been partly written (1.8 writes the valid points of a
// "partial write"); sending those again overwrites them with themselves.
func (w *Writer) split(ctx context.Context, lines []byte, n int, cause error) error {
	if n <= 1 {
		return w.deadLetter([]deadPoint{{line: string(lines), reason: cause.Error()}}, "refused by InfluxDB")
	}
	half := n / 2
	cut := 0
	for seen := 0; seen < half; cut++ {
		if lines[cut] == '\n' {
			seen++
		}
	}
	if err := w.deliver(ctx, lines[:cut], half); err != nil {
		return err
	}
	return w.deliver(ctx, lines[cut:], n-half)
}

// classify maps a write error to its metric class and the server's
// Retry-After, if any.
func classify(err error) (string, time.Duration) {
	var he *ihttp.Error
	if errors.As(err, &he) && he.StatusCode != 0 {
		ra := time.Duration(he.RetryAfter) * time.Second
		switch s := he.StatusCode; {
		case s == http.StatusTooManyRequests:
			return classRateLimited, ra
		case s >= 500:
			return classServerError, ra
		case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge || s == http.StatusUnprocessableEntity:
			return classBadRequest, 0
		default:
			// 401, 403, 404 (no such bucket or database): a configuration
			// problem, not bad data. The points wait until it is fixed.
			return classOther, ra
		}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return classTimeout, 0
	}
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return classNetwork, 0
	}
	return classOther, 0
}

func hint(err error) string {
	var he *ihttp.Error
	if errors.As(err, &he) {
		switch he.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return "check influx.token"
		case http.StatusNotFound:
			return "check influx.org and influx.bucket (for 1.8: database/retention-policy, and that the database exists)"
		}
	}
	return ""
}

// Stale reports whether points have been waiting in the spool without a
// successful write for longer than maxAge: for /readyz.
func (w *Writer) Stale(maxAge time.Duration) bool {
	if w.spool.waiting() <= 0 {
		return false
	}
	ref := max(w.lastSuccess.Load(), w.waitingSince.Load(), w.opened.UnixNano())
	return w.cfg.Now().Sub(time.Unix(0, ref)) > maxAge
}

// Waiting returns the number of points in the spool that InfluxDB has not
// confirmed yet.
func (w *Writer) Waiting() int64 { return w.spool.waiting() }

// Close stops Run (if running) and closes the spool. It sends nothing: what
// InfluxDB has not confirmed stays in the spool for the next start.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	cancel, done := w.runCancel, w.runDone
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	err := w.spool.close()
	w.dlMu.Lock()
	if w.dl != nil {
		err = errors.Join(err, w.dl.Close())
		w.dl = nil
	}
	w.dlMu.Unlock()
	w.client.Close()
	if err != nil {
		return fmt.Errorf("closing influx writer: %w", err)
	}
	return nil
}
