package apptest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"villagehub/hub/alert"
)

// Webhook is a webhook notifier's receiver: it records every notification
// the hub delivers to URL, in order.
type Webhook struct {
	URL string
	mu  sync.Mutex
	got []alert.Notification
}

// NewWebhook starts a receiver, closed at the end of the test.
func NewWebhook(t testing.TB) *Webhook {
	t.Helper()
	w := &Webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var n alert.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.mu.Lock()
		w.got = append(w.got, n)
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// Notices is what arrived so far.
func (w *Webhook) Notices() []alert.Notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]alert.Notification(nil), w.got...)
}
