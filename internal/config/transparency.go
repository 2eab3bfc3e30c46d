package config

import (
	"net/url"
	"os"
	"strings"
	"unicode"
)

// Ledger configures the transparency ledger of every order event. See
// ledger/README.md.
type Ledger struct {
	// Origin names the log in its signed checkpoints and its key. Empty:
	// the name of the key in the data directory, or, at first start,
	// "<host of http.public_url>/ledger".
	Origin string `yaml:"origin"`
}

// Lumen configures pushing every order, as a notice, to a Lumen
// database. See publicrecord/README.md.
type Lumen struct {
	// URL is the Lumen instance, such as https://lumendatabase.org. Empty:
	// no push.
	URL string `yaml:"url"`
	// TokenFile holds the Lumen submitter token; required with URL.
	TokenFile string `yaml:"token_file"`
}

// Transparency is the resolved ledger and Lumen configuration.
type Transparency struct {
	// LedgerOrigin is the configured origin, empty for the default.
	LedgerOrigin string
	// LumenURL is empty when nothing is pushed; LumenToken is then empty.
	LumenURL   string
	LumenToken string
}

// resolveTransparency checks the ledger and lumen sections.
func (c *Config) resolveTransparency(bad func(key, format string, args ...any)) *Transparency {
	t := &Transparency{LedgerOrigin: c.Ledger.Origin}
	if o := c.Ledger.Origin; o != "" && strings.ContainsFunc(o, func(r rune) bool { return unicode.IsSpace(r) || r == '+' }) {
		bad("ledger.origin", "%q: want a name without spaces or '+', such as writ.isp.example/ledger", o)
	}
	if c.Lumen.URL == "" {
		if c.Lumen.TokenFile != "" {
			bad("lumen.token_file", "is set but lumen.url is empty: set the Lumen instance to push to")
		}
		return t
	}
	u, err := url.Parse(c.Lumen.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("lumen.url", "%q: want an http:// or https:// URL, such as https://lumendatabase.org", c.Lumen.URL)
	}
	t.LumenURL = c.Lumen.URL
	if c.Lumen.TokenFile == "" {
		bad("lumen.token_file", "is required with lumen.url: a file holding the Lumen submitter token")
		return t
	}
	b, err := os.ReadFile(c.Lumen.TokenFile)
	if err != nil {
		bad("lumen.token_file", "%v", err)
		return t
	}
	if t.LumenToken = strings.TrimSpace(string(b)); t.LumenToken == "" {
		bad("lumen.token_file", "%s is empty", c.Lumen.TokenFile)
	}
	return t
}
