package gateway

import (
	"fmt"
	"io"

	"villagehub/hub/qrcode"
)

// PrintedURLs is what `villagehub qr print` and the hub's /qr/ images use:
// the gateway's <public_url>/q/<village>/<board> when the hub has a
// gateway: block, else <hubPublicURL>/q/<board>. It writes a loud warning
// to w (if not nil) when the printed address is unreachable from phones on
// mobile data, and returns the URL of each board.
func PrintedURLs(hubPublicURL string, gw LinkConfig, w io.Writer) func(board string) (string, error) {
	base, key := hubPublicURL, "http.public_url"
	fn := func(board string) (string, error) { return qrcode.BoardURL(hubPublicURL, board) }
	if gw.Enabled() {
		base, key = gw.PublicURL, "gateway.public_url"
		fn = gw.CodeURL
	}
	if w != nil {
		for _, msg := range qrcode.URLWarnings(base) {
			fmt.Fprintf(w, "CẢNH BÁO / WARNING: %s = %s: %s. Mã in ra sẽ không mở được trên điện thoại dùng 4G (docs/gateway.md: which address to print).\n", key, base, msg)
		}
	}
	return fn
}
