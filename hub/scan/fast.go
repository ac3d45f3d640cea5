package scan

import (
	"net/netip"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// ServeFast is Serve for fasthttp (hub/fastlane): the same rules, counts
// and answers, without net/http's per-request allocations.
func (h *Handler) ServeFast(ctx *fasthttp.RequestCtx, id string) {
	v := fastVisit(ctx, h.reqHeader)
	a := h.count(&v, id)
	hdr := &ctx.Response.Header
	hdr.Set("Cache-Control", "no-store") // see Serve
	ctx.SetStatusCode(a.status)
	if a.page != nil {
		hdr.Set("Content-Security-Policy", pageCSP)
		hdr.Set("Content-Type", htmlType[0])
		hdr.Set("X-Content-Type-Options", noSniff[0])
		ctx.SetBody(a.page)
		return
	}
	hdr.Set("Location", a.location)
}

// ServeFastBoard serves /q/<board> for hub/fastlane (rest: what follows
// /q/): a single path segment is a board; anything else is left to
// net/http, as its ServeMux pattern /q/{board} would not match it.
func (h *Handler) ServeFastBoard(ctx *fasthttp.RequestCtx, rest string) bool {
	if rest == "" || strings.IndexByte(rest, '/') >= 0 {
		return false
	}
	h.ServeFast(ctx, rest)
	return true
}

func fastVisit(ctx *fasthttp.RequestCtx, reqHeader string) visit {
	rh := &ctx.Request.Header
	v := visit{head: ctx.IsHead(), agent: truncateAgent(b2s(rh.UserAgent()))}
	for _, k := range purposeHeaders {
		if isPrefetchValue(b2s(rh.Peek(k))) {
			v.head = true
		}
	}
	if ip := ctx.RemoteIP(); ip != nil {
		if a, ok := netip.AddrFromSlice(ip); ok {
			v.peer = a.Unmap()
		}
	}
	if !v.peer.IsValid() {
		v.peerRaw = ctx.RemoteAddr().String()
	}
	switch xff := rh.PeekAll("X-Forwarded-For"); len(xff) {
	case 0:
	case 1:
		v.xff = b2s(xff[0])
	default: // several headers: one list (RFC 9110 5.3)
		parts := make([]string, len(xff))
		for i, x := range xff {
			parts[i] = string(x)
		}
		v.xff = strings.Join(parts, ",")
	}
	v.realIP = b2s(rh.Peek("X-Real-IP"))
	if reqHeader != "" {
		v.reqID = string(rh.Peek(reqHeader))
		v.reqStart = b2s(rh.Peek("X-Request-Start"))
	}
	return v
}

// b2s views b as a string without copying: only for values used within
// the request (see visit).
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
