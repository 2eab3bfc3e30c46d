package main

// A fleet: three writ processes share one PostgreSQL database. An order
// accepted by one is enforced by all, in scope only; a node killed with
// SIGKILL and restarted catches up; every node serves the same ledger.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/internal/pgtest"
)

// awaitPolicy returns once the node enforces store version v or later.
func (n *node) awaitPolicy(v float64) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.policyVersion() < v {
		if time.Now().After(deadline) {
			n.t.Fatalf("the node enforces policy version %v 10s after version %v was recorded:\n%s", n.policyVersion(), v, n.logText())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startFleetNode(t *testing.T, dsn, name, dir, upstream string) *node {
	t.Helper()
	return startNode(t, dir, "--store", dsn, "--node", name, "--upstream", upstream, "--scope", "FR="+frClient+"/32")
}

func TestFleetSharesOrdersAndLedger(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.FreshDatabase(t)
	up := upstream(t)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	names := []string{"a", "b", "c"}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = startFleetNode(t, dsn, names[i], dirs[i], up.Addr())
	}
	a, b := nodes[0], nodes[1]

	// An order accepted by a is enforced by b and c, for France only.
	id := a.submit("motogpstream.me")
	v := a.policyVersion()
	for i, n := range nodes {
		n.awaitPolicy(v)
		if got := blockedBy(n.query(frClient, "www.motogpstream.me")); got != id {
			t.Errorf("node %s: a client in France was not blocked by order %s (%q)", names[i], id, got)
		}
		if got := answer(n.query(outsideClient, "www.motogpstream.me")); got != "198.51.100.7" {
			t.Errorf("node %s: a client outside France got %s, want the upstream's answer", names[i], got)
		}
	}

	// c dies without shutting down; meanwhile b amends the order.
	nodes[2].kill()
	var amended orderResp
	add := map[string]any{"add": []map[string]any{{"fqdn": "tarjetarojaenvivo.lat", "subdomains": true}}, "note": "ARCOM notice"}
	if code := b.api("POST", "/v1/orders/"+id+"/amendments", add, &amended); code != http.StatusOK {
		t.Fatalf("amend on b: %d %+v", code, amended)
	}
	v = b.policyVersion()
	a.awaitPolicy(v)
	if got := blockedBy(a.query(frClient, "tarjetarojaenvivo.lat")); got != id {
		t.Errorf("node a: the amendment made on b is not enforced (%q)", got)
	}

	// c comes back and enforces what it missed.
	c := startFleetNode(t, dsn, "c", dirs[2], up.Addr())
	nodes[2] = c
	c.awaitPolicy(v)
	if got := blockedBy(c.query(frClient, "tarjetarojaenvivo.lat")); got != id {
		t.Errorf("restarted node c: the amendment it missed is not enforced (%q)", got)
	}
	if got := answer(c.query(outsideClient, "tarjetarojaenvivo.lat")); got != "198.51.100.8" {
		t.Errorf("restarted node c: a client outside France got %s", got)
	}

	// Receipts name the node that enforced.
	var rc struct {
		Points []struct {
			Point string `json:"point"`
		} `json:"points"`
	}
	if code := a.api("GET", "/v1/orders/"+id+"/receipts", nil, &rc); code != http.StatusOK {
		t.Fatalf("receipts: %d", code)
	}
	seen := map[string]bool{}
	for _, p := range rc.Points {
		seen[p.Point] = true
	}
	for _, name := range names {
		if !seen["dns@"+name] {
			t.Errorf("no receipt from dns@%s among %v", name, rc.Points)
		}
	}

	// Every node's ledger holds every event and serves the same signed
	// checkpoint, which verifies from any of them.
	for _, n := range nodes {
		n.awaitLedger(id)
	}
	_, first := a.get("/v1/ledger/checkpoint")
	for i, n := range nodes[1:] {
		if _, cp := n.get("/v1/ledger/checkpoint"); cp != first {
			t.Errorf("node %s serves another checkpoint:\n%s\nnode a:\n%s", names[i+1], cp, first)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dirs[0], "ledger-key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if out, ok := n.verify("--key", strings.TrimSpace(string(pub))); !ok {
			t.Errorf("writ ledger verify against node %s failed:\n%s", names[i], out)
		}
	}
}

// A node that joins with a ledger of its own, signed by another key, is
// stopped with advice instead of serving a second history.
func TestFleetRefusesAForeignLedgerKey(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.FreshDatabase(t)
	up := upstream(t)
	startFleetNode(t, dsn, "a", t.TempDir(), up.Addr())
	// b ran alone before, on SQLite: its data directory has its own key.
	dir := t.TempDir()
	alone := startNode(t, dir, "--upstream", up.Addr())
	alone.kill()
	// Were it to start, the timeout would end it and fail the test.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, writBin, "serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", dir,
		"--store", dsn, "--node", "b", "--upstream", up.Addr()).CombinedOutput()
	if got := string(out); err == nil || ctx.Err() != nil || !strings.Contains(got, "not the one the nodes of this store sign with") || !strings.Contains(got, "ledger.db") {
		t.Fatalf("a node with a foreign ledger key: err %v, output:\n%s", err, out)
	}
	if got := string(out); !strings.Contains(got, filepath.Join(dir, "ledger-key")) {
		t.Errorf("the advice does not name the key file:\n%s", got)
	}
}

// BenchmarkFleetPropagation measures how long an order accepted by one
// node (its 201) takes to be enforced by another sharing the PostgreSQL
// store: the time until a client in France is refused by the second node.
// Run with a fixed count, e.g. -benchtime=200x; it reports p50 and p99.
func BenchmarkFleetPropagation(b *testing.B) {
	pg := pgtest.Start(b)
	dsn := pg.FreshDatabase(b)
	up := upstream(b)
	args := func(name string) []string {
		return []string{"--store", dsn, "--node", name, "--upstream", up.Addr(), "--scope", "FR=" + frClient + "/32"}
	}
	a := startNode(b, b.TempDir(), args("a")...)
	c := startNode(b, b.TempDir(), args("c")...)
	var lags []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("mirror-%d.example", i)
		id := a.submit(name)
		acked := time.Now()
		for blockedBy(c.query(frClient, name)) != id {
			if time.Since(acked) > 10*time.Second {
				b.Fatalf("order %s not enforced by the second node after 10s", id)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lags = append(lags, time.Since(acked))
	}
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "max-ms")
}
