package ui_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"villagehub/hub/event"
	"villagehub/hub/state"
	"villagehub/hub/state/statetest"
	"villagehub/hub/testenv"
	"villagehub/hub/web/ui"
)

// TestBoardHealthAndRejectWithRealState: with hub/state behind the page
// (not a stand-in), a board's battery and signal decoded from its MQTT
// status and report show in the QR table, and the reject endpoint answers
// from State.Forget: 409 for a configured device, 404 for an unknown one
// (or one already forgotten), 400 for an unknown kind, 200 for a
// self-registered one, which leaves the page and whose next message is
// rejected as rejected_device.
func TestBoardHealthAndRejectWithRealState(t *testing.T) {
	st := statetest.Start(t, state.Config{
		Sites:  []state.Site{{ID: "tan-ngu-2", Name: "Thôn Tân Ngữ 2"}},
		Boards: []state.BoardInfo{{ID: "market-07", Site: "tan-ngu-2", Name: "Chợ Bản, sạp 7"}}})
	send := st.Send
	send("village/tan-ngu-2/qr/market-07/status", `{"status":"online","battery":87.4,"rssi":-67}`)
	send("village/tan-ngu-2/qr/market-7/scans", `{"total":2,"battery":12}`)

	s := startUIServer(t, ui.Config{Source: st, Interval: 200 * time.Millisecond})
	chrome := testenv.StartChromium(t, 1280, 900)
	bctx := chrome.Context()
	do(t, bctx, chromedp.Navigate(s.url+"/"))
	row := func(key string) string { return `document.querySelector('#qr-table tr[data-key="` + key + `"]')` }
	poll(t, bctx, 15*time.Second, "the boards with their health", row("tan-ngu-2/market-07")+` && `+row("tan-ngu-2/market-7"))
	for js, want := range map[string]string{
		row("tan-ngu-2/market-07") + `.querySelector('.batt').textContent`:    "Pin 87%",
		row("tan-ngu-2/market-07") + `.querySelector('.rssi').textContent`:    "Sóng -67\u00a0dBm",
		row("tan-ngu-2/market-7") + `.querySelector('.batt.low').textContent`: "Pin 12% (pin yếu)",
		`String(!!` + row("tan-ngu-2/market-7") + `.querySelector('.rssi'))`:  "false",
	} {
		if got := run[string](t, bctx, js); got != want {
			t.Errorf("%s = %q, want %q", js, got, want)
		}
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(s.url)
	var csrf string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "vh_csrf" {
			csrf = ck.Value
		}
	}
	reject := func(path string) int {
		req, _ := http.NewRequest(http.MethodDelete, s.url+"/api/v1/admin/devices/"+path, nil)
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, x := range []struct {
		path string
		want int
	}{
		{"board/tan-ngu-2/market-07", http.StatusConflict},
		{"board/tan-ngu-2/nothing", http.StatusNotFound},
		{"speaker/tan-ngu-2/market-7", http.StatusBadRequest},
		{"camera/tan-ngu-2/market-7", http.StatusNotFound},
		{"board/tan-ngu-2/market-7", http.StatusOK},
		{"board/tan-ngu-2/market-7", http.StatusNotFound},
	} {
		if got := reject(x.path); got != x.want {
			t.Errorf("DELETE %s: %d, want %d", x.path, got, x.want)
		}
	}
	poll(t, bctx, 10*time.Second, "the rejected board gone from the page", `!`+row("tan-ngu-2/market-7")+` && `+row("tan-ngu-2/market-07"))
	send("village/tan-ngu-2/qr/market-7/scans", `{"total":3}`)
	if n := st.Counters().Rejected[event.KindQRScans][event.RejectedDevice]; n != 1 {
		t.Errorf("rejected_device after the rejection: %d, want 1", n)
	}
	if _, ok := st.Board("tan-ngu-2", "market-7"); ok {
		t.Error("the rejected board registered again")
	}
}
