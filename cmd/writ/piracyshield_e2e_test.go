package main

// The Piracy Shield connector end to end: writ serve runs it against the
// platform's test double on loopback and enforces what it pulls at its
// DNS server, for clients in Italy only. 127.0.0.3 is mapped to Italy,
// 127.0.0.2 to France; 127.0.0.1 is nowhere.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/internal/localzone"
	"github.com/writ-project/writ/piracyshield/pstest"
)

const itClient = "127.0.0.3"

// piracyShieldNode starts the platform's double and a writ serve whose
// connector polls it every second.
func piracyShieldNode(t testing.TB, dataDir string, ps *pstest.Server, up *localzone.Server) *node {
	t.Helper()
	dir := t.TempDir()
	password := filepath.Join(dir, "ps-password")
	if err := os.WriteFile(password, []byte(ps.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "writ.yaml")
	yaml := fmt.Sprintf("piracyshield:\n  url: %s\n  email: %s\n  password_file: %s\n  poll_interval: 1s\n", ps.URL(), ps.Email(), password)
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startNode(t, dataDir, "--config", conf, "--upstream", up.Addr(),
		"--scope", "IT="+itClient+"/32", "--scope", "FR="+frClient+"/32")
}

func startPlatform(t testing.TB) *pstest.Server {
	t.Helper()
	ps, err := pstest.Start(pstest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	return ps
}

func TestPiracyShieldEndToEnd(t *testing.T) {
	ps := startPlatform(t)
	up, err := localzone.Start("127.0.0.1:0",
		"calcio-live.example.com. 300 IN A 198.51.100.20",
		"stream.example.net. 300 IN A 198.51.100.21",
		// A name not in the ticket, on the ticket's ordinary address.
		"mirror.example.org. 300 IN A 203.0.113.50",
		// An unrelated site behind the CDN address the ticket names.
		"bakery.example. 300 IN A 104.16.1.1",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	dataDir := t.TempDir()
	n := piracyShieldNode(t, dataDir, ps, up)

	published := time.Now()
	ticket, err := ps.Publish(pstest.Ticket{Description: "Serie A, matchday 20",
		FQDN: []string{"calcio-live.example.com", "stream.example.net"}, IPv4: []string{"104.16.1.1", "203.0.113.50"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	reports := map[string]pstest.Report{}
	for _, v := range []string{"calcio-live.example.com", "stream.example.net", "203.0.113.50", "104.16.1.1"} {
		r, err := ps.WaitReport(ctx, v)
		if err != nil {
			t.Fatalf("%v\n%s", err, n.logText())
		}
		reports[v] = r
	}
	slowest := time.Duration(0)
	for _, v := range []string{"calcio-live.example.com", "stream.example.net", "203.0.113.50"} {
		r := reports[v]
		if r.Status != pstest.StatusProcessed || !strings.Contains(r.Note, "applied by dns") {
			t.Errorf("%s reported %+v", v, r)
		}
		slowest = max(slowest, r.At.Sub(published))
	}
	t.Logf("publication to processed report (1 s poll): %v", slowest.Round(time.Millisecond))
	held := reports["104.16.1.1"]
	if held.Status != pstest.StatusUnprocessed || held.Reason != "UNDEFINED" || !strings.Contains(held.Note, "held for review") ||
		!strings.Contains(held.Note, "shared infrastructure 104.16.0.0/13") {
		t.Errorf("the CDN address reported %+v", held)
	}

	// The order: AGCOM's, for Italy, citing the ticket.
	var list struct{ Orders []orderOut }
	n.api("GET", "/v1/orders", nil, &list)
	if len(list.Orders) != 1 {
		t.Fatalf("%d orders", len(list.Orders))
	}
	o := list.Orders[0]
	if o.Authority.ID != "agcom" || o.Authority.Kind != "delegated_reporter" || o.JurisdictionString() != "IT" ||
		o.LegalBasis.Case != "Piracy Shield ticket "+ticket || !strings.Contains(o.LegalBasis.Statute, "93") {
		t.Errorf("order %+v", o.Order)
	}
	// Processed was reported only once the DNS server had applied it.
	var receipts struct {
		Points []struct {
			Point   string
			Applied *time.Time
		}
	}
	n.api("GET", "/v1/orders/"+o.ID+"/receipts", nil, &receipts)
	var applied *time.Time
	for _, p := range receipts.Points {
		if strings.HasPrefix(p.Point, "dns") { // "dns", or "dns@<node>" on a node of several
			applied = p.Applied
		}
	}
	if applied == nil {
		t.Fatalf("no DNS receipt: %+v", receipts)
	}
	if reported := reports["calcio-live.example.com"].At; reported.Before(*applied) {
		t.Errorf("reported processed at %v, before the DNS server applied it at %v", reported, *applied)
	}

	// Italy only: blocked in Italy, answered elsewhere. The CDN address
	// is held: the unrelated site on it stays reachable everywhere.
	for _, name := range []string{"calcio-live.example.com", "www.calcio-live.example.com", "stream.example.net", "mirror.example.org"} {
		want := o.ID
		if name == "www.calcio-live.example.com" {
			want = "" // the platform orders exact names
		}
		if got := blockedBy(n.query(itClient, name)); got != want {
			t.Errorf("%s in Italy: blocked by %q, want %q", name, got, want)
		}
		for _, from := range []string{outsideClient, frClient} {
			if got := blockedBy(n.query(from, name)); got != "" {
				t.Errorf("%s from %s: blocked by %s outside Italy", name, from, got)
			}
		}
	}
	for _, from := range []string{itClient, outsideClient} {
		if got := answer(n.query(from, "bakery.example")); got != "104.16.1.1" {
			t.Errorf("the site behind the held CDN address, from %s: %s", from, got)
		}
	}
	if v := n.metric(`writ_piracyshield_reports_total{result="ok",status="processed"}`); v != 3 {
		t.Errorf("processed reports metric %v", v)
	}

	for _, line := range strings.Split(n.logText(), "\n") {
		if strings.Contains(line, `"component":"piracyshield"`) && (strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`)) {
			t.Errorf("the connector complained: %s", line)
		}
	}

	// After a crash the connector resumes from its state: no order
	// recorded twice, no item reported again.
	before := len(ps.Reports())
	n.kill()
	n = piracyShieldNode(t, dataDir, ps, up)
	deadline := time.Now().Add(20 * time.Second)
	for n.metric(`writ_piracyshield_polls_total{result="ok"}`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted connector has not polled:\n%s", n.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := len(ps.Reports()); got != before {
		t.Errorf("after restart, %d more reports", got-before)
	}
	n.api("GET", "/v1/orders", nil, &list)
	if len(list.Orders) != 1 {
		t.Errorf("after restart, %d orders", len(list.Orders))
	}
	if blockedBy(n.query(itClient, "calcio-live.example.com")) != o.ID {
		t.Error("not blocked after restart")
	}
}

// BenchmarkPiracyShieldReport measures, on a real writ serve polling the
// platform's double every second, the time from a ticket's publication to
// its processed report, which writ sends only after its DNS server
// applied the order; p50, p99 and the worst are reported. With
// phase=after-poll each ticket is published just after the connector's
// poll (the report of the previous one): the worst case, a whole interval
// of waiting plus writ's own work. With phase=random it is published at
// a random point of the interval, as tickets arrive. writ-p50 and
// writ-p99 are writ's own part: from the poll that found the ticket to
// the report (fetching and checking the lists, recording the order,
// releasing what the safeguards pass, the DNS server's receipt).
func BenchmarkPiracyShieldReport(b *testing.B) {
	ps := startPlatform(b)
	up, err := localzone.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer up.Close()
	n := piracyShieldNode(b, b.TempDir(), ps, up)
	i := 0
	for _, phase := range []string{"after-poll", "random"} {
		b.Run("phase="+phase, func(b *testing.B) {
			var lat, work []time.Duration
			for b.Loop() {
				if phase == "random" {
					time.Sleep(rand.N(time.Second))
				}
				name := fmt.Sprintf("bench%d.example.com", i)
				i++
				published := time.Now()
				if _, err := ps.Publish(pstest.Ticket{FQDN: []string{name}}); err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				r, err := ps.WaitReport(ctx, name)
				cancel()
				if err != nil || r.Status != pstest.StatusProcessed {
					b.Fatalf("%+v, %v", r, err)
				}
				lat = append(lat, r.At.Sub(published))
				// writ's own part: from the poll that found the ticket (the
				// first listing of tickets after it was published) to the
				// report.
				for _, at := range ps.Requested("/ticket/get/all") {
					if !at.Before(published) {
						work = append(work, r.At.Sub(at))
						break
					}
				}
			}
			slices.Sort(lat)
			slices.Sort(work)
			b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
			b.ReportMetric(float64(work[len(work)/2].Microseconds())/1000, "writ-p50-ms")
			b.ReportMetric(float64(work[len(work)*99/100].Microseconds())/1000, "writ-p99-ms")
		})
	}
	if code := n.api("GET", "/healthz", nil, nil); code != http.StatusOK {
		b.Fatalf("healthz %d", code)
	}
}
