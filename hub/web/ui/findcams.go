package ui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"villagehub/hub/onvif"
)

// "Tìm camera" (find cameras): the admin page finds ONVIF cameras on the
// LAN (WS-Discovery) or reads one by its ONVIF URL (a camera on another
// subnet, which multicast does not reach), shows what each said about
// itself, and writes the chosen ones into the config file the way
// `villagehub cameras discover --add` does (onvif.AddCameras), then
// reloads the hub. The camera password comes in the request body only: it
// is written to a 0600 file under data_dir (the config refers to the
// file) and is never answered back, logged or put in the YAML.

// findCamsRequest is the body of the three "Tìm camera" calls.
type findCamsRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Interface (discover only) names the network interface to probe on;
	// empty: the system's choice.
	Interface string `json:"interface"`
	// URL (inspect only) is the camera's ONVIF device service URL.
	URL string `json:"url"`
	// Site and XAddrs (add only): the cameras chosen, by ONVIF URL, and
	// the site they go to.
	Site   string   `json:"site"`
	XAddrs []string `json:"xaddrs"`
}

func (u *UI) mountFindCameras(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/admin/cameras/discover", u.adminOnly(u.discoverCameras))
	mux.HandleFunc("POST /api/v1/admin/cameras/inspect", u.adminOnly(u.inspectCamera))
	mux.HandleFunc("POST /api/v1/admin/cameras/add", u.adminOnly(u.addFoundCameras))
}

func decodeFindCams(w http.ResponseWriter, r *http.Request) (findCamsRequest, bool) {
	var req findCamsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		badBody(w, err)
		return req, false
	}
	req.Username = strings.TrimSpace(req.Username)
	req.URL = strings.TrimSpace(req.URL)
	return req, true
}

func (req findCamsRequest) options() onvif.DiscoverOptions {
	return onvif.DiscoverOptions{
		Probe:    onvif.ProbeOptions{Timeout: 3 * time.Second, Interface: strings.TrimSpace(req.Interface)},
		Username: req.Username, Password: req.Password,
		PerCamera: 8 * time.Second,
	}
}

// checkONVIFURL accepts an http(s) URL with a host and no credentials in
// it (the password goes in its own field, never in a URL that is stored
// and shown).
func checkONVIFURL(s string) (string, error) {
	if s != "" && !strings.Contains(s, "://") {
		// A bare address, as people type it: the usual device service path.
		s = "http://" + s
		if !strings.Contains(strings.TrimPrefix(s, "http://"), "/") {
			s += "/onvif/device_service"
		}
	}
	p, err := url.Parse(s)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "", errors.New("Địa chỉ ONVIF phải có dạng http://192.168.1.64/onvif/device_service (the ONVIF URL must be http(s)://host/...)")
	}
	if p.User != nil {
		return "", errors.New("Không ghi tên đăng nhập, mật khẩu trong địa chỉ; dùng các ô riêng (no user:password@ in the URL)")
	}
	return p.String(), nil
}

// discoverCameras probes the hub's LAN.
func (u *UI) discoverCameras(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeFindCams(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	devs, err := onvif.Discover(ctx, req.options())
	if err != nil {
		writeJSONError(w, http.StatusBadGateway, "Không gửi được yêu cầu tìm camera (could not send the discovery probe): "+err.Error())
		return
	}
	if devs == nil {
		devs = []onvif.Device{}
	}
	u.log.Info("cameras discovered from the dashboard", "found", len(devs), "interface", req.Interface)
	writeJSON(w, http.StatusOK, map[string]any{"devices": devs, "known": u.knownCameras()})
}

// inspectCamera reads one camera by URL.
func (u *UI) inspectCamera(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeFindCams(w, r)
	if !ok {
		return
	}
	xaddr, err := checkONVIFURL(req.URL)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	d := onvif.Inspect(r.Context(), xaddr, req.options())
	writeJSON(w, http.StatusOK, map[string]any{"devices": []onvif.Device{d}, "known": u.knownCameras()})
}

// knownCameras are the ONVIF URLs already in the config file, so the page
// marks those cameras as added.
func (u *UI) knownCameras() []string {
	out := []string{}
	if u.cfgFile == nil {
		return out
	}
	cfg, err := u.cfgFile.load()
	if err != nil {
		return out
	}
	for _, c := range cfg.Cameras {
		if c.ONVIF != nil && c.ONVIF.URL != "" {
			out = append(out, c.ONVIF.URL)
		}
	}
	return out
}

// addFoundCameras reads the chosen cameras again (what goes into the file
// is what the cameras say, not what the browser sent), writes the password
// file and the cameras, and reloads the hub.
func (u *UI) addFoundCameras(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeFindCams(w, r)
	if !ok {
		return
	}
	if u.cfgFile == nil || u.cfg.Reload == nil {
		writeJSONError(w, http.StatusUnprocessableEntity, "Hub này không chạy từ tệp cấu hình nên không thêm camera ở đây được (this hub was not started from a config file)")
		return
	}
	if !idPattern.MatchString(req.Site) {
		writeJSONError(w, http.StatusBadRequest, "Chọn thôn, bản cho camera (choose a site)")
		return
	}
	if len(req.XAddrs) == 0 || len(req.XAddrs) > 64 {
		writeJSONError(w, http.StatusBadRequest, "Chọn ít nhất một camera (choose at least one camera, at most 64)")
		return
	}
	if req.Username != "" && u.cfg.DataDir == "" {
		writeJSONError(w, http.StatusUnprocessableEntity, "Hub này không có data_dir để cất mật khẩu camera (no data_dir to keep the camera password in)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	var devs []onvif.Device
	var failed []map[string]string
	for _, x := range req.XAddrs {
		xaddr, err := checkONVIFURL(x)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		d := onvif.Inspect(ctx, xaddr, req.options())
		if d.MainURI == "" {
			msg := d.Error
			if d.Unauthorized {
				msg = "Sai tên đăng nhập hoặc mật khẩu camera (wrong username or password)"
			} else if msg == "" {
				msg = "camera không cho địa chỉ luồng hình (no stream URL)"
			}
			failed = append(failed, map[string]string{"xaddr": xaddr, "error": msg})
			continue
		}
		devs = append(devs, d)
	}
	if len(devs) == 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "Không đọc được camera nào đã chọn (none of the chosen cameras could be read)", "failed": failed})
		return
	}
	opts := onvif.AddOptions{Site: req.Site}
	pwFile := ""
	if req.Username != "" {
		var err error
		if pwFile, err = writePasswordFile(u.cfg.DataDir, req.Password); err != nil {
			u.log.Error("writing a camera password file", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "Không ghi được tệp mật khẩu camera (could not write the camera password file)")
			return
		}
		opts.Username, opts.PasswordFile = req.Username, pwFile
	}
	// The same lock as the other edits of the file: one writer at a time.
	u.cfgFile.mu.Lock()
	ids, err := onvif.AddCameras(u.cfgFile.path, opts, devs)
	u.cfgFile.mu.Unlock()
	if err != nil || len(ids) == 0 {
		if pwFile != "" {
			os.Remove(pwFile) // nothing refers to it
		}
	}
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": err.Error(), "failed": failed})
		return
	}
	if len(ids) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"status": "unchanged", "added": []string{}, "failed": failed,
			"message": "Các camera đã chọn đã có trong tệp cấu hình (the chosen cameras are already in the config file)"})
		return
	}
	u.log.Info("cameras added from the dashboard", "site", req.Site, "ids", ids)
	out := map[string]any{"status": "added", "added": ids, "failed": failed, "applied": true}
	if err := u.cfg.Reload(ctx); err != nil {
		out["applied"] = false
		out["message"] = (&savedNotApplied{err}).Error()
		writeJSON(w, http.StatusAccepted, out)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

// writePasswordFile keeps a camera password in a new 0600 file under
// dataDir/camera-passwords (0700) and returns its path.
func writePasswordFile(dataDir, password string) (string, error) {
	dir := filepath.Join(dataDir, "camera-passwords")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("onvif-%s-%s.pw", time.Now().UTC().Format("20060102T150405"), hex.EncodeToString(b[:])))
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(password); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	return path, f.Close()
}
