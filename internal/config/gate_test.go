package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// writeKeyPair writes a self-signed certificate for name and its key.
func writeKeyPair(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

func TestGateResolve(t *testing.T) {
	cert, key := writeKeyPair(t, "motogpstream.me")
	g := Gate{
		TLSListen:      "127.0.0.1:8443",
		Certificates:   []GateCertificate{{Cert: cert, Key: key}},
		TLSPassthrough: "10.0.0.9:443",
		Origin:         "http://10.0.0.8:8080",
		Routes:         map[string]string{"shop.example": "https://10.0.0.7"},
		TrustedProxies: []string{"10.0.0.1", "2001:db8::/32"},
	}
	r, err := g.Resolve(Operator{Name: "Example ISP", Contact: []string{"mailto:legal@isp.example"}}, "https://writ.isp.example/")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Enabled || len(r.Server.Certificates) != 1 || r.Server.TLSPassthrough != "10.0.0.9:443" ||
		r.Server.Origins.Default.String() != "http://10.0.0.8:8080" || r.Server.Origins.ByHost["shop.example"].String() != "https://10.0.0.7" {
		t.Errorf("server config %+v", r.Server)
	}
	// Without blocked_by, the blocked-by link is the public record.
	if r.Gate.BlockedBy != "https://writ.isp.example/" || r.Gate.RecordURL("x1") != "https://writ.isp.example/orders/x1" || r.Gate.Operator != "Example ISP" {
		t.Errorf("gate config %+v", r.Gate)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("2001:db8::/32")}
	if len(r.Gate.TrustedProxies) != 2 || r.Gate.TrustedProxies[0] != want[0] || r.Gate.TrustedProxies[1] != want[1] {
		t.Errorf("trusted proxies %v", r.Gate.TrustedProxies)
	}

	// Off unless a listen address is set; certificates are not read then.
	off, err := Gate{Certificates: []GateCertificate{{Cert: "/nonexistent", Key: "/nonexistent"}}}.Resolve(Operator{}, "")
	if err != nil || off.Enabled {
		t.Errorf("gate without listeners: %+v, %v", off, err)
	}
}

func TestGateResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		g       Gate
		mention []string
	}{
		{"listen", Gate{Listen: "8080", Origin: "http://o"}, []string{"gate.listen", `"8080"`}},
		{"origin", Gate{Listen: ":8080", Origin: "o.example"}, []string{"gate.origin", "o.example"}},
		{"route", Gate{Listen: ":8080", Routes: map[string]string{"a.example": "ftp://x"}}, []string{"gate.routes.a.example", "ftp://x"}},
		{"no origin", Gate{Listen: ":8080"}, []string{"origin"}},
		{"trusted", Gate{DecisionListen: ":8451", TrustedProxies: []string{"10.0.0.0/33"}}, []string{"gate.trusted_proxies[0]", "10.0.0.0/33"}},
		{"header", Gate{DecisionListen: ":8451", ClientIPHeader: "X-Real-IP"}, []string{"gate.client_ip_header", "X-Real-IP"}},
		{"blocked by", Gate{DecisionListen: ":8451", BlockedBy: "isp.example"}, []string{"gate.blocked_by", "isp.example"}},
		{"certificate", Gate{TLSListen: ":8443", Origin: "http://o", Certificates: []GateCertificate{{Cert: "/nonexistent.pem", Key: "/nonexistent.key"}}}, []string{"gate.certificates[0]", "/nonexistent.pem"}},
		{"tls without certificate", Gate{TLSListen: ":8443", Origin: "http://o"}, []string{"tls_listen", "certificate"}},
		{"passthrough without tls", Gate{Listen: ":8080", Origin: "http://o", TLSPassthrough: "10.0.0.9:443"}, []string{"tls_listen"}},
		{"follow", Gate{Follow: "writ:8080"}, []string{"gate.follow", "writ:8080"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.g.Resolve(Operator{}, "https://writ.isp.example")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	// Through Config.Resolve, a bad gate section fails the whole file.
	c := valid()
	c.Gate.DecisionListen = "nowhere"
	if _, err := c.Resolve(); err == nil || !strings.Contains(err.Error(), "gate.decision_listen") {
		t.Errorf("Config.Resolve with a bad gate: %v", err)
	}
}
