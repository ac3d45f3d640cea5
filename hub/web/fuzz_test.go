package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"villagehub/hub/state"
)

// FuzzAPIParams sends arbitrary query strings to the API's parameter
// parsing (time ranges, steps, limits, cursors, filters): it must answer
// 200, 400 or 404, never panic, never 500.
func FuzzAPIParams(f *testing.F) {
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	srv := newTestServer(f, loc, func(c *state.Config) { c.Boards = []state.BoardInfo{{ID: "market-07", Site: "s1"}} }, nil)
	f.Cleanup(func() { srv.ln.Close() })
	h := srv.Handler()
	for _, q := range []string{
		"step=day&from=2026-11-01&to=2026-11-27", "step=hour&from=2026-11-27T00:00:00Z", "step=month&format=csv",
		"step=week", "from=yesterday", "from=2026-11-27&to=2026-11-01", "from=0001-01-01&step=hour",
		"limit=0", "limit=5&cursor=AAAAAAAAAAAAAAAAAAAAAA", "cursor=%%%", "since=2026-11-27T00:00:00Z&type=online",
	} {
		f.Add("/api/v1/qr-boards/market-07/scans", q)
		f.Add("/api/v1/events", q)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		if path != "/api/v1/events" {
			path = "/api/v1/qr-boards/market-07/scans"
		}
		if _, err := url.ParseQuery(query); err != nil {
			return
		}
		req, err := http.NewRequest("GET", "http://hub"+path+"?"+url.PathEscape(query), nil)
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound:
		default:
			t.Fatalf("GET %s?%s: %d %s", path, query, rec.Code, rec.Body.String())
		}
	})
}
