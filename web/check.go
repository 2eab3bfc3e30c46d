package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

// decision is what writ does with a name or address for a client, and
// every order that blocks it anywhere: the answer of GET /v1/check, for
// people.
type decision struct {
	Name, Client, Scope, ScopeSource string
	Blocked                          bool
	Answer                           string
	PolicyVersion                    uint64
	Orders                           []decisionOrder
}

type decisionOrder struct {
	ID           string
	Authority    order.Authority
	LegalBasis   order.LegalBasis
	Jurisdiction string
	Target       string
	InScope      bool
}

type checkView struct {
	Name, Client, Scope string
	Error               string
	Decision            *decision
}

func (c *Console) checkPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := checkView{Name: strings.TrimSpace(q.Get("name")), Client: strings.TrimSpace(q.Get("client")), Scope: strings.TrimSpace(q.Get("scope"))}
	status := http.StatusOK
	if v.Name != "" || v.Client != "" || v.Scope != "" {
		d, err := c.decide(v.Name, v.Client, v.Scope)
		if err != nil {
			v.Error, status = err.Error(), http.StatusBadRequest
		}
		v.Decision = d
	}
	c.render(w, r, s, status, "check", "Check a name", v)
}

// decide answers for name (or an address) and a client address or a
// jurisdiction, from the published policy, as the DNS server would.
func (c *Console) decide(name, client, sc string) (*decision, error) {
	if name == "" {
		return nil, fmt.Errorf("give a domain name (www.example.com) or an address (203.0.113.7) to check")
	}
	d := &decision{Name: name, ScopeSource: scope.SourceNone.String()}
	var code jurisdiction.Code
	switch {
	case client != "" && sc != "":
		return nil, fmt.Errorf("give either a client address or a jurisdiction, not both")
	case client != "":
		a, err := netip.ParseAddr(client)
		if err != nil {
			return nil, fmt.Errorf("client address %q is not an IP address", client)
		}
		var src scope.Source
		code, src = c.src.Scoper.Lookup(a)
		d.Client, d.ScopeSource = a.String(), src.String()
	case sc != "":
		cc, err := jurisdiction.Parse(sc)
		if err != nil {
			return nil, fmt.Errorf("jurisdiction: %v", err)
		}
		code, d.ScopeSource = cc, "given"
	default:
		return nil, fmt.Errorf("give the client's address (192.0.2.1) or a jurisdiction (FR)")
	}
	d.Scope = code.String()
	if d.Scope == "" {
		d.Scope = "unknown"
	}
	snap := c.src.Policy.Load()
	d.PolicyVersion = snap.Version()
	var (
		ref     *policy.OrderRef
		matches []policy.Match
	)
	if a, err := netip.ParseAddr(name); err == nil {
		ref, matches = snap.MatchAddr(a, code), snap.ExplainAddr(a)
	} else {
		ref, matches = snap.MatchName(name, code), snap.ExplainName(name)
	}
	d.Blocked = ref != nil
	d.Answer = "forwarded to the upstream resolvers: not blocked for this client"
	if d.Blocked {
		d.Answer = c.cfg.BlockAnswer
	}
	for _, m := range matches {
		d.Orders = append(d.Orders, decisionOrder{ID: m.Order.ID, Authority: m.Order.Authority, LegalBasis: m.Order.LegalBasis,
			Jurisdiction: m.Order.Scope.String(), Target: m.Target, InScope: m.Order.Scope.Has(code)})
	}
	return d, nil
}
