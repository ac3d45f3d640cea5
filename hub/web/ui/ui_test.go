package ui_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"villagehub/hub/state"
	"villagehub/hub/web/ui"
)

// source is a Source whose devices the test edits.
type source struct {
	mu     sync.Mutex
	cams   []state.CameraView
	boards []state.BoardView
}

func (s *source) Cameras() []state.CameraView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]state.CameraView(nil), s.cams...)
}

func (s *source) Boards() []state.BoardView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]state.BoardView(nil), s.boards...)
}

func (s *source) Sites() []state.Site {
	return []state.Site{{ID: "tan-ngu-2", Name: "Thôn Tân Ngữ 2"}}
}

func (s *source) edit(fn func(*source)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func newServer(t *testing.T, src ui.Source, interval time.Duration) (*httptest.Server, *ui.UI) {
	t.Helper()
	u, err := ui.New(ui.Config{Source: src, Interval: interval, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	u.Mount(mux)
	srv := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	return srv, u
}

type sse struct {
	event string
	data  map[string]json.RawMessage
}

func readEvents(t *testing.T, body io.Reader) <-chan sse {
	ch := make(chan sse, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(nil, 1<<20)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
					t.Errorf("bad JSON in %s event: %v", ev.event, err)
				}
			case line == "" && ev.event != "":
				ch <- ev
				ev = sse{}
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan sse) sse {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return sse{}
}

func ids(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var items []struct{ Site, ID string }
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.Site+"/"+it.ID)
	}
	return out
}

func cam(id string, fps float64) state.CameraView {
	now := time.Now()
	return state.CameraView{ID: id, Site: "tan-ngu-2", Status: "online", RTSPURL: "rtsp://127.0.0.1/secret-path",
		Stream: &state.StreamView{Up: true, Since: now, Grade: "good", FPS: fps, BitrateBps: 60e3, LastProbe: now}}
}

// TestStreamSendsOnlyChanges: a viewer gets everything once, then only the
// cameras and boards that changed, and removals.
func TestStreamSendsOnlyChanges(t *testing.T) {
	src := &source{cams: []state.CameraView{cam("gate", 10), cam("market", 10)}, boards: []state.BoardView{{ID: "market-07", Site: "tan-ngu-2", ScansToday: 3}}}
	srv, _ := newServer(t, src, 50*time.Millisecond)
	resp, err := http.Get(srv.URL + "/ui/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	ch := readEvents(t, resp.Body)
	full := next(t, ch)
	if full.event != "full" || fmt.Sprint(ids(t, full.data["cameras"])) != "[tan-ngu-2/gate tan-ngu-2/market]" || fmt.Sprint(ids(t, full.data["boards"])) != "[tan-ngu-2/market-07]" {
		t.Fatalf("first event: %s %s", full.event, full.data)
	}
	if strings.Contains(string(full.data["cameras"]), "secret-path") {
		t.Error("the stream carries the RTSP URL")
	}
	for _, k := range []string{"now", "days", "sites"} {
		if full.data[k] == nil {
			t.Errorf("full event has no %q", k)
		}
	}

	// Jitter below the shown precision is not a change.
	src.edit(func(s *source) { s.cams[0].Stream.FPS = 10.01 })
	src.edit(func(s *source) {
		s.cams[1].Stream.Up, s.cams[1].Stream.Reason, s.cams[1].Stream.Grade = false, "not_found", "down"
	})
	d := next(t, ch)
	if d.event != "delta" || fmt.Sprint(ids(t, d.data["cameras"])) != "[tan-ngu-2/market]" || d.data["boards"] != nil {
		t.Fatalf("delta after market went down: %s %s", d.event, d.data)
	}
	var changed []struct{ Stream struct{ Up bool } }
	json.Unmarshal(d.data["cameras"], &changed)
	if changed[0].Stream.Up {
		t.Error("delta says market is up")
	}

	src.edit(func(s *source) { s.boards[0].ScansToday = 4; s.cams = s.cams[1:] })
	d = next(t, ch)
	var removed []string
	json.Unmarshal(d.data["removed_cameras"], &removed)
	if d.event != "delta" || fmt.Sprint(removed) != "[tan-ngu-2/gate]" || fmt.Sprint(ids(t, d.data["boards"])) != "[tan-ngu-2/market-07]" || d.data["cameras"] != nil {
		t.Fatalf("delta after removal: %s %s", d.event, d.data)
	}

	// A second viewer starts from the current state.
	resp2, err := http.Get(srv.URL + "/ui/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	full = next(t, readEvents(t, resp2.Body))
	if fmt.Sprint(ids(t, full.data["cameras"])) != "[tan-ngu-2/market]" {
		t.Fatalf("second viewer's first event: %s", full.data)
	}
}

// TestStreamsEndWithRun: when Run returns, open streams end, so the HTTP
// server can shut down at once.
func TestStreamsEndWithRun(t *testing.T) {
	u, err := ui.New(ui.Config{Source: &source{}, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	u.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	resp, err := http.Get(srv.URL + "/ui/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	next(t, readEvents(t, resp.Body))
	cancel()
	<-done
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream stayed open after Run returned")
	}
}

// TestPageWorksOfflineUnderCSP checks the page and what it loads: every
// script and stylesheet comes from the hub (no CDN), nothing is inline (the
// hub's CSP forbids it), assets are compressed and cacheable by content
// hash.
func TestPageWorksOfflineUnderCSP(t *testing.T) {
	srv, _ := newServer(t, &source{}, time.Second)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(page, `<html lang="vi">`) || !strings.Contains(page, "Bảng điều khiển thôn") {
		t.Error("the page is not Vietnamese by default")
	}
	if regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`).MatchString(page) || strings.Contains(page, "<style") || regexp.MustCompile(`\sstyle=`).MatchString(page) || regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
		t.Error("the page has inline script or style, which the hub's CSP blocks")
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	var assets []string
	for _, m := range refs {
		ref := strings.ReplaceAll(m[1], "&amp;", "&")
		if strings.Contains(ref, "//") {
			t.Errorf("the page loads %s from elsewhere", ref)
		}
		if strings.HasPrefix(ref, "/ui/") {
			assets = append(assets, ref)
		}
	}
	if len(assets) != 4 {
		t.Fatalf("the page loads %v, want uPlot's JS and CSS and the app's", assets)
	}
	for _, a := range assets {
		req, _ := http.NewRequest("GET", srv.URL+a, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %s, encoding %q, cache %q", a, resp.Status, resp.Header.Get("Content-Encoding"), resp.Header.Get("Cache-Control"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		b, err := io.ReadAll(zr)
		resp.Body.Close()
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", a, len(b), err)
		}
		if strings.HasSuffix(a, ".js") && regexp.MustCompile(`(?i)(src|href)\s*=\s*["']https?:`).Match(b) {
			t.Errorf("%s loads something from the Internet", a)
		}
		// Revalidation by ETag answers 304.
		req, _ = http.NewRequest("GET", srv.URL+a, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %s", a, resp.Status)
		}
	}
	resp, err = http.Get(srv.URL + "/ui/vendor/uPlot.LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	lic, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(lic), "MIT License") {
		t.Error("uPlot's licence is not served with it")
	}
	resp, _ = http.Get(srv.URL + "/ui/nope.js")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown asset: %s", resp.Status)
	}
}
