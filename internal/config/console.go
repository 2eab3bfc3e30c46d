package config

import (
	"time"

	"github.com/writ-project/writ/web"
)

// Console configures the web console that `writ serve` mounts under
// /console/ on its HTTP server. See web/README.md.
type Console struct {
	// Enabled serves the console; off, nothing is served under /console/.
	Enabled bool `yaml:"enabled"`
	// IdleTimeout ends a console session after this long without a
	// request.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// ResolvedConsole is the console configuration `writ serve` applies.
type ResolvedConsole struct {
	// Enabled mounts the console under /console/.
	Enabled bool
	// IdleTimeout is web.Config.IdleTimeout.
	IdleTimeout time.Duration
}

func defaultConsole() Console {
	return Console{Enabled: true, IdleTimeout: Duration(web.DefaultIdleTimeout)}
}

// resolveConsole checks the console section.
func (c *Config) resolveConsole(bad func(key, format string, args ...any)) *ResolvedConsole {
	r := &ResolvedConsole{Enabled: c.Console.Enabled, IdleTimeout: time.Duration(c.Console.IdleTimeout)}
	// Under a minute nobody can review a target; beyond the session's
	// maximum age the setting would mean nothing.
	if r.IdleTimeout < time.Minute || r.IdleTimeout > web.MaxSessionAge {
		bad("console.idle_timeout", "%v: want from 1m to %v", r.IdleTimeout, web.MaxSessionAge)
	}
	return r
}
