package main

// End-to-end tests of the transparency ledger and the public record:
// writ serve runs as a real process, `writ ledger verify` runs as a real
// command against it, and the ledger's storage is tampered with on disk
// between runs, as an operator rewriting history would.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/store"
)

// get fetches a URL of the node and returns the status and body.
func (n *node) get(path string) (int, string) {
	n.t.Helper()
	resp, err := http.Get(n.httpURL + path)
	if err != nil {
		n.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ledgerSize is the tree size of the node's latest checkpoint.
func (n *node) ledgerSize() uint64 {
	n.t.Helper()
	_, cp := n.get("/v1/ledger/checkpoint")
	lines := strings.Split(cp, "\n")
	if len(lines) < 3 {
		n.t.Fatalf("checkpoint: %q", cp)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		n.t.Fatalf("checkpoint size %q", lines[1])
	}
	return size
}

// lastSeq is the seq of the latest event of the given orders.
func (n *node) lastSeq(ids ...string) uint64 {
	n.t.Helper()
	var last uint64
	for _, id := range ids {
		var o struct {
			Events []struct {
				Seq uint64 `json:"seq"`
			} `json:"events"`
		}
		if code := n.api("GET", "/v1/orders/"+id, nil, &o); code != http.StatusOK {
			n.t.Fatalf("GET order %s: %d", id, code)
		}
		for _, e := range o.Events {
			last = max(last, e.Seq)
		}
	}
	return last
}

// awaitLedger returns once the ledger holds every event of the given
// orders: the ledger follows the store on its own, a moment after the
// API has answered.
func (n *node) awaitLedger(ids ...string) {
	n.t.Helper()
	last := n.lastSeq(ids...)
	deadline := time.Now().Add(10 * time.Second)
	for n.ledgerSize() < last {
		if time.Now().After(deadline) {
			n.t.Fatalf("the ledger has %d entries 10s after event %d was recorded", n.ledgerSize(), last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verify runs `writ ledger verify` against the node and returns its
// output and whether it passed.
func (n *node) verify(args ...string) (string, bool) {
	n.t.Helper()
	cmd := exec.Command(writBin, append([]string{"ledger", "verify", "--from", n.httpURL}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		n.t.Fatalf("running writ ledger verify: %v", err)
	}
	return string(out), err == nil
}

// submit records an order blocking the given names and returns its id.
func (n *node) submit(names ...string) string {
	n.t.Helper()
	o := sampleOrder(n.t, time.Now().Add(24*time.Hour))
	var targets []map[string]any
	for _, name := range names {
		targets = append(targets, map[string]any{"fqdn": name, "subdomains": true})
	}
	o["targets"] = targets
	var got orderResp
	if code := n.api("POST", "/v1/orders", o, &got); code != http.StatusCreated {
		n.t.Fatalf("submit: %d %+v", code, got)
	}
	return got.ID
}

// copyDir copies the regular files of a data directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// tamper runs SQL on a stopped node's ledger database.
func tamper(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, ledger.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// rewritten is the store's event log with the detail of one event
// changed: the history a dishonest operator would rather have.
type rewritten struct {
	*store.SQLite
	seq    uint64
	detail string
}

func (r rewritten) EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error) {
	evs, err := r.SQLite.EventsSince(ctx, after, limit)
	for i := range evs {
		if evs[i].Seq == r.seq {
			evs[i].Detail = r.detail
		}
	}
	return evs, err
}

// forkLedger replaces the ledger of a stopped node's data directory by one
// rebuilt, with the same signing key, from a history in which event seq
// says something else.
func forkLedger(t *testing.T, dir string, seq uint64) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rebuild := t.TempDir()
	for _, f := range []string{ledger.KeyFile, ledger.PublicKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rebuild, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ledger.Open(ctx, rebuild, ledger.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx, rewritten{st, seq, "nothing happened here"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, ledger.DatabaseFile+suffix))
	}
	b, err := os.ReadFile(filepath.Join(rebuild, ledger.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ledger.DatabaseFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLedgerVerifyEndToEnd(t *testing.T) {
	up := upstream(t)
	args := []string{"--upstream", up.Addr(), "--scope", "FR=" + frClient + "/32"}
	dir := t.TempDir()
	n := startNode(t, dir, args...)

	// Some history: three orders, one of them revoked.
	a := n.submit("motogpstream.me")
	b := n.submit("tarjetarojaenvivo.lat", "livetv821.me")
	c := n.submit("mirror1.example.com")
	var revoked orderResp
	if code := n.api("POST", "/v1/orders/"+b+"/revoke", map[string]string{"reason": "judgment overturned"}, &revoked); code != http.StatusOK {
		t.Fatalf("revoke: %d %+v", code, revoked)
	}
	n.awaitLedger(a, b, c)

	// The honest log verifies; its checkpoint is saved.
	saved := filepath.Join(t.TempDir(), "checkpoint")
	out, ok := n.verify("--save", saved)
	if !ok || !strings.Contains(out, "VERIFIED") || !strings.Contains(out, "key the server gave") {
		t.Fatalf("honest log:\n%s", out)
	}
	savedSize := n.ledgerSize()

	// It grows; the next verification, with the operator's published key
	// pinned, proves the new log extends the saved checkpoint.
	d := n.submit("mirror2.example.com")
	n.awaitLedger(d)
	pub := filepath.Join(dir, ledger.PublicKeyFile)
	out, ok = n.verify("--key", pub, "--checkpoint", saved)
	if !ok || !strings.Contains(out, fmt.Sprintf("extends the checkpoint saved in %s (size %d)", saved, savedSize)) || !strings.Contains(out, "pinned key") {
		t.Fatalf("grown log:\n%s", out)
	}
	if n.ledgerSize() <= savedSize {
		t.Fatal("the ledger did not grow")
	}

	// Killed the moment an order is acknowledged, before the ledger may
	// have followed, and restarted: the ledger catches up before the
	// server is ready, and still extends the saved checkpoint.
	e := n.submit("mirror3.example.com")
	n.kill()
	n = startNode(t, dir, args...)
	if size, last := n.ledgerSize(), n.lastSeq(e); size < last {
		t.Fatalf("after kill -9 the ready server's ledger has %d entries; event %d was acknowledged before the kill", size, last)
	}
	if out, ok := n.verify("--key", pub, "--checkpoint", saved); !ok {
		t.Fatalf("after kill -9 and restart:\n%s", out)
	}
	n.kill()

	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []string
	}{
		{"edited entry", func(t *testing.T, dir string) {
			tamper(t, dir, `UPDATE leaves SET data = replace(data, '"kind":"received"', '"kind":"rejected"') WHERE idx = 0`)
		}, []string{"FAILED", "first entry that differs from the signed tree is entry 0 (seq 1", "it was changed after it was logged",
			"the log was rewritten: its first"}},
		{"dropped entry", func(t *testing.T, dir string) {
			tamper(t, dir, `DELETE FROM leaves WHERE idx = 2`)
		}, []string{"FAILED", "entry 2 is missing: the server skipped from entry 1 to 3"}},
		{"dropped entry, renumbered", func(t *testing.T, dir string) {
			tamper(t, dir, `DELETE FROM leaves WHERE idx = 2`, `UPDATE leaves SET idx = idx - 1 WHERE idx > 2`)
		}, []string{"FAILED", "entry 2 holds seq 4 where seq 3 was due: the event with seq 3 is not in the log (removed)"}},
		{"swapped entries", func(t *testing.T, dir string) {
			tamper(t, dir, `UPDATE leaves SET idx = -1 WHERE idx = 1`, `UPDATE leaves SET idx = 1 WHERE idx = 2`, `UPDATE leaves SET idx = 2 WHERE idx = -1`)
		}, []string{"FAILED", "entries 1 and 2 are swapped: entry 1 holds seq 3 and entry 2 holds seq 2"}},
		{"forked checkpoint", func(t *testing.T, dir string) {
			forkLedger(t, dir, 1)
		}, []string{"FAILED", "fork: the server's checkpoint", fmt.Sprintf("does not extend the saved checkpoint (size %d", savedSize),
			"the log was rewritten"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseDir := t.TempDir()
			copyDir(t, dir, caseDir)
			tc.change(t, caseDir)
			n := startNode(t, caseDir, args...)
			out, ok := n.verify("--key", pub, "--checkpoint", saved, "--save", filepath.Join(caseDir, "not-saved"))
			t.Logf("writ ledger verify says:\n%s", out)
			if ok {
				t.Fatalf("verify passed on a tampered log:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("verify output lacks %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(filepath.Join(caseDir, "not-saved")); !errors.Is(err, os.ErrNotExist) {
				t.Error("a checkpoint of a failed verification was saved")
			}
			if tc.name == "forked checkpoint" {
				// The fork is consistent with itself: only the checkpoint
				// saved earlier exposes it.
				if out, ok := n.verify("--key", pub); !ok {
					t.Errorf("the forked log alone should verify:\n%s", out)
				}
			}
		})
	}
}

// The public record is served by the real server in front of the API:
// pages, report and exports, and the API's own routes still answer.
func TestPublicRecordServed(t *testing.T) {
	up := upstream(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")
	id := n.submit("motogpstream.me")
	n.awaitLedger(id)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/", []string{"Blocking orders on record", "Tribunal judiciaire de Paris", "motogpstream.me (and subdomains)"}},
		{"/?q=motogp", []string{`href="/orders/` + id + `"`}},
		{"/orders/" + id, []string{"Tribunal judiciaire de Paris", "Canal&#43; v. Cloudflare", "motogpstream.me (and subdomains)", "proof of entry 0"}},
		{"/v1/report", []string{`"orders": 1`, `"median_seconds_to_enforce": 0`}},
		{"/v1/report?format=csv", []string{"figure,dimension,key,name,value", "orders,authority,tj-paris"}},
		{"/v1/orders/" + id + "/lumen", []string{`"type":"CourtOrder"`, `"name":"issuing_court"`, `"url":"*.motogpstream.me"`}},
		{"/v1/orders/" + id + "/dsa", []string{`"decision_ground":"DECISION_GROUND_ILLEGAL_CONTENT"`, `"territorial_scope":["FR"]`, `"puid":"` + id + `"`}},
		{"/v1/ledger/documents/" + id, []string{`{"id":"` + id + `"`}},
		{"/v1/ledger/proof/inclusion?index=0", []string{`"tree_size"`}},
		{"/v1/orders/" + id, []string{`"id": "` + id + `"`}},
		{"/healthz", []string{"policy_version"}},
	} {
		code, body := n.get(tc.path)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", tc.path, code, body)
			continue
		}
		compact := body
		if strings.HasPrefix(tc.path, "/v1/orders/"+id+"/") {
			var v any
			json.Unmarshal([]byte(body), &v)
			b, _ := json.Marshal(v)
			compact = string(b)
		}
		for _, w := range tc.want {
			if !strings.Contains(compact, w) {
				t.Errorf("GET %s lacks %q:\n%s", tc.path, w, body)
			}
		}
	}
	// The ledger's document of the order is what its entries hash.
	_, entries := n.get("/v1/ledger/entries")
	_, doc := n.get("/v1/ledger/documents/" + id)
	var page struct {
		Entries []struct{ Leaf string } `json:"entries"`
	}
	json.Unmarshal([]byte(entries), &page)
	last, err := ledger.ParseLeaf([]byte(page.Entries[len(page.Entries)-1].Leaf))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", sha256Sum([]byte(doc))) != last.DocumentSHA256 {
		t.Errorf("the served document does not hash to the ledger's %s", last.DocumentSHA256)
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
