package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's Chromium ($VILLAGEHUB_CHROMIUM overrides it).
func ChromiumPath() string {
	if p := os.Getenv("VILLAGEHUB_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return "/usr/bin/chromium"
}

// Chromium is a headless Chromium for tests, driven by chromedp. Every tab
// from NewTab shares the browser; the browser stops when the test ends.
type Chromium struct {
	ctx    context.Context // the browser's chromedp context
	output *syncBuffer
}

// StartChromium starts headless Chromium with its own profile directory
// and window size. A missing or broken browser fails the test.
func StartChromium(t testing.TB, width, height int) *Chromium {
	t.Helper()
	bin := ChromiumPath()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("chromium not found at %s (%v): apt-get install -y --no-install-recommends chromium", bin, err)
	}
	out := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Tests reach servers on loopback only; a proxy from the
		// environment must not get in the way.
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(width, height),
		chromedp.CombinedOutput(out),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a timeout (that
	// would end the browser with it), so a watchdog bounds the start.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium %s: %v\n%s", bin, err, out.String())
		}
	case <-time.After(60 * time.Second):
		cancelBrowser()
		t.Fatalf("chromium %s did not start within 60s\n%s", bin, out.String())
	}
	return &Chromium{ctx: bctx, output: out}
}

// Context is the browser's first tab.
func (c *Chromium) Context() context.Context { return c.ctx }

// NewTab opens another tab in the same browser; it closes when the test ends.
func (c *Chromium) NewTab(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(c.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a chromium tab: %v", err)
	}
	return ctx
}

// Output is what the browser printed (useful when a test fails).
func (c *Chromium) Output() string { return c.output.String() }
