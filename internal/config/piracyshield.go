package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/writ-project/writ/piracyshield"
)

// PiracyShield configures the connector to Italy's Piracy Shield
// platform: `writ serve` runs it when url is set, and `writ connect
// piracyshield` runs it on its own. See piracyshield/README.md.
type PiracyShield struct {
	// URL is the platform's API base, https://<host>/api/v1; empty: no
	// connector.
	URL string `yaml:"url"`
	// Email is the provider account's login.
	Email string `yaml:"email"`
	// PasswordFile holds the provider account's password.
	PasswordFile string `yaml:"password_file"`
	// CAFile is a PEM file of the certificate authorities that sign the
	// platform's certificate; empty: the system's.
	CAFile string `yaml:"ca_file"`
	// PollInterval is how often the lists are checked; MaxBackoff the
	// longest wait after errors.
	PollInterval Duration `yaml:"poll_interval"`
	MaxBackoff   Duration `yaml:"max_backoff"`
	// Authority is the writ authority the orders are recorded under.
	Authority string `yaml:"authority"`
	// Review is safeguards or all.
	Review string `yaml:"review"`
	// Points are the enforcement points whose receipts an item needs
	// before it is reported processed; empty: all that enforce Italy.
	Points []string `yaml:"points"`
	// OrderExpiry is each order's lifetime; orders are renewed while the
	// platform lists their items.
	OrderExpiry Duration `yaml:"order_expiry"`
	// AlertAfter raises the deadline alert for an item unreported this
	// long after its notification.
	AlertAfter Duration `yaml:"alert_after"`
	// LegalReference is the statute the orders cite.
	LegalReference string `yaml:"legal_reference"`
}

// StateFileName is the connector's state file in the data directory.
const StateFileName = "piracyshield-state.json"

// resolvePiracyShield converts the piracyshield section; the connector
// is off (nil) when it has no URL. The caller adds the logger.
func (c *Config) resolvePiracyShield(bad func(key, format string, args ...any)) *piracyshield.Config {
	in := c.PiracyShield
	if in.URL == "" {
		return nil
	}
	out, err := in.Resolve(c.DataDir)
	if err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			key, msg, _ := strings.Cut(e, ": ")
			bad(key, "%s", msg)
		}
		return nil
	}
	return out
}

// Resolve checks the section and converts it, with the state file in
// dataDir. Every problem is reported, one a line, naming its setting.
func (p PiracyShield) Resolve(dataDir string) (*piracyshield.Config, error) {
	out := &piracyshield.Config{
		URL:            p.URL,
		Email:          p.Email,
		PollInterval:   time.Duration(p.PollInterval),
		MaxBackoff:     time.Duration(p.MaxBackoff),
		Authority:      p.Authority,
		Review:         piracyshield.Review(p.Review),
		Points:         p.Points,
		OrderExpiry:    time.Duration(p.OrderExpiry),
		AlertAfter:     time.Duration(p.AlertAfter),
		LegalReference: p.LegalReference,
		StateFile:      filepath.Join(dataDir, StateFileName),
	}
	var extra []string
	if p.PasswordFile == "" {
		extra = append(extra, "piracyshield.password_file: is empty: give the file holding the provider account's password")
	} else if b, err := os.ReadFile(p.PasswordFile); err != nil {
		extra = append(extra, fmt.Sprintf("piracyshield.password_file: %v", err))
	} else if out.Password = strings.TrimRight(string(b), "\r\n"); out.Password == "" {
		extra = append(extra, fmt.Sprintf("piracyshield.password_file: %s is empty", p.PasswordFile))
	}
	if p.CAFile != "" {
		pem, err := os.ReadFile(p.CAFile)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			extra = append(extra, fmt.Sprintf("piracyshield.ca_file: %v", err))
		case !pool.AppendCertsFromPEM(pem):
			extra = append(extra, fmt.Sprintf("piracyshield.ca_file: %s holds no PEM certificate", p.CAFile))
		default:
			out.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
				Proxy:           http.ProxyFromEnvironment,
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			}}
		}
	}
	if p.URL != "" && !strings.HasPrefix(p.URL, "https://") && !strings.HasPrefix(p.URL, "http://") {
		extra = append(extra, fmt.Sprintf("piracyshield.url: %q: want the API base, such as https://platform.example/api/v1", p.URL))
	}
	var lines []string
	if err := out.Validate(); err != nil {
		for _, l := range strings.Split(err.Error(), "\n") {
			if strings.HasPrefix(l, "piracyshield.password_file") {
				continue // said better above, with the file
			}
			lines = append(lines, l)
		}
	}
	lines = append(lines, extra...)
	if len(lines) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(lines, "\n"))
	}
	return out, nil
}
