package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/cenkalti/backoff/v4"
)

// webhook posts a notice to a URL, with a body from a template, and reads
// the answer: a 2xx whose JSON body fails success_field or error_field is
// a failure too.
type webhook struct {
	cfg    *Notifier
	client *http.Client
}

var webhookType = notifierType{
	repeats: true,
	provision: func(n *Notifier, bad func(msg string, path ...any)) {
		n.needURL(bad)
		if n.Method == "" {
			n.Method = "POST"
		}
		switch n.Method {
		case "POST", "PUT":
		default:
			bad("must be POST or PUT", "method")
		}
		n.headers = map[string]string{}
		for k, v := range n.Headers {
			n.headers[k] = v
		}
		for k, f := range n.HeaderFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				bad(fmt.Sprintf("cannot read %s: %v", f, pathErr(err)), "header_files", k)
				continue
			}
			n.headers[k] = strings.TrimSpace(string(b))
		}
		text := n.Template
		if n.TemplateFile != "" {
			if n.Template != "" {
				bad("give template or template_file, not both", "template_file")
			}
			b, err := os.ReadFile(n.TemplateFile)
			if err != nil {
				bad(fmt.Sprintf("cannot read: %v", pathErr(err)), "template_file")
			}
			text = string(b)
		}
		n.tmplText = text
		if text != "" {
			t, err := parseTemplate(n.Name, text)
			if err != nil {
				key := "template"
				if n.TemplateFile != "" {
					key = "template_file"
				}
				bad(err.Error(), key)
			}
			n.tmpl = t
		}
	},
	build: func(n *Notifier, d notifierDeps) (deliverer, error) {
		return &webhook{cfg: n, client: d.HTTP}, nil
	},
}

func (w *webhook) deliver(ctx context.Context, n *Notification) error {
	body, err := w.body(n)
	if err != nil {
		return backoff.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, w.cfg.Method, w.cfg.url, bytes.NewReader(body))
	if err != nil {
		return backoff.Permanent(errors.New("building the request failed (check the url)"))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "villagehub-alert")
	req.Header.Set("Idempotency-Key", n.Key)
	for k, v := range w.cfg.headers {
		req.Header.Set(k, v)
	}
	body, err = doHTTP(ctx, w.client, req)
	if err != nil {
		return err
	}
	return checkBody(body, w.cfg.SuccessField, w.cfg.ErrorField)
}

// checkBody applies the optional body checks to a 2xx answer.
func checkBody(body []byte, successField, errorField string) error {
	if successField == "" && errorField == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return failf(ReasonRejected, false, "the answer is not JSON, so %s cannot be checked", cmpOr(successField, errorField))
	}
	if successField != "" {
		if ok, _ := lookup(v, successField).(bool); !ok {
			return failf(ReasonRejected, false, "the answer's %s is not true", successField)
		}
	}
	if errorField != "" {
		switch e := lookup(v, errorField).(type) {
		case nil:
		case float64:
			if e != 0 {
				return failf(ReasonRejected, false, "the answer's %s is %v", errorField, e)
			}
		case string:
			if e != "" && e != "0" {
				return failf(ReasonRejected, false, "the answer's %s is %q", errorField, truncate(e, 200))
			}
		case bool:
			if e {
				return failf(ReasonRejected, false, "the answer's %s is true", errorField)
			}
		default:
			return failf(ReasonRejected, false, "the answer's %s is set", errorField)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// lookup follows a dotted path into decoded JSON.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// body renders the notice: the template, or the generic JSON.
func (w *webhook) body(n *Notification) ([]byte, error) {
	if w.cfg.tmpl == nil {
		return json.Marshal(n)
	}
	return Render(w.cfg.tmpl, n)
}

// doHTTP sends req, reads the whole answer (up to 64 KiB) and classifies
// it: 2xx is done (the body is returned for checks); 408 and 5xx are
// worth retrying; 429 is a quota; other 4xx are permanent. Errors never
// carry the URL (it may hold a token). A test send records the answer.
func doHTTP(ctx context.Context, client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL, keep the reason
		}
		recordAnswer(ctx, "no answer: "+err.Error())
		return nil, failf(ReasonUnavailable, false, "sending: %v", err)
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	recordAnswer(ctx, fmt.Sprintf("HTTP %s %s", resp.Status, strings.TrimSpace(string(body))))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		if rerr != nil {
			return nil, failf(ReasonUnavailable, false, "reading the answer: %v", rerr)
		}
		return body, nil
	case c == http.StatusTooManyRequests:
		return nil, failf(ReasonQuota, false, "receiver answered %s", resp.Status)
	case c == http.StatusRequestTimeout || c >= 500:
		return nil, failf(ReasonUnavailable, false, "receiver answered %s", resp.Status)
	default:
		return nil, failf(ReasonBadRequest, true, "receiver answered %s", resp.Status)
	}
}
