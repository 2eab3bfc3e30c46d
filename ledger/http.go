package ledger

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/transparency-dev/merkle/compact"

	"github.com/writ-project/writ/order"
)

// Documents gives the current state of an order, for the document route;
// store.SQLite is one.
type Documents interface {
	Order(ctx context.Context, id string) (*order.Order, error)
}

// Wire formats of the HTTP API, shared with the verifier.
type (
	entriesJSON struct {
		TreeSize uint64      `json:"tree_size"`
		Entries  []entryJSON `json:"entries"`
	}
	entryJSON struct {
		Index uint64 `json:"index"`
		// Leaf is the entry's bytes, the canonical JSON of a Leaf, as a
		// string: exactly what the tree hashes.
		Leaf string `json:"leaf"`
	}
	inclusionJSON struct {
		Index    uint64   `json:"index"`
		TreeSize uint64   `json:"tree_size"`
		LeafHash []byte   `json:"leaf_hash"`
		Proof    [][]byte `json:"proof"`
	}
	consistencyJSON struct {
		First  uint64   `json:"first"`
		Second uint64   `json:"second"`
		Proof  [][]byte `json:"proof"`
	}
)

// Handler serves the ledger under /v1/ledger/ (see README.md). docs, if
// not nil, serves the public documents whose hashes the entries record.
func (l *Ledger) Handler(docs Documents) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ledger/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		_, signed := l.Checkpoint()
		w.Header().Set("Cache-Control", "no-cache")
		writeText(w, signed)
	})
	mux.HandleFunc("GET /v1/ledger/key", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, []byte(l.VerifierKey()+"\n"))
	})
	mux.HandleFunc("GET /v1/ledger/entries", l.serveEntries)
	mux.HandleFunc("GET /v1/ledger/proof/inclusion", l.serveInclusion)
	mux.HandleFunc("GET /v1/ledger/proof/consistency", l.serveConsistency)
	if docs != nil {
		mux.HandleFunc("GET /v1/ledger/documents/{id}", func(w http.ResponseWriter, r *http.Request) {
			o, err := docs.Order(r.Context(), r.PathValue("id"))
			if err != nil {
				// Whatever the cause, the document is not available; the
				// store's message names the order.
				writeError(w, http.StatusNotFound, err.Error())
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Write(order.PublicDocument(o))
		})
	}
	return mux
}

func (l *Ledger) serveEntries(w http.ResponseWriter, r *http.Request) {
	size := l.Size()
	start, err := uintParam(r, "start", 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	end, err := uintParam(r, "end", size)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if start > end {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("start %d is after end %d", start, end))
		return
	}
	entries, err := l.Entries(r.Context(), start, end)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := entriesJSON{TreeSize: size, Entries: make([]entryJSON, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, entryJSON{Index: e.Index, Leaf: string(e.Data)})
	}
	writeJSON(w, out)
}

func (l *Ledger) serveInclusion(w http.ResponseWriter, r *http.Request) {
	size, err := uintParam(r, "size", l.Size())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	var (
		index    uint64
		leafHash []byte
	)
	switch {
	case q.Has("index") == q.Has("leaf_hash"):
		writeError(w, http.StatusBadRequest, "give exactly one of index and leaf_hash")
		return
	case q.Has("index"):
		if index, err = uintParam(r, "index", 0); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	default:
		if leafHash, err = parseHash(q.Get("leaf_hash")); err != nil {
			writeError(w, http.StatusBadRequest, "leaf_hash: "+err.Error())
			return
		}
		if index, err = l.LeafIndex(r.Context(), leafHash); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, ErrNotFound) {
				status = http.StatusNotFound
			}
			writeError(w, status, err.Error())
			return
		}
	}
	p, err := l.InclusionProof(r.Context(), index, size)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if leafHash == nil {
		hashes, err := l.nodeHashes(r.Context(), proofLeaf(index))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		leafHash = hashes[0]
	}
	writeJSON(w, inclusionJSON{Index: index, TreeSize: size, LeafHash: leafHash, Proof: p})
}

func (l *Ledger) serveConsistency(w http.ResponseWriter, r *http.Request) {
	cur := l.Size()
	first, err := uintParam(r, "first", 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	second, err := uintParam(r, "second", cur)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := l.ConsistencyProof(r.Context(), first, second)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, consistencyJSON{First: first, Second: second, Proof: p})
}

// proofLeaf is the node list naming one leaf.
func proofLeaf(index uint64) []compact.NodeID { return []compact.NodeID{compact.NewNodeID(0, index)} }

// parseHash accepts a SHA-256 hash in hex or in base64 (standard or URL
// alphabet), as clients find convenient.
func parseHash(s string) ([]byte, error) {
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == hasher.Size() {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%q is not a SHA-256 hash in hex or base64", s)
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a non-negative integer", name, s)
	}
	return v, nil
}

func writeText(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
