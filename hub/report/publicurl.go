package report

import (
	"net"
	"net/url"
	"strings"
)

// PublicURLWarnings says why printed QR codes for publicURL would not work
// on villagers' phones: the reference config's example host, a loopback or
// unspecified address (the hub's own machine), or no scheme and host. The
// qr print command and the dashboard's sheet download show them; docs/qr.md
// explains how phones reach the hub.
func PublicURLWarnings(publicURL string) []string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return []string{"http.public_url " + publicURL + " không phải địa chỉ http(s)://máy:cổng (is not an http(s) URL): mã in ra sẽ không mở được"}
	}
	host := u.Hostname()
	var out []string
	if host == "example.vn" || strings.HasSuffix(host, ".example.vn") || host == "example.com" || strings.HasSuffix(host, ".example.com") || strings.HasSuffix(host, ".example") {
		out = append(out, "http.public_url "+publicURL+" là địa chỉ ví dụ trong tệp cấu hình mẫu (is the reference config's example): điện thoại sẽ không mở được mã in ra")
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		out = append(out, "http.public_url "+publicURL+" chỉ trỏ về chính máy đang mở nó (localhost): điện thoại quét mã sẽ không tới được hub")
	} else if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		out = append(out, "http.public_url "+publicURL+" là địa chỉ nội bộ của máy hub ("+host+"): điện thoại quét mã sẽ không tới được hub")
	}
	return out
}
