package publicrecord

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/writ-project/writ/internal/browsertest"
)

// TestPagesInChromium loads the index and an order page in headless
// Chromium (Debian's chromium, which test.sh installs), checks that a
// reader sees the authority and the targets, searches with the form, and
// saves a screenshot of each page.
func TestPagesInChromium(t *testing.T) {
	bctx := browsertest.New(t, 90*time.Second)
	ts := httptest.NewServer(New(Config{PublicURL: "https://writ.isp.example", Operator: "Example ISP", Logger: slog.New(slog.DiscardHandler)}, sample()))
	defer ts.Close()

	dir := browsertest.ScreenshotDir(t)
	visit := func(name, url string, want ...string) string {
		t.Helper()
		if err := chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("main"))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: a reader does not see %q; the page reads:\n%s", name, w, text)
			}
		}
		path := filepath.Join(dir, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of %s: %s", name, path)
		return text
	}

	visit("index", ts.URL+"/",
		"Blocking orders on record", "Tribunal judiciaire de Paris", "AGCOM", "motogpstream.me (and subdomains)", "203.0.113.0/24", "3 of 3 orders")
	visit("order", ts.URL+"/orders/20250328-0a1b2c3d",
		"Order 20250328-0a1b2c3d", "Tribunal judiciaire de Paris: court, jurisdiction FR", "Canal+ v. Cloudflare",
		"motogpstream.me (and subdomains)", "tarjetarojaenvivo.lat (and subdomains)", "203.0.113.0/24", "Enforced now, for users in FR only.")
	visit("order-contested", ts.URL+"/orders/20250330-22222222", "contest 1 upheld: order revoked", "judgment overturned on appeal")

	// The search form works without script: type, submit, read.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "calcio"),
		chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/"]:not(nav a)`)),
	); err != nil {
		t.Fatal(err)
	}
	location, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(location, "q=calcio") || !strings.Contains(text, "20250329-11111111") || strings.Contains(text, "20250328-0a1b2c3d") {
		t.Errorf("search for calcio at %s shows:\n%s", location, text)
	}
}
