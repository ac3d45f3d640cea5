package app

import (
	"context"
	"strings"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/web/ui"
)

// uiNotifiers gives the dashboard's "Gửi thử" (send a test) button the
// alert engine's notifiers, in the dashboard's own small types.
type uiNotifiers struct{ e *alert.Engine }

func (n uiNotifiers) NotifierStatus() []ui.NotifierStatus {
	var out []ui.NotifierStatus
	for _, s := range n.e.Notifiers() {
		st := ui.NotifierStatus{Name: s.Name, Type: s.Type, Healthy: s.Healthy, LastError: s.LastError}
		if s.Problem != "" {
			st.LastError = s.Problem // what to do beats the raw error
		}
		if !s.LastSuccess.IsZero() {
			t := s.LastSuccess
			st.LastSent = &t
		}
		out = append(out, st)
	}
	return out
}

func (n uiNotifiers) TestNotifier(ctx context.Context, name string) (ui.TestResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := n.e.TestNotifier(ctx, name)
	if err != nil {
		return ui.TestResult{}, err
	}
	answer := strings.Join(res.Answer, "\n")
	if res.Error != "" && !strings.Contains(answer, res.Error) {
		answer = strings.TrimSpace(answer + "\n" + res.Error)
	}
	return ui.TestResult{OK: res.OK, Answer: answer}, nil
}
