package registry

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/store"
)

// A delegated reporter named as an amender of a court's order does not
// escape the review its own orders get: what it adds is held, while the
// court's own amendments apply at once.
func TestDelegatedAmenderIsReviewed(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := Open(ctx, st, Options{Clock: &fakeClock{now: t0}, Intake: order.Intake{ReviewDelegated: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reporter := order.RegisteredAuthority{Authority: order.Authority{ID: "rights-fr", Name: "A rights holder", Kind: order.DelegatedReporter, Jurisdiction: "FR"}}
	if _, err := r.RegisterAuthority(ctx, reporter, operator); err != nil {
		t.Fatal(err)
	}
	sub := submission(t0, t0.Add(time.Hour), "a.example")
	sub.AmendingAuthorities = []string{"rights-fr"}
	o, err := r.Submit(ctx, sub, operator)
	if err != nil {
		t.Fatal(err)
	}
	agent := access.Principal{ID: "agent", Name: "agent", Role: access.Authority, Authority: "rights-fr"}
	if o, err = r.Amend(ctx, o.ID, &order.Amendment{Add: []order.SubmittedTarget{{FQDN: "mirror.example"}}}, agent); err != nil {
		t.Fatal(err)
	}
	if tg, _ := o.FindTarget("mirror.example"); tg.State != order.TargetHeld || tg.HoldReason != order.DelegatedReviewReason || blocked(r, "mirror.example") {
		t.Fatalf("the reporter's addition: %s (%q), blocked %v", tg.State, tg.HoldReason, blocked(r, "mirror.example"))
	}
	// Its deadline runs from the amendment, which the target records.
	if tg, _ := o.FindTarget("mirror.example"); tg.Added == nil || !tg.Added.Equal(t0) || tg.Amendment != 1 {
		t.Errorf("the added target records amendment %d at %v, want 1 at %v", tg.Amendment, tg.Added, t0)
	}
	if tg, _ := o.FindTarget("a.example"); tg.Added != nil {
		t.Errorf("an original target records an amendment time %v", tg.Added)
	}
	if o, err = r.Amend(ctx, o.ID, &order.Amendment{Add: []order.SubmittedTarget{{FQDN: "other.example"}}}, operator); err != nil {
		t.Fatal(err)
	}
	if tg, _ := o.FindTarget("other.example"); tg.State != order.TargetActive || !blocked(r, "other.example") {
		t.Fatalf("the court's own addition: %s (%q)", tg.State, tg.HoldReason)
	}
}

// An order may name as amenders only registered authorities (or its
// own): an unknown id is refused with the field named, along with every
// other problem of the submission, and nothing is recorded.
func TestAmendingAuthoritiesMustBeRegistered(t *testing.T) {
	r, st := open(t, t.TempDir()+"/writ.db", &fakeClock{now: t0})
	ctx := t.Context()
	if _, err := r.RegisterAuthority(ctx, order.RegisteredAuthority{Authority: order.Authority{ID: "arcom", Name: "ARCOM", Kind: order.Regulator, Jurisdiction: "FR"}}, operator); err != nil {
		t.Fatal(err)
	}
	sub := submission(t0, t0.Add(time.Hour), "a.example", "com")
	sub.AmendingAuthorities = []string{"arcom", "nobody", "tj-paris"}
	_, err := r.Submit(ctx, sub, operator)
	var inv *order.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want a rejection", err)
	}
	fields := map[string]string{}
	for _, f := range inv.Fields {
		fields[f.Field] = f.Value
	}
	if fields["amending_authorities[1]"] != "nobody" || len(fields) != 2 {
		t.Errorf("fields %v: want amending_authorities[1] (nobody) and the bad target", fields)
	}
	if orders, _, _ := st.Orders(ctx); len(orders) != 0 {
		t.Errorf("%d orders recorded", len(orders))
	}
	sub = submission(t0, t0.Add(time.Hour), "a.example")
	sub.AmendingAuthorities = []string{"arcom", "tj-paris"}
	if _, err := r.Submit(ctx, sub, operator); err != nil {
		t.Fatalf("registered amenders: %v", err)
	}
}
