package piracyshield

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/piracyshield/pstest"
)

// fault is what happens to one report on its way to the platform.
type fault int

const (
	deliver     fault = iota
	drop              // lost on the way: the platform never sees it
	loseAnswer        // the platform records it; its answer is lost
	crashBefore       // the connector dies as it sends it: not sent
	crashAfter        // the connector dies once the platform has recorded it
)

var errNetwork = errors.New("network down")

// faultyTransport carries the connector's requests to the platform and
// breaks the reports (set processed, set unprocessed) as fault says,
// counting them from 0. At a crash it calls crashed, then fails every
// request: the connector's process is gone.
type faultyTransport struct {
	fault   func(n int) fault
	crashed func()

	mu      sync.Mutex
	reports int
	dead    bool
}

func (ft *faultyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	f := deliver
	if strings.Contains(r.URL.Path, "/ticket/item/set/") {
		if ft.fault != nil {
			f = ft.fault(ft.reports)
		}
		ft.reports++
	}
	if !ft.dead && f == crashBefore {
		ft.dead = true
		ft.crashed()
	}
	if ft.dead || f == drop {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errNetwork
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	switch {
	case err != nil:
		return nil, err
	case f == crashAfter:
		ft.dead = true
		ft.crashed()
		fallthrough
	case f == loseAnswer:
		resp.Body.Close()
		return nil, errNetwork
	}
	return resp, nil
}

// stateSnapshot reads the state file as a crash at this moment would
// leave it.
func (e *testEnv) stateSnapshot() []byte {
	b, err := os.ReadFile(e.config().StateFile)
	if err != nil {
		e.t.Error(err)
	}
	return b
}

// checkReportedOnce checks that each value was reported exactly once,
// with the status given, and that the connector's state says so with
// no report left in doubt.
func checkReportedOnce(t *testing.T, e *testEnv, c *Connector, want map[string]string) {
	t.Helper()
	got := e.reports()
	for v, status := range want {
		if r := got[v]; len(r) != 1 || r[0].Status != status {
			t.Errorf("%s: reports %+v, want one %s", v, r, status)
		}
	}
	if len(got) != len(want) {
		t.Errorf("reports of %d values, want %d: %+v", len(got), len(want), got)
	}
	for _, rec := range c.st.Tickets {
		for v, it := range rec.Items {
			if string(it.Reported) != want[v] || it.Sending != nil {
				t.Errorf("%s recorded as reported %q (in doubt: %+v), want %s", v, it.Reported, it.Sending, want[v])
			}
		}
	}
}

// A crash at any point of a round of reports, the state file left as it
// was at that moment: after the restart each item has been reported
// exactly once. Before the reports were written down before sending, a
// crash after the platform recorded a report and before the state was
// saved made the restart report it again.
func TestRestartAfterCrashReportsEachItemOnce(t *testing.T) {
	want := map[string]string{"a.example.com": pstest.StatusProcessed, "b.example.com": pstest.StatusProcessed,
		"203.0.113.7": pstest.StatusProcessed, "10.1.2.3": pstest.StatusUnprocessed}
	for _, when := range []fault{crashBefore, crashAfter} {
		for at := range len(want) {
			name := fmt.Sprintf("before-report-%d", at)
			if when == crashAfter {
				name = fmt.Sprintf("after-report-%d", at)
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, false)
				var snapshot []byte
				ft := &faultyTransport{
					fault: func(n int) fault {
						if n == at {
							return when
						}
						return deliver
					},
					crashed: func() { snapshot = e.stateSnapshot() },
				}
				c := e.connector(func(cfg *Config) { cfg.HTTPClient = &http.Client{Transport: ft} })
				publish(t, e.ps, pstest.Ticket{FQDN: []string{"a.example.com", "b.example.com"}, IPv4: []string{"203.0.113.7", "10.1.2.3"}})
				e.sync(c)
				e.receipt("dns", "")
				if _, err := c.Report(t.Context()); err == nil {
					t.Fatal("the round of reports went through the crash")
				}
				if snapshot == nil {
					t.Fatal("no crash")
				}
				before := len(e.ps.Reports())
				if want := at; when == crashAfter {
					if want++; before != want {
						t.Fatalf("%d reports reached the platform before the crash, want %d", before, want)
					}
				} else if before != want {
					t.Fatalf("%d reports reached the platform before the crash, want %d", before, want)
				}

				// The restart, from the state file as the crash left it.
				if err := os.WriteFile(e.config().StateFile, snapshot, 0o600); err != nil {
					t.Fatal(err)
				}
				again := e.connector()
				e.sync(again)
				if waiting := e.report(again); waiting != 0 {
					t.Fatalf("%d wait after the restart", waiting)
				}
				checkReportedOnce(t, e, again, want)
				// And the next rounds send nothing more.
				e.report(again)
				checkReportedOnce(t, e, again, want)
			})
		}
	}
}

// A report whose answer is lost may have arrived: it is not sent again
// before the platform's state of the item says it did not, and it is
// not sent at all while that state cannot be read.
func TestReportWhoseAnswerIsLostIsNotSentTwice(t *testing.T) {
	e := newEnv(t, false)
	ft := &faultyTransport{fault: func(n int) fault {
		if n == 0 {
			return loseAnswer // reached the platform
		}
		return deliver
	}}
	c := e.connector(func(cfg *Config) { cfg.HTTPClient = &http.Client{Transport: ft} })
	publish(t, e.ps, pstest.Ticket{FQDN: []string{"a.example.com", "b.example.com"}})
	e.sync(c)
	e.receipt("dns", "")
	// a.example.com's report arrives, unbeknown to the connector; the
	// platform then looks unreachable and b.example.com's is not sent.
	if _, err := c.Report(t.Context()); !errors.Is(err, errNetwork) {
		t.Fatalf("Report = %v, want the network error", err)
	}
	if r := e.reports(); len(r) != 1 || len(r["a.example.com"]) != 1 {
		t.Fatalf("reports %+v", r)
	}
	if it := c.st.Tickets[onlyTicket(t, c)].Items["a.example.com"]; it.Sending == nil || it.Reported != "" {
		t.Fatalf("a.example.com: %+v, want its report in doubt", it)
	}
	// While the platform cannot say what arrived, nothing is sent about
	// the item in doubt; the item that was never sent is.
	e.ps.Fail("/ticket/item/get/all", 1, http.StatusServiceUnavailable, "", "")
	if _, err := c.Report(t.Context()); err == nil || !strings.Contains(err.Error(), "in doubt") {
		t.Fatalf("Report = %v, want the failure to settle the report in doubt", err)
	}
	if r := e.reports(); len(r["a.example.com"]) != 1 || len(r["b.example.com"]) != 1 {
		t.Fatalf("reports %+v", r)
	}
	// The platform says the report arrived: recorded, not sent again.
	e.report(c)
	e.report(c)
	checkReportedOnce(t, e, c, map[string]string{"a.example.com": pstest.StatusProcessed, "b.example.com": pstest.StatusProcessed})
	if n := len(e.ps.Requested("/ticket/item/get/all")); n != 2 {
		t.Errorf("the items' state read %d times, want 2 (once failed, once settled)", n)
	}
}

// A change of status in doubt is settled against the status reported
// before: the platform still showing the old one means the new one did
// not arrive, and it is sent again; showing the new one means it did.
func TestChangedStatusInDoubt(t *testing.T) {
	for _, f := range []fault{drop, loseAnswer} {
		t.Run(map[fault]string{drop: "lost-on-the-way", loseAnswer: "answer-lost"}[f], func(t *testing.T) {
			e := newEnv(t, true)
			ft := &faultyTransport{fault: func(n int) fault {
				if n == 1 { // the second report: processed, after the release
					return f
				}
				return deliver
			}}
			c := e.connector(func(cfg *Config) {
				cfg.Review = ReviewAll
				cfg.HTTPClient = &http.Client{Transport: ft}
			})
			publish(t, e.ps, pstest.Ticket{FQDN: []string{"live.example.com"}})
			e.sync(c)
			e.receipt("dns", "")
			e.report(c) // held for review: unprocessed
			o := e.onlyOrder()
			if _, err := e.reg.Release(t.Context(), o.ID, "live.example.com", "checked", access.Principal{ID: "alice", Role: access.Reviewer}); err != nil {
				t.Fatal(err)
			}
			e.receipt("dns", "")
			if _, err := c.Report(t.Context()); !errors.Is(err, errNetwork) {
				t.Fatalf("Report = %v, want the network error", err)
			}
			e.report(c)
			e.report(c)
			r := e.reports()["live.example.com"]
			if len(r) != 2 || r[0].Status != pstest.StatusUnprocessed || r[1].Status != pstest.StatusProcessed {
				t.Fatalf("reports %+v, want unprocessed then processed", r)
			}
			if it := c.st.Tickets[onlyTicket(t, c)].Items["live.example.com"]; it.Reported != Processed || it.Sending != nil {
				t.Errorf("recorded %+v", it)
			}
		})
	}
}

func onlyTicket(t *testing.T, c *Connector) string {
	t.Helper()
	if len(c.st.Tickets) != 1 {
		t.Fatalf("%d tickets", len(c.st.Tickets))
	}
	for id := range c.st.Tickets {
		return id
	}
	return ""
}
