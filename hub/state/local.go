package state

import (
	"context"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
	"villagehub/hub/probe"
	"villagehub/hub/scan"
)

// SubmitEvent applies a device event from an input that runs on its own
// (ONVIF events, a peer hub: hub/input's Sink) in order with the MQTT
// messages, and returns once it is durable in the store, or ctx ended (the
// event may then still be applied). It waits for room in the queue.
func (s *State) SubmitEvent(ctx context.Context, ev event.Event) error {
	done := make(chan struct{}, 1)
	if err := s.cfg.Queue.Push(ctx, ingest.Message{Local: &ingest.Local{Event: &ev}, Received: s.now(), Done: done}, true); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Submit queues an RTSP probe result to be applied in order with the MQTT
// messages. It waits for room in the queue until ctx ends.
func (s *State) Submit(ctx context.Context, r probe.Result) error {
	return s.cfg.Queue.Push(ctx, ingest.Message{Local: &ingest.Local{Probe: &r}, Received: s.now()}, true)
}

// RecordScan counts a scan of a printed QR code (scan.Recorder). It runs on
// the HTTP request path, so it never waits: if the queue is full, the scan
// goes to the tally (overflow.go), and only if that is full too is it
// dropped and counted as dropped.
func (s *State) RecordScan(sc scan.Scan) {
	if !s.cfg.Queue.TryPush(ingest.Message{Local: &ingest.Local{Scan: &sc}, Received: s.now()}) && !s.tallyScan(&sc) {
		s.dropped.Add(1)
	}
}

// applyLocal applies the hub's own typed traffic. Called with s.mu held.
func (s *State) applyLocal(l *ingest.Local) {
	s.cur = nil
	switch {
	case l.Event != nil:
		if l.Event.Received.IsZero() {
			l.Event.Received = s.now()
		}
		if l.Event.Time.IsZero() {
			l.Event.Time = l.Event.Received
		}
		if _, r := s.apply(l.Event); r != event.OK && s.rejects.allow(l.Event.Source+"/"+l.Event.Device+"/", r, l.Event.Received) {
			s.log.Warn("rejected event", "source", l.Event.Source, "device", l.Event.Device, "reason", r.String())
		}
	case l.Probe != nil:
		s.applyProbe(l.Probe)
	case l.Scan != nil:
		s.applyScan(l.Scan)
	case l.Call != nil:
		l.Call()
	}
}

// Probe is a camera's stream health, from the RTSP prober.
type Probe struct {
	// Persisted: the camera's up/down state survives a restart so that "down
	// since" stays true.
	Up          int8 // -1 not probed yet, 0 down, 1 up
	Since       time.Time
	LastProbe   time.Time
	LastSuccess time.Time
	Reason      string
	// In memory only: refreshed by the first probe after a start.
	Detail           string
	Mode             string
	Codec            string
	Width, Height    int
	FPS, BitrateBps  float64
	KeyframeInterval int
	TTFF, TTFK       time.Duration // time to first frame / keyframe
	Duration         time.Duration
	Grade            string
	Isolated         bool
	Failures         [numProbeReasons]uint64
	Probes           uint64
}

// probeReasons indexes Probe.Failures.
var probeReasons = probe.Reasons

const numProbeReasons = 7

func reasonIndex(r string) int {
	for i, x := range probeReasons {
		if x == r {
			return i
		}
	}
	return len(probeReasons) - 1 // other
}

// ProbeReasons lists the failure reasons, for metrics.
func ProbeReasons() []string { return probeReasons }

func (s *State) applyProbe(r *probe.Result) {
	c, reason := s.camera(r.Site, r.Camera)
	if reason != event.OK {
		return // cameras come from the config; can't be over the cap
	}
	if c.probe == nil {
		c.probe = &Probe{Up: -1}
	}
	p := c.probe
	up := int8(0)
	if r.Up {
		up = 1
	}
	at := r.At.Add(r.Duration)
	if up != p.Up {
		typ := EventCameraDown
		if r.Up {
			typ = EventCameraUp
		}
		if p.Up != -1 || !r.Up {
			// The first probe after start logs only a failure: "up" is
			// the normal state, "down" is news.
			s.event(EventRecord{Time: at, Type: typ, Kind: event.Camera.String(), Site: c.Site, Device: c.ID, Reason: r.Reason}, 0)
		}
		p.Up, p.Since = up, at
		s.cameras().markDirty(c)
	}
	p.LastProbe, p.Reason, p.Detail, p.Mode = at, r.Reason, r.Detail, string(r.Mode)
	p.Duration, p.Grade, p.Isolated = r.Duration, r.Grade, r.Isolated
	p.Probes++
	if r.Up {
		p.LastSuccess = at
		if r.Codec != "" {
			p.Codec, p.Width, p.Height = r.Codec, r.Width, r.Height
		}
		if r.Mode == probe.ModeSample {
			p.FPS, p.BitrateBps, p.KeyframeInterval = r.FPS, r.BitrateBps, r.KeyframeInterval
			p.TTFF, p.TTFK = r.TimeToFirstFrame, r.TimeToFirstKeyframe
		}
	} else {
		p.Failures[reasonIndex(r.Reason)]++
		p.FPS, p.BitrateBps = 0, 0
	}
	if s.cfg.ObserveProbe != nil {
		s.cfg.ObserveProbe(c.Site, r.Duration.Seconds())
	}
	s.batch.Health = append(s.batch.Health, HealthRecord{
		Time: at, Site: c.Site, Camera: c.ID, Up: r.Up, Reason: r.Reason, FPS: p.FPS, BitrateBps: p.BitrateBps,
		Width: p.Width, Height: p.Height, Codec: p.Codec, KeyframeInterval: p.KeyframeInterval,
		ProbeSeconds: r.Duration.Seconds(), Sample: r.Mode == probe.ModeSample,
	})
	if s.cfg.InfluxPoints {
		s.healthPoint(&s.batch.Health[len(s.batch.Health)-1], r.Duration)
	}
}

// applyScan counts one visit to /q/<board>. Only a human scan of a known
// board counts as a scan; bots, rate-limited clients and orphans (unknown
// boards) are counted apart so that nobody can inflate the counts unseen.
func (s *State) applyScan(sc *scan.Scan) {
	if sc.ID != "" && sc.Class != scan.ClassOrphan {
		if b, ok := s.boards().get(sc.Site, sc.Board); ok && !b.GatewayIDs.add(sc.ID) {
			return // a gateway scan already counted (redelivered); see gateway.go
		}
	}
	var unique int64
	if sc.Unique {
		unique = 1
	}
	s.applyScans(sc.Site, sc.Board, sc.Class, sc.At, 1, unique, sc.ID != "")
}

// applyScans counts n scans of one board and class at one time, unique of
// them unique (a ClassHuman scan; one scan, or a second of the tally).
// fromGateway: scans a QR gateway counted, which are in the central
// InfluxDB already (written by the gateway), so the hub writes no second
// point.
func (s *State) applyScans(site, board string, class scan.Class, at time.Time, n, unique int64, fromGateway bool) {
	if class == scan.ClassOrphan {
		s.orphans += uint64(n)
		return
	}
	b, ok := s.boards().get(site, board)
	if !ok {
		s.orphans += uint64(n) // removed from the config since the request
		return
	}
	rec := ScanRecord{Site: b.Site, Board: b.ID, Source: SourcePrinted, Time: at}
	points := s.cfg.InfluxPoints && !fromGateway
	switch class {
	case scan.ClassHuman:
		rec.N = n
		b.ScansPrinted += uint64(n)
		if points {
			s.qrPoint(b.Site, b.ID, SourcePrinted, n, at)
		}
		if unique > 0 {
			rec.Unique = unique
			b.PrintedUnique += uint64(unique)
			if points {
				s.visitPoint(b.Site, b.ID, "unique", unique, at)
			}
		}
		s.countToday(b, uint64(n), at)
	case scan.ClassBot:
		rec.Bots = n
		b.Bots += uint64(n)
		if points {
			s.visitPoint(b.Site, b.ID, "bot", n, at)
		}
	case scan.ClassRateLimited:
		rec.RateLimited = n
		b.RateLimited += uint64(n)
		if points {
			s.visitPoint(b.Site, b.ID, "rate_limited", n, at)
		}
	default:
		return
	}
	s.boards().markDirty(b)
	s.batch.Scans = append(s.batch.Scans, rec)
}

// deviceList is a new list of configured devices (a config reload).
type deviceList struct {
	sites   []Site
	cameras []CameraInfo
	boards  []BoardInfo
}

// SetDevices replaces the configured sites, cameras and boards (a config
// reload) and waits until the change is applied. Devices no longer in the
// config keep their history and count as auto-registered; auto-registered
// devices now in the config become configured.
func (s *State) SetDevices(ctx context.Context, sites []Site, cameras []CameraInfo, boards []BoardInfo) error {
	done := make(chan struct{}, 1)
	d := &deviceList{sites, cameras, boards}
	call := func() { s.applyDevices(d) }
	if err := s.cfg.Queue.Push(ctx, ingest.Message{Local: &ingest.Local{Call: call}, Received: s.now(), Done: done}, true); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *State) applyDevices(d *deviceList) {
	s.sites = map[string]Site{}
	for _, st := range d.sites {
		s.sites[st.ID] = st
	}
	cams, brds := s.cameras(), s.boards()
	reconcile(cams.m, d.cameras, &cams.auto, cams.dirty, func(i CameraInfo) devKey { return devKey{i.Site, i.ID} },
		func(k devKey, i CameraInfo) *Camera { return newCamera(k.site, k.id, i) })
	reconcile(brds.m, d.boards, &brds.auto, brds.dirty, func(i BoardInfo) devKey { return devKey{i.Site, i.ID} },
		func(k devKey, i BoardInfo) *Board { return newBoard(k.site, k.id, i) })
	s.liftConfigured()
}

// configurable is a camera or a board as a config reload sees it.
type configurable[I any] interface {
	comparable
	// configure gives the device its config entry (ok) or takes it away,
	// returning the change to the count of auto-registered devices.
	configure(info I, ok bool) (autoDelta int)
}

// reconcile makes the devices in devs match the configured list: listed
// ones are configured (created if new), others that were configured become
// auto-registered, keeping their history. Changed devices are marked dirty
// so their persisted flags are written.
func reconcile[D configurable[I], I any](devs map[devKey]D, list []I, auto *int, dirty map[D]struct{},
	key func(I) devKey, mk func(devKey, I) D) {
	want := make(map[devKey]I, len(list))
	for _, i := range list {
		want[key(i)] = i
	}
	for k, d := range devs {
		info, ok := want[k]
		if delta := d.configure(info, ok); delta != 0 {
			*auto += delta
			dirty[d] = struct{}{}
		}
		delete(want, k)
	}
	for k, info := range want {
		d := mk(k, info)
		d.configure(info, true)
		devs[k] = d
	}
}
