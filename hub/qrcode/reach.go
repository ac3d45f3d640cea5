package qrcode

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Printed codes must carry an address a phone on mobile data can reach.
// URLWarnings says loudly when the printed address cannot be: a loopback
// or unspecified address (the hub's own machine), a private one (RFC 1918,
// IPv6 ULA: only phones on the village Wi-Fi), link-local, carrier-grade
// NAT (100.64.0.0/10, what a 4G router often gets), a LAN-only name
// (.local, .lan, .home.arpa, .internal, a name without a dot) or a
// documentation placeholder (example.*, hub.example.vn, RFC 5737/3849
// addresses). `villagehub qr print`, the gateway link and the dashboard's
// admin and first-run pages all use this one check; each message is
// Vietnamese first, English in parentheses.

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
		return []string{fmt.Sprintf("%q không phải địa chỉ http(s):// đầy đủ, mã in ra sẽ không mở được (is not an absolute http(s) URL: the printed codes will not open)", u)}
	}
	host := strings.ToLower(strings.TrimSuffix(p.Hostname(), "."))
	say := func(vi, en string) []string { return []string{fmt.Sprintf("%s %s (%s %s)", host, vi, host, en)} }
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		switch {
		case a.IsLoopback(), a.IsUnspecified():
			return say("là địa chỉ của chính máy hub: không điện thoại nào tới được", "is this machine's own address (loopback): no phone can reach it")
		case a.IsPrivate():
			return say("là địa chỉ mạng nội bộ: chỉ điện thoại dùng Wi-Fi của thôn tới được, điện thoại dùng 4G thì không", "is a private address (RFC 1918/ULA): only phones on the village Wi-Fi reach it, not phones on mobile data")
		case a.IsLinkLocalUnicast():
			return say("là địa chỉ link-local: chỉ thiết bị cùng đoạn mạng tới được", "is a link-local address: only devices on the same network segment reach it")
		case a.Is4() && cgnat.Contains(a):
			return say("là địa chỉ CGNAT của nhà mạng 4G: từ Internet không tới được", "is a carrier-grade NAT address (100.64.0.0/10): the 4G operator's network, unreachable from the Internet")
		case a.Is4() && (doc4[0].Contains(a) || doc4[1].Contains(a) || doc4[2].Contains(a)), a.Is6() && doc6.Contains(a):
			return say("là địa chỉ dùng làm ví dụ trong tài liệu, không phải địa chỉ thật", "is a documentation address (a placeholder), not a real one")
		}
		return nil
	}
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return say("là chính máy đang mở nó: không điện thoại nào tới được", "is this machine itself: no phone can reach it")
	case host == "example" || strings.HasPrefix(host, "example.") || strings.Contains(host, ".example.") || strings.HasSuffix(host, ".example") ||
		strings.HasSuffix(host, ".invalid") || strings.HasSuffix(host, ".test"):
		return say("là địa chỉ ví dụ trong tệp cấu hình mẫu, không phải địa chỉ thật", "is a placeholder from the example config (example.*, hub.example.vn), not a real address")
	case !strings.Contains(host, "."):
		return say("là tên không có tên miền: chỉ mạng nội bộ hiểu được", "is a name without a domain: only the local network resolves it")
	}
	for _, t := range lanTLD {
		if strings.HasSuffix(host, t) {
			return say("là tên chỉ dùng trong mạng nội bộ ("+t+"): điện thoại dùng 4G không tìm được", "is a local-network name ("+t+"): phones on mobile data cannot resolve it")
		}
	}
	return nil
}
