package web

import (
	"context"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

var fr = jurisdiction.MustParse("FR")

func TestReviewQueue(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`, `{"ip":"1.1.1.1"}`, `{"ip":"8.8.8.8"}`)
	c := h.client()
	a := c.follow(c.login(h.reviewer))
	if a.header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(a.body, `data-page="queue"`) {
		t.Fatalf("a reviewer lands on %q", a.body)
	}
	wantText(t, a, "Review queue (2 held)", "Held targets: 2", "1.1.1.1/32", "8.8.8.8/32",
		"Held because overlaps shared infrastructure 1.1.1.0/24 (Public resolvers): blocking it could cut off unrelated services",
		"Order "+o.ID+" of Tribunal judiciaire de Paris, for FR", "min", "s left", "Release: enforce it", "Reject: never enforce it")
	refuseText(t, a, "motogpstream.me")

	// The countdown reads correctly without script: the deadline is the
	// court's thirty minutes from when the order was received.
	deadline := o.Received.Add(30 * time.Minute).UTC().Format(time.RFC3339)
	if !strings.Contains(a.body, `data-deadline="`+deadline+`"`) || !strings.Contains(a.body, `<time datetime="`+deadline+`">`) {
		t.Errorf("no countdown to %s on the queue", deadline)
	}
	left := regexp.MustCompile(`data-deadline="[^"]+">(\d+) min (\d+) s left<`).FindStringSubmatch(a.body)
	if left == nil {
		t.Fatal("no countdown text on the queue")
	}
	if m, _ := strconv.Atoi(left[1]); m < 28 || m > 29 {
		t.Errorf("countdown says %s min left, want 28 or 29", left[1])
	}

	// A decision needs its reason; without one nothing changes.
	a = c.follow(c.form(Prefix+"orders/"+o.ID+"/release", "target", "1.1.1.1/32", "reason", " ", "return", Prefix+"queue"))
	wantText(t, a, "Nothing was changed: reason: is missing: a review decision is recorded with its reason.")
	if !strings.Contains(a.body, `role="alert"`) {
		t.Error("a refused decision is not announced as an alert")
	}
	if st := h.targetState(o.ID, "1.1.1.1"); st != order.TargetHeld {
		t.Fatalf("release without reason: %s", st)
	}

	a = c.follow(c.form(Prefix+"orders/"+o.ID+"/release", "target", "1.1.1.1/32", "reason", "only the resolver's own name points there", "return", Prefix+"queue"))
	wantText(t, a, "1.1.1.1/32 of order "+o.ID+" released: it is enforced from now on.", "Held targets: 1")
	if h.reg.Policy().Load().MatchAddr(netip.MustParseAddr("1.1.1.1"), fr) == nil {
		t.Fatal("a released address is not in the published policy")
	}
	_, events, _ := h.reg.Order(context.Background(), o.ID)
	last := events[len(events)-1]
	if last.Kind != order.EventReleased || last.Principal != "reviewer:alice" || !strings.Contains(last.Detail, "only the resolver's own name points there") {
		t.Errorf("release recorded as %+v", last)
	}

	// The reject button posts the same form elsewhere.
	a = c.follow(c.form(Prefix+"orders/"+o.ID+"/reject", "target", "8.8.8.8/32", "reason", "Google Public DNS", "return", Prefix+"queue"))
	wantText(t, a, "8.8.8.8/32 of order "+o.ID+" rejected: it will never be enforced.", "No target is waiting for review.", "Review queue (0 held)")
	if st := h.targetState(o.ID, "8.8.8.8"); st != order.TargetRejected {
		t.Fatalf("rejected target is %s", st)
	}
	// Deciding twice is refused by the registry, and said so.
	a = c.follow(c.form(Prefix+"orders/"+o.ID+"/reject", "target", "8.8.8.8/32", "reason", "again"))
	wantText(t, a, "Nothing was changed: target 8.8.8.8/32 of order "+o.ID+" is rejected, not held")
}

func TestRolesShapeTheConsole(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`, `{"ip":"1.1.1.1"}`)

	op := h.client()
	a := op.follow(op.login(h.operator))
	if !strings.Contains(a.body, `data-page="dashboard"`) {
		t.Fatal("an operator does not land on the dashboard")
	}
	wantText(t, a, "Credentials", "Olivia Operator (operator)")
	a = op.get(Prefix + "queue")
	wantText(t, a, "1.1.1.1/32", "Only reviewers release or reject held targets.")
	refuseText(t, a, "Release: enforce it")
	// The registry, not the page, decides: an operator's forged release
	// is refused and the target stays held.
	a = op.follow(op.form(Prefix+"orders/"+o.ID+"/release", "target", "1.1.1.1/32", "reason", "I am the operator"))
	wantText(t, a, "Nothing was changed: operator:operator may not release or reject a held target")
	if st := h.targetState(o.ID, "1.1.1.1"); st != order.TargetHeld {
		t.Fatalf("operator release: %s", st)
	}

	alice := h.client()
	alice.login(h.reviewer)
	if a := alice.get(Prefix + "credentials"); a.status != http.StatusForbidden {
		t.Errorf("a reviewer's credentials page: %d, want 403", a.status)
	}
	refuseText(t, alice.get(Prefix+"orders"), "Credentials")
	a = alice.follow(alice.form(Prefix+"credentials", "id", "mallory", "role", "operator"))
	wantText(t, a, "Nothing was changed: reviewer:alice may not manage credentials")

	// An authority's clerk may look, not act.
	clerk := h.client()
	a = clerk.follow(clerk.login(h.clerk))
	wantText(t, a, "Dashboard")
	a = clerk.get(Prefix + "orders/" + o.ID)
	wantText(t, a, "Order "+o.ID, "1.1.1.1/32", "held")
	refuseText(t, a, "Release", "Suspend", "Record a contest")
}

func TestContestRecordedAndDecided(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`, `{"fqdn":"bakery.example"}`)
	c := h.client()
	c.login(h.reviewer)
	page := Prefix + "orders/" + o.ID
	a := c.get(page)
	wantText(t, a, "No contest has been filed against this order.", "Record a contest received by post or e-mail")

	a = c.follow(c.form(page+"/contests", "target", "bakery.example", "grounds", "This is our bakery's site; it has never streamed anything.",
		"name", "Marie Dupont", "email", "marie@bakery.example"))
	wantText(t, a, "Contest 1 recorded against order "+o.ID, "Contest 1 against bakery.example: pending",
		"Grounds This is our bakery's site", "Filed by Marie Dupont <marie@bakery.example>", "Decision on contest 1")
	q := c.get(Prefix + "queue")
	wantText(t, q, "Contests to decide: 1", "Contest 1: examine and decide")
	// The history names who recorded it, not the public.
	_, events, err := h.reg.Order(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e := events[len(events)-1]; e.Kind != order.EventContested || e.Principal != "reviewer:alice" {
		t.Errorf("the contest event is %s by %q, want contested by reviewer:alice", e.Kind, e.Principal)
	}

	// The filer's contact is for reviewers and operators only.
	clerk := h.client()
	clerk.login(h.clerk)
	a = clerk.get(page)
	wantText(t, a, "Contest 1 against bakery.example: pending")
	refuseText(t, a, "Marie Dupont", "marie@bakery.example", "Decision on contest 1")
	a = clerk.follow(clerk.form(Prefix+"contests/1/decision", "outcome", "dismissed", "reason", "the clerk decides"))
	wantText(t, a, "Nothing was changed: authority:paris-clerk may not decide a contest")

	// An operator suspends the target while the contest is examined.
	op := h.client()
	op.login(h.operator)
	a = op.follow(op.form(page+"/suspend", "target", "bakery.example", "reason", "contest 1 under examination", "return", page))
	wantText(t, a, "bakery.example of order "+o.ID+" suspended: it is not enforced until reinstated.")
	if st := h.targetState(o.ID, "bakery.example"); st != order.TargetSuspended {
		t.Fatalf("suspended target is %s", st)
	}

	a = c.follow(c.form(Prefix+"contests/1/decision", "outcome", "upheld", "reason", "an ordinary bakery, wrongly listed", "return", page+"#contest-1"))
	wantText(t, a, "Contest 1 upheld: bakery.example is lifted from order "+o.ID, "Contest 1 against bakery.example: upheld",
		"an ordinary bakery, wrongly listed", "removed")
	refuseText(t, a, "Decision on contest 1")
	if st := h.targetState(o.ID, "bakery.example"); st != order.TargetRemoved {
		t.Fatalf("target of an upheld contest is %s", st)
	}
	if h.reg.Policy().Load().MatchName("bakery.example", fr) != nil {
		t.Fatal("a lifted target still blocks")
	}
	wantText(t, c.get(Prefix+"queue"), "Contests to decide: 0")
}

func TestOrderPage(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`)
	ctx := context.Background()
	// The DNS server's receipt for the version that brought the order in.
	if err := h.reg.Receipt(ctx, policy.Receipt{Point: "dns", Version: h.reg.Policy().Load().Version(), At: o.Received.Add(3 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Receipt(ctx, policy.Receipt{Point: "rpz:192.0.2.53/fr.rpz.writ", Scope: "FR", Version: h.reg.Policy().Load().Version(), At: o.Received.Add(1500 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	sub := &order.Amendment{Add: []order.SubmittedTarget{{FQDN: "motogpstream2.me", Subdomains: true}, {IP: "104.16.1.1"}}, Note: "ARCOM notice 2025-014"}
	amended, err := h.reg.Amend(ctx, o.ID, sub, operatorPrincipal)
	if err != nil {
		t.Fatal(err)
	}
	c := h.client()
	c.login(h.reviewer)
	a := c.get(Prefix + "orders/" + o.ID)
	wantText(t, a, "Order "+o.ID, "Status: active. Enforced now, for clients in FR only.",
		"Tribunal judiciaire de Paris (court, FR), deadline 30 min 0 s", "Canal+ v. Cloudflare, judgment of 28 March 2025 (Code du sport L.333-10)",
		"motogpstream.me (and subdomains) name and its subdomains active",
		"motogpstream2.me (and subdomains) name and its subdomains (amendment 1) active",
		"104.16.1.1/32 IP address (amendment 1) held overlaps shared infrastructure 104.16.0.0/13",
		"amendment 1: added motogpstream2.me (and subdomains), 104.16.1.1/32 (ARCOM notice 2025-014)",
		"dns", "met", "rpz:192.0.2.53/fr.rpz.writ",
		"History", "received", "operator:operator")
	// The held target's clock started with the amendment that added it.
	var amendedAt time.Time
	_, events, _ := h.reg.Order(ctx, o.ID)
	for _, e := range events {
		if e.Kind == order.EventAmended {
			amendedAt = e.At
		}
	}
	if want := `data-deadline="` + amendedAt.Add(30*time.Minute).UTC().Format(time.RFC3339) + `"`; !strings.Contains(a.body, want) {
		t.Errorf("held amendment target: no %s", want)
	}
	// The timeline chart, with its text for screen readers.
	svg := regexp.MustCompile(`(?s)<svg class="chart timeline".*?</svg>`).FindString(a.body)
	if svg == "" || !strings.Contains(svg, `role="img"`) || !strings.Contains(svg, "Time to enforce at each of 2 enforcement points against a deadline of 30 min 0 s: 2 within it, 0 late, 0 pending.") || !strings.Contains(svg, "rpz:192.0.2.53/fr.rpz.writ: applied after 1.5 s, within the deadline") ||
		!strings.Contains(svg, `class="deadline"`) || strings.Count(svg, "<rect") != 2 || !strings.Contains(svg, "dns: applied after 3 ms, within the deadline") {
		t.Errorf("timeline chart:\n%s", svg)
	}
	if len(amended.Targets) != 3 {
		t.Fatalf("amended order %+v", amended.Targets)
	}
	if a := c.get(Prefix + "orders/20990101-00000000"); a.status != http.StatusNotFound {
		t.Errorf("unknown order: %d", a.status)
	}
}

func TestWholeOrderSuspension(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`)
	c := h.client()
	c.login(h.operator)
	page := Prefix + "orders/" + o.ID
	a := c.follow(c.form(page+"/suspend", "reason", "appeal lodged"))
	wantText(t, a, "Order "+o.ID+" suspended: it is not enforced until reinstated.", "Status: suspended. Not enforced now.", "Reinstate the order")
	if h.reg.Policy().Load().MatchName("motogpstream.me", fr) != nil {
		t.Fatal("a suspended order blocks")
	}
	a = c.follow(c.form(page+"/reinstate", "reason", "appeal dismissed"))
	wantText(t, a, "Status: active.")
}

func TestDashboard(t *testing.T) {
	// The session outlives the hour the test moves the clock on.
	h := newHarness(t, Config{IdleTimeout: 2 * time.Hour}, false)
	c := h.client()
	c.login(h.operator)
	a := c.get(Prefix)
	wantText(t, a, "No order is in force or waiting for review.", "No answer has been blocked since writ started.",
		"Entries 7", "writ.test/ledger", base64Root)
	figure := func(a answer, id string) string {
		t.Helper()
		m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `">([^<]*)<`).FindStringSubmatch(a.body)
		if m == nil {
			t.Fatalf("the dashboard has no figure %s:\n%s", id, text(a.body))
		}
		return m[1]
	}

	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`, `{"ip":"1.1.1.1"}`)
	other := h.submit(`{"fqdn":"tarjetarojaenvivo.lat","subdomains":true}`)
	a = c.get(Prefix)
	for id, want := range map[string]string{"orders-in-force": "2", "targets-enforced": "2", "targets-held": "1", "scope-FR-orders": "2", "scope-FR-enforced": "2", "scope-FR-held": "1", "blocks-total": "0"} {
		if got := figure(a, id); got != want {
			t.Errorf("%s = %s, want %s", id, got, want)
		}
	}

	// Blocks per hour, from the cumulative counters, hour by hour.
	h.reg.Counters().For(o.ID).Blocks.Add(3)
	a = c.get(Prefix)
	if figure(a, "blocks-"+o.ID+"-total") != "3" || figure(a, "blocks-"+o.ID+"-hour") != "3" || figure(a, "blocks-total") != "3" {
		t.Errorf("after 3 blocks:\n%s", text(a.body))
	}
	h.clock.Advance(time.Hour)
	h.console.blocks.sample(h.reg.Counters(), h.clock.Now())
	h.reg.Counters().For(o.ID).Blocks.Add(2)
	h.reg.Counters().For(other.ID).Blocks.Add(1)
	a = c.get(Prefix)
	if figure(a, "blocks-"+o.ID+"-total") != "5" || figure(a, "blocks-"+o.ID+"-hour") != "2" || figure(a, "blocks-"+other.ID+"-hour") != "1" || figure(a, "blocks-total") != "6" {
		t.Errorf("an hour later:\n%s", text(a.body))
	}
	wantText(t, a, "Blocks per hour for order "+o.ID+" over the last 24 hours (UTC): 5 in all, at most 3 in one hour, 2 so far this hour.",
		"10:00–11:00 UTC: 3 blocks", "11:00–12:00 UTC: 2 blocks")

	// Enforcement points: the version each applied, and how far behind.
	ctx := context.Background()
	v := h.reg.Policy().Load().Version()
	if err := h.reg.Receipt(ctx, policy.Receipt{Point: "dns", Version: v}); err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Receipt(ctx, policy.Receipt{Point: "gate", Version: v - 2}); err != nil {
		t.Fatal(err)
	}
	a = c.get(Prefix)
	wantText(t, a, "dns all "+itoa(v)+" 0: up to date", "gate all "+itoa(v-2)+" 2 ")

	// A release moves the figures.
	alice := h.client()
	alice.login(h.reviewer)
	alice.form(Prefix+"orders/"+o.ID+"/release", "target", "1.1.1.1/32", "reason", "checked")
	a = c.get(Prefix)
	if figure(a, "scope-FR-enforced") != "3" || figure(a, "targets-held") != "0" {
		t.Errorf("after a release:\n%s", text(a.body))
	}
	wantText(t, a, "gate all "+itoa(v-2)+" 3 ")

	// The gate is taken out of service: an operator retires it. A
	// reviewer is not offered the form, and is refused if it posts it.
	if a := alice.get(Prefix); strings.Contains(a.body, "/console/points/retire") {
		t.Error("a reviewer is offered the retire form")
	}
	a = alice.follow(alice.form(Prefix+"points/retire", "point", "gate"))
	wantText(t, a, "may not retire an enforcement point")
	a = c.follow(c.form(Prefix+"points/retire", "point", "gate"))
	wantText(t, a, "Enforcement point gate retired: orders no longer wait for it.", "Retired points", "gate: retired at version "+itoa(v-2)+" by ")
	if strings.Contains(text(a.body), "gate all ") {
		t.Errorf("the retired gate is still listed in service:\n%s", text(a.body))
	}
	a = c.follow(c.form(Prefix+"points/retire", "point", "gate"))
	wantText(t, a, "not in service")
}

const base64Root = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestCheckAName(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`)
	c := h.client()
	c.login(h.reviewer)
	a := c.get(Prefix + "check?name=www.motogpstream.me&client=127.0.0.2")
	wantText(t, a, "www.motogpstream.me for client 127.0.0.2: blocked", "Jurisdiction FR (network)", "Answer REFUSED with EDE 16 (Censored)",
		o.ID, "Tribunal judiciaire de Paris", "motogpstream.me (and subdomains)", "yes")
	a = c.get(Prefix + "check?name=www.motogpstream.me&client=127.0.0.1")
	wantText(t, a, "www.motogpstream.me for client 127.0.0.1: not blocked", "forwarded to the upstream resolvers", o.ID, "no: outside its jurisdiction")
	a = c.get(Prefix + "check?name=www.motogpstream.me&scope=fr")
	wantText(t, a, "www.motogpstream.me for clients in FR: blocked", "Jurisdiction FR (given)")
	a = c.get(Prefix + "check?name=example.org&scope=FR")
	wantText(t, a, "example.org for clients in FR: not blocked", "No order in force blocks it anywhere.")
	for q, want := range map[string]string{
		"name=example.org&client=127.0.0.2&scope=FR": "give either the client's address or a jurisdiction, not both",
		"name=example.org&client=nowhere":            `client: "nowhere" is not an IP address`,
		"name=example.org":                           "give the client's address",
		"client=127.0.0.2":                           "ask about a domain name",
	} {
		a := c.get(Prefix + "check?" + q)
		if a.status != http.StatusBadRequest {
			t.Errorf("check?%s: %d, want 400", q, a.status)
		}
		wantText(t, a, want)
	}
	wantText(t, c.get(Prefix+"check"), "Domain name or IP address")
}

func TestCredentialsCreatedInTheConsole(t *testing.T) {
	h := newHarness(t, Config{}, false)
	c := h.client()
	c.login(h.operator)
	a := c.get(Prefix + "credentials")
	wantText(t, a, "alice Alice Martin reviewer", "paris-clerk paris-clerk authority tj-paris", "Tribunal judiciaire de Paris (tj-paris)")
	a = c.form(Prefix+"credentials", "id", "bob", "name", "Bob Reviewer", "role", "reviewer", "authority", "tj-paris")
	if a.status != http.StatusOK {
		t.Fatalf("create: %d\n%s", a.status, a.body)
	}
	wantText(t, a, "Credentials created for reviewer:bob", "Token for Bob Reviewer (reviewer)")
	token := regexp.MustCompile(`<pre id="new-token">(writ_[a-z0-9]+)</pre>`).FindStringSubmatch(a.body)
	if token == nil {
		t.Fatalf("no token shown:\n%s", a.body)
	}
	who, err := h.reg.Authenticate(context.Background(), token[1])
	if err != nil || who.String() != "reviewer:bob" || who.Authority != "" {
		t.Fatalf("the token shown authenticates as %v, %v", who, err)
	}
	// Shown once: the list does not show it again.
	if strings.Contains(c.get(Prefix+"credentials").body, token[1]) {
		t.Error("the token is shown again")
	}
	a = c.follow(c.form(Prefix+"credentials", "id", "bob", "role", "reviewer"))
	wantText(t, a, "Nothing was changed: principal bob exists already")
	a = c.follow(c.form(Prefix+"credentials", "id", "clerk2", "role", "authority"))
	wantText(t, a, "Nothing was changed:", "must name the authority it acts for")
	a = c.follow(c.form(Prefix + "credentials/bob/disable"))
	wantText(t, a, "Credentials of bob disabled", "bob Bob Reviewer reviewer — ")
	if _, err := h.reg.Authenticate(context.Background(), token[1]); err == nil {
		t.Error("disabled credentials still authenticate")
	}
	wantText(t, c.follow(c.form(Prefix+"credentials/bob/enable")), "Credentials of bob enabled again.")
}

func TestPagesNotFound(t *testing.T) {
	h := newHarness(t, Config{}, false)
	c := h.client()
	c.login(h.reviewer)
	for _, p := range []string{Prefix + "nowhere", Prefix + "orders/x/y"} {
		if a := c.get(p); a.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, a.status)
		}
	}
	if a := c.form(Prefix + "contests/not-a-number/decision"); a.status != http.StatusNotFound {
		t.Errorf("decision on a contest id that is not a number: %d", a.status)
	}
}
