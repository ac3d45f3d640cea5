package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"villagehub/hub/qrcode"
)

// imageVersion is part of every ETag: bump it when the drawing changes, so
// caches drop images drawn the old way.
const imageVersion = "1"

// imageCache keeps recently drawn codes (a printed sheet asks for the same few
// again and again) and limits how many are drawn at once: a 4096 px PNG takes
// 16 MB while it is drawn, and a burst of such requests must not take the
// hub's memory.
type imageCache struct {
	done *lru.Cache[string, []byte]
	sem  chan struct{}
}

func newImageCache(size, workers int) *imageCache {
	c, _ := lru.New[string, []byte](size) // size is a positive constant
	return &imageCache{done: c, sem: make(chan struct{}, workers)}
}

func (c *imageCache) get(key string, draw func() ([]byte, error)) ([]byte, error) {
	if b, ok := c.done.Get(key); ok {
		return b, nil
	}
	c.sem <- struct{}{}
	defer func() { <-c.sem }()
	if b, ok := c.done.Get(key); ok { // drawn while we waited
		return b, nil
	}
	b, err := draw()
	if err != nil {
		return nil, err
	}
	c.done.Add(key, b)
	return b, nil
}

var imageTypes = map[string]struct {
	contentType string
	draw        func(string, qrcode.Options) ([]byte, error)
}{
	"png": {"image/png", qrcode.PNG},
	"svg": {"image/svg+xml", qrcode.SVG},
}

// serveImage answers GET /qr/{board}.png and .svg.
func (h *Handler) serveImage(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	dot := strings.LastIndexByte(file, '.')
	if dot <= 0 {
		http.Error(w, "not found: ask for /qr/<board>.png or /qr/<board>.svg", http.StatusNotFound)
		return
	}
	id, ext := file[:dot], file[dot+1:]
	kind, ok := imageTypes[ext]
	if !ok {
		http.Error(w, "not found: the code is available as .png or .svg", http.StatusNotFound)
		return
	}
	if _, ok := h.boards.Board(id); !ok {
		http.Error(w, "not found: no board with this id", http.StatusNotFound)
		return
	}
	opts, err := qrcode.ParseOptions(r.URL.Query())
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	target, err := qrcode.BoardURL(h.publicURL, id)
	if h.codeURL != nil {
		target, err = h.codeURL(id)
	}
	if err != nil {
		http.Error(w, "bad board id", http.StatusNotFound)
		return
	}
	// The image depends only on these inputs, so they make the ETag; a
	// changed public URL or drawing version gives a new one.
	sum := sha256.Sum256([]byte(imageVersion + "\x00" + ext + "\x00" + target + "\x00" +
		strconv.Itoa(opts.Size) + "\x00" + strconv.Itoa(opts.Margin) + "\x00" + string(opts.Level)))
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	hdr := w.Header()
	hdr.Set("ETag", etag)
	// An hour of freshness, then a cheap revalidation: codes rarely change,
	// but a new public URL must reach printers the same day.
	hdr.Set("Cache-Control", "public, max-age=3600")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b, err := h.images.get(etag, func() ([]byte, error) { return kind.draw(target, opts) })
	if err != nil {
		// The only inputs are bounded options and a short URL; a failure
		// here means a code too dense for the size asked for.
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	hdr.Set("Content-Type", kind.contentType)
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	hdr.Set("X-Content-Type-Options", "nosniff")
	if boardID.MatchString(id) { // only plain ids go into a header
		hdr.Set("Content-Disposition", fmt.Sprintf(`inline; filename="qr-%s.%s"`, id, ext))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b) // a client gone away is no error of ours
	}
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 13.1.2).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
