package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/writ-project/writ/order"
)

// source is an in-memory event log. visible limits how many events it
// shows, so that a test can grow the log step by step.
type source struct {
	mu      sync.Mutex
	events  []order.Event
	orders  map[string]*order.Order
	visible int
	// beforeOrder runs at each Order call, to change the log under a sync.
	beforeOrder func(s *source, id string)
}

func newSource() *source { return &source{orders: map[string]*order.Order{}, visible: -1} }

func testOrder(id string) *order.Order {
	t0 := time.Date(2025, 3, 28, 0, 0, 0, 0, time.UTC)
	return &order.Order{
		ID:           id,
		Authority:    order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
		LegalBasis:   order.LegalBasis{Statute: "Code du sport L.333-10", Case: "Canal+ v. Cloudflare"},
		Jurisdiction: []string{"FR"},
		Effective:    t0,
		Expires:      t0.Add(240 * 24 * time.Hour),
		Received:     t0,
		Targets:      []order.Target{{FQDN: "motogpstream.me", Subdomains: true, State: order.TargetActive}},
	}
}

// add appends n events about order id (created if new).
func (s *source) add(id string, kinds ...order.EventKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orders[id] == nil {
		s.orders[id] = testOrder(id)
	}
	for _, k := range kinds {
		seq := uint64(len(s.events) + 1)
		s.events = append(s.events, order.Event{Seq: seq, OrderID: id, Kind: k, Principal: "someone@example.org",
			At: time.Date(2025, 3, 28, 0, 0, int(seq), 0, time.UTC), Detail: fmt.Sprintf("event %d", seq)})
	}
}

// grow fills the log with n events over a few orders.
func (s *source) grow(n int) {
	for i := len(s.events); i < n; i++ {
		s.add(fmt.Sprintf("2025032%d-0000000%d", i%3, i%3), order.EventReceived)
	}
}

func (s *source) EventsSince(_ context.Context, after uint64, limit int) ([]order.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.events
	if s.visible >= 0 && s.visible < len(all) {
		all = all[:s.visible]
	}
	var out []order.Event
	for _, e := range all {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *source) Order(_ context.Context, id string) (*order.Order, error) {
	if s.beforeOrder != nil {
		s.beforeOrder(s, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return nil, fmt.Errorf("order %s: not found", id)
	}
	return o.Clone(), nil
}

func openLedger(t testing.TB, dir string) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), dir, Options{DefaultOrigin: "writ.test/ledger", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// mth is the RFC 6962 Merkle tree hash, computed from its definition
// (section 2.1) as an independent reference.
func mth(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		s := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return s[:]
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		s := sha256.Sum256(slices.Concat([]byte{1}, mth(leaves[:k]), mth(leaves[k:])))
		return s[:]
	}
}

func (l *Ledger) allEntries(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	for start := uint64(0); start < l.Size(); start += MaxEntries {
		es, err := l.Entries(context.Background(), start, l.Size())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, e.Data)
		}
	}
	return out
}

// TestProofsAtManySizes checks, for trees of many sizes (0, 1, powers of
// two and their neighbours), that the signed root is the RFC 6962 tree
// hash of the entries, that every inclusion proof verifies with the
// library's verifier, and that consistency proofs between all pairs of
// sizes verify.
func TestProofsAtManySizes(t *testing.T) {
	ctx := context.Background()
	sizes := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024, 1025}
	src := newSource()
	src.grow(int(sizes[len(sizes)-1]))
	l := openLedger(t, t.TempDir())
	roots := map[uint64][]byte{}
	for _, n := range sizes {
		src.visible = int(n)
		if _, err := l.Sync(ctx, src); err != nil {
			t.Fatal(err)
		}
		cp, signed := l.Checkpoint()
		if cp.Size != n {
			t.Fatalf("after sync to %d events the checkpoint has size %d", n, cp.Size)
		}
		if _, err := OpenCheckpoint(signed, l.verifier); err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		entries := l.allEntries(t)
		if uint64(len(entries)) != n {
			t.Fatalf("size %d: %d entries", n, len(entries))
		}
		if want := mth(entries); !bytes.Equal(cp.Root, want) {
			t.Fatalf("size %d: root %x, RFC 6962 says %x", n, cp.Root, want)
		}
		roots[n] = cp.Root

		// Every index of small trees; for large ones the edges and a stride.
		for i := uint64(0); i < n; i++ {
			if n > 130 && i > 3 && i < n-3 && i%37 != 0 {
				continue
			}
			p, err := l.InclusionProof(ctx, i, n)
			if err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, n, err)
			}
			if err := proof.VerifyInclusion(hasher, i, n, LeafHash(entries[i]), p, cp.Root); err != nil {
				t.Fatalf("inclusion of %d in %d does not verify: %v", i, n, err)
			}
			if i == n/2 {
				// The wrong leaf must not verify with the same proof.
				if proof.VerifyInclusion(hasher, i, n, LeafHash([]byte("forged")), p, cp.Root) == nil {
					t.Fatalf("a forged leaf verified at %d in %d", i, n)
				}
			}
		}
		for _, m := range sizes {
			if m > n {
				break
			}
			p, err := l.ConsistencyProof(ctx, m, n)
			if err != nil {
				t.Fatalf("consistency %d→%d: %v", m, n, err)
			}
			if err := proof.VerifyConsistency(hasher, m, n, p, roots[m], cp.Root); err != nil {
				t.Fatalf("consistency %d→%d does not verify: %v", m, n, err)
			}
			if m > 0 && m < n && proof.VerifyConsistency(hasher, m, n, p, LeafHash([]byte("other")), cp.Root) == nil {
				t.Fatalf("consistency %d→%d verified against a wrong old root", m, n)
			}
		}
	}
	// Proofs beyond the tree are refused, not invented.
	if _, err := l.InclusionProof(ctx, 5, l.Size()+1); err == nil {
		t.Error("inclusion proof for a size beyond the tree")
	}
	if _, err := l.InclusionProof(ctx, l.Size(), l.Size()); err == nil {
		t.Error("inclusion proof for an index beyond the tree")
	}
	if _, err := l.ConsistencyProof(ctx, 10, 5); err == nil {
		t.Error("consistency proof from a larger to a smaller size")
	}
}

func TestSyncIsIdempotentAndResumes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := newSource()
	src.grow(1200) // more than one batch
	l := openLedger(t, dir)
	n, err := l.Sync(ctx, src)
	if err != nil || n != 1200 {
		t.Fatalf("Sync = %d, %v; want 1200", n, err)
	}
	if n, err := l.Sync(ctx, src); err != nil || n != 0 {
		t.Fatalf("second Sync = %d, %v; want 0", n, err)
	}
	cp1, _ := l.Checkpoint()
	l.Close()

	// Reopened, the ledger has the same tree and appends after it.
	src.grow(1300)
	l = openLedger(t, dir)
	if cp, _ := l.Checkpoint(); !sameCheckpoint(cp, cp1) {
		t.Fatalf("reopened checkpoint %+v, want %+v", cp, cp1)
	}
	if n, err := l.Sync(ctx, src); err != nil || n != 100 {
		t.Fatalf("Sync after reopen = %d, %v; want 100", n, err)
	}
	entries := l.allEntries(t)
	cp, _ := l.Checkpoint()
	if !bytes.Equal(cp.Root, mth(entries)) {
		t.Fatal("root after resuming is not the tree hash of the entries")
	}
	for i, e := range entries {
		leaf, err := ParseLeaf(e)
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Seq != uint64(i)+1 {
			t.Fatalf("entry %d holds seq %d", i, leaf.Seq)
		}
	}
	p, err := l.ConsistencyProof(ctx, cp1.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(hasher, cp1.Size, cp.Size, p, cp1.Root, cp.Root); err != nil {
		t.Fatalf("the tree after reopening does not extend the one before: %v", err)
	}
}

func TestSyncRefusesAGap(t *testing.T) {
	src := newSource()
	src.grow(3)
	src.events = append(src.events[:1], src.events[2:]...) // seq 2 vanished
	l := openLedger(t, t.TempDir())
	n, err := l.Sync(context.Background(), src)
	if err == nil || !strings.Contains(err.Error(), "seq 3 where 2 was due") {
		t.Fatalf("Sync over a gap = %d, %v", n, err)
	}
	if l.Size() != 1 {
		t.Fatalf("size %d after the gap, want 1 (the events before it)", l.Size())
	}
}

func TestLeafContent(t *testing.T) {
	ctx := context.Background()
	src := newSource()
	src.add("20250328-00000001", order.EventReceived, order.EventHeld)
	src.add("20250328-00000002", order.EventReceived)
	l := openLedger(t, t.TempDir())
	if _, err := l.Sync(ctx, src); err != nil {
		t.Fatal(err)
	}
	entries := l.allEntries(t)
	first, _ := ParseLeaf(entries[0])
	doc := order.PublicDocument(src.orders["20250328-00000001"])
	sum := sha256.Sum256(doc)
	want := Leaf{Seq: 1, OrderID: "20250328-00000001", At: "2025-03-28T00:00:01.000000000Z", Kind: "received", Detail: "event 1",
		DocumentSHA256: hex.EncodeToString(sum[:]), DocumentSeq: 2}
	if first != want {
		t.Fatalf("leaf 0 = %+v\nwant %+v", first, want)
	}
	for _, e := range entries {
		if bytes.Contains(e, []byte("someone@example.org")) {
			t.Fatalf("an entry carries the principal: %s", e)
		}
	}
	third, _ := ParseLeaf(entries[2])
	if third.DocumentSeq != 3 {
		t.Errorf("leaf 2 document seq %d, want 3", third.DocumentSeq)
	}

	// The public document names its fields: nothing else of an order
	// reaches the ledger.
	if !bytes.HasPrefix(doc, []byte(`{"id":"20250328-00000001","authority":{"id":"tj-paris"`)) {
		t.Errorf("public document %s", doc)
	}

	// Only the canonical form of a leaf parses.
	for _, bad := range []string{
		` {"seq":1,"order_id":"x","at":"2025-03-28T00:00:01.000000000Z","kind":"received"}`,
		`{"order_id":"x","seq":1,"at":"2025-03-28T00:00:01.000000000Z","kind":"received"}`,
		`{"seq":1,"order_id":"x","at":"2025-03-28T00:00:01Z","kind":"received"}`,
		`{"seq":1,"order_id":"x","at":"2025-03-28T00:00:01.000000000Z","kind":"received","principal":"p"}`,
	} {
		if _, err := ParseLeaf([]byte(bad)); err == nil {
			t.Errorf("ParseLeaf accepted %s", bad)
		}
	}
}

// An order that changes while its document is read gets the hash of the
// document after its latest event, not one that claims an older state.
func TestDocumentHashFollowsTheEvent(t *testing.T) {
	ctx := context.Background()
	src := newSource()
	src.add("20250328-00000001", order.EventReceived)
	revoked := false
	src.beforeOrder = func(s *source, id string) {
		if revoked {
			return
		}
		revoked = true
		// A revocation commits between reading the events and the document.
		s.mu.Lock()
		o := s.orders[id]
		o.Disposition = order.Revoked
		s.mu.Unlock()
		s.add(id, order.EventRevoked)
	}
	l := openLedger(t, t.TempDir())
	if _, err := l.Sync(ctx, src); err != nil {
		t.Fatal(err)
	}
	entries := l.allEntries(t)
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	sum := sha256.Sum256(order.PublicDocument(src.orders["20250328-00000001"]))
	for i, e := range entries {
		leaf, _ := ParseLeaf(e)
		if leaf.DocumentSeq != 2 || leaf.DocumentSHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("entry %d: document seq %d hash %s; want the revoked document after seq 2", i, leaf.DocumentSeq, leaf.DocumentSHA256)
		}
	}
}

// An order that never stops changing does not hold the ledger back: its
// entries are recorded without a document hash.
func TestRestlessOrderIsRecordedWithoutDocument(t *testing.T) {
	src := newSource()
	src.add("20250328-00000001", order.EventReceived)
	src.beforeOrder = func(s *source, id string) {
		if len(s.events) < 10 {
			s.add(id, order.EventHeld)
		}
	}
	l := openLedger(t, t.TempDir())
	if _, err := l.Sync(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	entries := l.allEntries(t)
	if len(entries) != len(src.events) {
		t.Fatalf("%d entries for %d events", len(entries), len(src.events))
	}
	var without int
	for _, e := range entries {
		if leaf, _ := ParseLeaf(e); leaf.DocumentSHA256 == "" {
			without++
		}
	}
	if without == 0 {
		t.Fatal("every entry claims a document hash although the order changed at every read")
	}
}

func TestCheckpointFormat(t *testing.T) {
	l := openLedger(t, t.TempDir())
	cp, signed := l.Checkpoint()
	lines := strings.Split(string(signed), "\n")
	if lines[0] != "writ.test/ledger" || lines[1] != "0" || lines[2] != "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" || lines[3] != "" ||
		!strings.HasPrefix(lines[4], "— writ.test/ledger ") {
		t.Fatalf("checkpoint of the empty tree:\n%s", signed)
	}
	if cp.Size != 0 {
		t.Fatalf("size %d", cp.Size)
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(signed, v); err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(signed, []byte("\n0\n"), []byte("\n1\n"), 1)
	if _, err := OpenCheckpoint(altered, v); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Errorf("altered checkpoint: %v", err)
	}
	_, other, _ := note.GenerateKey(randReader{}, "writ.test/ledger")
	ov, _ := note.NewVerifier(other)
	if _, err := OpenCheckpoint(signed, ov); err == nil {
		t.Error("checkpoint verified with another key of the same name")
	}
	for _, bad := range []string{"o\n1\n", "o\n01\nAAAA\n", "o\n1\nnot-base64\n", "o\n1\n" + strings.Repeat("A", 44)} {
		if _, err := ParseCheckpoint([]byte(bad)); err == nil {
			t.Errorf("ParseCheckpoint accepted %q", bad)
		}
	}
	c, err := ParseCheckpoint([]byte("o\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension line\n"))
	if err != nil || c.Size != 3 {
		t.Errorf("checkpoint with an extension line: %+v, %v", c, err)
	}
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return len(p), nil
}

func TestKeyIsKeptAndNamesTheLog(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir)
	vkey := l.VerifierKey()
	l.Close()
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	pub, _ := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if strings.TrimSpace(string(pub)) != vkey {
		t.Errorf("public key file %q, want %q", pub, vkey)
	}
	// A later start with another default origin (another port) keeps the
	// key and its name.
	l2, err := Open(context.Background(), dir, Options{DefaultOrigin: "127.0.0.1:9999/ledger"})
	if err != nil {
		t.Fatal(err)
	}
	if l2.VerifierKey() != vkey || l2.Origin() != "writ.test/ledger" {
		t.Errorf("reopened with key %q origin %q", l2.VerifierKey(), l2.Origin())
	}
	l2.Close()
	// A configured origin that contradicts the key is refused.
	_, err = Open(context.Background(), dir, Options{Origin: "elsewhere.example/ledger"})
	if err == nil || !strings.Contains(err.Error(), "writ.test/ledger") {
		t.Errorf("contradicting origin: %v", err)
	}
	if got := DefaultOrigin("https://writ.isp.example/"); got != "writ.isp.example/ledger" {
		t.Errorf("DefaultOrigin = %q", got)
	}
	if _, err := Open(context.Background(), t.TempDir(), Options{Origin: "has space"}); err == nil {
		t.Error("an origin with a space was accepted")
	}
}

// serve runs the ledger's handler on a test server.
func serve(t *testing.T, l *Ledger, src Documents) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(l.Handler(src))
	t.Cleanup(ts.Close)
	return ts
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	src := newSource()
	src.grow(10)
	l := openLedger(t, t.TempDir())
	if _, err := l.Sync(ctx, src); err != nil {
		t.Fatal(err)
	}
	ts := serve(t, l, src)
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	entries := l.allEntries(t)
	hash := LeafHash(entries[4])
	for _, tc := range []struct {
		path    string
		status  int
		contain string
	}{
		{"/v1/ledger/checkpoint", 200, "writ.test/ledger\n10\n"},
		{"/v1/ledger/key", 200, "writ.test/ledger+"},
		{"/v1/ledger/entries?start=2&end=4", 200, `"index":3`},
		{"/v1/ledger/entries?start=5&end=2", 400, "start 5 is after end 2"},
		{"/v1/ledger/entries?start=x", 400, `start: \"x\"`},
		{"/v1/ledger/proof/inclusion?index=4", 200, `"tree_size":10`},
		{"/v1/ledger/proof/inclusion?leaf_hash=" + hex.EncodeToString(hash), 200, `"index":4`},
		{"/v1/ledger/proof/inclusion?leaf_hash=" + hex.EncodeToString(LeafHash([]byte("no"))), 404, "not in the ledger"},
		{"/v1/ledger/proof/inclusion?index=10", 400, "not below tree size 10"},
		{"/v1/ledger/proof/inclusion", 400, "exactly one of index and leaf_hash"},
		{"/v1/ledger/proof/consistency?first=3&second=10", 200, `"first":3`},
		{"/v1/ledger/proof/consistency?first=3&second=11", 400, "beyond"},
		{"/v1/ledger/documents/20250320-00000000", 200, `{"id":"20250320-00000000"`},
		{"/v1/ledger/documents/nope", 404, "not found"},
	} {
		status, body := get(tc.path)
		if status != tc.status || !strings.Contains(body, tc.contain) {
			t.Errorf("GET %s = %d %s; want %d containing %q", tc.path, status, body, tc.status, tc.contain)
		}
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	src := newSource()
	src.grow(40)
	dir := t.TempDir()
	l := openLedger(t, dir)
	if _, err := l.Sync(ctx, src); err != nil {
		t.Fatal(err)
	}
	ts := serve(t, l, nil)
	honest, err := Verify(ctx, ts.URL, VerifyOptions{})
	if err != nil || !honest.OK() || honest.Entries != 40 || !honest.KeyFromServer {
		t.Fatalf("honest log: %+v, %v", honest, err)
	}
	saved := honest.Signed

	// Growth is fine, with the saved checkpoint and a pinned key.
	src.grow(50)
	if _, err := l.Sync(ctx, src); err != nil {
		t.Fatal(err)
	}
	grown, err := Verify(ctx, ts.URL, VerifyOptions{Key: l.VerifierKey(), Saved: saved})
	if err != nil || !grown.OK() || grown.SavedSize != 40 {
		t.Fatalf("grown log: %+v, %v", grown, err)
	}

	tamper := func(t *testing.T, stmts ...string) {
		t.Helper()
		db, err := sql.Open("sqlite", filepath.Join(dir, DatabaseFile))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect := func(t *testing.T, r *Report, err error, want ...string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if r.OK() {
			t.Fatal("tampered log verified")
		}
		all := strings.Join(r.Problems, "\n")
		for _, w := range want {
			if !strings.Contains(all, w) {
				t.Errorf("problems do not say %q:\n%s", w, all)
			}
		}
	}
	backup := func(t *testing.T) func() {
		// Undo the tampering for the next case by restoring the leaves.
		rows := l.allEntries(t)
		return func() {
			var stmts []string
			stmts = append(stmts, "DELETE FROM leaves")
			for i, r := range rows {
				stmts = append(stmts, fmt.Sprintf("INSERT INTO leaves(idx, data) VALUES (%d, x'%x')", i, r))
			}
			tamper(t, stmts...)
		}
	}

	t.Run("edited entry", func(t *testing.T) {
		defer backup(t)()
		tamper(t, `UPDATE leaves SET data = replace(data, '"event 8"', '"event 8 (edited)"') WHERE idx = 7`)
		r, err := Verify(ctx, ts.URL, VerifyOptions{Saved: saved})
		expect(t, r, err, "first entry that differs from the signed tree is entry 7 (seq 8", "it was changed after it was logged",
			"the log was rewritten: its first 40 entries no longer hash to the saved checkpoint")
	})
	t.Run("dropped entry", func(t *testing.T) {
		defer backup(t)()
		tamper(t, `DELETE FROM leaves WHERE idx = 12`)
		r, err := Verify(ctx, ts.URL, VerifyOptions{})
		expect(t, r, err, "entry 12 is missing: the server skipped from entry 11 to 13")
	})
	t.Run("dropped and renumbered", func(t *testing.T) {
		defer backup(t)()
		tamper(t, `DELETE FROM leaves WHERE idx = 12`, `UPDATE leaves SET idx = idx - 1 WHERE idx > 12`)
		r, err := Verify(ctx, ts.URL, VerifyOptions{})
		expect(t, r, err, "entry 12 holds seq 14 where seq 13 was due: the event with seq 13 is not in the log (removed)")
	})
	t.Run("swapped entries", func(t *testing.T) {
		defer backup(t)()
		tamper(t, `UPDATE leaves SET idx = -1 WHERE idx = 20`, `UPDATE leaves SET idx = 20 WHERE idx = 21`, `UPDATE leaves SET idx = 21 WHERE idx = -1`)
		r, err := Verify(ctx, ts.URL, VerifyOptions{})
		expect(t, r, err, "entries 20 and 21 are swapped", "first entry that differs from the signed tree is entry 20", "removed, added or reordered")
	})
	t.Run("forked checkpoint", func(t *testing.T) {
		// The same key signs a log rebuilt from a rewritten history.
		forkDir := t.TempDir()
		for _, f := range []string{KeyFile, PublicKeyFile} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			os.WriteFile(filepath.Join(forkDir, f), b, 0o600)
		}
		forked := newSource()
		forked.grow(50)
		forked.events[3].Detail = "rewritten"
		fl := openLedger(t, forkDir)
		if _, err := fl.Sync(ctx, forked); err != nil {
			t.Fatal(err)
		}
		fs := serve(t, fl, nil)
		alone, err := Verify(ctx, fs.URL, VerifyOptions{Key: l.VerifierKey()})
		if err != nil || !alone.OK() {
			t.Fatalf("without a saved checkpoint a fork is self-consistent: %+v, %v", alone, err)
		}
		r, err := Verify(ctx, fs.URL, VerifyOptions{Key: l.VerifierKey(), Saved: saved})
		expect(t, r, err, "fork: the server's checkpoint (size 50", "does not extend the saved checkpoint (size 40", "the log was rewritten")
	})
	t.Run("shrunk log", func(t *testing.T) {
		r, err := Verify(ctx, ts.URL, VerifyOptions{Saved: grown.Signed})
		if err != nil || !r.OK() {
			t.Fatalf("same size: %+v %v", r, err)
		}
		small := t.TempDir()
		for _, f := range []string{KeyFile, PublicKeyFile} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			os.WriteFile(filepath.Join(small, f), b, 0o600)
		}
		sl := openLedger(t, small)
		src.visible = 10
		defer func() { src.visible = -1 }()
		if _, err := sl.Sync(ctx, src); err != nil {
			t.Fatal(err)
		}
		r, err = Verify(ctx, serve(t, sl, nil).URL, VerifyOptions{Saved: grown.Signed})
		expect(t, r, err, "the log shrank: the saved checkpoint has 50 entries and the server's has 10")
	})
	t.Run("another key", func(t *testing.T) {
		_, other, _ := note.GenerateKey(randReader{}, l.Origin())
		r, err := Verify(ctx, ts.URL, VerifyOptions{Key: other})
		expect(t, r, err, "the server's checkpoint: checkpoint is not signed by the key writ.test/ledger")
	})
}
