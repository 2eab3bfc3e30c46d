package ledger_test

// Fuzz targets for the ledger's parsers and proofs, on a real tree built
// by the ledger itself:
//
//	go test ./ledger -run '^$' -fuzz '^FuzzVerify$' -fuzztime 30s
//
// Nothing here can forge an Ed25519 signature or a SHA-256 collision, so
// a mutated proof, checkpoint or entry that still verifies is a bug.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/order"
)

// fuzzSize is the number of entries of the fixture's tree; the checkpoint
// sizes are those at which it signed one.
const fuzzSize = 37

var fuzzCheckpointSizes = []uint64{0, 5, 16, 23, fuzzSize}

// eventLog is an in-memory order event log for the ledger to follow.
type eventLog struct {
	events []order.Event
	orders map[string]*order.Order
}

func (s *eventLog) add(n int) {
	t0 := time.Date(2025, 3, 28, 0, 0, 0, 0, time.UTC)
	for range n {
		seq := uint64(len(s.events) + 1)
		id := fmt.Sprintf("20250328-%04d", seq%4)
		if s.orders[id] == nil {
			s.orders[id] = &order.Order{
				ID:           id,
				Authority:    order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
				LegalBasis:   order.LegalBasis{Case: "Canal+ v. Cloudflare"},
				Jurisdiction: []string{"FR"},
				Effective:    t0,
				Expires:      t0.Add(240 * 24 * time.Hour),
				Received:     t0,
				Targets:      []order.Target{{FQDN: "motogpstream.me", Subdomains: true, State: order.TargetActive}},
			}
		}
		kind := []order.EventKind{order.EventReceived, order.EventAmended, order.EventSuspended, order.EventReinstated}[seq%4]
		s.events = append(s.events, order.Event{Seq: seq, OrderID: id, Kind: kind, Principal: "clerk",
			At: t0.Add(time.Duration(seq) * time.Second), Detail: fmt.Sprintf("event %d <&> \"quoted\" é", seq)})
	}
}

func (s *eventLog) EventsSince(_ context.Context, after uint64, limit int) ([]order.Event, error) {
	var out []order.Event
	for _, e := range s.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *eventLog) Order(_ context.Context, id string) (*order.Order, error) {
	o, ok := s.orders[id]
	if !ok {
		return nil, fmt.Errorf("order %s: not found", id)
	}
	return o.Clone(), nil
}

// fixture is a real ledger of fuzzSize entries, with what an honest
// verifier knows about it.
type fixture struct {
	l       *ledger.Ledger
	handler http.Handler
	entries [][]byte
	roots   [][]byte          // roots[m]: the root of the first m entries
	signed  map[uint64][]byte // a signed checkpoint at each size in fuzzCheckpointSizes
	signer  note.Signer
	vkey    string
}

func newFixture(f *testing.F) *fixture {
	f.Helper()
	ctx := context.Background()
	dir := f.TempDir()
	l, err := ledger.Open(ctx, dir, ledger.Options{DefaultOrigin: "writ.fuzz/ledger", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	fx := &fixture{l: l, handler: l.Handler(nil), signed: map[uint64][]byte{}, vkey: l.VerifierKey()}
	skey, err := os.ReadFile(filepath.Join(dir, ledger.KeyFile))
	if err != nil {
		f.Fatal(err)
	}
	if fx.signer, err = note.NewSigner(strings.TrimSpace(string(skey))); err != nil {
		f.Fatal(err)
	}
	src := &eventLog{orders: map[string]*order.Order{}}
	for _, size := range fuzzCheckpointSizes {
		src.add(int(size) - len(src.events))
		if _, err := l.Sync(ctx, src); err != nil {
			f.Fatal(err)
		}
		cp, signed := l.Checkpoint()
		if cp.Size != size {
			f.Fatalf("ledger size %d, want %d", cp.Size, size)
		}
		fx.signed[size] = signed
	}
	list, err := l.Entries(ctx, 0, fuzzSize)
	if err != nil || len(list) != fuzzSize {
		f.Fatalf("entries: %d, %v", len(list), err)
	}
	for _, e := range list {
		fx.entries = append(fx.entries, e.Data)
	}
	for m := 0; m <= fuzzSize; m++ {
		fx.roots = append(fx.roots, mth(fx.entries[:m]))
	}
	return fx
}

// mth is the RFC 6962 Merkle tree hash, computed here independently of
// the ledger's own incremental tree.
func mth(leaves [][]byte) []byte {
	h := rfc6962.DefaultHasher
	switch len(leaves) {
	case 0:
		return h.EmptyRoot()
	case 1:
		return h.HashLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return h.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
}

// mutate returns a copy of p changed as op and pos say, or nil when
// that would leave it unchanged.
func mutate(p [][]byte, op uint8, pos uint16) [][]byte {
	c := make([][]byte, len(p))
	for i := range p {
		c[i] = bytes.Clone(p[i])
	}
	switch op % 4 {
	case 0: // flip one bit
		if len(c) == 0 {
			return nil
		}
		bit := int(pos) % (len(c) * 8 * 32)
		c[bit/256][bit%256/8] ^= 1 << (bit % 8)
	case 1: // drop a hash
		if len(c) == 0 {
			return nil
		}
		c = slices.Delete(c, int(pos)%len(c), int(pos)%len(c)+1)
	case 2: // add a hash
		i := int(pos) % (len(c) + 1)
		c = slices.Insert(c, i, rfc6962.DefaultHasher.HashLeaf([]byte{byte(pos)}))
	case 3: // swap two hashes
		if len(c) < 2 {
			return nil
		}
		i := int(pos) % len(c)
		j := (i + 1 + int(pos>>8)%(len(c)-1)) % len(c)
		if bytes.Equal(c[i], c[j]) {
			return nil
		}
		c[i], c[j] = c[j], c[i]
	}
	return c
}

// FuzzProofs asks the ledger for inclusion and consistency proofs at
// fuzzed sizes: it refuses exactly the impossible ones, its proofs verify
// against roots computed independently, and no mutation of a proof
// verifies.
func FuzzProofs(f *testing.F) {
	fx := newFixture(f)
	f.Add(uint64(0), uint64(1), uint64(0), uint8(0), uint16(0))
	f.Add(uint64(16), uint64(37), uint64(23), uint8(1), uint16(3))
	f.Add(uint64(36), uint64(37), uint64(36), uint8(2), uint16(700))
	f.Add(uint64(5), uint64(23), uint64(5), uint8(3), uint16(258))
	f.Add(uint64(37), uint64(37), uint64(38), uint8(0), uint16(1))
	f.Add(^uint64(0), ^uint64(0), ^uint64(0)>>1, uint8(0), uint16(1))
	h := rfc6962.DefaultHasher
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, index, size, first uint64, op uint8, pos uint16) {
		p, err := fx.l.InclusionProof(ctx, index, size)
		if valid := index < size && size <= fuzzSize; valid != (err == nil) {
			t.Fatalf("InclusionProof(%d, %d) = %v; possible: %v", index, size, err, valid)
		}
		if err == nil {
			leaf := ledger.LeafHash(fx.entries[index])
			if err := proof.VerifyInclusion(h, index, size, leaf, p, fx.roots[size]); err != nil {
				t.Fatalf("inclusion proof of %d in %d does not verify: %v", index, size, err)
			}
			if m := mutate(p, op, pos); m != nil && proof.VerifyInclusion(h, index, size, leaf, m, fx.roots[size]) == nil {
				t.Fatalf("mutated inclusion proof of %d in %d (op %d at %d) verifies", index, size, op%4, pos)
			}
			if other := ledger.LeafHash(append(slices.Clone(fx.entries[index]), ' ')); proof.VerifyInclusion(h, index, size, other, p, fx.roots[size]) == nil {
				t.Fatalf("inclusion proof of %d in %d verifies another entry", index, size)
			}
		}

		p, err = fx.l.ConsistencyProof(ctx, first, size)
		if valid := first <= size && size <= fuzzSize; valid != (err == nil) {
			t.Fatalf("ConsistencyProof(%d, %d) = %v; possible: %v", first, size, err, valid)
		}
		if err == nil {
			if err := proof.VerifyConsistency(h, first, size, p, fx.roots[first], fx.roots[size]); err != nil {
				t.Fatalf("consistency proof %d → %d does not verify: %v", first, size, err)
			}
			if m := mutate(p, op, pos); m != nil && proof.VerifyConsistency(h, first, size, m, fx.roots[first], fx.roots[size]) == nil {
				t.Fatalf("mutated consistency proof %d → %d (op %d at %d) verifies", first, size, op%4, pos)
			}
			if 0 < first && first < size {
				forged := h.HashLeaf([]byte("another history"))
				if proof.VerifyConsistency(h, first, size, p, forged, fx.roots[size]) == nil {
					t.Fatalf("consistency proof %d → %d verifies from another root", first, size)
				}
			}
		}
	})
}

// FuzzProofRoutes sends fuzzed queries to the ledger's proof and entry
// routes: each answers 200 or a client error, never a server error, and
// a proof it serves verifies.
func FuzzProofRoutes(f *testing.F) {
	fx := newFixture(f)
	for _, q := range []string{
		"inclusion?index=3", "inclusion?index=3&size=16", "inclusion?leaf_hash=" + base64.URLEncoding.EncodeToString(ledger.LeafHash(fx.entries[7])),
		"inclusion?index=40", "inclusion?index=1&leaf_hash=x", "inclusion?index=-1", "inclusion", "consistency?first=5&second=23",
		"consistency?first=23&second=5", "consistency?first=0", "consistency?second=99", "entries?start=3&end=9", "entries?start=9&end=3",
		"entries?start=18446744073709551615", "consistency?first=%zz",
	} {
		f.Add(q)
	}
	h := rfc6962.DefaultHasher
	f.Fuzz(func(t *testing.T, q string) {
		route, query, _ := strings.Cut(q, "?")
		path := "/v1/ledger/proof/" + route
		if route == "entries" {
			path = "/v1/ledger/entries"
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawQuery = path, query
		rec := httptest.NewRecorder()
		fx.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s?%s: %d %s", path, query, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		switch route {
		case "inclusion":
			var r struct {
				Index    uint64   `json:"index"`
				TreeSize uint64   `json:"tree_size"`
				LeafHash []byte   `json:"leaf_hash"`
				Proof    [][]byte `json:"proof"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.TreeSize > fuzzSize || r.Index >= r.TreeSize || !bytes.Equal(r.LeafHash, ledger.LeafHash(fx.entries[r.Index])) {
				t.Fatalf("GET %s?%s served %+v", path, query, r)
			}
			if err := proof.VerifyInclusion(h, r.Index, r.TreeSize, r.LeafHash, r.Proof, fx.roots[r.TreeSize]); err != nil {
				t.Fatalf("GET %s?%s: the proof does not verify: %v", path, query, err)
			}
		case "consistency":
			var r struct {
				First  uint64   `json:"first"`
				Second uint64   `json:"second"`
				Proof  [][]byte `json:"proof"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.First > r.Second || r.Second > fuzzSize {
				t.Fatalf("GET %s?%s served %+v", path, query, r)
			}
			if err := proof.VerifyConsistency(h, r.First, r.Second, r.Proof, fx.roots[r.First], fx.roots[r.Second]); err != nil {
				t.Fatalf("GET %s?%s: the proof does not verify: %v", path, query, err)
			}
		}
	})
}

// FuzzParseCheckpoint checks that a checkpoint body either fails to
// parse or parses into a checkpoint whose own body parses back the same,
// and that a body without extension lines is its checkpoint's body.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("writ.fuzz/ledger\n37\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte("writ.fuzz/ledger\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension\n"))
	f.Add([]byte("writ.fuzz/ledger\n037\nAAAA\n"))
	f.Add([]byte("\n1\n\n"))
	f.Add([]byte("o\n18446744073709551616\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		cp, err := ledger.ParseCheckpoint(body)
		if err != nil {
			return
		}
		if cp.Origin == "" || len(cp.Root) != 32 || strings.Contains(cp.Origin, "\n") {
			t.Fatalf("ParseCheckpoint(%q) = %+v", body, cp)
		}
		again, err := ledger.ParseCheckpoint(cp.Body())
		if err != nil || again.Origin != cp.Origin || again.Size != cp.Size || !bytes.Equal(again.Root, cp.Root) {
			t.Fatalf("checkpoint %+v: its body %q parses as %+v, %v", cp, cp.Body(), again, err)
		}
		if bytes.Count(body, []byte("\n")) == 3 && !bytes.Equal(cp.Body(), body) {
			t.Fatalf("ParseCheckpoint(%q) accepted a non-canonical checkpoint, whose body is %q", body, cp.Body())
		}
	})
}

// FuzzOpenCheckpoint opens fuzzed notes with the fixture's key: whatever
// opens is one of the checkpoints the ledger signed, and nothing else.
func FuzzOpenCheckpoint(f *testing.F) {
	fx := newFixture(f)
	for _, signed := range fx.signed {
		f.Add(signed)
	}
	other, _, err := note.GenerateKey(rand.Reader, "writ.fuzz/ledger")
	if err == nil {
		if s, err := note.NewSigner(other); err == nil {
			if n, err := note.Sign(&note.Note{Text: "writ.fuzz/ledger\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"}, s); err == nil {
				f.Add(n)
			}
		}
	}
	v, err := note.NewVerifier(fx.vkey)
	if err != nil {
		f.Fatal(err)
	}
	genuine := map[string]bool{}
	for _, signed := range fx.signed {
		cp, err := ledger.OpenCheckpoint(signed, v)
		if err != nil {
			f.Fatal(err)
		}
		genuine[string(cp.Body())] = true
	}
	f.Fuzz(func(t *testing.T, signed []byte) {
		cp, err := ledger.OpenCheckpoint(signed, v)
		if err != nil {
			return
		}
		if !genuine[string(cp.Body())] {
			t.Fatalf("OpenCheckpoint accepted a checkpoint the ledger never signed: %+v from %q", cp, signed)
		}
	})
}

// FuzzParseLeaf checks that an entry parses only in its canonical form.
func FuzzParseLeaf(f *testing.F) {
	fx := newFixture(f)
	for _, e := range fx.entries[:8] {
		f.Add(e)
	}
	f.Add([]byte(`{"seq":1,"order_id":"x","at":"2025-03-28T00:00:01.000000000Z","kind":"received","extra":1}`))
	f.Add([]byte(`{"seq":1,"order_id":"x","at":"2025-03-28T00:00:01Z","kind":"received"}`))
	f.Add([]byte(`{"seq":1,"order_id":"<x>","at":"2025-03-28T00:00:01.000000000Z","kind":"received"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ledger.ParseLeaf(data)
		if err != nil {
			return
		}
		if !bytes.Equal(l.Marshal(), data) {
			t.Fatalf("ParseLeaf(%q) accepted a leaf whose canonical form is %q", data, l.Marshal())
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000000Z", l.At); err != nil {
			t.Fatalf("ParseLeaf(%q) accepted the time %q", data, l.At)
		}
	})
}

// roundTripper serves a client's requests from a handler in process.
type roundTripper func(*http.Request) *http.Response

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r), nil }

// The parts of the ledger API that FuzzVerify compares by meaning.
type (
	entriesPage struct {
		Entries []struct {
			Index uint64 `json:"index"`
			Leaf  string `json:"leaf"`
		} `json:"entries"`
	}
	consistencyAnswer struct {
		First  uint64   `json:"first"`
		Second uint64   `json:"second"`
		Proof  [][]byte `json:"proof"`
	}
)

// sameJSON reports whether a and b decode into equal values of T.
func sameJSON[T any](a, b []byte) bool {
	var x, y T
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// FuzzVerify runs the verifier of `writ ledger verify` against a server
// that lies: it changes one byte of the entries, of the checkpoint or of
// the consistency proof it serves, or signs checkpoints of any size and
// root with the log's own key. The verifier never panics, and it passes
// the log only when what it was served means what the honest server
// serves.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(uint8(0), uint32(0), byte(0), uint64(fuzzSize), []byte{}, true)
	f.Add(uint8(1), uint32(100), byte('x'), uint64(0), []byte{}, false)
	f.Add(uint8(1), uint32(2), byte('9'), uint64(0), []byte{}, true)
	f.Add(uint8(2), uint32(20), byte('1'), uint64(0), []byte{}, false)
	f.Add(uint8(3), uint32(30), byte('A'), uint64(0), []byte{}, true)
	f.Add(uint8(4), uint32(0), byte(0), uint64(16), []byte{}, true)
	f.Add(uint8(4), uint32(0), byte(0), uint64(fuzzSize+1), []byte{}, false)
	f.Add(uint8(4), uint32(0), byte(0), uint64(1)<<40, []byte{}, false)
	f.Add(uint8(4), uint32(0), byte(0), uint64(fuzzSize), []byte{1}, false)
	origin := fx.signer.Name()
	f.Fuzz(func(t *testing.T, mode uint8, pos uint32, val byte, size uint64, rootXor []byte, withSaved bool) {
		mode %= 5
		var served []byte // the mutated response, for the property check
		var honest []byte
		hostileRoot := bytes.Clone(fx.roots[fuzzSize])
		if size <= fuzzSize {
			hostileRoot = bytes.Clone(fx.roots[size])
		}
		for i := range min(len(rootXor), len(hostileRoot)) {
			hostileRoot[i] ^= rootXor[i]
		}
		client := &http.Client{Transport: roundTripper(func(r *http.Request) *http.Response {
			rec := httptest.NewRecorder()
			fx.handler.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			change := func() {
				if len(body) > 0 {
					honest = bytes.Clone(body)
					body[int(pos)%len(body)] = val
					served = bytes.Clone(body)
				}
			}
			switch {
			case mode == 1 && r.URL.Path == "/v1/ledger/entries",
				mode == 2 && r.URL.Path == "/v1/ledger/checkpoint",
				mode == 3 && r.URL.Path == "/v1/ledger/proof/consistency":
				change()
			case mode == 4 && r.URL.Path == "/v1/ledger/checkpoint":
				n, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(hostileRoot))}, fx.signer)
				if err != nil {
					t.Fatal(err)
				}
				body = n
			}
			resp := rec.Result()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			return resp
		})}
		opts := ledger.VerifyOptions{Client: client}
		if mode != 4 || size%2 == 0 {
			opts.Key = fx.vkey // pinned; otherwise taken from the server
		}
		if withSaved {
			opts.Saved = fx.signed[16]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := ledger.Verify(ctx, "http://writ.fuzz", opts)
		if mode == 0 {
			if err != nil || !r.OK() {
				t.Fatalf("the honest log does not verify: %v %+v", err, r)
			}
			return
		}
		if err != nil || !r.OK() {
			return
		}
		switch mode {
		case 1:
			if served != nil && !sameJSON[entriesPage](served, honest) {
				t.Fatalf("verified entries changed at byte %d to %q:\n%s", pos%uint32(len(served)), val, served)
			}
		case 2:
			if served != nil {
				v, _ := note.NewVerifier(fx.vkey)
				got, err := ledger.OpenCheckpoint(served, v)
				want, _ := ledger.OpenCheckpoint(honest, v)
				if err != nil || !bytes.Equal(got.Body(), want.Body()) {
					t.Fatalf("verified a changed checkpoint %q", served)
				}
			}
		case 3:
			if served != nil && !sameJSON[consistencyAnswer](served, honest) {
				t.Fatalf("verified a changed consistency proof %s", served)
			}
		case 4:
			if size > fuzzSize || !bytes.Equal(hostileRoot, fx.roots[size]) {
				t.Fatalf("verified a checkpoint of size %d and root %x that the log never had", size, hostileRoot)
			}
		}
	})
}
