package scan

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clientKey is what the handler remembers about a client: the first 16 bytes
// of SHA-256 over a secret daily salt and the client's address (and, for
// uniqueness, its agent and the board). The raw address is never stored;
// without the salt, which lives only in this process's memory and is
// replaced every day, a key cannot be turned back into an address by trying
// all 2^32 IPv4 addresses.
type clientKey [16]byte

// salt is the secret of one day.
type salt struct {
	value [32]byte
	until time.Time // first instant of the next day
}

// salter hands out the current day's salt, replacing it at local midnight.
type salter struct {
	loc      *time.Location
	secret   []byte // nil: a random salt each day; else derived (derivedSalt)
	cur      atomic.Pointer[salt]
	mu       sync.Mutex // serialises rotation
	onRotate func()     // forgets everything keyed with the old salt
}

func newSalter(loc *time.Location, now time.Time, onRotate func(), secret []byte) (*salter, error) {
	s := &salter{loc: loc, onRotate: onRotate, secret: secret}
	if _, err := s.rotate(now); err != nil {
		return nil, err
	}
	return s, nil
}

// get returns the salt for now, rotating first if the day has changed.
func (s *salter) get(now time.Time) (*salt, error) {
	if c := s.cur.Load(); now.Before(c.until) {
		return c, nil
	}
	return s.rotate(now)
}

func (s *salter) rotate(now time.Time) (*salt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cur.Load(); c != nil && now.Before(c.until) {
		return c, nil // another request rotated first
	}
	n := new(salt)
	y, m, d := now.In(s.loc).Date()
	if s.secret != nil {
		n.value = derivedSalt(s.secret, fmt.Sprintf("%04d-%02d-%02d", y, m, d))
	} else if _, err := rand.Read(n.value[:]); err != nil {
		return nil, fmt.Errorf("drawing the daily salt: %w", err)
	}
	n.until = time.Date(y, m, d+1, 0, 0, 0, 0, s.loc)
	if s.cur.Load() != nil && s.onRotate != nil {
		s.onRotate()
	}
	s.cur.Store(n)
	return n, nil
}

// key hashes the salt and parts into a clientKey. Parts are separated by a
// zero byte, which appears in none of them (addresses, agents and board ids
// are text), so ("ab","c") and ("a","bc") differ.
func (s *salt) key(parts ...string) clientKey {
	var buf [64 + 2*maxAgentLen]byte
	b := append(buf[:0], s.value[:]...)
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(b)
	var k clientKey
	copy(k[:], sum[:])
	return k
}

// proxies decides who the client is.
type proxies []netip.Prefix

func parseProxies(list []string) (proxies, error) {
	var out proxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (p proxies) trusted(a netip.Addr) bool {
	for _, pr := range p {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address the request came from, as a string fit for
// hashing. X-Forwarded-For and X-Real-IP are believed only when the peer is a
// trusted proxy, since anyone can send them. In X-Forwarded-For the client is
// the right-most address that is not itself a trusted proxy: entries to its
// left were written by the client and may be lies.
//
// IPv6 clients are taken per /64: a phone changes its privacy address within
// its /64 at will, so the full address would let one phone look like many.
func (p proxies) clientAddr(v *visit) string {
	peer := v.peer
	if !peer.IsValid() {
		return v.peerRaw // not an IP (e.g. a unix socket); still hashed, never stored
	}
	if len(p) == 0 || !p.trusted(peer) {
		return canonical(peer)
	}
	if all := v.xff; all != "" {
		client := peer
		for rest := all; rest != ""; {
			i := strings.LastIndexByte(rest, ',')
			entry := strings.TrimSpace(rest[i+1:])
			rest = rest[:max(i, 0)]
			a, ok := parseHostAddr(entry)
			if !ok {
				break // garbage from the client side: stop at the last good hop
			}
			client = a
			if !p.trusted(a) {
				break
			}
			if i < 0 {
				break
			}
		}
		return canonical(client)
	}
	if xr := strings.TrimSpace(v.realIP); xr != "" {
		if a, ok := parseHostAddr(xr); ok {
			return canonical(a)
		}
	}
	return canonical(peer)
}

// parseHostAddr reads an address with or without a port. A bare address
// is tried first: it is what X-Forwarded-For holds, and a failed parse
// allocates its error.
func parseHostAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func canonical(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
