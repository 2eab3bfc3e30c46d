package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/rpz"
)

func TestResolveRPZ(t *testing.T) {
	c := valid()
	if r, err := c.Resolve(); err != nil || r.RPZ != nil {
		t.Fatalf("without rpz.listen the feed is off: %+v, %v", r, err)
	}
	c.RPZ.Listen = []string{"127.0.0.1:5354"}
	c.Scopes = map[string][]string{"it": {"198.51.100.0/24"}, "FR": {"192.0.2.0/24"}}
	c.RPZ.AllowTransfer = []string{"192.0.2.53", "10.53.0.0/24"}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	// The jurisdictions of scopes, sorted, and the defaults filled in.
	if want := []jurisdiction.Code{jurisdiction.MustParse("FR"), jurisdiction.MustParse("IT")}; !slices.Equal(r.RPZ.Scopes, want) {
		t.Errorf("scopes %v, want %v", r.RPZ.Scopes, want)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("10.53.0.0/24")}; !slices.Equal(r.RPZ.AllowTransfer, want) {
		t.Errorf("allow_transfer %v", r.RPZ.AllowTransfer)
	}
	if r.RPZ.Action != rpz.NXDomain || r.RPZ.TTL != rpz.DefaultTTL || r.RPZ.History != rpz.DefaultHistory || r.RPZ.ZoneTemplate != rpz.DefaultZoneTemplate {
		t.Errorf("defaults: %+v", r.RPZ)
	}

	// The example file states the defaults.
	ex, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	e := ex.RPZ
	if e.Zone != rpz.DefaultZoneTemplate || e.Action != string(rpz.NXDomain) || time.Duration(e.TTL) != rpz.DefaultTTL ||
		time.Duration(e.Refresh) != rpz.DefaultRefresh || time.Duration(e.Retry) != rpz.DefaultRetry ||
		time.Duration(e.Expire) != rpz.DefaultExpire || e.History != rpz.DefaultHistory || len(e.Listen) != 0 {
		t.Errorf("writ.example.yaml rpz section differs from the defaults: %+v", e)
	}

	for _, tc := range []struct {
		edit    func(c *RPZ)
		mention []string
	}{
		{func(c *RPZ) { c.Listen = []string{"5354"} }, []string{"rpz.listen", `"5354"`}},
		{func(c *RPZ) { c.Action = "refused" }, []string{"rpz.action", `"refused"`}},
		{func(c *RPZ) { c.Action = "cname" }, []string{"rpz.walled_garden"}},
		{func(c *RPZ) { c.Scopes = []string{"XX"} }, []string{"rpz.scopes", `"XX"`}},
		{func(c *RPZ) { c.AllowTransfer = []string{"10.0.0.0/33"} }, []string{"rpz.allow_transfer[0]", "10.0.0.0/33"}},
		{func(c *RPZ) { c.TSIGKeys = []TSIGKey{{Name: "k", Secret: "!"}} }, []string{"rpz.tsig_keys[0].secret"}},
		{func(c *RPZ) { c.RequireTSIG = true }, []string{"rpz.require_tsig"}},
		{func(c *RPZ) { c.Zone = "rpz.isp.example." }, []string{"rpz.zone", "{scope}"}},
		{func(c *RPZ) { c.Notify = []string{"192.0.2.53"} }, []string{"rpz.notify", `"192.0.2.53"`}},
	} {
		c := valid()
		c.Scopes = map[string][]string{"FR": {"192.0.2.0/24"}}
		c.RPZ.Listen = []string{"127.0.0.1:5354"}
		tc.edit(&c.RPZ)
		_, err := c.Resolve()
		for _, m := range tc.mention {
			if err == nil || !strings.Contains(err.Error(), m) {
				t.Errorf("want an error mentioning %s, got %v", m, err)
			}
		}
	}
	c = valid()
	c.RPZ.Listen = []string{"127.0.0.1:5354"}
	if _, err := c.Resolve(); err == nil || !strings.Contains(err.Error(), "rpz.scopes") {
		t.Errorf("a feed without jurisdictions: %v", err)
	}
}
