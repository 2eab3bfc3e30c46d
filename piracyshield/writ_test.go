package piracyshield

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/piracyshield/pstest"
	"github.com/writ-project/writ/scope"
)

// overHTTP serves e's registry through writ's API and returns its URL and
// tokens for an authority principal of AGCOM and a reviewer.
func (e *testEnv) overHTTP() (base, authorityToken, reviewerToken string) {
	e.t.Helper()
	sc, err := scope.New(nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	h, err := api.New(api.Config{PublicURL: "http://writ.example", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, e.reg, sc)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	op := access.Principal{ID: "operator", Role: access.Operator}
	ctx := e.t.Context()
	if _, err := e.reg.RegisterAuthority(ctx, order.RegisteredAuthority{
		Authority: order.Authority{ID: "agcom", Name: "AGCOM", Kind: order.DelegatedReporter, Jurisdiction: "IT"}, DeadlineSeconds: 1800}, op); err != nil {
		e.t.Fatal(err)
	}
	authorityToken, err = e.reg.CreatePrincipal(ctx, access.Principal{ID: "agcom-connector", Role: access.Authority, Authority: "agcom"}, op)
	if err != nil {
		e.t.Fatal(err)
	}
	reviewerToken, err = e.reg.CreatePrincipal(ctx, access.Principal{ID: "connector-reviewer", Role: access.Reviewer}, op)
	if err != nil {
		e.t.Fatal(err)
	}
	return srv.URL, authorityToken, reviewerToken
}

func (e *testEnv) httpConnector(base, token, reviewer string) *Connector {
	e.t.Helper()
	w, err := OverHTTP(base, token, reviewer, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := New(e.config(), w)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func TestConnectorOverHTTP(t *testing.T) {
	e := newEnv(t, true)
	base, token, reviewer := e.overHTTP()
	c := e.httpConnector(base, token, reviewer)
	id := publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com", "co.uk"}, IPv4: []string{"104.16.1.1", "203.0.113.7"}})
	e.sync(c)
	o := e.onlyOrder()
	for target, want := range map[string]order.TargetState{"live.example.com": order.TargetActive, "203.0.113.7": order.TargetActive, "104.16.1.1": order.TargetHeld} {
		if tg, ok := o.FindTarget(target); !ok || tg.State != want {
			t.Errorf("target %s: %+v, want %s", target, tg, want)
		}
	}
	if !e.blocksName("live.example.com", italy) || e.blocksName("live.example.com", france) {
		t.Error("not blocked in Italy only")
	}
	if waiting := e.report(c); waiting != 2 {
		t.Fatalf("%d wait for receipts, want 2", waiting)
	}
	e.receipt("dns", "")
	e.report(c)
	got := e.reports()
	for v, want := range map[string]string{"live.example.com": pstest.StatusProcessed, "203.0.113.7": pstest.StatusProcessed,
		"104.16.1.1": pstest.StatusUnprocessed, "co.uk": pstest.StatusUnprocessed} {
		if len(got[v]) != 1 || got[v][0].Status != want {
			t.Errorf("%s: %+v, want one report %s", v, got[v], want)
		}
	}

	// Amendments go through the API too.
	if err := e.ps.AddItems(id, pstest.IPv6, "2001:db8::7"); err != nil {
		t.Fatal(err)
	}
	e.ps.Unlist("live.example.com")
	e.sync(c)
	if o := e.onlyOrder(); o.Amendments != 1 || !e.blocksAddr("2001:db8::7", italy) || e.blocksName("live.example.com", italy) {
		t.Errorf("after the lists changed: %+v", o)
	}
}

func TestOverHTTPWithoutReviewer(t *testing.T) {
	e := newEnv(t, true)
	base, token, _ := e.overHTTP()
	c := e.httpConnector(base, token, "")
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
	e.sync(c)
	// Without a reviewer's credentials the connector cannot release what
	// writ holds for review: it says so, and reports the item held.
	if tg, _ := e.onlyOrder().FindTarget("live.example.com"); tg.State != order.TargetHeld {
		t.Fatalf("target %+v", tg)
	}
	if !strings.Contains(e.logText(), "no reviewer credentials") {
		t.Errorf("no warning:\n%s", e.logText())
	}
	e.receipt("dns", "")
	e.report(c)
	if r := e.reports()["live.example.com"]; len(r) != 1 || r[0].Status != pstest.StatusUnprocessed || !strings.Contains(r[0].Note, "delegated reporters") {
		t.Errorf("report %+v", r)
	}
}

func TestOverHTTPNeedsTheAuthorityRegistered(t *testing.T) {
	e := newEnv(t, false)
	base, _, reviewer := e.overHTTP()
	// A reviewer's token cannot register an authority; the error says
	// what the operator must run.
	w, err := OverHTTP(base, reviewer, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.EnsureAuthority(t.Context(), order.RegisteredAuthority{Authority: order.Authority{ID: "agcom-it", Name: "AGCOM", Kind: order.DelegatedReporter, Jurisdiction: "IT"}})
	if err == nil || !strings.Contains(err.Error(), "writ authority add agcom-it") {
		t.Errorf("EnsureAuthority = %v", err)
	}
	if _, err := OverHTTP("writ.example", "t", "", nil); err == nil {
		t.Error("a URL without scheme is accepted")
	}
	if _, err := OverHTTP(base, "", "", nil); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("no token: %v", err)
	}
}
