package publicrecord

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSecurityHeadersOnEveryAnswer checks the headers on every route the
// record serves, on its errors, and on what its mux answers by itself.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	s := newServer(sample())
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{"GET", "/", http.StatusOK},
		{"GET", "/?q=motogp&status=active", http.StatusOK},
		{"GET", "/orders/20250328-0a1b2c3d", http.StatusOK},
		{"GET", "/orders/20990101-00000000", http.StatusNotFound},
		{"GET", "/v1/report", http.StatusOK},
		{"GET", "/v1/report?format=csv", http.StatusOK},
		{"GET", "/v1/report?from=yesterday", http.StatusBadRequest},
		{"GET", "/v1/orders/20250328-0a1b2c3d/lumen", http.StatusOK},
		{"GET", "/v1/orders/20250328-0a1b2c3d/dsa", http.StatusOK},
		{"GET", "/v1/orders/20990101-00000000/dsa", http.StatusNotFound},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"GET", "/nothing-here", http.StatusNotFound},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			h := w.Header()
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
				}
			}
			if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy %q lets scripts run", csp)
			}
			for name, want := range map[string]string{
				"X-Content-Type-Options":     "nosniff",
				"Referrer-Policy":            "no-referrer",
				"X-Frame-Options":            "DENY",
				"Cross-Origin-Opener-Policy": "same-origin",
				"Strict-Transport-Security":  "max-age=31536000",
			} {
				if got := h.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestNoHSTSOverPlainHTTP: a record served over plain HTTP cannot ask for
// HTTPS, which it may not have.
func TestNoHSTSOverPlainHTTP(t *testing.T) {
	s := New(Config{PublicURL: "http://127.0.0.1:8080", Logger: slog.New(slog.DiscardHandler)}, sample())
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Security-Policy") == "" {
		t.Fatalf("status %d, headers %v", w.Code, w.Header())
	}
	if got := w.Header().Get("Strict-Transport-Security"); got != "" {
		t.Errorf("Strict-Transport-Security %q over plain HTTP", got)
	}
}
