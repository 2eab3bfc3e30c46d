package config

import (
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/web"
)

func TestResolveConsole(t *testing.T) {
	c := valid()
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if *r.Console != (ResolvedConsole{Enabled: true, IdleTimeout: web.DefaultIdleTimeout}) {
		t.Errorf("default console %+v", *r.Console)
	}

	c.Console = Console{Enabled: false, IdleTimeout: Duration(2 * time.Hour)}
	if r, err = c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if *r.Console != (ResolvedConsole{Enabled: false, IdleTimeout: 2 * time.Hour}) {
		t.Errorf("console %+v", *r.Console)
	}

	for _, d := range []time.Duration{0, 30 * time.Second, web.MaxSessionAge + time.Minute} {
		c.Console.IdleTimeout = Duration(d)
		_, err := c.Resolve()
		if err == nil || !strings.Contains(err.Error(), "console.idle_timeout") {
			t.Errorf("idle timeout %v: %v, want an error naming console.idle_timeout", d, err)
		}
	}
}

func TestLoadConsole(t *testing.T) {
	c, err := Load(writeFile(t, "writ.yaml", "console:\n  enabled: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A section given in part keeps the defaults of the rest.
	if c.Console != (Console{Enabled: false, IdleTimeout: Duration(web.DefaultIdleTimeout)}) {
		t.Errorf("console %+v", c.Console)
	}
}
