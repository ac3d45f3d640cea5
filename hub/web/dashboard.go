package web

import (
	"html/template"
	"net/http"

	"villagehub/hub/state"
)

// dashboardPage is a plain server-rendered overview, in Vietnamese.
var dashboardPage = template.Must(template.New("dash").Parse(`<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>villagehub</title></head><body>
<h1>villagehub</h1>
<h2>Camera ({{len .Cameras}})</h2>
<table><thead><tr><th>Điểm</th><th>Camera</th><th>Trạng thái</th><th>Chuyển động</th><th>Số lần</th></tr></thead><tbody>
{{range .Cameras}}<tr><td>{{.Site}}</td><td>{{if .Name}}{{.Name}}{{else}}{{.ID}}{{end}}</td><td>{{.Status}}</td><td>{{if .MotionActive}}có{{else}}không{{end}}</td><td>{{.MotionEvents}}</td></tr>
{{end}}</tbody></table>
<h2>Bảng mã QR ({{len .Boards}})</h2>
<table><thead><tr><th>Điểm</th><th>Bảng</th><th>Hôm nay</th><th>Tổng</th></tr></thead><tbody>
{{range .Boards}}<tr><td>{{.Site}}</td><td>{{if .Name}}{{.Name}}{{else}}{{.ID}}{{end}}</td><td>{{.ScansToday}}</td><td>{{.ScansTotal}}</td></tr>
{{end}}</tbody></table>
<p><a href="/metrics">/metrics</a> · <a href="/api/v1/cameras">/api/v1/cameras</a> · <a href="/api/v1/qr-boards">/api/v1/qr-boards</a> · <a href="/api/v1/events">/api/v1/events</a></p>
</body></html>`))

// Dashboard mounts the built-in dashboard at /.
func Dashboard(st *state.State) func(*http.ServeMux) {
	return func(mux *http.ServeMux) {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = dashboardPage.Execute(w, map[string]any{"Cameras": st.Cameras(), "Boards": st.Boards()})
		})
	}
}
