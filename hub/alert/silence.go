package alert

import (
	"time"
)

// silence is a silence or maintenance window, from the config or the API.
type silence struct {
	ID        string    `json:"id"`
	Matcher   Matcher   `json:"matchers"`
	StartsAt  time.Time `json:"starts_at,omitzero"`
	EndsAt    time.Time `json:"ends_at,omitzero"`
	Daily     *Hours    `json:"-"`
	Comment   string    `json:"comment,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	Source    string    `json:"source"` // config or api
}

// SilenceView is a silence as the API shows it.
type SilenceView struct {
	ID        string     `json:"id"`
	Matchers  Matcher    `json:"matchers"`
	StartsAt  *time.Time `json:"starts_at,omitempty"`
	EndsAt    *time.Time `json:"ends_at,omitempty"`
	Daily     *DailyView `json:"daily,omitempty"`
	Comment   string     `json:"comment,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	Source    string     `json:"source"`
	// State: active, pending (starts later) or expired.
	State string `json:"state"`
}

// DailyView is a recurring maintenance window.
type DailyView struct {
	Days []string `json:"days,omitempty"`
	From string   `json:"from"`
	To   string   `json:"to"`
}

func (s *silence) active(now time.Time, loc *time.Location) bool {
	if s.Daily != nil {
		_, _, ok := s.Daily.window(now.In(loc))
		return ok
	}
	return !now.Before(s.StartsAt) && now.Before(s.EndsAt)
}

func (s *silence) stateAt(now time.Time, loc *time.Location) string {
	switch {
	case s.active(now, loc):
		return "active"
	case s.Daily != nil || now.Before(s.StartsAt):
		return "pending"
	}
	return "expired"
}

func (s *silence) view(now time.Time, loc *time.Location) SilenceView {
	v := SilenceView{ID: s.ID, Matchers: s.Matcher, Comment: s.Comment, CreatedBy: s.CreatedBy, Source: s.Source, State: s.stateAt(now, loc)}
	if !s.StartsAt.IsZero() {
		t, e := s.StartsAt, s.EndsAt
		v.StartsAt, v.EndsAt = &t, &e
	}
	if !s.CreatedAt.IsZero() {
		t := s.CreatedAt
		v.CreatedAt = &t
	}
	if s.Daily != nil {
		v.Daily = &DailyView{Days: s.Daily.Days, From: s.Daily.From, To: s.Daily.To}
	}
	return v
}

// silencedBy lists the active silences matching a. Called with e.mu held.
func (e *Engine) silencedBy(a *Alert, now time.Time) []string {
	var ids []string
	for _, s := range e.silences {
		if s.Matcher.matches(a) && s.active(now, e.loc) {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

func (e *Engine) isSilenced(a *Alert, now time.Time) bool {
	for _, s := range e.silences {
		if s.Matcher.matches(a) && s.active(now, e.loc) {
			return true
		}
	}
	return false
}
