package registry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/internal/pgtest"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/store"
)

// nodes opens n registries on one PostgreSQL database: n writ nodes.
func nodes(t *testing.T, n int, clock *fakeClock) []*Registry {
	t.Helper()
	pg := pgtest.Start(t)
	var out []*Registry
	for range n {
		st, err := store.OpenPostgres(t.Context(), pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		r, err := Open(t.Context(), st, Options{Clock: clock, Intake: order.Intake{Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		out = append(out, r)
	}
	return out
}

func TestNodesConverge(t *testing.T) {
	clock := &fakeClock{now: t0}
	ns := nodes(t, 3, clock)
	a, b, c := ns[0], ns[1], ns[2]
	ctx := context.Background()
	o, err := a.Submit(ctx, submission(t0, t0.Add(time.Hour), "a.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	if blocked(b, "a.example") {
		t.Fatal("node b blocks before it synced: the test proves nothing")
	}
	for _, n := range []*Registry{b, c} {
		if err := n.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if !blocked(n, "www.a.example") || n.Policy().Load().Version() != a.Policy().Load().Version() {
			t.Fatalf("node not converged: version %d vs %d", n.Policy().Load().Version(), a.Policy().Load().Version())
		}
	}
	// A change on b reaches a and c.
	if _, err := b.Revoke(ctx, o.ID, "overturned", operator); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Registry{a, c} {
		if err := n.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if blocked(n, "a.example") {
			t.Fatal("revocation on b not applied")
		}
	}
}

// Two nodes changing one order at once: neither change is lost.
func TestConcurrentChangesAreNotLost(t *testing.T) {
	clock := &fakeClock{now: t0}
	ns := nodes(t, 2, clock)
	ctx := context.Background()
	o, err := ns[0].Submit(ctx, submission(t0, t0.Add(time.Hour), "base.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for n := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				a := &order.Amendment{Add: []order.SubmittedTarget{{FQDN: fmt.Sprintf("m%d-%d.example", n, i)}}}
				if _, err := ns[n].Amend(ctx, o.ID, a, operator); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range ns {
		if err := n.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		got, _, err := n.Order(ctx, o.ID)
		if err != nil || len(got.Targets) != 21 || got.Amendments != 20 {
			t.Fatalf("order after 20 concurrent amendments: %d targets, %d amendments, %v", len(got.Targets), got.Amendments, err)
		}
		for i := range 10 {
			for m := range 2 {
				if !blocked(n, fmt.Sprintf("m%d-%d.example", m, i)) {
					t.Fatalf("amendment m%d-%d lost", m, i)
				}
			}
		}
	}
}

// Every node notices an expiry; it is recorded once.
func TestLifecycleRecordedOnceAcrossNodes(t *testing.T) {
	clock := &fakeClock{now: t0}
	ns := nodes(t, 2, clock)
	ctx := context.Background()
	o, err := ns[0].Submit(ctx, submission(t0, t0.Add(time.Hour), "a.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns[1].Sync(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour) // both nodes' timers fire
	for _, n := range ns {
		if err := n.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, evs, err := ns[1].Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(kinds(evs)); got != "[received activated expired]" {
		t.Fatalf("events %s", got)
	}
	for _, n := range ns {
		if blocked(n, "a.example") {
			t.Fatal("expired order still enforced")
		}
	}
}
