package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// zalo sends notices to a Zalo Official Account's GMF group (group_id) or
// to users (user_ids), keeping its own access token alive. What Zalo
// documents, and where (see docs/alerting.md for the pages):
//
//   - The OA access token is renewed at POST {oauth_url}/v4/oa/access_token
//     with the app secret in a `secret_key` header and the form
//     refresh_token, app_id, grant_type=refresh_token. The answer carries a
//     new access_token, a NEW refresh_token and expires_in (seconds; Zalo
//     sends it as a string). A refresh token is single-use and lives about
//     3 months; the access token about 25 hours (some pages say 1 hour), so
//     the hub trusts expires_in, never a constant.
//   - Group messages: POST {api_url}/v3.0/oa/group/message, header
//     access_token, body {"recipient":{"group_id":..},"message":{"text":..}};
//     user messages: POST {api_url}/v3.0/oa/message/cs with
//     {"recipient":{"user_id":..}}. Text is at most 2000 characters.
//   - Failures mostly come back as HTTP 200 with {"error": <negative>,
//     "message": ...}; error 0 is success.
//
// The chain of refresh tokens is the fragile part: each refresh spends the
// token it used. So the new pair is written to
// <data_dir>/zalo/<name>.json (write, fsync, rename, fsync the directory,
// mode 0600) before the new access token is used for anything, and a
// restart reads it back. If Zalo refuses the refresh token anyway, the
// chain is broken: the notifier says so (log, status, NotifierFailing
// through the other notifiers) and watches refresh_token_file for a new
// token written there by a person.
type zalo struct {
	cfg       *Notifier
	client    *http.Client
	log       *slog.Logger
	now       func() time.Time
	loc       *time.Location
	statePath string

	// rmu makes refreshes one at a time and is held across the HTTP call;
	// mu guards st and broken and is only held briefly, so health and
	// status never wait for Zalo.
	rmu    sync.Mutex
	mu     sync.Mutex
	st     zaloState
	loaded bool   // st was read from the state file
	broken string // why the chain is broken, for people; "" when fine
	wake   chan struct{}

	refreshes atomic.Uint64

	dmu    sync.Mutex
	sentTo map[string]map[string]bool // notice key -> users already sent to
}

// zaloState is what survives a restart. The file holds secrets: 0600.
type zaloState struct {
	RefreshToken string    `json:"refresh_token"`
	AccessToken  string    `json:"access_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	RefreshedAt  time.Time `json:"refreshed_at,omitzero"`
	// Seed: sha256 of refresh_token_file's content this chain began from.
	// A different content means a person put a new token there.
	Seed string `json:"seed"`
}

const (
	zaloDefaultAPI   = "https://openapi.zalo.me"
	zaloDefaultOAuth = "https://oauth.zaloapp.com"
	zaloGroupPath    = "/v3.0/oa/group/message"
	zaloUserPath     = "/v3.0/oa/message/cs"
	zaloTokenPath    = "/v4/oa/access_token"
	// zaloMaxText: Zalo's limit on a text message, in characters.
	zaloMaxText = 2000
	// zaloMaxMargin caps how long before expiry a token is renewed.
	zaloMaxMargin = 10 * time.Minute
)

// zaloFix is what to do about a broken chain, in both languages.
const zaloFix = "Issue a new refresh token (Zalo for Developers > your app > Official Account > get access token), " +
	"write it to refresh_token_file; the hub picks it up within a minute. / Cấp lại refresh token " +
	"(Zalo for Developers > ứng dụng > Official Account), ghi vào tệp refresh_token_file; hub tự nhận trong vòng một phút."

var zaloType = notifierType{
	repeats: true,
	provision: func(n *Notifier, bad func(msg string, path ...any)) {
		if strings.TrimSpace(n.AppID) == "" {
			bad("is required (the app's ID on Zalo for Developers)", "app_id")
		}
		if n.SecretKeyFile == "" {
			bad("is required (a file holding the app's secret key)", "secret_key_file")
		} else if s, err := readSecretFile(n.SecretKeyFile); err != nil {
			bad(err.Error(), "secret_key_file")
		} else {
			n.secret = s
		}
		if n.RefreshTokenFile == "" {
			bad("is required (a file holding the first refresh token)", "refresh_token_file")
		} else if _, err := readSecretFile(n.RefreshTokenFile); err != nil {
			bad(err.Error(), "refresh_token_file")
		}
		switch {
		case n.GroupID != "" && len(n.UserIDs) > 0:
			bad("give group_id or user_ids, not both", "group_id")
		case n.GroupID == "" && len(n.UserIDs) == 0:
			bad("is required: group_id (a GMF group of the OA) or user_ids", "group_id")
		}
		for i, u := range n.UserIDs {
			if strings.TrimSpace(u) == "" {
				bad("must not be empty", "user_ids", i)
			}
		}
		if n.APIURL == "" {
			n.APIURL = zaloDefaultAPI
		}
		if n.OAuthURL == "" {
			n.OAuthURL = zaloDefaultOAuth
		}
		for key, v := range map[string]string{"api_url": n.APIURL, "oauth_url": n.OAuthURL} {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("must be an http:// or https:// URL", key)
			}
		}
		if n.QuotaWait == 0 {
			n.QuotaWait = Duration(time.Hour)
		} else if n.QuotaWait < Duration(time.Second) {
			bad("must be at least 1s", "quota_wait")
		}
	},
	build: func(n *Notifier, d notifierDeps) (deliverer, error) { return newZalo(n, d) },
}

// readSecretFile reads a one-line secret. Errors name the problem, never
// the content; a file others may read is refused.
func readSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", path, pathErr(err))
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return "", fmt.Errorf("%s is readable by every user (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", path, pathErr(err))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newZalo(n *Notifier, d notifierDeps) (*zalo, error) {
	if d.DataDir == "" {
		return nil, errors.New("a zalo notifier needs data_dir (it keeps its rotated tokens there)")
	}
	z := &zalo{cfg: n, client: d.HTTP, log: d.Log, now: d.Now, loc: d.Loc,
		statePath: filepath.Join(d.DataDir, "zalo", n.Name+".json"),
		wake:      make(chan struct{}, 1), sentTo: map[string]map[string]bool{}}
	seed, err := readSecretFile(n.RefreshTokenFile)
	if err != nil {
		return nil, err
	}
	z.st = zaloState{RefreshToken: seed, Seed: sum(seed)}
	return z, nil
}

// loadLocked reads the saved token state at first use, not when the
// notifier is built: a reload builds the new notifier while the old one
// still runs (and may rotate the token), and starts it only after the
// old one stopped. Called with z.mu.
func (z *zalo) loadLocked() {
	if z.loaded {
		return
	}
	z.loaded = true
	b, err := os.ReadFile(z.statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		z.log.Error("cannot read the saved Zalo token state; starting from refresh_token_file", "file", z.statePath, "err", pathErr(err))
	default:
		var st zaloState
		if err := json.Unmarshal(b, &st); err != nil || st.RefreshToken == "" {
			z.log.Warn("the saved Zalo token state is unreadable; starting from refresh_token_file", "file", z.statePath)
		} else if st.Seed == z.st.Seed {
			z.st = st // the chain goes on from the last rotated token
		} else {
			z.log.Info("refresh_token_file holds a new token; starting a new token chain from it")
		}
	}
}

// redact removes every secret the notifier holds from s (answers and
// errors are shown to people and logged).
func (z *zalo) redact(s string) string {
	z.mu.Lock()
	z.loadLocked()
	secrets := []string{z.st.RefreshToken, z.st.AccessToken, z.cfg.secret}
	z.mu.Unlock()
	for _, x := range secrets {
		if len(x) >= 4 {
			s = strings.ReplaceAll(s, x, "[redacted]")
		}
	}
	return s
}

// margin: renew this long before expiry (a tenth of the token's life, at
// most 10 minutes), so a send never races the expiry.
func margin(st *zaloState) time.Duration {
	return min(st.ExpiresAt.Sub(st.RefreshedAt)/10, zaloMaxMargin)
}

// current returns the access token if it is valid and not due.
func (z *zalo) current() (string, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.loadLocked()
	if z.broken == "" && z.st.AccessToken != "" && z.now().Before(z.st.ExpiresAt.Add(-margin(&z.st))) {
		return z.st.AccessToken, true
	}
	return "", false
}

// token returns a valid access token, refreshing first when it is missing
// or due.
func (z *zalo) token(ctx context.Context) (string, error) {
	if tok, ok := z.current(); ok {
		return tok, nil
	}
	z.rmu.Lock()
	defer z.rmu.Unlock()
	if tok, ok := z.current(); ok {
		return tok, nil // refreshed while we waited
	}
	if err := z.refresh(ctx); err != nil {
		return "", err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.st.AccessToken, nil
}

// invalidate forgets an access token Zalo called invalid, so the next
// token() refreshes at once.
func (z *zalo) invalidate(tok string) {
	z.mu.Lock()
	if z.st.AccessToken == tok {
		z.st.AccessToken, z.st.ExpiresAt = "", time.Time{}
	}
	z.mu.Unlock()
}

// flexSeconds reads expires_in as Zalo sends it (a string) or a number.
type flexSeconds int64

func (f *flexSeconds) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	*f = flexSeconds(n)
	return err
}

type zaloTokenAnswer struct {
	AccessToken      string      `json:"access_token"`
	RefreshToken     string      `json:"refresh_token"`
	ExpiresIn        flexSeconds `json:"expires_in"`
	Error            int         `json:"error"`
	ErrorName        string      `json:"error_name"`
	ErrorDescription string      `json:"error_description"`
	Message          string      `json:"message"`
}

// refresh renews the access token with the refresh token and persists
// the new pair before anything uses it. Called with z.rmu.
func (z *zalo) refresh(ctx context.Context) error {
	z.mu.Lock()
	z.loadLocked()
	st, broken := z.st, z.broken
	z.mu.Unlock()
	if broken != "" {
		// A person may have put a new token in refresh_token_file.
		seed, err := readSecretFile(z.cfg.RefreshTokenFile)
		if err != nil || sum(seed) == st.Seed {
			return failf(ReasonToken, false, "the token chain is broken: %s", broken)
		}
		z.log.Info("new refresh token found in refresh_token_file; resuming")
		st = zaloState{RefreshToken: seed, Seed: sum(seed)}
		z.mu.Lock()
		z.st, z.broken = st, ""
		z.mu.Unlock()
	}
	form := url.Values{"refresh_token": {st.RefreshToken}, "app_id": {z.cfg.AppID}, "grant_type": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(z.cfg.OAuthURL, "/")+zaloTokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		return failf(ReasonBadRequest, true, "building the token request failed (check oauth_url)")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("secret_key", z.cfg.secret)
	resp, err := z.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		recordAnswer(ctx, "token refresh: no answer: "+err.Error())
		return failf(ReasonUnavailable, false, "refreshing the access token: %v", err)
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 || rerr != nil {
		recordAnswer(ctx, "token refresh: HTTP "+resp.Status)
		return failf(ReasonUnavailable, false, "refreshing the access token: Zalo answered %s", resp.Status)
	}
	var a zaloTokenAnswer
	jerr := json.Unmarshal(body, &a)
	if jerr != nil && resp.StatusCode == http.StatusOK {
		recordAnswer(ctx, "token refresh: HTTP 200, not JSON")
		return failf(ReasonUnavailable, false, "refreshing the access token: the answer is not JSON")
	}
	if resp.StatusCode != http.StatusOK || a.Error != 0 || a.AccessToken == "" || a.RefreshToken == "" {
		// Refused: the refresh token is spent, expired or revoked.
		why := z.redact(strings.TrimSpace(cmpOr(a.ErrorDescription, cmpOr(a.ErrorName, a.Message))))
		msg := fmt.Sprintf("Zalo refused the refresh token (HTTP %d, error %d %s). %s", resp.StatusCode, a.Error, truncate(why, 200), zaloFix)
		z.mu.Lock()
		z.broken = msg
		z.mu.Unlock()
		recordAnswer(ctx, "token refresh: "+z.redact(fmt.Sprintf("HTTP %s %s", resp.Status, strings.TrimSpace(string(body)))))
		z.log.Error("Zalo notifier lost its token chain: alerts cannot reach Zalo until a new refresh token is put in refresh_token_file",
			"zalo_error", a.Error, "zalo_message", truncate(why, 200), "refresh_token_file", z.cfg.RefreshTokenFile)
		return failf(ReasonToken, false, "Zalo refused the refresh token (error %d)", a.Error)
	}
	now := z.now()
	life := time.Duration(a.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour // the shortest life Zalo's pages mention
	}
	next := zaloState{RefreshToken: a.RefreshToken, AccessToken: a.AccessToken, ExpiresAt: now.Add(life), RefreshedAt: now, Seed: st.Seed}
	// Persist before use: the old refresh token is spent now, so the new
	// one must survive a crash before anything else happens.
	if err := writeFileAtomic(z.statePath, &next); err != nil {
		z.log.Error("could not save the rotated Zalo refresh token; a restart now would break the chain", "file", z.statePath, "err", err)
	}
	z.mu.Lock()
	z.st = next
	z.mu.Unlock()
	z.refreshes.Add(1)
	recordAnswer(ctx, fmt.Sprintf("token refresh: ok, access token valid for %s", life))
	z.log.Debug("Zalo access token refreshed", "valid_for", life.String())
	select {
	case z.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeFileAtomic writes v as JSON to path: a temporary file in the same
// directory, fsync, rename over path, fsync the directory; mode 0600.
func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this finds nothing
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// run keeps the token alive without alerts to send: it renews ahead of
// expiry (so the refresh token, which also expires, never goes unused for
// months) and, while the chain is broken, looks every minute for a new
// token in refresh_token_file.
func (z *zalo) run(ctx context.Context) error {
	errWait := time.Second
	for {
		wait := z.nextMaintenance()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-z.wake:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		if err := z.maintain(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			z.log.Warn("renewing the Zalo access token failed", "err", z.redact(err.Error()))
			t := time.NewTimer(errWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			errWait = min(2*errWait, time.Minute)
			continue
		}
		errWait = time.Second
	}
}

// nextMaintenance is how long until the token should be renewed (0: now).
func (z *zalo) nextMaintenance() time.Duration {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.loadLocked()
	switch {
	case z.broken != "":
		return time.Minute
	case z.st.AccessToken == "":
		return 0
	}
	return max(z.st.ExpiresAt.Add(-margin(&z.st)).Sub(z.now()), 0)
}

// maintain renews the token if it is due (or the chain was broken and a
// new seed may be there).
func (z *zalo) maintain(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, time.Duration(z.cfg.Timeout))
	defer cancel()
	_, err := z.token(rctx)
	return err
}

func (z *zalo) health() channelHealth {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.loadLocked()
	h := channelHealth{Broken: z.broken != "", Problem: z.broken, Refreshes: z.refreshes.Load()}
	if z.st.AccessToken != "" {
		h.TokenValidUntil = z.st.ExpiresAt
	}
	return h
}

func (z *zalo) deliver(ctx context.Context, n *Notification) error {
	text := zaloText(n, z.loc)
	if z.cfg.GroupID != "" {
		return z.send(ctx, zaloGroupPath, map[string]string{"group_id": z.cfg.GroupID}, text)
	}
	// To users: one message each; a retry skips those already reached.
	z.dmu.Lock()
	done := z.sentTo[n.Key]
	if done == nil {
		done = map[string]bool{}
		z.sentTo[n.Key] = done
	}
	z.dmu.Unlock()
	for _, u := range z.cfg.UserIDs {
		z.dmu.Lock()
		skip := done[u]
		z.dmu.Unlock()
		if skip {
			continue
		}
		if err := z.send(ctx, zaloUserPath, map[string]string{"user_id": u}, text); err != nil {
			if de := classify(err); de.permanent {
				z.forget(n.Key)
			}
			return err
		}
		z.dmu.Lock()
		done[u] = true
		z.dmu.Unlock()
	}
	z.forget(n.Key)
	return nil
}

func (z *zalo) forget(key string) {
	z.dmu.Lock()
	delete(z.sentTo, key)
	z.dmu.Unlock()
}

type zaloAnswer struct {
	Error   *int   `json:"error"`
	Message string `json:"message"`
}

// send posts one message; on a token answer it refreshes and tries once
// more.
func (z *zalo) send(ctx context.Context, path string, recipient map[string]string, text string) error {
	body, err := json.Marshal(map[string]any{"recipient": recipient, "message": map[string]string{"text": text}})
	if err != nil {
		return failf(ReasonBadRequest, true, "encoding the message: %v", err)
	}
	for attempt := 0; ; attempt++ {
		tok, err := z.token(ctx)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(z.cfg.APIURL, "/")+path, bytes.NewReader(body))
		if err != nil {
			return failf(ReasonBadRequest, true, "building the request failed (check api_url)")
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("access_token", tok)
		ans, err := doHTTP(ctx, z.client, req)
		if err != nil {
			return err
		}
		var a zaloAnswer
		if err := json.Unmarshal(ans, &a); err != nil || a.Error == nil {
			return failf(ReasonUnavailable, false, "Zalo's answer is not the JSON it documents")
		}
		if *a.Error == 0 {
			return nil
		}
		de := classifyZalo(*a.Error, z.redact(a.Message))
		if de.reason == ReasonToken && attempt == 0 {
			// Expired or revoked early: refresh at once, retry once.
			z.invalidate(tok)
			continue
		}
		if de.reason == ReasonQuota {
			de.hold = time.Duration(z.cfg.QuotaWait)
		}
		return de
	}
}

// Zalo's error codes, by class. Sources (docs/alerting.md): the OA API
// error table (second-hand copies; Zalo's own page needs a login) and the
// issue's observation of -216 on an expired token. Unknown codes are
// classified by the message's words, else "other" and retried with
// backoff.
var zaloCodes = map[int]string{
	-216: ReasonToken, -201: ReasonToken, -124: ReasonToken,
	-32:  ReasonQuota,
	-207: ReasonRecipient, -213: ReasonRecipient, -230: ReasonRecipient,
	-202: ReasonGroup, -205: ReasonGroup, -206: ReasonGroup, -208: ReasonGroup, -209: ReasonGroup, -210: ReasonGroup, -224: ReasonGroup,
	-203: ReasonBadRequest, -204: ReasonBadRequest,
}

func classifyZalo(code int, msg string) *deliveryError {
	reason, ok := zaloCodes[code]
	if !ok {
		m := strings.ToLower(msg)
		switch {
		case strings.Contains(m, "token"):
			reason = ReasonToken
		case strings.Contains(m, "quota") || strings.Contains(m, "limit"):
			reason = ReasonQuota
		case strings.Contains(m, "follow") || strings.Contains(m, "interact") || strings.Contains(m, "user"):
			reason = ReasonRecipient
		case strings.Contains(m, "group") || strings.Contains(m, "verif") || strings.Contains(m, "permission"):
			reason = ReasonGroup
		default:
			reason = ReasonOther
		}
	}
	permanent := reason == ReasonRecipient || reason == ReasonGroup || reason == ReasonBadRequest
	return failf(reason, permanent, "Zalo error %d: %s", code, truncate(msg, 200))
}

// zaloText is the message in Vietnamese: what, where, since when, how
// long, why; a resolution with its downtime. At most 2000 characters
// (runes: diacritics count once).
func zaloText(n *Notification, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	at := func(t time.Time) string { return t.In(loc).Format("15:04 02/01/2006") }
	var lines []string
	if n.Kind == KindTest {
		lines = []string{"🔔 Tin nhắn thử từ villagehub" + hubSuffix(n.HubID) + " lúc " + at(n.At) + ".",
			"Nếu bạn đọc được tin này, kênh báo tin Zalo hoạt động."}
	} else {
		emoji := "🟠"
		switch {
		case n.State == KindResolved:
			emoji = "✅"
		case n.Severity == "critical":
			emoji = "🔴"
		}
		lines = append(lines, emoji+" "+title(n, vi)+": "+n.Place())
		if n.State == KindResolved {
			end := n.At
			if n.ResolvedAt != nil {
				end = *n.ResolvedAt
			}
			lines = append(lines, fmt.Sprintf("Gián đoạn %s (từ %s đến %s)", durationText(end.Sub(n.Since), vi), at(n.Since), at(end)))
			if n.Reason == "removed" {
				lines = append(lines, "Lý do: "+reasonText(n.Reason, vi))
			}
		} else {
			lines = append(lines, fmt.Sprintf("Từ %s (đã %s)", at(n.Since), durationText(n.Duration(), vi)))
			why := reasonText(n.Reason, vi)
			if n.Detail != "" && n.Alert == NotifierFailing {
				why += " — " + n.Detail
			}
			if n.Reason != "" {
				lines = append(lines, "Lý do: "+why)
			}
		}
		if n.Detail != "" && strings.Contains(n.Detail, "hub was not watching") {
			lines = append(lines, "Lưu ý: hub đã ngừng theo dõi một thời gian (khởi động lại); thời điểm kết thúc có thể sớm hơn.")
		}
	}
	if n.URL != "" {
		lines = append(lines, n.URL)
	}
	return truncate(strings.Join(lines, "\n"), zaloMaxText)
}

func hubSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " (hub " + id + ")"
}
