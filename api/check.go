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
	d, err := Decide(s.reg.Policy().Load(), s.sc, Question{Name: q.Get("name"), Client: q.Get("client"), Scope: q.Get("scope")}, s.cfg.BlockAnswer, s.recordURL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// Question is what GET /v1/check asks: a name or address, and either the
// client's address or a jurisdiction.
type Question struct {
	Name, Client, Scope string
}

// Decide answers q from snap as the DNS server would: whether the name is
// blocked for the client (whose jurisdiction sc gives) or for clients in
// the jurisdiction, with the answer they get (blockAnswer when blocked)
// and every order that blocks the name anywhere, each with the URL of its
// public record (recordURL, which may be nil). A question that cannot be
// answered is an error saying what to ask instead.
func Decide(snap *policy.Snapshot, sc Scoper, q Question, blockAnswer string, recordURL func(id string) string) (*Decision, error) {
	name := strings.TrimSpace(q.Name)
	if name == "" {
		return nil, fmt.Errorf("name: missing; ask about a domain name (www.example.com) or an address (203.0.113.7)")
	}
	d := &Decision{Name: name, ScopeSource: scope.SourceNone.String()}
	var code jurisdiction.Code
	switch client, jur := strings.TrimSpace(q.Client), strings.TrimSpace(q.Scope); {
	case client != "" && jur != "":
		return nil, fmt.Errorf("give either the client's address or a jurisdiction, not both")
	case client != "":
		a, err := netip.ParseAddr(client)
		if err != nil {
			return nil, fmt.Errorf("client: %q is not an IP address", client)
		}
		var src scope.Source
		code, src = sc.Lookup(a)
		d.Client, d.ScopeSource = a.String(), src.String()
	case jur != "":
		c, err := jurisdiction.Parse(jur)
		if err != nil {
			return nil, fmt.Errorf("scope: %v", err)
		}
		code, d.ScopeSource = c, "given"
	default:
		return nil, fmt.Errorf("give the client's address (client=192.0.2.1) or a jurisdiction (scope=FR)")
	}
	d.Scope = code.String()
	if d.Scope == "" {
		d.Scope = "unknown"
	}
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
		d.Answer = blockAnswer
	}
	d.Orders = []DecisionOrder{}
	for _, m := range matches {
		o := DecisionOrder{
			ID:           m.Order.ID,
			Authority:    m.Order.Authority,
			LegalBasis:   m.Order.LegalBasis,
			Jurisdiction: m.Order.Scope.String(),
			Target:       m.Target,
			InScope:      m.Order.Scope.Has(code),
		}
		if recordURL != nil {
			o.RecordURL = recordURL(m.Order.ID)
		}
		d.Orders = append(d.Orders, o)
	}
	return d, nil
}
