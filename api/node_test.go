package api

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/publicrecord"
	"github.com/writ-project/writ/registry"
)

// node is a stack served as `writ serve` serves it: the ledger and the
// public record mounted in front of the API (cmd/writ/ledger.go,
// publicRecordHandler) and a Guard in front of everything.
type node struct {
	*stack
	led   *ledger.Ledger
	guard *Guard
	auth  *countingAuth
	spec  *specChecker
}

// countingAuth counts the credentials looked up.
type countingAuth struct {
	reg     *registry.Registry
	lookups atomic.Int64
}

func (a *countingAuth) Authenticate(ctx context.Context, token string) (access.Principal, error) {
	a.lookups.Add(1)
	return a.reg.Authenticate(ctx, token)
}

func newNode(t *testing.T, rl RateLimit) *node {
	t.Helper()
	n := &node{}
	in := order.Intake{ReviewDelegated: true, Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}
	n.stack = buildStack(t, in, nil, func(s *stack, api http.Handler) http.Handler {
		led, err := ledger.Open(t.Context(), t.TempDir(), ledger.Options{DefaultOrigin: "writ.example/ledger", Logger: s.log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { led.Close() })
		n.led = led
		record := publicrecord.New(publicrecord.Config{PublicURL: testPublicURL, Logger: s.log}, s.reg)
		mux := http.NewServeMux()
		mux.Handle("/v1/ledger/", led.Handler(s.st))
		for _, route := range publicrecord.Routes() {
			mux.Handle(route, record)
		}
		mux.Handle("/", api)
		n.auth = &countingAuth{reg: s.reg}
		n.guard = NewGuard(rl, n.auth, s.log)
		s.prom.MustRegister(n.guard)
		return n.guard.Wrap(mux)
	})
	for _, a := range []order.RegisteredAuthority{
		{Authority: order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"}, DeadlineSeconds: 1800},
		{Authority: order.Authority{ID: "arcom", Name: "ARCOM", Kind: order.Regulator, Jurisdiction: "FR"}},
		{Authority: order.Authority{ID: "tj-lyon", Name: "Tribunal judiciaire de Lyon", Kind: order.Court, Jurisdiction: "FR"}},
		{Authority: order.Authority{ID: "agcom", Name: "AGCOM", Kind: order.Regulator, Jurisdiction: "IT"}},
	} {
		if _, err := n.reg.RegisterAuthority(t.Context(), a, operator); err != nil {
			t.Fatal(err)
		}
	}
	n.spec = newSpecChecker(t, n.url)
	checkerMu.Lock()
	checkers = append(checkers, n.spec)
	checkerMu.Unlock()
	return n
}

// client returns a client of the node holding token ("" for none).
func (n *node) client(t *testing.T, token string) *client {
	return &client{t: t, s: n.stack, spec: n.spec, token: token}
}

// syncLedger brings the ledger up to the store, as writ serve's
// follower does.
func (n *node) syncLedger(t *testing.T) {
	t.Helper()
	if _, err := n.led.Sync(t.Context(), n.st); err != nil {
		t.Fatal(err)
	}
}

// mustJSON marshals v.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// operator is the principal of testToken.
var operator = access.Principal{ID: "operator", Name: "operator", Role: access.Operator}

// submit records an order of the Paris court as the operator, without
// going through HTTP.
func (n *node) submit(t *testing.T, targets ...map[string]any) *order.Order {
	t.Helper()
	sub, err := order.DecodeBytes(mustJSON(t, courtOrder(targets...)))
	if err != nil {
		t.Fatal(err)
	}
	o, err := n.reg.Submit(t.Context(), sub, operator)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
