package registry

import (
	"errors"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
)

// Credentials disabled on this node are refused at once, though the
// principal was remembered; disabled on another node sharing the store,
// they are refused once AuthCacheTTL has passed. Restored, they work
// again. A token is accepted the moment it is created, however often it
// was refused before.
func TestAuthenticationCache(t *testing.T) {
	clock := &fakeClock{now: t0}
	ns := nodes(t, 2, clock)
	a, b := ns[0], ns[1]
	ctx := t.Context()
	refused := func(r *Registry, token, when string) {
		t.Helper()
		if _, err := r.Authenticate(ctx, token); !errors.Is(err, ErrForbidden) {
			t.Fatalf("%s: %v, want refused", when, err)
		}
	}
	accepted := func(r *Registry, token, when string) {
		t.Helper()
		p, err := r.Authenticate(ctx, token)
		if err != nil || p.ID != "rev" {
			t.Fatalf("%s: %v %v, want the reviewer", when, p, err)
		}
	}

	// Refusals are not remembered: the token works once created.
	refused(a, "not-yet", "an unknown token")
	token, err := a.CreatePrincipal(ctx, access.Principal{ID: "rev", Role: access.Reviewer}, operator)
	if err != nil {
		t.Fatal(err)
	}
	accepted(a, token, "a new token on the node that created it")
	accepted(b, token, "a new token on another node")

	// Disabled here: refused here at once.
	if err := a.DisablePrincipal(ctx, "rev", true, operator); err != nil {
		t.Fatal(err)
	}
	refused(a, token, "disabled on this node")
	// Another node remembers it for the TTL, no longer.
	accepted(b, token, "disabled on another node, within the TTL")
	clock.Advance(AuthCacheTTL)
	refused(b, token, "disabled on another node, after the TTL")

	if err := b.DisablePrincipal(ctx, "rev", false, operator); err != nil {
		t.Fatal(err)
	}
	accepted(b, token, "restored")
	accepted(a, token, "restored, on another node (refusals are not remembered)")
	clock.Advance(time.Hour)
	accepted(a, token, "an hour later")
}
