package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/piracyshield"
)

func TestResolvePiracyShield(t *testing.T) {
	c := valid()
	if r, err := c.Resolve(); err != nil || r.PiracyShield != nil {
		t.Fatalf("without piracyshield.url the connector is off: %+v, %v", r.PiracyShield, err)
	}
	c.DataDir = t.TempDir()
	c.PiracyShield = PiracyShield{URL: "https://platform.example/api/v1", Email: "noc@isp.example.it",
		PasswordFile: writeFile(t, "pw", "s3cret\n"), Points: []string{"dns"}}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	ps := r.PiracyShield
	if ps == nil || ps.Password != "s3cret" || ps.Email != "noc@isp.example.it" || !slices.Equal(ps.Points, []string{"dns"}) ||
		ps.StateFile != filepath.Join(c.DataDir, StateFileName) || ps.HTTPClient != nil {
		t.Fatalf("resolved %+v", ps)
	}
	// The defaults are filled in once, by the connector's configuration.
	if ps.PollInterval != piracyshield.DefaultPollInterval || ps.Authority != piracyshield.DefaultAuthority || ps.Review != piracyshield.ReviewSafeguards ||
		ps.OrderExpiry != piracyshield.DefaultOrderExpiry || ps.AlertAfter != piracyshield.DefaultAlertAfter || ps.MaxBackoff != piracyshield.DefaultMaxBackoff ||
		ps.LegalReference != piracyshield.DefaultLegalReference {
		t.Errorf("defaults %+v", ps)
	}

	// With review: safeguards, the platform's notices skip the review of
	// delegated reporters, not the safeguards; with review: all, not.
	if !slices.Contains(r.Intake.ReviewExempt, piracyshield.DefaultAuthority) || !r.Intake.ReviewDelegated {
		t.Errorf("review safeguards: intake exempts %v", r.Intake.ReviewExempt)
	}
	c.PiracyShield.Review = string(piracyshield.ReviewAll)
	if r, err := c.Resolve(); err != nil || slices.Contains(r.Intake.ReviewExempt, piracyshield.DefaultAuthority) {
		t.Errorf("review all: intake exempts %v (%v)", r.Intake.ReviewExempt, err)
	}

	// The example file states the defaults.
	ex, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	e := ex.PiracyShield
	if e.URL != "" || e.Email != "" || e.PasswordFile != "" || e.CAFile != "" || len(e.Points) != 0 ||
		time.Duration(e.PollInterval) != piracyshield.DefaultPollInterval || time.Duration(e.MaxBackoff) != piracyshield.DefaultMaxBackoff ||
		e.Authority != piracyshield.DefaultAuthority || piracyshield.Review(e.Review) != piracyshield.ReviewSafeguards ||
		time.Duration(e.OrderExpiry) != piracyshield.DefaultOrderExpiry || time.Duration(e.AlertAfter) != piracyshield.DefaultAlertAfter ||
		e.LegalReference != piracyshield.DefaultLegalReference {
		t.Errorf("writ.example.yaml's piracyshield section is not the defaults: %+v", e)
	}
}

func TestResolvePiracyShieldCA(t *testing.T) {
	// A self-signed certificate, as a platform's private CA would be.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "platform CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	p := PiracyShield{URL: "https://platform.example/api/v1", Email: "noc@isp.example.it", PasswordFile: writeFile(t, "pw", "s3cret"), CAFile: ca}
	r, err := p.Resolve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := r.HTTPClient.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil {
		t.Fatalf("the CA file is not used: %+v", r.HTTPClient)
	}
	p.CAFile = writeFile(t, "bad.pem", "not a certificate")
	if _, err := p.Resolve(t.TempDir()); err == nil || !strings.Contains(err.Error(), "piracyshield.ca_file") || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a file without certificates: %v", err)
	}
}

func TestResolvePiracyShieldErrors(t *testing.T) {
	pw := writeFile(t, "pw", "s3cret")
	empty := writeFile(t, "empty", "\n")
	for _, tc := range []struct {
		name    string
		edit    func(p *PiracyShield)
		mention []string
	}{
		{"url", func(p *PiracyShield) { p.URL = "platform.example" }, []string{"piracyshield.url", `"platform.example"`}},
		{"email", func(p *PiracyShield) { p.Email = "" }, []string{"piracyshield.email"}},
		{"no password file", func(p *PiracyShield) { p.PasswordFile = "" }, []string{"piracyshield.password_file", "is empty"}},
		{"missing password file", func(p *PiracyShield) { p.PasswordFile = "/nonexistent/pw" }, []string{"piracyshield.password_file", "/nonexistent/pw"}},
		{"empty password file", func(p *PiracyShield) { p.PasswordFile = empty }, []string{"piracyshield.password_file", empty, "is empty"}},
		{"missing ca file", func(p *PiracyShield) { p.CAFile = "/nonexistent/ca.pem" }, []string{"piracyshield.ca_file", "/nonexistent/ca.pem"}},
		{"review", func(p *PiracyShield) { p.Review = "none" }, []string{"piracyshield.review", `"none"`}},
		{"alert after the deadline", func(p *PiracyShield) { p.AlertAfter = Duration(45 * time.Minute) }, []string{"piracyshield.alert_after"}},
		{"negative interval", func(p *PiracyShield) { p.PollInterval = Duration(-time.Second) }, []string{"piracyshield.poll_interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			c.PiracyShield = PiracyShield{URL: "https://platform.example/api/v1", Email: "noc@isp.example.it", PasswordFile: pw}
			tc.edit(&c.PiracyShield)
			_, err := c.Resolve()
			if err == nil {
				t.Fatal("Resolve accepted it")
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			// One line a problem.
			if n := strings.Count(err.Error(), "piracyshield.password_file"); n > 1 {
				t.Errorf("the password file is reported %d times:\n%v", n, err)
			}
		})
	}
}
