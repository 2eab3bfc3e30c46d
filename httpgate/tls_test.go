package httpgate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for the test's TLS servers.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "writ test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for names, signed by the CA.
func (ca *testCA) issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// startPassthroughOrigin runs a TLS server with its own certificate, for
// the names the gate does not front.
func startPassthroughOrigin(t testing.TB, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "passthrough origin for "+r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// tlsClient connects from src to the gate's TLS address with server
// name sni, trusting the test CA.
func tlsClient(src, addr, sni string, pool *x509.CertPool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: sni},
			ForceAttemptHTTP2: true,
		},
	}
}

func TestTLSTerminationAndPassthrough(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	ca := newTestCA(t)
	gateCert := ca.issue(t, "motogpstream.me", "*.motogpstream.me", "shop.example", "news.example")
	otherCert := ca.issue(t, "other.example", "tarjetarojaenvivo.lat")
	passAddr := startPassthroughOrigin(t, otherCert)

	u, _ := url.Parse("http://" + o.addr)
	s, err := NewServer(g, ServerConfig{
		TLSListen:      "127.0.0.1:0",
		Certificates:   []tls.Certificate{gateCert},
		TLSPassthrough: passAddr,
		Origins:        Origins{Default: u},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	addr := s.TLSAddr().String()

	// Terminated with the operator's certificate: in France 451, over
	// HTTP/2; outside, the origin's page.
	r := get(t, tlsClient(frClient, addr, "www.motogpstream.me", ca.pool), "https://www.motogpstream.me/")
	checkBlocked(t, r, "20250328-paris", "en")
	resp, err := tlsClient(outClient, addr, "www.motogpstream.me", ca.pool).Get("https://www.motogpstream.me/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "origin page for GET www.motogpstream.me /x\n" || resp.ProtoMajor != 2 {
		t.Errorf("outside France over TLS: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if resp.TLS.PeerCertificates[0].Subject.CommonName != "motogpstream.me" {
		t.Errorf("served certificate %q", resp.TLS.PeerCertificates[0].Subject.CommonName)
	}
	// The server name counts as much as the Host: fronting either way
	// is blocked.
	fronted := get(t, tlsClient(frClient, addr, "shop.example", ca.pool), "https://www.motogpstream.me/")
	checkBlocked(t, fronted, "20250328-paris", "en")
	c := tlsClient(frClient, addr, "www.motogpstream.me", ca.pool)
	req, _ := http.NewRequest(http.MethodGet, "https://www.motogpstream.me/", nil)
	req.Host = "shop.example"
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 451 {
		t.Errorf("blocked server name with an allowed Host: %d", resp.StatusCode)
	}
	// URL targets apply over TLS as over plain HTTP.
	checkBlocked(t, get(t, tlsClient(frClient, addr, "news.example", ca.pool), "https://news.example/live/1"), "20250328-paris", "en")
	if r := get(t, tlsClient(frClient, addr, "news.example", ca.pool), "https://news.example/other"); r.status != 200 {
		t.Errorf("news.example/other over TLS: %d", r.status)
	}

	// Names the gate holds no certificate for pass through untouched:
	// the client sees the passthrough origin's own certificate.
	resp, err = tlsClient(frClient, addr, "other.example", ca.pool).Get("https://other.example/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "passthrough origin for other.example" || resp.TLS.PeerCertificates[0].Subject.CommonName != "other.example" {
		t.Errorf("passthrough: %q, certificate %q", body, resp.TLS.PeerCertificates[0].Subject.CommonName)
	}
	// A blocked name the gate cannot terminate is refused in France with
	// a TLS alert, and passed through elsewhere.
	_, err = tlsClient(frClient, addr, "tarjetarojaenvivo.lat", ca.pool).Get("https://tarjetarojaenvivo.lat/")
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("blocked passthrough name in France: %v, want a TLS access denied alert", err)
	}
	if r := get(t, tlsClient(outClient, addr, "tarjetarojaenvivo.lat", ca.pool), "https://tarjetarojaenvivo.lat/"); r.status != 200 {
		t.Errorf("blocked passthrough name outside France: %d", r.status)
	}
	if o.sawHost("tarjetarojaenvivo.lat") {
		t.Error("a passthrough connection reached the HTTP origin")
	}
	if g.Metrics.requests[endpointTLS].Load() != 3 {
		t.Errorf("passthrough connections counted: %d, want 3", g.Metrics.requests[endpointTLS].Load())
	}
}

func TestPeekServerNameRejectsNonTLS(t *testing.T) {
	if _, err := peekServerName(strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err == nil {
		t.Error("plain HTTP taken for a ClientHello")
	}
}
