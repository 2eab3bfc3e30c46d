package piracyshield

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/piracyshield/pstest"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/store"
)

var (
	italy  = jurisdiction.MustParse("IT")
	france = jurisdiction.MustParse("FR")
)

// testEnv is a platform double, a writ registry on a SQLite store, and
// the connector's clock and logs.
type testEnv struct {
	t   *testing.T
	ps  *pstest.Server
	reg *registry.Registry
	dir string

	mu     sync.Mutex
	offset time.Duration
	logs   bytes.Buffer
}

// newEnv starts the double and a registry whose intake reviews delegated
// reporters' orders (writ's default) when review is set, with the
// built-in shared-infrastructure list.
func newEnv(t *testing.T, review bool) *testEnv {
	t.Helper()
	e := &testEnv{t: t, ps: startDouble(t, pstest.Options{}), dir: t.TempDir()}
	st, err := store.OpenSQLite(t.Context(), filepath.Join(e.dir, "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.reg, err = registry.Open(t.Context(), st, registry.Options{
		Intake: order.Intake{ReviewDelegated: review, Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.reg.Close)
	return e
}

func (e *testEnv) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Now().Add(e.offset)
}

// advance moves the connector's clock (not the double's or writ's).
func (e *testEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.offset += d
}

func (e *testEnv) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logs.Write(p)
}

func (e *testEnv) logText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logs.String()
}

func (e *testEnv) config() Config {
	return Config{URL: e.ps.URL(), Email: e.ps.Email(), Password: e.ps.Password(),
		StateFile: filepath.Join(e.dir, "piracyshield-state.json"),
		Logger:    slog.New(slog.NewTextHandler(e, nil)), Now: e.now}
}

func (e *testEnv) connector(edit ...func(*Config)) *Connector {
	e.t.Helper()
	cfg := e.config()
	for _, f := range edit {
		f(&cfg)
	}
	c, err := New(cfg, InProcess(e.reg))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// receipt records that point applies the policy now published.
func (e *testEnv) receipt(point, scope string) {
	e.t.Helper()
	rc := policy.Receipt{Point: point, Version: e.reg.Policy().Load().Version(), At: time.Now(), Scope: scope}
	if err := e.reg.Receipt(e.t.Context(), rc); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) sync(c *Connector) {
	e.t.Helper()
	if err := c.Sync(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) report(c *Connector) int {
	e.t.Helper()
	waiting, err := c.Report(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return waiting
}

// reports maps each value to its reports, oldest first.
func (e *testEnv) reports() map[string][]pstest.Report {
	out := map[string][]pstest.Report{}
	for _, r := range e.ps.Reports() {
		out[r.Value] = append(out[r.Value], r)
	}
	return out
}

func (e *testEnv) blocksName(name string, c jurisdiction.Code) bool {
	return e.reg.Policy().Load().MatchName(name, c) != nil
}

func (e *testEnv) blocksAddr(addr string, c jurisdiction.Code) bool {
	return e.reg.Policy().Load().MatchAddr(netip.MustParseAddr(addr), c) != nil
}

func (e *testEnv) onlyOrder() *order.Order {
	e.t.Helper()
	list := e.reg.Orders()
	if len(list) != 1 {
		e.t.Fatalf("%d orders, want 1", len(list))
	}
	return list[0]
}

// value reads the one series of a counter or gauge.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	(<-ch).Write(&m)
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// series counts the series a collector exports.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	n := 0
	for range ch {
		n++
	}
	return n
}

func TestTicketBecomesAnOrderForItalyOnly(t *testing.T) {
	e := newEnv(t, true)
	c := e.connector()
	id := publish(t, e.ps, pstest.Ticket{DDAID: "1234/24/DDA", Description: "Serie A live streams",
		FQDN: []string{"live.example.com", "Stream.Example.net"}, IPv4: []string{"104.16.1.1", "203.0.113.7"}})
	e.sync(c)

	o := e.onlyOrder()
	if o.Authority.ID != "agcom" || o.Authority.Kind != order.DelegatedReporter || o.Authority.Jurisdiction != "IT" ||
		o.JurisdictionString() != "IT" || o.LegalBasis.Statute != DefaultLegalReference ||
		o.LegalBasis.Case != "Piracy Shield ticket "+id || o.LegalBasis.Summary != "Serie A live streams" || o.Issued == nil {
		t.Fatalf("order %+v", o)
	}
	if a, ok := e.reg.Authority("agcom"); !ok || a.Deadline() != Deadline || a.Kind != order.DelegatedReporter {
		t.Fatalf("authority %+v", a)
	}
	// writ reviews delegated reporters' orders; the connector released
	// what the safeguards pass, and the CDN address stays held.
	for target, want := range map[string]order.TargetState{"live.example.com": order.TargetActive, "stream.example.net": order.TargetActive,
		"203.0.113.7": order.TargetActive, "104.16.1.1": order.TargetHeld} {
		if tg, ok := o.FindTarget(target); !ok || tg.State != want {
			t.Errorf("target %s: %+v, want %s", target, tg, want)
		}
	}
	if tg, _ := o.FindTarget("104.16.1.1"); !strings.Contains(tg.HoldReason, "shared infrastructure") {
		t.Errorf("CDN hold reason %q", tg.HoldReason)
	}
	_, events, err := e.reg.Order(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	released := 0
	for _, ev := range events {
		if ev.Kind == order.EventReleased && ev.Principal == "reviewer:piracyshield" {
			released++
		}
	}
	if released != 3 {
		t.Errorf("%d targets released by the connector, want 3", released)
	}

	// Italy only.
	if !e.blocksName("live.example.com", italy) || !e.blocksName("stream.example.net", italy) || !e.blocksAddr("203.0.113.7", italy) {
		t.Error("not blocked in Italy")
	}
	if e.blocksName("live.example.com", france) || e.blocksAddr("203.0.113.7", france) {
		t.Error("blocked outside Italy")
	}
	if e.blocksAddr("104.16.1.1", italy) {
		t.Error("the held CDN address blocks")
	}

	// Before any receipt, only the held address is reported, at once.
	// A French point's receipt does not count for Italy.
	e.receipt("rpz:192.0.2.53/fr.rpz.writ.", "FR")
	if waiting := e.report(c); waiting != 3 {
		t.Fatalf("%d items wait for receipts, want 3", waiting)
	}
	got := e.reports()
	if len(got) != 1 || len(got["104.16.1.1"]) != 1 {
		t.Fatalf("reports before any receipt: %+v", got)
	}
	if r := got["104.16.1.1"][0]; r.Status != pstest.StatusUnprocessed || r.Reason != "UNDEFINED" ||
		!strings.Contains(r.Note, "held for review in writ order "+o.ID) || !strings.Contains(r.Note, "shared infrastructure 104.16.0.0/13") {
		t.Errorf("held item report %+v", r)
	}

	// The DNS server's receipt: the rest is reported processed.
	e.receipt("dns", "")
	if waiting := e.report(c); waiting != 0 {
		t.Fatalf("%d items still wait", waiting)
	}
	got = e.reports()
	for _, v := range []string{"live.example.com", "Stream.Example.net", "203.0.113.7"} {
		if len(got[v]) != 1 || got[v][0].Status != pstest.StatusProcessed || !strings.Contains(got[v][0].Note, o.ID) ||
			!strings.Contains(got[v][0].Note, "applied by dns") || got[v][0].Timestamp == "" {
			t.Errorf("reports of %s: %+v", v, got[v])
		}
		if it, _ := e.ps.Item(v); it.Status != pstest.StatusProcessed {
			t.Errorf("%s is %s on the platform", v, it.Status)
		}
	}
	if n := value(c.Metrics().items.WithLabelValues("processed")); n != 3 {
		t.Errorf("processed gauge %v", n)
	}
	if n := series(c.Metrics().reportSeconds); n != 2 {
		t.Errorf("time-to-report series %d, want 2 (processed, unprocessed)", n)
	}

	// A restart (same state file) neither records nor reports again.
	before := len(e.ps.Reports())
	again := e.connector()
	e.sync(again)
	if waiting := e.report(again); waiting != 0 {
		t.Fatalf("after restart %d wait", waiting)
	}
	e.onlyOrder()
	if n := len(e.ps.Reports()); n != before {
		t.Errorf("a restart sent %d more reports", n-before)
	}
	if s := again.Summary(); s.Tickets != 1 || s.Processed != 3 || s.Unprocessed != 1 || s.Awaiting != 0 {
		t.Errorf("summary %+v", s)
	}
}

func TestHeldTargetReleasedLaterIsReportedProcessed(t *testing.T) {
	e := newEnv(t, true)
	c := e.connector(func(c *Config) { c.Review = ReviewAll })
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}, IPv4: []string{"203.0.113.7"}})
	e.sync(c)
	e.receipt("dns", "")
	if waiting := e.report(c); waiting != 0 {
		t.Fatalf("%d wait; held items are reported at once", waiting)
	}
	for _, v := range []string{"live.example.com", "203.0.113.7"} {
		r := e.reports()[v]
		if len(r) != 1 || r[0].Status != pstest.StatusUnprocessed || !strings.Contains(r[0].Note, "delegated reporters") {
			t.Fatalf("review all: %s reported %+v", v, r)
		}
	}
	// A reviewer releases one; once the DNS server applies it, it is
	// reported processed.
	o := e.onlyOrder()
	alice := access.Principal{ID: "alice", Role: access.Reviewer}
	if _, err := e.reg.Release(t.Context(), o.ID, "live.example.com", "checked: a streaming site", alice); err != nil {
		t.Fatal(err)
	}
	if waiting := e.report(c); waiting != 1 {
		t.Fatalf("%d wait for the receipt, want 1", waiting)
	}
	e.receipt("dns", "")
	e.report(c)
	if r := e.reports()["live.example.com"]; len(r) != 2 || r[1].Status != pstest.StatusProcessed {
		t.Errorf("after release: %+v", r)
	}
	if r := e.reports()["203.0.113.7"]; len(r) != 1 {
		t.Errorf("the item still held was reported again: %+v", r)
	}
}

func TestListsDriveAmendments(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	id := publish(t, e.ps, pstest.Ticket{FQDN: []string{"a.example.com"}, IPv4: []string{"203.0.113.7"}})
	e.sync(c)
	first := e.onlyOrder()

	// New items of the same ticket amend its order.
	if err := e.ps.AddItems(id, pstest.FQDN, "b.example.com"); err != nil {
		t.Fatal(err)
	}
	e.sync(c)
	o := e.onlyOrder()
	if o.ID != first.ID || o.Amendments != 1 || !e.blocksName("b.example.com", italy) {
		t.Fatalf("after a new item: %+v", o)
	}
	e.receipt("dns", "")
	e.report(c)
	if r := e.reports()["b.example.com"]; len(r) != 1 || r[0].Status != pstest.StatusProcessed {
		t.Errorf("new item reports %+v", r)
	}

	// An item gone from the lists is unblocked by an amendment.
	e.ps.Unlist("a.example.com")
	e.sync(c)
	o = e.onlyOrder()
	if tg, _ := o.FindTarget("a.example.com"); o.Amendments != 2 || tg.State != order.TargetRemoved {
		t.Fatalf("after unlisting: amendments %d, target %+v", o.Amendments, tg)
	}
	if e.blocksName("a.example.com", italy) || !e.blocksName("b.example.com", italy) {
		t.Error("unlisting did not unblock exactly the unlisted item")
	}
	// Unchanged lists: only the checksums are fetched, nothing changes.
	e.sync(c)
	if o2 := e.onlyOrder(); o2.Amendments != 2 {
		t.Errorf("an unchanged poll amended the order: %d", o2.Amendments)
	}
}

func TestWritRefusesWhatItNeverBlocks(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	// The platform accepts a public suffix alone and a private address;
	// writ blocks neither, and says so.
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"co.uk", "live.example.com"}, IPv4: []string{"10.1.2.3"}})
	e.sync(c)
	o := e.onlyOrder()
	if len(o.Targets) != 1 || o.Targets[0].FQDN != "live.example.com" {
		t.Fatalf("targets %+v", o.Targets)
	}
	e.receipt("dns", "")
	e.report(c)
	got := e.reports()
	if r := got["co.uk"]; len(r) != 1 || r[0].Status != pstest.StatusUnprocessed || !strings.Contains(r[0].Note, "public suffix") {
		t.Errorf("co.uk: %+v", r)
	}
	if r := got["10.1.2.3"]; len(r) != 1 || r[0].Status != pstest.StatusUnprocessed || !strings.Contains(r[0].Note, "private") {
		t.Errorf("10.1.2.3: %+v", r)
	}
	if r := got["live.example.com"]; len(r) != 1 || r[0].Status != pstest.StatusProcessed {
		t.Errorf("live.example.com: %+v", r)
	}
}

func TestMalformedItemsAreSkipped(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	e.ps.PublishUnchecked(pstest.Ticket{ID: "not-a-ticket-id", FQDN: []string{"bad.example.com"}})
	e.ps.PublishUnchecked(pstest.Ticket{FQDN: []string{"exa mple.com", "live.example.com"}, IPv4: []string{"203.0.113"}})
	e.sync(c)
	if n := value(c.Metrics().malformed); n != 3 {
		t.Errorf("malformed tickets and items counted %v, want 3", n)
	}
	o := e.onlyOrder()
	if len(o.Targets) != 1 || o.Targets[0].FQDN != "live.example.com" {
		t.Fatalf("targets %+v", o.Targets)
	}
	// The platform would refuse any report about a malformed value: none
	// is sent, and the rest is reported as usual.
	e.receipt("dns", "")
	e.report(c)
	got := e.reports()
	if len(got) != 1 || len(got["live.example.com"]) != 1 {
		t.Errorf("reports %+v", got)
	}
	// Skipped on purpose, the malformed values do not make every poll
	// start again from the full lists.
	if len(c.st.Checksums) == 0 {
		t.Error("the lists were not recorded as applied in full")
	}
}

func TestChecksumMismatchAbandonsThePoll(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
	// The change check, then the list and its retry: all three wrong.
	e.ps.CorruptChecksums(3)
	if err := c.Sync(t.Context()); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Sync = %v, want ErrChecksum", err)
	}
	if len(e.reg.Orders()) != 0 {
		t.Fatal("a list that failed its checksum was applied")
	}
	if n := value(c.Metrics().checksumFails); n != 1 {
		t.Errorf("checksum failures %v", n)
	}
	e.sync(c)
	e.onlyOrder()
}

func TestOrderFoundAgainAfterCrash(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	id := publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
	e.sync(c)
	o := e.onlyOrder()
	// The state is lost (a crash before it was written): the order is
	// found by its ticket, not recorded twice.
	if err := os.Remove(filepath.Join(e.dir, "piracyshield-state.json")); err != nil {
		t.Fatal(err)
	}
	again := e.connector()
	e.sync(again)
	if o2 := e.onlyOrder(); o2.ID != o.ID || o2.Amendments != 0 {
		t.Fatalf("after the crash: %+v", o2)
	}
	if rec := again.st.Tickets[id]; rec == nil || rec.Order != o.ID {
		t.Fatalf("state %+v", rec)
	}
}

func TestDeadlineAlert(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
	e.sync(c)
	// No enforcement point has sent a receipt: the item cannot be
	// reported processed.
	e.report(c)
	if n := value(c.Metrics().alerts); n != 0 {
		t.Fatalf("alert before the threshold")
	}
	e.advance(21 * time.Minute)
	e.report(c)
	if n := value(c.Metrics().alerts); n != 1 {
		t.Fatalf("alerts %v after 21 minutes", n)
	}
	if n := value(c.Metrics().atRisk); n != 1 {
		t.Errorf("at risk %v", n)
	}
	if logs := e.logText(); !strings.Contains(logs, "deadline at risk") || !strings.Contains(logs, "live.example.com") || !strings.Contains(logs, "receipt") {
		t.Errorf("no alert in the logs:\n%s", logs)
	}
	e.advance(10 * time.Minute)
	e.report(c)
	if n := value(c.Metrics().overdue); n != 1 {
		t.Errorf("overdue %v", n)
	}
	if n := value(c.Metrics().alerts); n != 1 {
		t.Errorf("the alert was raised again: %v", n)
	}
	e.receipt("dns", "")
	e.report(c)
	if n := value(c.Metrics().atRisk); n != 0 {
		t.Errorf("at risk %v after the report", n)
	}
}

func TestItemsOlderThanTheWindowAreAppliedNotReported(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"old.example.com"}})
	// The connector starts three days after the ticket was published.
	e.advance(72 * time.Hour)
	e.sync(c)
	if !e.blocksName("old.example.com", italy) {
		t.Fatal("an old item is not applied")
	}
	e.receipt("dns", "")
	if waiting := e.report(c); waiting != 0 {
		t.Fatalf("%d wait", waiting)
	}
	if r := e.ps.Reports(); len(r) != 0 {
		t.Errorf("reports the platform would refuse: %+v", r)
	}
	if n := value(c.Metrics().alerts); n != 0 {
		t.Errorf("%v alerts for items seen too late to help", n)
	}
	if !strings.Contains(e.logText(), "older than the 48-hour reporting window") {
		t.Errorf("not logged:\n%s", e.logText())
	}
}

func TestConfiguredPointsMustAllReceipt(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector(func(c *Config) { c.Points = []string{"dns", "resolver-milano"} })
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
	e.sync(c)
	e.receipt("dns", "")
	if waiting := e.report(c); waiting != 1 {
		t.Fatalf("%d wait; resolver-milano has not applied it", waiting)
	}
	e.receipt("resolver-milano", "IT")
	if waiting := e.report(c); waiting != 0 {
		t.Fatalf("%d still wait", waiting)
	}
	if r := e.reports()["live.example.com"]; len(r) != 1 || !strings.Contains(r[0].Note, "dns, resolver-milano") {
		t.Errorf("report %+v", r)
	}
}

// A point taken out of service holds reports back until it is retired:
// by default every point in service enforcing Italy must have applied an
// item.
func TestRetiredPointIsNotAwaited(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector()
	e.receipt("resolver-torino", "IT") // then decommissioned
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
	e.sync(c)
	e.receipt("dns", "")
	if waiting := e.report(c); waiting != 1 {
		t.Fatalf("%d wait; resolver-torino has not applied it", waiting)
	}
	if err := e.reg.RetirePoint(t.Context(), "resolver-torino", access.Principal{ID: "operator", Role: access.Operator}); err != nil {
		t.Fatal(err)
	}
	if waiting := e.report(c); waiting != 0 {
		t.Fatalf("%d still wait after resolver-torino was retired", waiting)
	}
	if r := e.reports()["live.example.com"]; len(r) != 1 || strings.Contains(r[0].Note, "resolver-torino") || !strings.Contains(r[0].Note, "dns") {
		t.Errorf("report %+v", r)
	}
}

func TestOrdersAreRenewedBeforeTheyExpire(t *testing.T) {
	e := newEnv(t, false)
	c := e.connector(func(c *Config) { c.OrderExpiry = time.Hour })
	id := publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
	e.sync(c)
	old := e.onlyOrder()
	e.receipt("dns", "")
	e.report(c)
	reported := len(e.ps.Reports())

	e.advance(50 * time.Minute) // within the last quarter of its hour
	e.sync(c)
	if n := len(e.reg.Orders()); n != 2 {
		t.Fatalf("%d orders after renewal", n)
	}
	rec := c.st.Tickets[id]
	renewed, _, err := e.reg.Order(t.Context(), rec.Order)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.ID == old.ID || renewed.LegalBasis != old.LegalBasis || !strings.Contains(renewed.Note, old.ID) ||
		!renewed.Expires.After(old.Expires) {
		t.Fatalf("renewal %+v of %+v", renewed, old)
	}
	e.receipt("dns", "")
	e.report(c)
	if n := len(e.ps.Reports()); n != reported {
		t.Errorf("the renewal was reported again (%d reports)", n-reported)
	}
}

func TestRunReportsSoonAfterPublication(t *testing.T) {
	e := newEnv(t, true)
	c := e.connector(func(c *Config) { c.PollInterval = 50 * time.Millisecond })
	// The platform fails the first two polls: the connector backs off
	// and tries again.
	e.ps.Fail("/fqdn/get/all/txt/checksum", 2, http.StatusServiceUnavailable, "", "")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// An enforcement point that applies every published policy, as the
	// DNS server of writ serve does.
	go func() {
		for {
			changed := e.reg.Policy().Changed()
			e.reg.Receipt(ctx, policy.Receipt{Point: "dns", Version: e.reg.Policy().Load().Version(), At: time.Now()})
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}, IPv4: []string{"104.16.1.1"}})
	wait, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	r, err := e.ps.WaitReport(wait, "live.example.com")
	if err != nil || r.Status != pstest.StatusProcessed {
		t.Fatalf("report %+v, %v", r, err)
	}
	r, err = e.ps.WaitReport(wait, "104.16.1.1")
	if err != nil || r.Status != pstest.StatusUnprocessed {
		t.Fatalf("report %+v, %v", r, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := value(c.Metrics().polls.WithLabelValues("error")); n != 2 {
		t.Errorf("%v failed polls, want 2", n)
	}
	if !strings.Contains(e.logText(), "piracy shield poll failed") {
		t.Errorf("the failures are not logged:\n%s", e.logText())
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		failures int
		limit    time.Duration
		want     time.Duration
	}{
		{time.Minute, 0, 5 * time.Minute, time.Minute},
		{time.Minute, 1, 5 * time.Minute, 2 * time.Minute},
		{time.Minute, 2, 5 * time.Minute, 4 * time.Minute},
		{time.Minute, 3, 5 * time.Minute, 5 * time.Minute},
		{time.Minute, 60, 5 * time.Minute, 5 * time.Minute},
		{time.Second, 3, 5 * time.Minute, 8 * time.Second},
		{10 * time.Minute, 2, 5 * time.Minute, 10 * time.Minute}, // never under the interval
	} {
		if got := backoff(tc.interval, tc.failures, tc.limit); got != tc.want {
			t.Errorf("backoff(%v, %d, %v) = %v, want %v", tc.interval, tc.failures, tc.limit, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{URL: "https://platform.example/api/v1", Email: "noc@isp.example.it", Password: "pw", StateFile: "/tmp/x"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.PollInterval != time.Minute || c.Authority != "agcom" || c.Review != ReviewSafeguards || c.AlertAfter != 20*time.Minute ||
		c.OrderExpiry != 90*24*time.Hour || c.MaxBackoff != 5*time.Minute {
		t.Errorf("defaults %+v", c)
	}
	bad := Config{Review: "some", AlertAfter: time.Hour, PollInterval: -time.Second}
	err := bad.Validate()
	for _, key := range []string{"piracyshield.url", "piracyshield.email", "piracyshield.password_file", "piracyshield.review", "piracyshield.alert_after", "piracyshield.poll_interval", "state file"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not mention %s", err, key)
		}
	}
}

func TestStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	st, err := LoadState(path)
	if err != nil || len(st.Tickets) != 0 {
		t.Fatalf("missing file: %+v, %v", st, err)
	}
	st.Tickets["t1"] = &TicketRecord{Order: "o1", Items: map[string]*ItemRecord{"live.example.com": {Genre: FQDN, Target: "live.example.com", Reported: Processed}}}
	st.Checksums = map[Genre]string{FQDN: "abc"}
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadState(path)
	if err != nil || back.Tickets["t1"].Items["live.example.com"].Reported != Processed || back.Checksums[FQDN] != "abc" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := LoadState(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("damaged file: %v", err)
	}
	os.WriteFile(path, []byte(`{"version": 99, "tickets": {}}`), 0o600)
	if _, err := LoadState(path); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("future version: %v", err)
	}
}
