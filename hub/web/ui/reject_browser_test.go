package ui_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"villagehub/hub/state"
	"villagehub/hub/testenv"
	"villagehub/hub/web/ui"
)

// forgetSource is a Source that can forget devices as hub/state's Forget
// does: the device leaves Cameras()/Boards(); a configured device is
// refused with state.ErrConfigured, an unknown one with
// state.ErrUnknownDevice. A device whose ID is "loi"
// cannot be forgotten (the store failed, say), to show the refusal.
type forgetSource struct {
	source
	fmu    sync.Mutex
	called []string // "kind site id", in order
}

func (s *forgetSource) Forget(kind, site, id string) error {
	s.fmu.Lock()
	s.called = append(s.called, kind+" "+site+" "+id)
	s.fmu.Unlock()
	if id == "loi" {
		return errors.New("store unavailable")
	}
	found, configured := false, false
	s.edit(func(s *source) {
		switch kind {
		case "camera":
			for i, c := range s.cams {
				if c.Site == site && c.ID == id {
					if found, configured = true, c.Configured; !configured {
						s.cams = append(s.cams[:i], s.cams[i+1:]...)
					}
					break
				}
			}
		case "board":
			for i, b := range s.boards {
				if b.Site == site && b.ID == id {
					if found, configured = true, b.Configured; !configured {
						s.boards = append(s.boards[:i], s.boards[i+1:]...)
					}
					break
				}
			}
		}
	})
	switch {
	case !found:
		return fmt.Errorf("%s %s/%s: %w", kind, site, id, state.ErrUnknownDevice)
	case configured:
		return fmt.Errorf("%s %s/%s: %w", kind, site, id, state.ErrConfigured)
	}
	return nil
}

func (s *forgetSource) calls() []string {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return append([]string(nil), s.called...)
}

var _ ui.Forgetter = (*forgetSource)(nil)

func f64(v float64) *float64 { return &v }

// TestRejectAndBoardHealthInBrowser: the admin area's "Từ chối" button on
// a self-registered board or camera asks first (in the row, in
// Vietnamese), then the hub forgets the device through the endpoint with
// the kind it expects ("board", "camera") and the row leaves the page; a
// refusal is shown in Vietnamese first and the row stays; a configured
// device has no such button. The QR table shows a board's battery and
// signal only when it sends them, a low battery highlighted, with their
// one-line meanings. Desktop and 390 px.
func TestRejectAndBoardHealthInBrowser(t *testing.T) {
	src := &forgetSource{}
	now := time.Now()
	threeDaysAgo := now.Add(-72 * time.Hour)
	src.boards = []state.BoardView{
		{ID: "market-07", Site: "tan-ngu-2", Name: "Chợ Bản, sạp 7", Configured: true, Status: "online", LastReport: &now, Battery: f64(87.4), BatteryAt: &now, RSSI: f64(-67), RSSIAt: &threeDaysAgo},
		{ID: "ben-xe", Site: "tan-ngu-2", Name: "Bến xe", Configured: true, Status: "online", LastReport: &now, Battery: f64(12), BatteryAt: &now},
		{ID: "cho-cu", Site: "tan-ngu-2", Name: "Chợ cũ", Configured: true, Status: "unknown"},
		{ID: "market-7", Site: "tan-ngu-2", Configured: false, Status: "unknown", LastReport: &now, ScansToday: 2, ScansTotal: 2},
		{ID: "loi", Site: "tan-ngu-2", Configured: false, Status: "unknown"},
	}
	src.cams = []state.CameraView{
		{ID: "gate", Site: "tan-ngu-2", Name: "Cổng làng", Configured: true, Status: "online"},
		{ID: "cam-la", Site: "tan-ngu-2", Configured: false, Status: "online"},
	}
	path := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(path, []byte("sites: [{ id: tan-ngu-2, name: \"Thôn Tân Ngữ 2\" }]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startUIServer(t, ui.Config{Source: src, ConfigFile: path, Reload: func(context.Context) error { return nil }, Interval: 200 * time.Millisecond})
	chrome := testenv.StartChromium(t, 1280, 900)
	ctx := chrome.Context()
	dir := t.TempDir()
	do(t, ctx, chromedp.Navigate(s.url+"/#admin"))
	poll(t, ctx, 15*time.Second, "the dashboard loaded", `document.body.dataset.ready === 'true' && document.querySelector('#dev-table tr[data-key="board/tan-ngu-2/market-7"] button[data-act="reject"]')`)

	// Battery and signal, only where sent; the low battery highlighted.
	row := func(key string) string { return `document.querySelector('#qr-table tr[data-key="` + key + `"]')` }
	for js, want := range map[string]string{
		row("tan-ngu-2/market-07") + `.querySelector('.batt').textContent`: "Pin 87%",
		row("tan-ngu-2/market-07") + `.querySelector('.batt').dataset.low`: "false",
		// Three days old: says when.
		row("tan-ngu-2/market-07") + `.querySelector('.rssi').textContent.replace(/\(báo lúc .+\)$/, '(báo lúc …)')`: "Sóng -67\u00a0dBm (báo lúc …)",
		row("tan-ngu-2/ben-xe") + `.querySelector('.batt.low').textContent`:                                          "Pin 12% (pin yếu)",
		`String(!!` + row("tan-ngu-2/ben-xe") + `.querySelector('.rssi'))`:                                           "false",
		`String(!!` + row("tan-ngu-2/cho-cu") + `.querySelector('.health'))`:                                         "false",
		`document.querySelector('#legend-battery dd').textContent`:                                                   "mức pin thiết bị của bảng tự báo về; dưới 20% là pin yếu, cần sạc hoặc thay pin.",
	} {
		if got := run[string](t, ctx, js); got != want {
			t.Errorf("%s = %q, want %q", js, got, want)
		}
	}
	if !run[bool](t, ctx, `document.getElementById('legend-battery').getClientRects().length > 0 && document.getElementById('legend-rssi').getClientRects().length > 0`) {
		t.Error("the meanings of battery and signal are not shown under the table")
	}
	if bg := run[string](t, ctx, `getComputedStyle(`+row("tan-ngu-2/ben-xe")+`.querySelector('.batt.low')).backgroundColor`); bg == "rgba(0, 0, 0, 0)" {
		t.Error("the low battery is not highlighted")
	}

	// Only self-registered devices can be rejected.
	if n := run[int](t, ctx, `document.querySelectorAll('#dev-table tr[data-configured="true"] button[data-act="reject"]').length`); n != 0 {
		t.Errorf("%d configured devices offer Từ chối", n)
	}
	if n := run[int](t, ctx, `document.querySelectorAll('#dev-table tr[data-configured="false"] button[data-act="reject"]').length`); n != 3 {
		t.Errorf("%d self-registered devices offer Từ chối, want 3", n)
	}

	// Asked first; "Hủy" forgets nothing.
	askReject(t, ctx, "board/tan-ngu-2/market-7")
	poll(t, ctx, 5*time.Second, "the confirmation in the row", `(() => { const f = document.querySelector('#dev-table tr[data-key="board/tan-ngu-2/market-7"] #dev-edit');
		return f && f.querySelector('.confirm').textContent === 'Từ chối market-7? Hub sẽ quên thiết bị này và không cho nó tự đăng ký lại.' && f.querySelector('button.danger').textContent === 'Từ chối'; })()`)
	shots(t, ctx, dir, "admin-reject-confirm")
	do(t, ctx, chromedp.Click(chromedp.CSS(`#dev-edit button.link`)))
	poll(t, ctx, 5*time.Second, "cancelled", `!document.getElementById('dev-edit') && document.querySelector('#dev-table tr[data-key="board/tan-ngu-2/market-7"]')`)
	if c := src.calls(); len(c) != 0 {
		t.Fatalf("cancel forgot %v", c)
	}

	// Confirmed: forgotten as a "board", gone from both tables.
	askReject(t, ctx, "board/tan-ngu-2/market-7")
	poll(t, ctx, 5*time.Second, "asked again", `document.querySelector('#dev-edit button.danger')`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#dev-edit button.danger`)))
	poll(t, ctx, 10*time.Second, "the board gone from the page", `document.getElementById('device-msg').className === 'ok' &&
		document.getElementById('device-msg').textContent === 'Đã từ chối market-7; hub đã quên thiết bị này.' &&
		!document.querySelector('#dev-table tr[data-key="board/tan-ngu-2/market-7"]') && !document.querySelector('#qr-table tr[data-key="tan-ngu-2/market-7"]')`)

	// A camera: forgotten as a "camera", its card gone.
	if !run[bool](t, ctx, `document.querySelectorAll('#cam-grid > li').length === 2`) {
		t.Fatal("two camera cards expected before rejecting one")
	}
	askReject(t, ctx, "camera/tan-ngu-2/cam-la")
	poll(t, ctx, 5*time.Second, "asked", `document.querySelector('#dev-edit button.danger')`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#dev-edit button.danger`)))
	poll(t, ctx, 10*time.Second, "the camera gone from the page", `document.getElementById('device-msg').textContent === 'Đã từ chối cam-la; hub đã quên thiết bị này.' &&
		!document.querySelector('#dev-table tr[data-key="camera/tan-ngu-2/cam-la"]') && document.querySelectorAll('#cam-grid > li').length === 1`)

	// A refusal: Vietnamese first, the row stays.
	askReject(t, ctx, "board/tan-ngu-2/loi")
	poll(t, ctx, 5*time.Second, "asked", `document.querySelector('#dev-edit button.danger')`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#dev-edit button.danger`)))
	poll(t, ctx, 10*time.Second, "the refusal shown", `document.getElementById('device-msg').className === 'error' &&
		document.getElementById('device-msg').textContent === 'Không từ chối được: Hub không quên được thiết bị này (could not forget the device): store unavailable' &&
		document.querySelector('#dev-table tr[data-key="board/tan-ngu-2/loi"]') && !document.getElementById('dev-edit')`)
	shots(t, ctx, dir, "admin-reject-refused")

	want := []string{"board tan-ngu-2 market-7", "camera tan-ngu-2 cam-la", "board tan-ngu-2 loi"}
	if got := src.calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Forget calls %q, want %q", got, want)
	}
	// The next snapshots do not bring the forgotten devices back.
	poll(t, ctx, 5*time.Second, "still gone after the next snapshot", `document.querySelectorAll('#qr-table tbody tr').length === 4 && !document.querySelector('#qr-table tr[data-key="tan-ngu-2/market-7"]')`)

	// In English the same, from the same table of words.
	do(t, ctx, chromedp.Click(chromedp.ID("lang")))
	poll(t, ctx, 5*time.Second, "English battery and signal", row("tan-ngu-2/market-07")+`.querySelector('.batt').textContent === 'Battery 87%' && `+row("tan-ngu-2/ben-xe")+`.querySelector('.batt').textContent === 'Battery 12% (battery low)'`)
}

// askReject clicks a row's "Từ chối" button. It clicks the node that is in
// the page at that moment (a DOM click, not a mouse event at coordinates
// read a moment earlier): a snapshot may rebuild the table in between, and
// a mouse click would then land on whatever moved under it.
func askReject(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	sel := `#dev-table tr[data-key="` + key + `"] button[data-act="reject"]`
	poll(t, ctx, 5*time.Second, "the reject button of "+key, `document.querySelector('`+sel+`')`)
	run[bool](t, ctx, `(document.querySelector('`+sel+`').click(), true)`)
}
