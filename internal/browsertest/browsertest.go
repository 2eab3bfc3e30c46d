// Package browsertest starts Debian's chromium, headless, for the tests
// that drive writ's web pages in a real browser, and says where they
// leave their screenshots.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// New starts a headless chromium (1280×1000) for at most timeout and
// returns its context; the browser is closed when the test ends. The
// test fails, saying how to install it, when chromium is missing.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (Debian package chromium; ./test.sh installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1280, 1000),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	return bctx
}

// ScreenshotDir is where browser tests leave their screenshots:
// $WRIT_SCREENSHOTS, or writ-screenshots in the system's temporary
// directory; it is created if missing.
func ScreenshotDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("WRIT_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "writ-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
