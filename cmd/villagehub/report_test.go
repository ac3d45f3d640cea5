package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"villagehub/hub/app"
	"villagehub/hub/config"
	"villagehub/hub/ingest"
	"villagehub/hub/state"
	"villagehub/hub/store"
	"villagehub/hub/testenv"
)

// TestReportQR fills a store with known scans, then runs "report qr" twice:
// reading the store directly (no hub running), and asking a running hub.
// Both must give the same exact table.
func TestReportQR(t *testing.T) {
	dir := t.TempDir()
	httpAddr := testenv.FreeAddr(t)
	cfgPath := filepath.Join(dir, "v.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`data_dir: %s
http: { addr: %s }
broker: { addr: %s }
probe: { enabled: false }
sites: [{ id: s1, name: "Thôn 1" }]
qr_boards:
  - { id: market-07, site: s1, name: "Chợ Bản, sạp 7" }
  - { id: quiet, site: s1, name: "Bảng vắng" }
`, filepath.Join(dir, "data"), httpAddr, testenv.FreeAddr(t))), 0o644)
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	now := time.Now().In(loc)
	// Last month, so that every time is in the past whatever today is.
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc).AddDate(0, -1, 0)
	// 10 scans on the 2nd at 08:xx, 3 on the 3rd at 17:xx (one report
	// repeated).
	st, err := store.Open(store.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	q := ingest.NewQueue(64)
	// Last month is past the default max_past (48h): allow it here.
	s, err := state.New(state.Config{Queue: q, Store: st, Location: loc, MaxPast: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	ack := make(chan struct{}, 8)
	for _, r := range []struct {
		total int
		at    time.Time
	}{
		{4, month.AddDate(0, 0, 1).Add(8 * time.Hour)},
		{10, month.AddDate(0, 0, 1).Add(8*time.Hour + 30*time.Minute)},
		{13, month.AddDate(0, 0, 2).Add(17 * time.Hour)},
		{13, month.AddDate(0, 0, 2).Add(17 * time.Hour)},
	} {
		q.Push(ctx, ingest.Message{Topic: "village/s1/qr/market-07/scans", Received: now, Done: ack,
			Payload: fmt.Appendf(nil, `{"total":%d,"boot":"b","ts":%d}`, r.total, r.at.UnixMilli())}, true)
		<-ack
	}
	cancel()
	<-done
	st.Close()

	runReport := func() (string, string) {
		var out, errb bytes.Buffer
		csvPath := filepath.Join(t.TempDir(), "r.csv")
		if code := run([]string{"report", "qr", "--config", cfgPath, "--month", month.Format("2006-01"), "--csv", csvPath}, &out, &errb); code != 0 {
			t.Fatalf("report exit %d: %s", code, errb.String())
		}
		b, _ := os.ReadFile(csvPath)
		return out.String(), string(b)
	}
	table, csv := runReport()
	wantDay := month.AddDate(0, 0, 1)
	for _, want := range []string{"market-07", "Chợ Bản, sạp 7", wantDay.Format("02/01/2006") + " (10)", "08:00-09:00 (10)", "quiet"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	wantCSV := fmt.Sprintf("s1,market-07,\"Chợ Bản, sạp 7\",13,13,0,,0,0,%s,10,8,10", wantDay.Format("2006-01-02"))
	if !strings.HasPrefix(csv, "\ufeffThôn/bản,") {
		t.Errorf("CSV lacks the BOM and Vietnamese headings: %q", csv[:40])
	}
	if !strings.HasPrefix(table, "Lượt quét mã QR, tháng ") {
		t.Errorf("table heading: %q", strings.SplitN(table, "\n", 2)[0])
	}
	if !strings.Contains(csv, wantCSV) {
		t.Errorf("CSV lacks %q:\n%s", wantCSV, csv)
	}

	// The same through a running hub's API.
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	h, err := app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithCancel(context.Background())
	hdone := make(chan struct{})
	go func() { h.Run(hctx); close(hdone) }()
	defer func() { hcancel(); <-hdone }()
	testenv.WaitHTTP(t, "http://"+httpAddr+"/healthz", 10*time.Second, nil)
	table2, csv2 := runReport()
	if table2 != table || csv2 != csv {
		t.Errorf("report through the hub differs:\n%s\n%s", table2, csv2)
	}
}
