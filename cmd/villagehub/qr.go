package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"villagehub/hub/config"
	"villagehub/hub/gateway"
	"villagehub/hub/qrcode"
	"villagehub/hub/report"
	"villagehub/hub/state"
	"villagehub/hub/store"
)

// qrCommand: villagehub qr print.
func qrCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "print" {
		fmt.Fprintln(stderr, "usage: villagehub qr print [--config FILE] [--site ID] [--out DIR] [--public-url URL]")
		return 2
	}
	fs := flag.NewFlagSet("villagehub qr print", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file listing the sites and QR boards")
	site := fs.String("site", "", "print only this site (default: every site)")
	out := fs.String("out", ".", "directory for the sheets, one PDF per site: qr-<site>.pdf")
	public := fs.String("public-url", "", "public URL of the hub that the codes encode (default http.public_url)")
	level := fs.String("ec", "", "error correction: L, M, Q (default) or H")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "villagehub qr print — printable A4 sheets of every QR board's code and name, one PDF per site.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub qr print:", err)
		return 1
	}
	if *public != "" {
		cfg.HTTP.PublicURL = *public
	}
	if cfg.HTTP.PublicURL == "" && !cfg.GatewayLink().Enabled() {
		fmt.Fprintln(stderr, "villagehub qr print: set http.public_url (or --public-url), or gateway.public_url: the codes must encode an address phones can reach")
		return 1
	}
	var lv qrcode.Level
	if *level != "" {
		if lv, err = qrcode.ParseLevel(*level); err != nil {
			fmt.Fprintln(stderr, "villagehub qr print:", err)
			return 2
		}
	}
	urlFor := gateway.PrintedURLs(cfg.HTTP.PublicURL, cfg.GatewayLink(), stderr)
	printed := 0
	for _, s := range cfg.Sites {
		if *site != "" && s.ID != *site {
			continue
		}
		sheet := qrcode.Sheet{Title: s.Name, PublicURL: cfg.HTTP.PublicURL, Level: lv, URLFor: urlFor}
		if sheet.Title == "" {
			sheet.Title = s.ID
		}
		for _, b := range cfg.Boards {
			if b.Site == s.ID {
				sheet.Boards = append(sheet.Boards, qrcode.SheetBoard{ID: b.ID, Name: b.Name})
			}
		}
		if len(sheet.Boards) == 0 {
			continue
		}
		path := filepath.Join(*out, "qr-"+s.ID+".pdf")
		if err := writeSheet(path, sheet); err != nil {
			fmt.Fprintln(stderr, "villagehub qr print:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %s of %s\n", path, plural(len(sheet.Boards), "board", "boards"), sheet.Title)
		printed++
	}
	if printed == 0 {
		fmt.Fprintln(stderr, "villagehub qr print: no QR boards to print (check qr_boards and --site)")
		return 1
	}
	return 0
}

func writeSheet(path string, sheet qrcode.Sheet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := qrcode.WriteSheetPDF(f, sheet); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// reportCommand: villagehub report qr --month 2026-11.
func reportCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "qr" {
		fmt.Fprintln(stderr, "usage: villagehub report qr --month YYYY-MM [--config FILE] [--csv FILE] [--pdf FILE] [--hub URL] [--ca FILE] [--token-file FILE]")
		return 2
	}
	fs := flag.NewFlagSet("villagehub report qr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the hub's config file")
	month := fs.String("month", time.Now().Format("2006-01"), "month to report, YYYY-MM")
	csvPath := fs.String("csv", "", "also write the table as CSV (UTF-8 with BOM, for Excel) to this file (\"-\" for standard output)")
	pdfPath := fs.String("pdf", "", "also write the report as a PDF to this file")
	hub := fs.String("hub", "", "URL of the running hub to ask (default: http://<http.addr>, or https:// when http.tls is set); if it does not answer, the data directory is read directly")
	caFile := fs.String("ca", "", "CA certificate to trust for an https:// hub (default: <data_dir>/tls/ca.crt when it exists)")
	token := fs.String("token", "", "API bearer token (a viewer token is enough); prefer --token-file or VILLAGEHUB_TOKEN, which stay out of the process list")
	tokenFile := fs.String("token-file", "", "file holding the API bearer token")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "villagehub report qr — per board: scans, unique scans, bot visits, busiest day and hour of a month.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub report qr:", err)
		return 1
	}
	m, err := time.ParseInLocation("2006-01", *month, cfg.Location)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub report qr: --month must be YYYY-MM")
		return 2
	}
	if *hub == "" {
		*hub = "http://" + cfg.HTTP.Addr
		if cfg.HTTP.TLS.CertFile != "" {
			*hub = "https://" + cfg.HTTP.Addr
		}
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "villagehub report qr: --token-file:", err)
			return 1
		}
		*token = strings.TrimSpace(string(b))
	} else if *token == "" {
		*token = os.Getenv("VILLAGEHUB_TOKEN")
	}
	client, err := hubClient(cfg, *caFile, *token)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub report qr:", err)
		return 1
	}
	src, boards, closeSrc, err := reportSource(cfg, *hub, client)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub report qr:", err)
		return 1
	}
	defer closeSrc()
	rows, err := report.MonthRows(src, boards, m, cfg.Location)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub report qr:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Lượt quét mã QR, tháng %s (giờ %s)\n\n", m.Format("01/2006"), cfg.Location)
	report.WriteTable(stdout, rows)
	if *csvPath != "" {
		w := stdout
		if *csvPath != "-" {
			f, err := os.Create(*csvPath)
			if err != nil {
				fmt.Fprintln(stderr, "villagehub report qr:", err)
				return 1
			}
			defer f.Close()
			w = f
		}
		if err := report.WriteCSV(w, rows); err != nil {
			fmt.Fprintln(stderr, "villagehub report qr:", err)
			return 1
		}
	}
	if *pdfPath != "" {
		title := cfg.HubID
		if len(cfg.Sites) > 0 {
			title = cfg.Sites[0].Name
		}
		f, err := os.Create(*pdfPath)
		if err == nil {
			err = report.WriteMonthPDF(f, report.MonthReport{Title: title, Month: m, Location: cfg.Location, Rows: rows})
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "villagehub report qr:", err)
			return 1
		}
	}
	return 0
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// reportSource asks the running hub, or reads the store when no hub
// answers.
func reportSource(cfg *config.Config, hub string, c *http.Client) (report.Source, []report.Board, func(), error) {
	resp, err := c.Get(hub + "/api/v1/qr-boards")
	if err == nil {
		defer resp.Body.Close()
		var bs struct {
			Boards []state.BoardView `json:"qr_boards"`
		}
		if resp.StatusCode != 200 {
			return nil, nil, nil, fmt.Errorf("%s answered %s", hub, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&bs); err != nil {
			return nil, nil, nil, fmt.Errorf("reading boards from %s: %w", hub, err)
		}
		var boards []report.Board
		for _, b := range bs.Boards {
			boards = append(boards, report.Board{Site: b.Site, ID: b.ID, Name: b.Name})
		}
		return apiSource{c: c, base: hub}, boards, func() {}, nil
	}
	st, serr := store.Open(store.Config{Dir: cfg.DataDir, ReadOnly: true})
	if serr != nil {
		return nil, nil, nil, fmt.Errorf("no hub answered at %s (%v), and reading the store failed: %w", hub, err, serr)
	}
	var boards []report.Board
	for _, b := range cfg.Boards {
		boards = append(boards, report.Board{Site: b.Site, ID: b.ID, Name: b.Name})
	}
	return st, boards, func() { st.Close() }, nil
}

// hubClient is the HTTP client for the hub's API: trusting caFile (or
// the village CA that `villagehub cert` made) for https://, and sending the
// bearer token, if any.
func hubClient(cfg *config.Config, caFile, token string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" {
		if p := filepath.Join(cfg.DataDir, "tls", "ca.crt"); fileExists(p) {
			caFile = p
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca: no certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = tr
	if token != "" {
		rt = bearer{token: token, next: tr}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: rt}, nil
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// apiSource reads hourly counts from a running hub's API.
type apiSource struct {
	c    *http.Client
	base string
}

func (a apiSource) QRHours(site, board string, from, to time.Time) ([]store.HourCount, error) {
	q := url.Values{"site": {site}, "step": {"hour"}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	resp, err := a.c.Get(a.base + "/api/v1/qr-boards/" + url.PathEscape(board) + "/scans?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", resp.Request.URL.Path, resp.Status)
	}
	var body struct{ Points []report.Point }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []store.HourCount
	for _, p := range body.Points {
		for _, c := range []struct {
			src string
			n   uint64
		}{{state.SourceMQTT, p.MQTT}, {state.SourcePrinted, p.Printed}, {store.CountUnique, p.Unique},
			{store.CountBots, p.Bots}, {store.CountRateLimited, p.RateLimited}} {
			if c.n > 0 {
				out = append(out, store.HourCount{Hour: p.Time, Source: c.src, N: c.n})
			}
		}
	}
	return out, nil
}
