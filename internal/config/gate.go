package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/writ-project/writ/httpgate"
	"github.com/writ-project/writ/internal/clientip"
)

// Gate configures the HTTP 451 gate: `writ gate` on its own host, or
// `writ serve` when one of its listen addresses is set. See
// httpgate/README.md.
type Gate struct {
	// Listen is the plain-HTTP reverse proxy's address; empty: none.
	Listen string `yaml:"listen"`
	// TLSListen is where TLS is terminated with Certificates; empty: none.
	TLSListen    string            `yaml:"tls_listen"`
	Certificates []GateCertificate `yaml:"certificates"`
	// TLSPassthrough receives, untouched, TLS connections for names no
	// certificate covers (host:port); empty: they are terminated with the
	// first certificate.
	TLSPassthrough string `yaml:"tls_passthrough"`
	// Origin receives allowed requests for hosts not in Routes.
	Origin string `yaml:"origin"`
	// Routes maps hosts to their own origins.
	Routes map[string]string `yaml:"routes"`
	// DecisionListen is the decision service's address (nginx
	// auth_request, Caddy forward_auth); empty: none.
	DecisionListen string `yaml:"decision_listen"`
	// TrustedProxies are the addresses or prefixes of the operator's
	// proxies whose client address header is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientIPHeader is the header those proxies set: X-Forwarded-For or
	// Forwarded.
	ClientIPHeader string `yaml:"client_ip_header"`
	// BlockedBy is the operator's URL in the blocked-by link. Empty: the
	// public record's URL.
	BlockedBy string `yaml:"blocked_by"`
	// MaxAge caps how long a client may keep a 451 page.
	MaxAge Duration `yaml:"max_age"`
	// Follow is the writ server whose orders `writ gate` enforces.
	Follow string `yaml:"follow"`
	// PollInterval is how often `writ gate` checks its policy version.
	PollInterval Duration `yaml:"poll_interval"`
}

// GateCertificate is a certificate chain and its key, PEM files.
type GateCertificate struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ResolvedGate is the gate configuration in httpgate's types.
type ResolvedGate struct {
	Gate   httpgate.Config
	Server httpgate.ServerConfig
	Follow httpgate.FollowerConfig
	// Enabled is true when a listen address is set.
	Enabled bool
}

// Resolve validates the gate section and converts it. publicURL is the
// public record's base URL: record links, and the default blocked-by
// link. Certificates are loaded only when the gate is enabled. Every
// problem is reported, naming its setting.
func (g Gate) Resolve(op Operator, publicURL string) (*ResolvedGate, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("gate."+key+": "+format, args...))
	}
	r := &ResolvedGate{Enabled: g.Listen != "" || g.TLSListen != "" || g.DecisionListen != ""}
	base := strings.TrimSuffix(publicURL, "/")
	r.Gate = httpgate.Config{
		BlockedBy:      g.BlockedBy,
		Operator:       op.Name,
		Contact:        op.Contact,
		ClientIPHeader: g.ClientIPHeader,
		MaxAge:         time.Duration(g.MaxAge),
	}
	if base != "" {
		r.Gate.RecordURL = func(id string) string { return base + "/orders/" + id }
		if r.Gate.BlockedBy == "" {
			r.Gate.BlockedBy = base + "/"
		}
	}
	r.Gate.TrustedProxies = parseNetworks("trusted_proxies", g.TrustedProxies, bad)
	if _, err := clientip.Header(g.ClientIPHeader); err != nil {
		bad("client_ip_header", "%v", err)
	}
	if g.BlockedBy != "" {
		if u, err := url.Parse(g.BlockedBy); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("blocked_by", "%q: want an http:// or https:// URL", g.BlockedBy)
		}
	}
	if g.MaxAge < 0 {
		bad("max_age", "negative")
	}

	s := httpgate.ServerConfig{
		Listen:         g.Listen,
		TLSListen:      g.TLSListen,
		TLSPassthrough: g.TLSPassthrough,
		DecisionListen: g.DecisionListen,
	}
	for key, addr := range map[string]string{"listen": g.Listen, "tls_listen": g.TLSListen, "decision_listen": g.DecisionListen, "tls_passthrough": g.TLSPassthrough} {
		if addr != "" && !validListen(addr) {
			bad(key, "%q: want host:port, such as 127.0.0.1:8443", addr)
		}
	}
	if g.Origin != "" {
		u, err := httpgate.ParseOrigin(g.Origin)
		if err != nil {
			bad("origin", "%v", err)
		}
		s.Origins.Default = u
	}
	for host, origin := range g.Routes {
		u, err := httpgate.ParseOrigin(origin)
		if err != nil {
			bad("routes."+host, "%v", err)
			continue
		}
		if s.Origins.ByHost == nil {
			s.Origins.ByHost = map[string]*url.URL{}
		}
		s.Origins.ByHost[host] = u
	}
	if r.Enabled {
		for i, c := range g.Certificates {
			pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
			if err != nil {
				bad(fmt.Sprintf("certificates[%d]", i), "%v", err)
				continue
			}
			s.Certificates = append(s.Certificates, pair)
		}
		if len(errs) == 0 {
			if err := s.Validate(); err != nil {
				errs = append(errs, err)
			}
			if err := r.Gate.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	r.Server = s

	r.Follow = httpgate.FollowerConfig{Server: g.Follow, PollInterval: time.Duration(g.PollInterval)}
	if g.Follow != "" {
		if _, err := httpgate.ParseOrigin(g.Follow); err != nil {
			bad("follow", "%q: want the writ server's URL, such as http://writ.isp.example:8080", g.Follow)
		}
	}
	if g.PollInterval < 0 {
		bad("poll_interval", "negative")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// parsePrefixOrAddr parses a prefix, or an address standing for itself.
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap() // ::ffff:192.0.2.1 is how an IPv4 client may appear
	return netip.PrefixFrom(a, a.BitLen()), nil
}
