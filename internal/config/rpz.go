package config

import (
	"slices"
	"strings"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/rpz"
)

// RPZ configures the RPZ feed: the policy of each jurisdiction as a
// response policy zone that resolvers transfer. See rpz/README.md.
type RPZ struct {
	// Listen lists the feed's addresses (UDP and TCP); empty: no feed.
	Listen []string `yaml:"listen"`
	// Scopes lists the jurisdictions that get a zone; empty: those of
	// the client networks declared under scopes.
	Scopes []string `yaml:"scopes"`
	// Zone names each zone; {scope} is the lower-case country code.
	Zone string `yaml:"zone"`
	// Action is nxdomain, nodata or cname (to WalledGarden).
	Action       string   `yaml:"action"`
	WalledGarden string   `yaml:"walled_garden"`
	TTL          Duration `yaml:"ttl"`
	Refresh      Duration `yaml:"refresh"`
	Retry        Duration `yaml:"retry"`
	Expire       Duration `yaml:"expire"`
	// History is the number of changes kept per zone for IXFR.
	History int `yaml:"history"`
	// AllowTransfer lists the networks allowed to transfer; empty:
	// loopback only.
	AllowTransfer []string  `yaml:"allow_transfer"`
	TSIGKeys      []TSIGKey `yaml:"tsig_keys"`
	RequireTSIG   bool      `yaml:"require_tsig"`
	// Notify lists the secondaries told of every change (host:port).
	Notify []string `yaml:"notify"`
}

// TSIGKey is a zone transfer key, as BIND's tsig-keygen prints it.
type TSIGKey struct {
	Name      string `yaml:"name"`
	Algorithm string `yaml:"algorithm"`
	Secret    string `yaml:"secret"`
}

// resolveRPZ converts the rpz section; the feed is off (nil) when it
// has no listen address. The caller completes the result with what
// depends on the running server (logger, record URLs, state file).
func (c *Config) resolveRPZ(bad func(key, format string, args ...any)) *rpz.Config {
	in := c.RPZ
	if len(in.Listen) == 0 {
		return nil
	}
	out := &rpz.Config{
		Listen:       in.Listen,
		ZoneTemplate: in.Zone,
		WalledGarden: in.WalledGarden,
		TTL:          time.Duration(in.TTL),
		Refresh:      time.Duration(in.Refresh),
		Retry:        time.Duration(in.Retry),
		Expire:       time.Duration(in.Expire),
		History:      in.History,
		RequireTSIG:  in.RequireTSIG,
		Notify:       in.Notify,
	}
	for _, l := range in.Listen {
		if !validListen(l) {
			bad("rpz.listen", "%q: want host:port, such as 127.0.0.1:5354", l)
			return nil
		}
	}
	if in.Action != "" {
		a, err := rpz.ParseAction(in.Action)
		if err != nil {
			bad("rpz.action", "%v", err)
			return nil
		}
		out.Action = a
	}
	scopes := in.Scopes
	if len(scopes) == 0 {
		for code := range c.Scopes {
			scopes = append(scopes, strings.ToUpper(code))
		}
		slices.Sort(scopes)
		scopes = slices.Compact(scopes)
	}
	if len(scopes) == 0 {
		bad("rpz.scopes", "no jurisdiction gets a zone: list them here, or declare client networks under scopes")
		return nil
	}
	for _, s := range scopes {
		code, err := jurisdiction.Parse(strings.TrimSpace(s))
		if err != nil {
			bad("rpz.scopes", "%v", err)
			return nil
		}
		out.Scopes = append(out.Scopes, code)
	}
	out.AllowTransfer = parseNetworks("rpz.allow_transfer", in.AllowTransfer, bad)
	for _, k := range in.TSIGKeys {
		out.TSIGKeys = append(out.TSIGKeys, rpz.TSIGKey{Name: k.Name, Algorithm: k.Algorithm, Secret: k.Secret})
	}
	if err := out.Validate(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			key, msg, _ := strings.Cut(e, ": ")
			bad(key, "%s", msg)
		}
		return nil
	}
	return out
}
