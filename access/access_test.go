package access

import (
	"strings"
	"testing"
)

func TestRolesAndActions(t *testing.T) {
	cases := []struct {
		role Role
		can  []Action
	}{
		{Authority, []Action{SubmitOrder, AmendOrder, RevokeOrder}},
		{Reviewer, []Action{ReviewTarget, DecideContest, SuspendOrder, ReadPrivate}},
		{Operator, []Action{SubmitOrder, AmendOrder, RevokeOrder, SuspendOrder, ManageAuthorities, ManagePrincipals, RecordReceipt, RetirePoint, ReadPrivate}},
		{Public, nil},
	}
	all := []Action{SubmitOrder, AmendOrder, RevokeOrder, ReviewTarget, DecideContest, SuspendOrder, ManageAuthorities, ManagePrincipals, RecordReceipt, RetirePoint, ReadPrivate}
	for _, tc := range cases {
		p := Principal{ID: "x", Role: tc.role}
		for _, a := range all {
			want := false
			for _, c := range tc.can {
				want = want || c == a
			}
			if p.Can(a) != want {
				t.Errorf("%s can %q: %v, want %v", tc.role, a, p.Can(a), want)
			}
		}
		p.Disabled = true
		for _, a := range all {
			if p.Can(a) {
				t.Errorf("disabled %s can %q", tc.role, a)
			}
		}
	}
}

func TestCanActFor(t *testing.T) {
	court := Principal{ID: "clerk", Role: Authority, Authority: "tj-paris"}
	regulator := Principal{ID: "agent", Role: Authority, Authority: "arcom"}
	op := Principal{ID: "op", Role: Operator}
	rev := Principal{ID: "rev", Role: Reviewer}
	amenders := []string{"arcom"}
	if !court.CanActFor("tj-paris", amenders, false) || court.CanActFor("arcom", nil, true) {
		t.Error("court")
	}
	if regulator.CanActFor("tj-paris", amenders, false) || !regulator.CanActFor("tj-paris", amenders, true) {
		t.Error("an amender may amend, not revoke")
	}
	if !op.CanActFor("anyone", nil, false) || rev.CanActFor("tj-paris", amenders, true) {
		t.Error("operator and reviewer")
	}
}

func TestTokens(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, hash2, _ := NewToken()
	if !strings.HasPrefix(tok, "writ_") || len(tok) < 50 || tok == tok2 || hash == hash2 {
		t.Fatalf("tokens %q %q", tok, tok2)
	}
	if HashToken(tok) != hash || strings.Contains(hash, tok) || len(hash) != 64 {
		t.Fatalf("hash %q", hash)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		p    Principal
		want string
	}{
		{Principal{ID: "Bad Id", Role: Reviewer}, "principal id"},
		{Principal{ID: "x", Role: "king"}, "role"},
		{Principal{ID: "x", Role: Public}, "needs no credential"},
		{Principal{ID: "x", Role: Authority}, "must name the authority"},
		{Principal{ID: "x", Role: Reviewer, Authority: "arcom"}, "only authority principals"},
	} {
		if err := tc.p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
	if err := (Principal{ID: "alice", Role: Reviewer}).Validate(); err != nil {
		t.Error(err)
	}
	if (Principal{ID: "alice", Role: Reviewer}).String() != "reviewer:alice" || Anonymous.String() != "public" {
		t.Error("String")
	}
}
