package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Key is the log's note verifier key. Empty: fetched from the server,
	// which proves only that the log is consistent with itself; pin the
	// key the operator published to prove it is the operator's.
	Key string
	// Saved is a signed checkpoint saved earlier; the log must extend it.
	Saved []byte
	// Client makes the requests; nil is http.DefaultClient.
	Client *http.Client
}

// Report is the outcome of Verify.
type Report struct {
	// Checkpoint is the server's latest checkpoint, Signed its note: what
	// to save for the next verification once Problems is empty.
	Checkpoint Checkpoint
	Signed     []byte
	// Key is the verifier key used, and KeyFromServer whether it came
	// from the server rather than from the caller.
	Key           string
	KeyFromServer bool
	// Entries is how many entries were fetched and hashed.
	Entries uint64
	// SavedSize is the size of the saved checkpoint checked, if any.
	SavedSize  uint64
	CheckSaved bool
	// Problems lists everything found wrong, each a sentence naming the
	// entries concerned. Empty means the log verified.
	Problems []string
}

// OK reports whether the log verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Verify fetches the log served at base (a writ server's URL), checks the
// checkpoint's signature, recomputes the tree from every entry and
// compares it with the signed root, and, with a saved checkpoint, checks
// that the log extends it. It returns an error only when it could not
// run the checks (the server is unreachable or answers nonsense); what
// the checks find is in the Report.
func Verify(ctx context.Context, base string, opts VerifyOptions) (*Report, error) {
	c := &fetcher{base: strings.TrimSuffix(base, "/"), client: opts.Client}
	if c.client == nil {
		c.client = http.DefaultClient
	}
	r := &Report{Key: strings.TrimSpace(opts.Key)}
	if r.Key == "" {
		b, err := c.get(ctx, "/v1/ledger/key")
		if err != nil {
			return nil, err
		}
		r.Key, r.KeyFromServer = strings.TrimSpace(string(b)), true
	}
	v, err := note.NewVerifier(r.Key)
	if err != nil {
		return nil, fmt.Errorf("verifier key %q: %w", r.Key, err)
	}

	signed, err := c.get(ctx, "/v1/ledger/checkpoint")
	if err != nil {
		return nil, err
	}
	r.Signed = signed
	cp, err := OpenCheckpoint(signed, v)
	if err != nil {
		r.problem("the server's checkpoint: %v", err)
		return r, nil
	}
	r.Checkpoint = cp

	leaves, err := c.entries(ctx, cp.Size, r)
	if err != nil {
		return nil, err
	}
	parsed := checkSequence(leaves, r)

	// Roots of every prefix of the log as served: root(m) for m = 0..size.
	var roots [][]byte
	if complete(leaves, cp.Size) {
		roots = make([][]byte, 0, cp.Size+1)
		rng := factory.NewEmptyRange(0)
		roots = append(roots, hasher.EmptyRoot())
		for _, data := range leaves {
			if err := rng.Append(hasher.HashLeaf(data), nil); err != nil {
				return nil, err
			}
			root, err := rng.GetRootHash(nil)
			if err != nil {
				return nil, err
			}
			roots = append(roots, root)
		}
		r.Entries = cp.Size
		switch {
		case bytes.Equal(roots[cp.Size], cp.Root):
		case cp.Size == 0:
			// No entry can differ: the signed root is simply wrong.
			r.problem("the checkpoint signs an empty log with the root %x, which is not the hash of the empty tree %x", cp.Root, roots[0])
		default:
			k, err := c.firstDifference(ctx, cp, roots)
			if err != nil {
				return nil, err
			}
			what := "it was changed after it was logged"
			if parsed[k].Seq != k+1 {
				what = "entries were removed, added or reordered"
			}
			r.problem("the %d entries do not hash to the signed root %x; the first entry that differs from the signed tree is entry %d (%s): %s",
				cp.Size, cp.Root, k, describe(parsed[k]), what)
		}
	} else {
		r.problem("the signed root cannot be recomputed: entries are missing")
	}

	if opts.Saved != nil {
		r.CheckSaved = true
		checkSaved(ctx, c, v, opts.Saved, cp, roots, r)
	}
	return r, nil
}

// complete reports whether every entry up to the size was fetched.
func complete(leaves [][]byte, size uint64) bool {
	if uint64(len(leaves)) != size {
		return false
	}
	for _, l := range leaves {
		if l == nil {
			return false
		}
	}
	return true
}

// checkSequence parses the entries and checks that entry i holds event
// seq i+1, naming swapped pairs and removed events.
func checkSequence(leaves [][]byte, r *Report) []Leaf {
	parsed := make([]Leaf, len(leaves))
	for i, data := range leaves {
		if data == nil {
			continue
		}
		l, err := ParseLeaf(data)
		if err != nil {
			r.problem("entry %d: %v", i, err)
			continue
		}
		parsed[i] = l
	}
	reported := map[uint64]bool{}
	shifted := 0
	for i := range parsed {
		idx := uint64(i)
		seq := parsed[i].Seq
		if leaves[i] == nil || seq == 0 || seq == idx+1 || reported[idx] {
			continue
		}
		if j := seq - 1; j < uint64(len(parsed)) && parsed[j].Seq == idx+1 {
			r.problem("entries %d and %d are swapped: entry %d holds seq %d and entry %d holds seq %d", min(idx, j), max(idx, j), idx, seq, j, parsed[j].Seq)
			reported[idx], reported[j] = true, true
			continue
		}
		if shifted == 0 {
			if seq > idx+1 {
				r.problem("entry %d holds seq %d where seq %d was due: the event with seq %d is not in the log (removed)", idx, seq, idx+1, idx+1)
			} else {
				r.problem("entry %d holds seq %d where seq %d was due: events were duplicated or reordered", idx, seq, idx+1)
			}
		}
		shifted++
	}
	if shifted > 1 {
		r.problem("%d entries in all hold a seq other than their index + 1", shifted)
	}
	return parsed
}

// firstDifference finds the first entry that is not the one the signed
// tree holds: the smallest k such that the server's consistency proof
// from size k+1 to the signed size fails for the root recomputed from
// entries 0..k. The proof succeeds for every prefix of honest entries,
// so a binary search finds k in log2(size) requests.
func (c *fetcher) firstDifference(ctx context.Context, cp Checkpoint, roots [][]byte) (uint64, error) {
	lo, hi := uint64(0), cp.Size // consistent(lo) holds, consistent(hi) fails
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		p, err := c.consistency(ctx, mid, cp.Size)
		if err != nil {
			return 0, err
		}
		if proof.VerifyConsistency(hasher, mid, cp.Size, p, roots[mid], cp.Root) == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi - 1, nil
}

// checkSaved checks that the server's log extends a checkpoint saved
// earlier: by the entries served, and by the server's consistency proof.
func checkSaved(ctx context.Context, c *fetcher, v note.Verifier, saved []byte, cp Checkpoint, roots [][]byte, r *Report) {
	old, err := OpenCheckpoint(saved, v)
	if err != nil {
		r.problem("the saved checkpoint: %v", err)
		return
	}
	r.SavedSize = old.Size
	if old.Size > cp.Size {
		r.problem("the log shrank: the saved checkpoint has %d entries and the server's has %d; entries were removed", old.Size, cp.Size)
		return
	}
	if roots != nil && !bytes.Equal(roots[old.Size], old.Root) {
		r.problem("the log was rewritten: its first %d entries no longer hash to the saved checkpoint's root %x (they hash to %x); an entry before %d was changed, removed or reordered since the checkpoint was saved",
			old.Size, old.Root, roots[old.Size], old.Size)
	}
	p, err := c.consistency(ctx, old.Size, cp.Size)
	if err != nil {
		r.problem("the server gives no consistency proof from the saved size %d to %d: %v", old.Size, cp.Size, err)
		return
	}
	if err := proof.VerifyConsistency(hasher, old.Size, cp.Size, p, old.Root, cp.Root); err != nil {
		r.problem("fork: the server's checkpoint (size %d, root %x) does not extend the saved checkpoint (size %d, root %x), and both are signed by %s: the operator's record was rewritten",
			cp.Size, cp.Root, old.Size, old.Root, v.Name())
	}
}

// span names the entries from first to last: "entry 3 is" or "entries 3
// to 5 are".
func span(first, last uint64) string {
	if first == last {
		return fmt.Sprintf("entry %d is", first)
	}
	return fmt.Sprintf("entries %d to %d are", first, last)
}

func describe(l Leaf) string {
	if l.Seq == 0 {
		return "unreadable"
	}
	return fmt.Sprintf("seq %d, order %s, %s at %s", l.Seq, l.OrderID, l.Kind, l.At)
}

// fetcher reads a writ server's ledger API.
type fetcher struct {
	base   string
	client *http.Client
}

// maxResponse bounds what the verifier reads in one response.
const maxResponse = 64 << 20

func (c *fetcher) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", c.base, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

func (c *fetcher) getJSON(ctx context.Context, path string, out any) error {
	b, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("GET %s: not the ledger's JSON: %w", path, err)
	}
	return nil
}

// entries fetches entries 0..size-1, page by page, noting in r every
// index the server skips or repeats. It stops at the first missing entry,
// after which the tree cannot be recomputed, and returns the entries
// before it. The size is the server's word: memory grows with the
// entries actually received, never with the size claimed.
func (c *fetcher) entries(ctx context.Context, size uint64, r *Report) ([][]byte, error) {
	leaves := make([][]byte, 0, min(size, MaxEntries))
	next := uint64(0)
	for next < size {
		before := next
		var page entriesJSON
		q := url.Values{"start": {fmt.Sprint(next)}, "end": {fmt.Sprint(size)}}
		if err := c.getJSON(ctx, "/v1/ledger/entries?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		if len(page.Entries) == 0 {
			r.problem("%s missing: the server returned none of them", span(next, size-1))
			break
		}
		for _, e := range page.Entries {
			switch {
			case e.Index >= size:
				r.problem("the server returned entry %d, beyond the signed size %d", e.Index, size)
			case e.Index < next:
				r.problem("the server returned entry %d twice or out of order", e.Index)
			case e.Index > next:
				if next == 0 {
					r.problem("%s missing: the server's first entry is %d", span(next, e.Index-1), e.Index)
				} else {
					r.problem("%s missing: the server skipped from entry %d to %d", span(next, e.Index-1), next-1, e.Index)
				}
				return leaves, nil
			default:
				leaves = append(leaves, []byte(e.Leaf))
				next++
			}
		}
		if next == before {
			// The page added nothing below the size: stop rather than loop.
			r.problem("%s missing: the server returned other entries instead", span(next, size-1))
			break
		}
	}
	return leaves, nil
}

func (c *fetcher) consistency(ctx context.Context, first, second uint64) ([][]byte, error) {
	var p consistencyJSON
	q := url.Values{"first": {fmt.Sprint(first)}, "second": {fmt.Sprint(second)}}
	if err := c.getJSON(ctx, "/v1/ledger/proof/consistency?"+q.Encode(), &p); err != nil {
		return nil, err
	}
	if p.First != first || p.Second != second {
		return nil, errors.New("the server answered a consistency proof for other sizes")
	}
	return p.Proof, nil
}
