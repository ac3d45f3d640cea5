package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/qrcode"
	"villagehub/hub/report"
	"villagehub/hub/state"
	"villagehub/hub/web"
)

// Notifiers is what the "Gửi thử" (send a test) button needs from the
// alerting side; hub/alert's engine provides it once merged. The app passes
// it as Config.Notifiers.
type Notifiers interface {
	// NotifierStatus lists the configured notifiers and their health.
	NotifierStatus() []NotifierStatus
	// TestNotifier sends a test message through the notifier called name
	// and returns the channel's answer exactly as received (HTTP status and
	// body, or the connection error), so the village head can read what
	// Telegram or Zalo said. err is for an unknown name only.
	TestNotifier(ctx context.Context, name string) (TestResult, error)
}

// NotifierStatus is one notifier as the admin area lists it. It never
// carries a token, URL with credentials or chat id.
type NotifierStatus struct {
	Name      string     `json:"name"`
	Type      string     `json:"type"`
	Healthy   bool       `json:"healthy"`
	LastError string     `json:"last_error,omitempty"`
	LastSent  *time.Time `json:"last_sent,omitempty"`
}

// TestResult is a test send's outcome: OK when the channel accepted it,
// and its answer verbatim (secrets removed by the notifier).
type TestResult struct {
	OK     bool   `json:"ok"`
	Status int    `json:"status,omitempty"`
	Answer string `json:"answer"`
}

// Forgetter, when the Source also implements it, lets an administrator
// reject an auto-registered device: the hub forgets it (state, metrics).
type Forgetter interface {
	Forget(kind, site, id string) error
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func (u *UI) mountAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/admin/info", u.adminInfo)
	mux.HandleFunc("GET /api/v1/reports/qr", u.monthReport)
	mux.HandleFunc("GET /api/v1/qr-sheets/{site}", u.qrSheet)
	mux.HandleFunc("POST /api/v1/admin/devices", u.adminOnly(u.addDevice))
	mux.HandleFunc("PUT /api/v1/admin/devices/{kind}/{site}/{id}", u.adminOnly(u.renameDevice))
	mux.HandleFunc("DELETE /api/v1/admin/devices/{kind}/{site}/{id}", u.adminOnly(u.rejectDevice))
	mux.HandleFunc("POST /api/v1/admin/notifiers/{name}/test", u.adminOnly(u.testNotifier))
	u.mountFindCameras(mux)
}

// adminOnly refuses anything below admin even where access control would
// let it through (it already does for changes; this is belt and braces
// for handlers that read secrets-adjacent state).
func (u *UI) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if role, _, ok := web.RequestRole(r); !ok || role < web.RoleAdmin {
			writeJSONError(w, http.StatusForbidden, "Chỉ quản trị viên được làm việc này (only an administrator may do this)")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// badBody answers a body that could not be read: 413 when it was over
// the hub's request size limit, 400 otherwise.
func badBody(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit))
		return
	}
	writeJSONError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// adminInfo tells the page who is looking and what the admin area can do.
func (u *UI) adminInfo(w http.ResponseWriter, r *http.Request) {
	role, user, _ := web.RequestRole(r)
	out := map[string]any{"role": role.String(), "user": user}
	pub := u.publicURL()
	out["public_url"] = pub
	if pub == "" {
		out["public_url_warnings"] = []string{"Chưa đặt địa chỉ công khai của hub (http.public_url): chưa in được mã QR. Set http.public_url to print QR codes."}
	} else {
		out["public_url_warnings"] = qrcode.URLWarnings(u.printedBase(pub))
	}
	out["reports"] = u.cfg.QR != nil
	if role >= web.RoleAdmin {
		out["can_edit"] = u.cfgFile != nil && u.cfg.Reload != nil
		_, canForget := u.cfg.Source.(Forgetter)
		out["can_reject"] = canForget
		if u.cfg.Notifiers != nil {
			out["notifiers"] = u.cfg.Notifiers.NotifierStatus()
		} else {
			out["notifiers"] = nil
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// printedBase is the address printed codes carry: the gateway's when the
// hub has one, else the hub's public URL.
func (u *UI) printedBase(pub string) string {
	if u.cfg.PrintedBase != nil {
		if b := u.cfg.PrintedBase(); b != "" {
			return b
		}
	}
	return pub
}

func (u *UI) publicURL() string {
	if u.cfg.PublicURL != nil {
		return u.cfg.PublicURL()
	}
	return ""
}

// monthReport serves the monthly QR report as CSV (UTF-8 with BOM, for
// Excel), PDF, or JSON rows.
func (u *UI) monthReport(w http.ResponseWriter, r *http.Request) {
	if u.cfg.QR == nil {
		writeJSONError(w, http.StatusNotFound, "this hub keeps no QR history")
		return
	}
	loc := u.cfg.Location
	ms := r.URL.Query().Get("month")
	if ms == "" {
		ms = time.Now().In(loc).Format("2006-01")
	}
	m, err := time.ParseInLocation("2006-01", ms, loc)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "month phải có dạng YYYY-MM (month must be YYYY-MM)")
		return
	}
	var boards []report.Board
	for _, b := range u.cfg.Source.Boards() {
		boards = append(boards, report.Board{Site: b.Site, ID: b.ID, Name: b.Name})
	}
	rows, err := report.MonthRows(u.cfg.QR, boards, m, loc)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	name := "bao-cao-qr-" + m.Format("2006-01")
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		_ = report.WriteCSV(w, rows)
	case "pdf":
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.pdf"`)
		_ = report.WriteMonthPDF(w, report.MonthReport{Title: u.title(), Month: m, Location: loc, Rows: rows})
	case "", "json":
		type row struct {
			report.Row
			UniqueKnown bool `json:"unique_known"`
		}
		out := make([]row, len(rows))
		for i, rw := range rows {
			out[i] = row{rw, rw.UniqueKnown()}
		}
		writeJSON(w, http.StatusOK, map[string]any{"month": m.Format("2006-01"), "rows": out, "legend": report.Legend})
	default:
		writeJSONError(w, http.StatusBadRequest, "format must be csv, pdf or json, not "+f)
	}
}

// title names the village in printed reports: the first site's name.
func (u *UI) title() string {
	for _, s := range u.cfg.Source.Sites() {
		if s.Name != "" {
			return s.Name
		}
	}
	return "villagehub"
}

// qrSheet serves a site's printable QR sheet (the same PDF as
// `villagehub qr print`).
func (u *UI) qrSheet(w http.ResponseWriter, r *http.Request) {
	site := strings.TrimSuffix(r.PathValue("site"), ".pdf")
	pub := u.publicURL()
	if pub == "" {
		writeJSONError(w, http.StatusConflict, "Chưa đặt địa chỉ công khai của hub (http.public_url is not set)")
		return
	}
	sheet := qrcode.Sheet{PublicURL: pub, URLFor: u.cfg.CodeURL}
	for _, s := range u.cfg.Source.Sites() {
		if s.ID == site {
			sheet.Title = s.Name
			if sheet.Title == "" {
				sheet.Title = s.ID
			}
		}
	}
	if sheet.Title == "" {
		writeJSONError(w, http.StatusNotFound, "no site "+site)
		return
	}
	for _, b := range u.cfg.Source.Boards() {
		if b.Site == site && b.Configured {
			sheet.Boards = append(sheet.Boards, qrcode.SheetBoard{ID: b.ID, Name: b.Name})
		}
	}
	slices.SortFunc(sheet.Boards, func(a, b qrcode.SheetBoard) int { return strings.Compare(a.ID, b.ID) })
	if len(sheet.Boards) == 0 {
		writeJSONError(w, http.StatusNotFound, "Thôn này chưa có bảng mã QR nào (no QR boards in this site)")
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `attachment; filename="qr-`+site+`.pdf"`)
	if err := qrcode.WriteSheetPDF(w, sheet); err != nil {
		u.log.Error("writing a QR sheet", "site", site, "err", err)
	}
}

// applyEdit changes the config file and reloads the hub from it.
func (u *UI) applyEdit(ctx context.Context, fn func(*configFileRoot) error) error {
	if u.cfgFile == nil || u.cfg.Reload == nil {
		return errors.New("Hub này không chạy từ tệp cấu hình nên không sửa được ở đây (this hub was not started from a config file)")
	}
	if err := u.cfgFile.edit(fn); err != nil {
		return err
	}
	if err := u.cfg.Reload(ctx); err != nil {
		return &savedNotApplied{err}
	}
	return nil
}

// savedNotApplied: the file was changed (and is valid), but the running
// hub did not take it, e.g. because another change waiting in the file
// needs a restart. The change is not lost: it applies at the next start.
type savedNotApplied struct{ err error }

func (e *savedNotApplied) Error() string {
	return "Đã lưu vào tệp cấu hình; hub sẽ áp dụng khi khởi động lại (saved; applies at the next start): " + e.err.Error()
}

// editAnswer answers an admin edit: 200/201 applied, 202 saved for the
// next start, 404 unknown device, 422 refused (the file is unchanged).
func editAnswer(w http.ResponseWriter, err error, okCode int, status string) {
	var sna *savedNotApplied
	switch {
	case err == nil:
		writeJSON(w, okCode, map[string]any{"status": status, "applied": true})
	case errors.As(err, &sna):
		writeJSON(w, http.StatusAccepted, map[string]any{"status": status, "applied": false, "message": err.Error()})
	case errors.Is(err, errNotFound):
		writeJSONError(w, http.StatusNotFound, err.Error())
	default:
		writeJSONError(w, http.StatusUnprocessableEntity, err.Error())
	}
}

func (u *UI) addDevice(w http.ResponseWriter, r *http.Request) {
	var d newDevice
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		badBody(w, err)
		return
	}
	d.Name = strings.TrimSpace(d.Name)
	d.URL = strings.TrimSpace(d.URL)
	if !idPattern.MatchString(d.ID) || !idPattern.MatchString(d.Site) {
		writeJSONError(w, http.StatusBadRequest, "Mã chỉ gồm chữ thường không dấu, số, - và _ (ids are lowercase letters, digits, - and _)")
		return
	}
	err := u.applyEdit(r.Context(), func(root *configFileRoot) error { return addDevice(root, d) })
	if err == nil {
		u.log.Info("device added from the dashboard", "kind", d.Kind, "site", d.Site, "id", d.ID)
	}
	editAnswer(w, err, http.StatusCreated, "added")
}

func (u *UI) renameDevice(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		badBody(w, err)
		return
	}
	kind, site, id := r.PathValue("kind"), r.PathValue("site"), r.PathValue("id")
	name := strings.TrimSpace(body.Name)
	if name == "" {
		writeJSONError(w, http.StatusBadRequest, "Tên không được để trống (the name is empty)")
		return
	}
	err := u.applyEdit(r.Context(), func(root *configFileRoot) error { return renameDevice(root, kind, site, id, name) })
	if errors.Is(err, errNotFound) {
		err = fmt.Errorf("%s %s/%s: %w", kind, site, id, err)
	}
	editAnswer(w, err, http.StatusOK, "renamed")
}

// rejectDevice forgets a self-registered device. Only those: a device in
// the config file is removed there (the hub would list it again at the
// next reload otherwise). Answers are Vietnamese first, as the page shows
// them as they come.
func (u *UI) rejectDevice(w http.ResponseWriter, r *http.Request) {
	f, ok := u.cfg.Source.(Forgetter)
	if !ok {
		writeJSONError(w, http.StatusNotImplemented, "Hub này chưa từ chối được thiết bị (this hub cannot forget devices)")
		return
	}
	kind, site, id := r.PathValue("kind"), r.PathValue("site"), r.PathValue("id")
	if _, ok := event.KindByName(kind); !ok {
		writeJSONError(w, http.StatusBadRequest, "Loại thiết bị phải là camera hoặc board (kind must be camera or board, not "+kind+")")
		return
	}
	// The state decides (one owner of device state) and logs the
	// rejection; here it is only answered.
	switch err := f.Forget(kind, site, id); {
	case errors.Is(err, state.ErrUnknownDevice):
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("Không có thiết bị %s/%s (no %s %s/%s)", site, id, kind, site, id))
		return
	case errors.Is(err, state.ErrConfigured):
		writeJSONError(w, http.StatusConflict, fmt.Sprintf("%s/%s có trong tệp cấu hình, không phải thiết bị tự đăng ký; chỉ từ chối được thiết bị chưa duyệt (%s %s/%s is configured; only self-registered devices can be rejected)", site, id, kind, site, id))
		return
	case err != nil:
		writeJSONError(w, http.StatusUnprocessableEntity, "Hub không quên được thiết bị này (could not forget the device): "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "rejected"})
}

func (u *UI) testNotifier(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Notifiers == nil {
		writeJSONError(w, http.StatusNotFound, "Hub này chưa bật gửi thông báo (no notifiers)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	res, err := u.cfg.Notifiers.TestNotifier(ctx, r.PathValue("name"))
	if err != nil {
		writeJSONError(w, http.StatusNotFound, err.Error())
		return
	}
	u.log.Info("test notification sent from the dashboard", "notifier", r.PathValue("name"), "ok", res.OK, "status", res.Status)
	writeJSON(w, http.StatusOK, res)
}
