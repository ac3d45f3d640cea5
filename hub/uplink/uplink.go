package uplink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	pconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"
)

// Options are what New needs besides the config.
type Options struct {
	Config Config
	Place  Place
	HubID  string
	// Gatherer is the registry /metrics serves; its families are sent up.
	Gatherer prometheus.Gatherer
	// Registerer receives the uplink's own metrics and
	// villagehub_place_info (so they are also sent up). May be nil.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock for gather timestamps (default time.Now).
	Now func() time.Time
}

// Uplink gathers, queues and sends. Build it with New, run it with Run.
type Uplink struct {
	o       Options
	log     *slog.Logger
	remotes []*sender
	place   []label        // place labels + hub, sorted
	exclude *regexp.Regexp // metric names not sent up; nil: none
	gathers atomic.Int64
}

// New validates nothing further than Config.Validate did; it opens the
// queues (creating their directories, 0700) and registers the metrics.
func New(o Options) (*Uplink, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Gatherer == nil {
		return nil, errors.New("uplink: no gatherer")
	}
	u := &Uplink{o: o, log: o.Logger.With("component", "uplink"), place: placeLabels(o.Place, o.HubID)}
	ex := o.Config.Exclude
	if ex == nil {
		ex = DefaultExclude
	}
	var err error
	if u.exclude, err = excludeRe(ex); err != nil {
		return nil, fmt.Errorf("uplink.exclude: %w", err)
	}
	for _, rc := range o.Config.RemoteWrite {
		s, err := newSender(rc, u.log.With("remote", rc.Name), o.Now)
		if err != nil {
			return nil, err
		}
		u.remotes = append(u.remotes, s)
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(u); err != nil {
			return nil, fmt.Errorf("uplink: %w", err)
		}
	}
	return u, nil
}

// DrainTimeout bounds how long Run keeps sending after its context ends,
// so that a clean stop leaves nothing queued when the receiver is up.
const DrainTimeout = 5 * time.Second

// Run gathers every interval and runs one sender per receiver until ctx
// ends; then it sends what is queued for up to DrainTimeout (stopping at
// the first failure). What is left stays on disk for the next start.
func (u *Uplink) Run(ctx context.Context) error {
	sendCtx, stopSend := context.WithCancel(context.Background())
	defer stopSend()
	draining := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range u.remotes {
		wg.Go(func() { s.run(sendCtx, draining) })
	}
	t := time.NewTicker(time.Duration(u.o.Config.Interval))
	defer t.Stop()
	for done := false; !done; {
		if err := u.GatherOnce(); err != nil {
			u.log.Warn("uplink gather failed", "err", err)
		}
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		}
	}
	close(draining)
	stop := time.AfterFunc(DrainTimeout, stopSend)
	defer stop.Stop()
	wg.Wait()
	return nil
}

// Gathers is how many gathers were queued since start.
func (u *Uplink) Gathers() int64 { return u.gathers.Load() }

// GatherOnce gathers the registry now and queues the result for every
// receiver.
func (u *Uplink) GatherOnce() error {
	now := u.o.Now()
	mfs, err := u.o.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.TimeFromUnixNano(now.UnixNano())}, mfs...)
	if err != nil && len(vec) == 0 {
		return err
	}
	ss := u.toSeries(vec)
	return u.Queue(ss)
}

func placeLabels(p Place, hub string) []label {
	var out []label
	for i, id := range p.IDs() {
		if id != "" {
			out = append(out, label{PlaceLabels[i], id})
		}
	}
	if hub != "" {
		out = append(out, label{"hub", hub})
	}
	sortLabels(out)
	return out
}

// EncodeWriteRequest encodes samples as one remote-write 1.0 request body
// (protobuf, before snappy) labelled with place and hub as the uplink does
// it: for load generators that replay a hub's payloads as many villages.
func EncodeWriteRequest(vec model.Vector, place Place, hub string) []byte {
	u := &Uplink{place: placeLabels(place, hub)}
	return encodeWriteRequest(nil, u.toSeries(vec))
}

// toSeries labels samples with the place and hub (these win over a
// metric's own label of the same name).
func (u *Uplink) toSeries(vec model.Vector) []series {
	ss := make([]series, 0, len(vec))
	for _, smp := range vec {
		if u.exclude != nil && u.exclude.MatchString(string(smp.Metric[model.MetricNameLabel])) {
			continue
		}
		ls := make([]label, 0, len(smp.Metric)+len(u.place))
		for n, v := range smp.Metric {
			if u.isPlace(string(n)) {
				continue
			}
			ls = append(ls, label{string(n), string(v)})
		}
		ls = append(ls, u.place...)
		sortLabels(ls)
		v := float64(smp.Value)
		if strings.HasSuffix(string(smp.Metric[model.MetricNameLabel]), "_timestamp_seconds") {
			// A time as a gauge (last probe success, last push...): whole
			// seconds are all the centre needs, and a float64 with no
			// fraction ends in zero bytes that compress, where
			// nanoseconds are 8 bytes of noise in every sample.
			v = math.Round(v)
		}
		ss = append(ss, series{Labels: ls, Samples: []sample{{Value: v, TS: int64(smp.Timestamp)}}})
	}
	return ss
}

func (u *Uplink) isPlace(n string) bool {
	for _, l := range u.place {
		if l.Name == n {
			return true
		}
	}
	return false
}

// Queue appends one request's series to every receiver's queue.
func (u *Uplink) Queue(ss []series) error {
	if len(ss) == 0 {
		return nil
	}
	n, oldest := 0, int64(math.MaxInt64)
	for _, s := range ss {
		for _, x := range s.Samples {
			n++
			oldest = min(oldest, x.TS)
		}
	}
	raw := encodeWriteRequest(nil, ss)
	u.gathers.Add(1)
	var errs []error
	for _, s := range u.remotes {
		if err := s.q.append(raw, oldest, n); err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		s.queued += float64(n)
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// sender pushes one queue to one receiver.
type sender struct {
	cfg     RemoteWrite
	log     *slog.Logger
	now     func() time.Time
	q       *queue
	api     *remote.API
	limiter *rate.Limiter // nil: unlimited
	status  atomic.Int32  // HTTP status of the last attempt, 0 = none

	mu          sync.Mutex
	queued      float64
	sent        float64
	bytesSent   float64
	failures    float64
	dropped     map[string]float64
	lastSuccess time.Time
	lastLog     time.Time
}

func newSender(rc RemoteWrite, log *slog.Logger, now func() time.Time) (*sender, error) {
	s := &sender{cfg: rc, log: log, now: now, dropped: map[string]float64{"queue_full": 0, "rejected": 0, "corrupt": 0}}
	q, err := openQueue(rc.Dir, rc.MaxBytes, func(n int, reason string) {
		s.mu.Lock()
		s.dropped[reason] += float64(n)
		s.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	s.q = q
	hc := pconfig.HTTPClientConfig{
		BearerTokenFile: rc.BearerTokenFile,
		TLSConfig:       pconfig.TLSConfig{CAFile: rc.CAFile},
		EnableHTTP2:     false,
	}
	if b := rc.BasicAuth; b != nil {
		hc.BasicAuth = &pconfig.BasicAuth{Username: b.Username, Password: pconfig.Secret(b.Password), PasswordFile: b.PasswordFile}
	}
	// Files (token, password, CA) are read by the round tripper on each
	// request, so they can be rotated without a restart.
	rt, err := pconfig.NewRoundTripperFromConfig(hc, "uplink_"+rc.Name)
	if err != nil {
		return nil, fmt.Errorf("uplink.remote_write %s: %w", rc.Name, err)
	}
	client := &http.Client{Transport: statusRT{rt, &s.status}, Timeout: time.Duration(rc.Timeout)}
	s.api, err = remote.NewAPI(rc.URL, remote.WithAPIHTTPClient(client), remote.WithAPIPath(""),
		// One attempt per Write: the sender retries itself, so that it
		// can tell a rejected request from an unreachable receiver and
		// keep the queue on disk meanwhile. (MaxRetries 0 would mean
		// "forever"; a negative count stops after the first attempt.)
		remote.WithAPIBackoff(remote.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: -1}))
	if err != nil {
		return nil, fmt.Errorf("uplink.remote_write %s: %w", rc.Name, err)
	}
	if rc.MaxBytesPerSecond > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(rc.MaxBytesPerSecond), int(rc.MaxBytesPerSecond))
	}
	return s, nil
}

type statusRT struct {
	next   http.RoundTripper
	status *atomic.Int32
}

func (s statusRT) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err == nil {
		s.status.Store(int32(resp.StatusCode))
	}
	return resp, err
}

// run sends until ctx ends, or, once draining is closed, until the queue
// is empty or a push fails.
func (s *sender) run(ctx context.Context, draining <-chan struct{}) {
	backoff := time.Duration(s.cfg.MinBackoff)
	for ctx.Err() == nil {
		metas := s.q.peek(s.cfg.MaxSamplesPerSend)
		if len(metas) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-draining:
				return
			case <-s.q.notify:
			}
			continue
		}
		if !s.batchWait(ctx, draining) {
			continue
		}
		var (
			reqs    [][]series
			batch   []recMeta
			corrupt []recMeta
			n       int
		)
		for _, m := range metas {
			ss, err := s.q.read(m)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				// Dropped (queue full) since peek; already counted.
			case err != nil:
				corrupt = append(corrupt, m)
			default:
				reqs = append(reqs, ss)
				batch = append(batch, m)
				n += m.samples
			}
		}
		if len(corrupt) > 0 {
			s.drop(corrupt, "corrupt")
			s.q.remove(corrupt)
		}
		if len(batch) == 0 {
			continue
		}
		raw := encodeWriteRequest(nil, merge(reqs))
		// The bytes on the wire: the request body as the client library
		// compresses it (snappy block format).
		wire := len(snappy.Encode(nil, raw))
		if err := s.wait(ctx, wire); err != nil {
			return
		}
		s.status.Store(0)
		_, err := s.api.Write(ctx, remote.WriteV1MessageType, rawRequest(raw))
		status := int(s.status.Load())
		switch {
		case err == nil:
			s.q.remove(batch)
			s.mu.Lock()
			s.sent += float64(n)
			s.bytesSent += float64(wire)
			s.lastSuccess = s.now()
			s.mu.Unlock()
			backoff = time.Duration(s.cfg.MinBackoff)
		case ctx.Err() != nil:
			return
		case status >= 400 && status < 500 && status != http.StatusTooManyRequests:
			// The receiver will never take these (e.g. too old for its
			// out-of-order window): retrying would block the queue.
			s.log.Warn("uplink receiver rejected samples; dropping them", "status", status, "samples", n, "err", err)
			s.drop(batch, "rejected")
			s.q.remove(batch)
		default:
			s.mu.Lock()
			s.failures++
			quiet := s.now().Sub(s.lastLog) < time.Minute
			if !quiet {
				s.lastLog = s.now()
			}
			s.mu.Unlock()
			if !quiet {
				_, oldest, _, queued := s.q.stats()
				s.log.Warn("uplink push failed; keeping samples queued on disk", "status", status, "err", err,
					"queued_samples", queued, "oldest", time.UnixMilli(oldest).UTC().Format(time.RFC3339), "retry_in", backoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-draining:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, time.Duration(s.cfg.MaxBackoff))
		}
	}
}

// batchWait holds the queue back until its oldest sample is
// BatchSendDeadline old (or a request's worth is queued, or the hub is
// stopping). It reports false when the caller should look at the queue
// again first.
func (s *sender) batchWait(ctx context.Context, draining <-chan struct{}) bool {
	var d time.Duration
	if s.cfg.BatchSendDeadline != nil {
		d = time.Duration(*s.cfg.BatchSendDeadline)
	}
	if d <= 0 {
		return true
	}
	_, oldest, _, samples := s.q.stats()
	wait := time.UnixMilli(oldest).Add(d).Sub(s.now())
	if wait <= 0 || samples >= s.cfg.MaxSamplesPerSend {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-draining:
		return true
	case <-s.q.notify:
		return false
	case <-t.C:
		return true
	}
}

func (s *sender) drop(ms []recMeta, reason string) {
	n := 0
	for _, m := range ms {
		n += m.samples
	}
	s.mu.Lock()
	s.dropped[reason] += float64(n)
	s.mu.Unlock()
}

// wait takes n bytes from the rate limiter (in bursts of at most a
// second's worth).
func (s *sender) wait(ctx context.Context, n int) error {
	if s.limiter == nil {
		return ctx.Err()
	}
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

var (
	labelsRemote   = []string{"remote"}
	descQueueBytes = prometheus.NewDesc("villagehub_uplink_queue_bytes",
		"Bytes of remote-write requests queued on disk for a receiver.", labelsRemote, nil)
	descQueueSamples = prometheus.NewDesc("villagehub_uplink_queue_samples",
		"Samples queued on disk for a receiver.", labelsRemote, nil)
	descOldestAge = prometheus.NewDesc("villagehub_uplink_queue_oldest_sample_age_seconds",
		"Age of the oldest sample queued for a receiver (0 when the queue is empty).", labelsRemote, nil)
	descSent = prometheus.NewDesc("villagehub_uplink_samples_sent_total",
		"Samples a receiver accepted.", labelsRemote, nil)
	descBytesSent = prometheus.NewDesc("villagehub_uplink_sent_bytes_total",
		"Compressed request bytes a receiver accepted (the uplink's data volume, without HTTP and TLS overhead).", labelsRemote, nil)
	descDropped = prometheus.NewDesc("villagehub_uplink_samples_dropped_total",
		"Samples dropped: queue_full (oldest dropped at max_bytes), rejected (4xx from the receiver), corrupt (unreadable queue file).",
		[]string{"remote", "reason"}, nil)
	descFailures = prometheus.NewDesc("villagehub_uplink_send_failures_total",
		"Push attempts that failed and will be retried.", labelsRemote, nil)
	descLastSuccess = prometheus.NewDesc("villagehub_uplink_last_success_timestamp_seconds",
		"When a receiver last accepted a push (0 = not since start).", labelsRemote, nil)
	descPlace = prometheus.NewDesc("villagehub_place_info",
		"Where this hub sits: IDs, display names and coordinates (always 1).",
		[]string{"province", "district", "commune", "village", "hub", "province_name", "district_name", "commune_name", "village_name", "lat", "lon"}, nil)
)

// Describe implements prometheus.Collector.
func (u *Uplink) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueBytes, descQueueSamples, descOldestAge, descSent, descBytesSent, descDropped, descFailures, descLastSuccess, descPlace} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (u *Uplink) Collect(ch chan<- prometheus.Metric) {
	now := u.o.Now()
	p := u.o.Place
	coord := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	ch <- prometheus.MustNewConstMetric(descPlace, prometheus.GaugeValue, 1,
		p.Province, p.District, p.Commune, p.Village, u.o.HubID,
		p.Names["province"], p.Names["district"], p.Names["commune"], p.Names["village"], coord(p.Lat), coord(p.Lon))
	for _, s := range u.remotes {
		name := s.cfg.Name
		bytes, oldest, _, samples := s.q.stats()
		age := 0.0
		if oldest > 0 {
			age = max(0, now.Sub(time.UnixMilli(oldest)).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(descQueueBytes, prometheus.GaugeValue, float64(bytes), name)
		ch <- prometheus.MustNewConstMetric(descQueueSamples, prometheus.GaugeValue, float64(samples), name)
		ch <- prometheus.MustNewConstMetric(descOldestAge, prometheus.GaugeValue, age, name)
		s.mu.Lock()
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, s.sent, name)
		ch <- prometheus.MustNewConstMetric(descBytesSent, prometheus.CounterValue, s.bytesSent, name)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, s.failures, name)
		for reason, v := range s.dropped {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, v, name, reason)
		}
		last := 0.0
		if !s.lastSuccess.IsZero() {
			last = float64(s.lastSuccess.UnixNano()) / 1e9
		}
		s.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, last, name)
	}
}

// Stats is one receiver's queue and counters, for tests and figures.
type Stats struct {
	QueueBytes, QueueSamples int64
	// Queued counts samples queued since start: once sent or dropped they
	// are also in Sent or Dropped.
	Queued, Sent, BytesSent, Failures float64
	Dropped                           map[string]float64
}

// Stats returns the state of the named receiver.
func (u *Uplink) Stats(name string) Stats {
	for _, s := range u.remotes {
		if s.cfg.Name != name {
			continue
		}
		b, _, _, n := s.q.stats()
		s.mu.Lock()
		defer s.mu.Unlock()
		d := map[string]float64{}
		for k, v := range s.dropped {
			d[k] = v
		}
		return Stats{QueueBytes: b, QueueSamples: int64(n), Queued: s.queued, Sent: s.sent, BytesSent: s.bytesSent, Failures: s.failures, Dropped: d}
	}
	return Stats{}
}

// BacklogProblem says why the uplink is stuck, "" while it keeps up: the
// oldest sample queued for some receiver is older than
// uplink.backlog_alert_age. The hub's HubDegraded alert reports it (check
// "uplink", reason "uplink_backlog"), so a village notices a dead uplink
// locally even though the centre, which would alert on its silence, may be
// what is unreachable. Normal batching keeps the oldest sample under
// batch_send_deadline plus one interval.
func (u *Uplink) BacklogProblem() string {
	c := u.o.Config.BacklogAlertAge
	if c == nil || *c <= 0 {
		return ""
	}
	limit := time.Duration(*c)
	now := u.o.Now()
	for _, s := range u.remotes {
		bytes, oldest, _, samples := s.q.stats()
		if oldest <= 0 || samples == 0 {
			continue
		}
		if age := now.Sub(time.UnixMilli(oldest)); age > limit {
			return fmt.Sprintf("uplink %s: oldest queued sample %s old (over %s), %d samples, %d bytes waiting on disk",
				s.cfg.Name, age.Truncate(time.Second), limit, samples, bytes)
		}
	}
	return ""
}
