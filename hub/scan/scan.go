// Package scan serves the addresses printed QR codes point at. GET /q/<board>
// counts one scan and redirects to the board's page, like a URL shortener
// with visit analytics, but everything stays on the hub: no raw IP address is
// kept, and the only things handed on are the counts in Scan.
//
// What is counted, and how honestly:
//   - a request for a board the config does not know is an orphan visit
//     (friendly 404 page, never auto-registered);
//   - HEAD requests, prefetches and known bots or link-preview fetchers
//     (Zalo's and Facebook's previewers, messaging apps, search crawlers,
//     scripts) are bots: redirected, but not scans;
//   - a client over its rate limit is rate_limited: still redirected, so a
//     person is never stuck, but not a scan, so a script cannot inflate counts
//     without it showing;
//   - everything else is a human scan, and unique unless the same phone
//     (address + agent) scanned the same board within the last UniqueWindow.
//
// GET /qr/<board>.png and .svg draw the printable code for the board.
//
// The same rules serve the QR gateway's /q/<village>/<board> at the centre
// (hub/gateway): it builds a Handler with its own BoardLookup and Recorder
// and calls Serve with the key it looked up. Gateway instances that share
// Config.SaltSecret compute the same visit key for the same phone, which
// lets them write the same idempotent "unique" point (docs/gateway.md).
package scan

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"villagehub/hub/qrcode"
)

// Class says how a request to /q/ was counted.
type Class string

// The classes of Scan. Only ClassHuman is a scan of the board; the others are
// counted separately so they can be seen.
const (
	ClassHuman       Class = "human"
	ClassBot         Class = "bot"
	ClassOrphan      Class = "orphan"
	ClassRateLimited Class = "rate_limited"
)

// Scan is one request to /q/<board>, as handed to the Recorder. It carries
// nothing about the client: no address, no agent, no hash.
type Scan struct {
	// Board is the board's id. For ClassOrphan it is the id that was asked
	// for if it is a well-formed id (^[a-z0-9][a-z0-9_-]{0,63}$), else "";
	// an orphan's Board is free input from the street and must never become a
	// metric label.
	Board string
	// Site is the board's site; "" for ClassOrphan.
	Site  string
	At    time.Time
	Class Class
	// Unique is true for a ClassHuman scan when this phone had not scanned
	// this board within the unique window; always false for other classes.
	Unique bool
	// ID is set on scans a QR gateway counted and sent down to the village
	// hub (hex of a random 128-bit id): the hub counts each ID once, and
	// writes no InfluxDB point for it, since the gateway already wrote it
	// to the central InfluxDB. Empty for the hub's own /q/ scans.
	ID string

	// visit is the salted key of (phone, board) of a ClassHuman scan; see
	// VisitKey. Never stored by the hub.
	visit clientKey
	// request is the key of the proxy's request id; see RequestKey.
	request clientKey
}

// RequestKey is a key drawn from the request id a trusted proxy sent
// (Config.RequestIDHeader): the same at every instance for the same client
// request, also when the proxy retried it elsewhere. ok is false when the
// handler has no RequestIDHeader or the request carried none.
func (s Scan) RequestKey() (key [16]byte, ok bool) {
	return s.request, s.request != clientKey{}
}

// VisitKey is an opaque, salted hash of (client address, agent, board) of
// a ClassHuman scan, the same in every Handler that shares
// Config.SaltSecret on the same day; ok is false for other classes. The QR
// gateway keys its cross-instance "unique" points with it; without the
// day's salt it cannot be turned back into an address.
func (s Scan) VisitKey() (key [16]byte, ok bool) {
	return s.visit, s.Class == ClassHuman && s.visit != clientKey{}
}

// Board is what the handler needs to know about a board, looked up on every
// request so a change of TargetURL in the config retargets printed codes.
type Board struct {
	ID, Site, Name string
	// TargetURL is where a scan is sent: an absolute http(s) URL, or a path
	// on the hub itself starting with "/".
	TargetURL string
}

// BoardLookup finds a configured board by id.
type BoardLookup interface {
	Board(id string) (Board, bool)
}

// Recorder durably counts scans. RecordScan is called on the request path,
// once per request to /q/, so it must not block for long (hand the scan to a
// queue).
type Recorder interface {
	RecordScan(Scan)
}

// Defaults for Config.
const (
	DefaultUniqueWindow  = 30 * time.Second
	DefaultRatePerSecond = 0.5 // 30 scans a minute per client, after the burst
	DefaultRateBurst     = 20
	DefaultMaxClients    = 65536
	agentCacheSize       = 4096
	imageCacheSize       = 128
	imageWorkers         = 2
)

// Config configures a Handler. Zero values mean the defaults.
type Config struct {
	// PublicURL is the hub's public base URL; printed codes carry
	// <PublicURL>/q/<board>. Required.
	PublicURL string
	// CodeURL, if set, is the address printed in /qr/<board>.png|svg
	// instead of <PublicURL>/q/<board> (the QR gateway's address when the
	// hub has a gateway: block; hub/gateway.CodeURL).
	CodeURL func(board string) (string, error)
	// UniqueWindow is how long after a phone's scan of a board another scan
	// of the same board by the same phone is not unique (default 30 s). The
	// window slides: each scan starts it again.
	UniqueWindow time.Duration
	// TrustedProxies are IP addresses or CIDR prefixes of reverse proxies in
	// front of the hub. Only requests arriving from them have their
	// X-Forwarded-For / X-Real-IP believed.
	TrustedProxies []string
	// RatePerSecond and RateBurst set each client's token bucket on /q/
	// (defaults 0.5/s, burst 20). A client is one IPv4 address or IPv6 /64.
	RatePerSecond float64
	RateBurst     int
	// MaxClients caps how many clients are remembered for uniqueness and for
	// rate limiting (each; default 65,536; least recently seen forgotten
	// first: from 16,384 on within each of 16 shards, see memory). About
	// 20 MB at the cap.
	MaxClients int
	// BotAgents are extra case-insensitive substrings that mark a
	// User-Agent as a bot, for a previewer the built-in lists miss.
	BotAgents []string
	// SaltSecret, if set, makes the daily salt HMAC-SHA256(SaltSecret, the
	// date) instead of a random value, so that several gateway instances
	// recognise the same phone (hub/gateway). Secret: at least 32 bytes,
	// kept in a 0600 file. The hub itself leaves it empty.
	SaltSecret []byte
	// Location is where "a day" is measured for the salt's daily rotation.
	// Nil means Vietnam's time (UTC+7, no daylight saving).
	Location *time.Location
	// RequestIDHeader, if set, names a header that a trusted reverse proxy
	// sets to one value per client request and keeps when it retries the
	// request on another instance (nginx: proxy_set_header X-Request-ID
	// $request_id). The scan's id is drawn from it, and its time from the
	// proxy's X-Request-Start (t=<unix seconds>[.<fraction>], nginx
	// "t=${msec}"), so that a request which one gateway instance counted
	// before it failed to answer, and which the proxy then retried on
	// another, is the same scan at both: counted once (hub/gateway). Both
	// headers are believed only from TrustedProxies.
	RequestIDHeader string
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// maxRequestStartSkew bounds how far a proxy's X-Request-Start may lie
// from the handler's clock before it is ignored: a retry comes within
// seconds, and a proxy with a wrong clock must not date scans elsewhere.
const maxRequestStartSkew = 5 * time.Minute

// Handler serves /q/ and /qr/. It starts no goroutines: the daily salt is
// replaced by the first request after midnight.
type Handler struct {
	publicURL string
	codeURL   func(board string) (string, error)
	boards    BoardLookup
	rec       Recorder
	window    time.Duration
	limit     rate.Limit
	burst     int
	now       func() time.Time
	log       *slog.Logger
	proxies   proxies
	reqHeader string
	agents    *agentClassifier
	salt      *salter
	images    *imageCache

	mem *memory
}

var vietnam = time.FixedZone("ICT", 7*60*60)

// NewHandler validates cfg and builds a Handler.
func NewHandler(cfg Config, boards BoardLookup, rec Recorder) (*Handler, error) {
	if boards == nil || rec == nil {
		return nil, errors.New("scan handler needs a board lookup and a recorder")
	}
	if _, err := qrcode.BoardURL(cfg.PublicURL, "x"); err != nil {
		return nil, fmt.Errorf("scan handler: %w", err)
	}
	if len(cfg.SaltSecret) > 0 && len(cfg.SaltSecret) < 32 {
		return nil, errors.New("scan handler: the salt secret must be at least 32 bytes")
	}
	if cfg.UniqueWindow < 0 || cfg.RatePerSecond < 0 || cfg.RateBurst < 0 || cfg.MaxClients < 0 ||
		math.IsNaN(cfg.RatePerSecond) || math.IsInf(cfg.RatePerSecond, 0) {
		return nil, errors.New("scan handler: unique window, rate, burst and max clients must not be negative or infinite")
	}
	h := &Handler{
		publicURL: cfg.PublicURL,
		codeURL:   cfg.CodeURL,
		boards:    boards,
		rec:       rec,
		window:    or(cfg.UniqueWindow, DefaultUniqueWindow),
		limit:     rate.Limit(or(cfg.RatePerSecond, DefaultRatePerSecond)),
		burst:     or(cfg.RateBurst, DefaultRateBurst),
		now:       cfg.Now,
		log:       cfg.Logger,
		reqHeader: cfg.RequestIDHeader,
	}
	if h.reqHeader != "" && !ValidHeaderName(h.reqHeader) {
		return nil, fmt.Errorf("scan handler: request id header %q is not a header name", h.reqHeader)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	var err error
	if h.proxies, err = parseProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("scan handler: %w", err)
	}
	if h.agents, err = newAgentClassifier(cfg.BotAgents, agentCacheSize); err != nil {
		return nil, fmt.Errorf("scan handler: %w", err)
	}
	maxClients := or(cfg.MaxClients, DefaultMaxClients)
	if h.mem, err = newMemory(maxClients); err != nil {
		return nil, fmt.Errorf("scan handler: %w", err)
	}
	loc := cfg.Location
	if loc == nil {
		loc = vietnam
	}
	if h.salt, err = newSalter(loc, h.now(), h.forget, cfg.SaltSecret); err != nil {
		return nil, fmt.Errorf("scan handler: %w", err)
	}
	h.images = newImageCache(imageCacheSize, imageWorkers)
	return h, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// forget drops everything keyed with the old salt: the keys are unreachable
// now, and keeping them would only hold memory.
func (h *Handler) forget() {
	h.mem.purge()
	h.log.Debug("scan: daily salt replaced; uniqueness and rate-limit memory cleared")
}

// Register adds the handler's routes to mux:
//
//	GET /q/{board}         count a scan, redirect to the board's page
//	GET /qr/{board}.png    the printable code (?size=&margin=&ec=)
//	GET /qr/{board}.svg
//
// (GET patterns also answer HEAD.)
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /q/{board}", h.serveScan)
	mux.HandleFunc("GET /qr/{file}", h.serveImage)
}

var boardID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func (h *Handler) serveScan(w http.ResponseWriter, r *http.Request) {
	h.Serve(w, r, r.PathValue("board"))
}

// visit is what the counting rules read from a request, filled from
// net/http (Serve) or fasthttp (ServeFast). Its strings may point into a
// fasthttp buffer: nothing keeps them past the request (the agent cache
// copies what it keeps).
type visit struct {
	head     bool // a HEAD request, or a prefetch (purposeHeaders)
	agent    string
	peer     netip.Addr // the connection's peer; invalid if not an IP
	peerRaw  string     // the peer as given, hashed when it is not an IP
	xff      string     // every X-Forwarded-For value, joined by ","
	realIP   string
	reqID    string // Config.RequestIDHeader's value
	reqStart string // X-Request-Start
}

func httpVisit(r *http.Request, reqHeader string) visit {
	v := visit{head: r.Method == http.MethodHead, agent: truncateAgent(r.Header.Get("User-Agent")), peerRaw: r.RemoteAddr}
	for _, k := range purposeHeaders {
		if vs := r.Header[k]; len(vs) > 0 && isPrefetchValue(vs[0]) {
			v.head = true
		}
	}
	if a, ok := parseHostAddr(r.RemoteAddr); ok {
		v.peer = a
	}
	if xff := r.Header["X-Forwarded-For"]; len(xff) == 1 {
		v.xff = xff[0]
	} else if len(xff) > 1 { // several headers: one list (RFC 9110 5.3)
		v.xff = strings.Join(xff, ",")
	}
	v.realIP = r.Header.Get("X-Real-IP")
	if reqHeader != "" {
		v.reqID = r.Header.Get(reqHeader)
		v.reqStart = r.Header.Get("X-Request-Start")
	}
	return v
}

// answer is what a visit gets: a redirect to location, or a page.
type answer struct {
	status   int
	location string
	page     []byte
}

// Serve answers one visit to a printed code whose board is looked up by id
// (the hub: the board id; the gateway: <village>/<board>): it classifies
// the visit, hands it to the Recorder, and redirects, or answers the
// friendly not-found page for an id the lookup does not know.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, id string) {
	v := httpVisit(r, h.reqHeader)
	a := h.count(&v, id)
	hdr := w.Header()
	// no-store: every scan must reach the hub to be counted, and a changed
	// target must apply at once, so neither browsers nor proxies may keep
	// the redirect.
	hdr["Cache-Control"] = noStore
	if a.page != nil {
		hdr["Content-Security-Policy"] = []string{pageCSP}
		hdr["Content-Type"] = htmlType
		hdr["X-Content-Type-Options"] = noSniff
		w.WriteHeader(a.status)
		_, _ = w.Write(a.page) // a client gone away is no error of ours
		return
	}
	hdr["Location"] = []string{a.location}
	w.WriteHeader(a.status)
}

var (
	noStore  = []string{"no-store"}
	htmlType = []string{"text/html; charset=utf-8"}
	noSniff  = []string{"nosniff"}
)

// count classifies a visit, hands it to the Recorder and says what to
// answer.
func (h *Handler) count(v *visit, id string) answer {
	now := h.now()
	b, ok := h.boards.Board(id)
	if !ok {
		s := Scan{At: now, Class: ClassOrphan}
		if boardID.MatchString(id) {
			s.Board = id
		}
		h.rec.RecordScan(s)
		return answer{status: http.StatusNotFound, page: notFoundPage(s.Board)}
	}
	class, unique, visitKey := h.classify(v, b.ID, now)
	sc := Scan{Board: b.ID, Site: b.Site, At: now, Class: class, Unique: unique, visit: visitKey}
	if h.reqHeader != "" {
		sc.request, sc.At = h.proxyRequest(v, now)
	}
	h.rec.RecordScan(sc)
	if !validTarget(b.TargetURL) {
		return answer{status: http.StatusServiceUnavailable, page: noTargetPage(b)}
	}
	return answer{status: http.StatusFound, location: b.TargetURL}
}

// classify decides the Class of a request for a known board. The order
// matters for cost: cheap checks first; the rate limiter before the slow
// crawler list, so a client inventing agents pays for few slow checks.
func (h *Handler) classify(v *visit, board string, now time.Time) (Class, bool, clientKey) {
	if v.head {
		return ClassBot, false, clientKey{}
	}
	ua := v.agent
	bot, known := h.agents.quick(ua)
	if bot {
		return ClassBot, false, clientKey{}
	}
	s, err := h.salt.get(now)
	if err != nil {
		// No salt means no way to remember the client without its address:
		// count the scan as human and non-unique rather than store an IP.
		h.log.Error("scan: no daily salt; counting without uniqueness", "err", err)
		return ClassHuman, false, clientKey{}
	}
	addr := h.proxies.clientAddr(v)
	if !h.allow(s.key("rate", addr), now) {
		return ClassRateLimited, false, clientKey{}
	}
	if !known && h.agents.slow(ua) {
		return ClassBot, false, clientKey{}
	}
	key := s.key("uniq", addr, ua, board)
	return ClassHuman, h.firstInWindow(key, now), key
}

// proxyRequest reads the request id and start time a trusted proxy sent
// (Config.RequestIDHeader): the key of the id (zero if none) and the scan's
// time (now if the proxy sent none, or one further than
// maxRequestStartSkew from now).
func (h *Handler) proxyRequest(v *visit, now time.Time) (clientKey, time.Time) {
	if !v.peer.IsValid() || !h.proxies.trusted(v.peer) {
		return clientKey{}, now
	}
	id := v.reqID
	if id == "" || len(id) > 256 {
		return clientKey{}, now
	}
	sum := sha256.Sum256([]byte("villagehub request\x00" + id))
	var k clientKey
	copy(k[:], sum[:])
	at := now
	if t, ok := strings.CutPrefix(v.reqStart, "t="); ok {
		if f, err := strconv.ParseFloat(t, 64); err == nil && f > 0 {
			t := time.UnixMilli(int64(math.Round(f * 1e3))) // nginx's $msec has milliseconds
			if d := t.Sub(now); d < maxRequestStartSkew && d > -maxRequestStartSkew {
				at = t
			}
		}
	}
	return k, at
}

// ValidHeaderName reports whether s is a header name (an RFC 9110 token).
func ValidHeaderName(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// derivedSalt is the salt of the day holding now when instances share a
// secret: HMAC-SHA256(secret, "villagehub scan salt" 0 YYYY-MM-DD).
func derivedSalt(secret []byte, day string) [32]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("villagehub scan salt\x00" + day))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// allow takes one token from the client's bucket.
func (h *Handler) allow(k clientKey, now time.Time) bool {
	return h.mem.bucket(k, h.limit, h.burst).AllowN(now, 1)
}

// firstInWindow records a human scan and reports whether it is unique: the
// same key was not seen within the window before now.
func (h *Handler) firstInWindow(k clientKey, now time.Time) bool {
	t := now.UnixNano()
	last, ok := h.mem.swapSeen(k, t)
	return !ok || t-last >= int64(h.window)
}

// validTarget accepts absolute http(s) URLs and paths on the hub. The target
// comes from the operator's config, but a typo must not produce a redirect a
// browser would read as a different host ("//host") or scheme.
func validTarget(t string) bool {
	if strings.ContainsAny(t, "\r\n\t ") {
		return false
	}
	lt := strings.ToLower(t)
	switch {
	case strings.HasPrefix(lt, "https://"), strings.HasPrefix(lt, "http://"):
		host := t[strings.Index(t, "://")+3:]
		return host != "" && host[0] != '/'
	case strings.HasPrefix(t, "/"):
		return !strings.HasPrefix(t, "//") && !strings.HasPrefix(t, `/\`)
	}
	return false
}
