package api

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

// Decision is the answer of GET /v1/check: what writ does with a name (or
// address) for a client, and every order that blocks it anywhere.
type Decision struct {
	Name          string          `json:"name"`
	Client        string          `json:"client,omitempty"`
	Scope         string          `json:"scope"`
	ScopeSource   string          `json:"scope_source"`
	Blocked       bool            `json:"blocked"`
	Answer        string          `json:"answer"`
	PolicyVersion uint64          `json:"policy_version"`
	Orders        []DecisionOrder `json:"orders"`
}

// DecisionOrder is one order behind a decision.
type DecisionOrder struct {
	ID           string           `json:"id"`
	Authority    order.Authority  `json:"authority"`
	LegalBasis   order.LegalBasis `json:"legal_basis"`
	Jurisdiction string           `json:"jurisdiction"`
	Target       string           `json:"target"`
	InScope      bool             `json:"in_scope"`
	RecordURL    string           `json:"record_url"`
}

func (s *server) check(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := strings.TrimSpace(q.Get("name"))
	if name == "" {
		writeError(w, http.StatusBadRequest, "name: missing; ask about a domain name (?name=www.example.com) or an address (?name=203.0.113.7)", nil)
		return
	}
	d := Decision{Name: name, Scope: "", ScopeSource: scope.SourceNone.String()}
	var code jurisdiction.Code
	switch client, sc := q.Get("client"), q.Get("scope"); {
	case client != "" && sc != "":
		writeError(w, http.StatusBadRequest, "give either client or scope, not both", nil)
		return
	case client != "":
		a, err := netip.ParseAddr(client)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client: %q is not an IP address", client), nil)
			return
		}
		var src scope.Source
		code, src = s.sc.Lookup(a)
		d.Client, d.ScopeSource = a.String(), src.String()
	case sc != "":
		c, err := jurisdiction.Parse(sc)
		if err != nil {
			writeError(w, http.StatusBadRequest, "scope: "+err.Error(), nil)
			return
		}
		code, d.ScopeSource = c, "given"
	default:
		writeError(w, http.StatusBadRequest, "give the client's address (?client=192.0.2.1) or a jurisdiction (?scope=FR)", nil)
		return
	}
	d.Scope = code.String()
	if d.Scope == "" {
		d.Scope = "unknown"
	}

	snap := s.reg.Policy().Load()
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
	d.Answer = "forwarded to the upstream resolvers (not blocked for this client)"
	if d.Blocked {
		d.Answer = s.cfg.BlockAnswer
	}
	d.Orders = []DecisionOrder{}
	for _, m := range matches {
		d.Orders = append(d.Orders, DecisionOrder{
			ID:           m.Order.ID,
			Authority:    m.Order.Authority,
			LegalBasis:   m.Order.LegalBasis,
			Jurisdiction: m.Order.Scope.String(),
			Target:       m.Target,
			InScope:      m.Order.Scope.Has(code),
			RecordURL:    s.recordURL(m.Order.ID),
		})
	}
	writeJSON(w, http.StatusOK, d)
}
