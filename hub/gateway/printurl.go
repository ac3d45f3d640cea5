package gateway

import (
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"

	"villagehub/hub/qrcode"
)

// Printed codes must carry an address a phone on mobile data can reach.
// These checks say loudly when the printed address cannot be: a loopback
// or unspecified address (the hub's own machine), a private one (RFC 1918,
// IPv6 ULA), link-local, carrier-grade NAT (100.64.0.0/10, what a 4G
// router often gets), a LAN-only name (.local, .lan, .home.arpa,
// .internal, a name without a dot) or a documentation placeholder
// (example.*, hub.example.vn, RFC 5737/3849 documentation addresses).

var (
	cgnat  = netip.MustParsePrefix("100.64.0.0/10")
	doc4   = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24")}
	doc6   = netip.MustParsePrefix("2001:db8::/32")
	lanTLD = []string{".local", ".lan", ".home", ".home.arpa", ".internal", ".localdomain", ".intranet", ".corp"}
)

// URLWarnings lists why phones on mobile data could not open a printed
// code carrying u; none when it looks reachable.
func URLWarnings(u string) []string {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return []string{fmt.Sprintf("%q is not an absolute http(s) URL: the printed codes will not open", u)}
	}
	host := strings.ToLower(strings.TrimSuffix(p.Hostname(), "."))
	var out []string
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		switch {
		case a.IsLoopback(), a.IsUnspecified():
			out = append(out, fmt.Sprintf("%s is this machine's own address (loopback): no phone can reach it", host))
		case a.IsPrivate():
			out = append(out, fmt.Sprintf("%s is a private address (RFC 1918/ULA): only phones on the village Wi-Fi reach it, not phones on mobile data", host))
		case a.IsLinkLocalUnicast():
			out = append(out, fmt.Sprintf("%s is a link-local address: only devices on the same network segment reach it", host))
		case a.Is4() && cgnat.Contains(a):
			out = append(out, fmt.Sprintf("%s is a carrier-grade NAT address (100.64.0.0/10): the 4G operator's network, unreachable from the Internet", host))
		case a.Is4() && (doc4[0].Contains(a) || doc4[1].Contains(a) || doc4[2].Contains(a)), a.Is6() && doc6.Contains(a):
			out = append(out, fmt.Sprintf("%s is a documentation address (a placeholder), not a real one", host))
		}
		return out
	}
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		out = append(out, fmt.Sprintf("%s is this machine itself: no phone can reach it", host))
	case host == "example" || strings.HasPrefix(host, "example.") || strings.Contains(host, ".example.") || strings.HasSuffix(host, ".example") ||
		strings.HasSuffix(host, ".invalid") || strings.HasSuffix(host, ".test"):
		out = append(out, fmt.Sprintf("%s is a placeholder from the example config (example.*, hub.example.vn), not a real address", host))
	case !strings.Contains(host, "."):
		out = append(out, fmt.Sprintf("%s is a name without a domain: only the local network resolves it", host))
	default:
		for _, t := range lanTLD {
			if strings.HasSuffix(host, t) {
				out = append(out, fmt.Sprintf("%s is a local-network name (%s): phones on mobile data cannot resolve it", host, t))
				break
			}
		}
	}
	return out
}

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
		for _, msg := range URLWarnings(base) {
			fmt.Fprintf(w, "CẢNH BÁO / WARNING: %s = %s: %s. Mã in ra sẽ không mở được trên điện thoại dùng 4G (docs/gateway.md: which address to print).\n", key, base, msg)
		}
	}
	return fn
}
