// Package ledger is writ's transparency log: every order event, public
// part only, appended as a leaf of an RFC 6962 Merkle tree, with signed
// checkpoints in the C2SP tlog-checkpoint format and the inclusion and
// consistency proofs that let anyone check that the record was never
// rewritten.
//
// The ledger is a projection of the store's event log: leaf i is event
// seq i+1. Sync appends every event after the last leaf, so that a ledger
// behind its store (after a crash, or at first start) catches up. Entries
// are a function of the events alone, so the ledgers of several nodes
// sharing one store hold the same tree, and with the same signing key
// (Options.SignerKey) serve the same checkpoints.
package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	// The SQLite driver, registered as "sqlite".

	"github.com/writ-project/writ/internal/pace"
	"github.com/writ-project/writ/internal/sqlitecache"
	"github.com/writ-project/writ/order"
)

// Source is the event log the ledger follows; store.SQLite is one.
// EventsSince returns events with a seq above after in seq order, and
// seqs are dense: 1, 2, 3, …
type Source interface {
	EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error)
	Order(ctx context.Context, id string) (*order.Order, error)
}

// Options configure a Ledger.
type Options struct {
	// Origin names the log in its checkpoints and its key. Empty: the name
	// of the existing key, or DefaultOrigin for a new one.
	Origin string
	// DefaultOrigin names a new key when Origin is empty.
	DefaultOrigin string
	// SignerKey, when set, is the signing key, in place of the one kept
	// in the directory: the key all nodes sharing a store sign with, so
	// that their ledgers serve the same checkpoints.
	SignerKey string
	Logger    *slog.Logger
}

// Entry is one ledger entry as stored and served: its index in the tree
// and the leaf bytes that were hashed.
type Entry struct {
	Index uint64
	Data  []byte
}

// MaxEntries is the most entries one Entries call returns.
const MaxEntries = 1000

// batchSize is how many events Sync appends in one transaction.
const batchSize = 500

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// ErrNotFound is returned for a leaf hash that is not in the tree.
var ErrNotFound = errors.New("not in the ledger")

// Ledger is an open transparency log. It is safe for concurrent use.
type Ledger struct {
	db       *sql.DB
	path     string
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	log      *slog.Logger

	// syncMu serialises appends; rng is only touched under it.
	syncMu sync.Mutex
	rng    *compact.Range

	mu     sync.RWMutex
	cp     Checkpoint
	signed []byte
}

// Open opens the ledger kept in dir (ledger.db, ledger-key), creating it
// and its signing key at first start.
func Open(ctx context.Context, dir string, opts Options) (*Ledger, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	signer, vkey, created, err := loadOrCreateKey(dir, opts.Origin, opts.DefaultOrigin, opts.SignerKey)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created the ledger signing key; publish the public key so that verifiers can pin it",
			"origin", signer.Name(), "public_key_file", filepath.Join(dir, PublicKeyFile), "public_key", vkey)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("ledger: verifier key: %w", err)
	}
	path := filepath.Join(dir, DatabaseFile)
	db, err := openDB(ctx, path)
	if err != nil {
		return nil, err
	}
	l := &Ledger{db: db, path: path, signer: signer, verifier: verifier, vkey: vkey, log: log}
	if err := l.load(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return l, nil
}

// Close closes the database.
func (l *Ledger) Close() error { return l.db.Close() }

// Origin is the log's name, the first line of its checkpoints.
func (l *Ledger) Origin() string { return l.signer.Name() }

// VerifierKey is the note verifier key of the checkpoints
// ("<origin>+<hash>+<base64 key>").
func (l *Ledger) VerifierKey() string { return l.vkey }

// Checkpoint returns the latest checkpoint and its signed note.
func (l *Ledger) Checkpoint() (Checkpoint, []byte) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cp, bytes.Clone(l.signed)
}

// Size is the number of entries in the latest checkpoint.
func (l *Ledger) Size() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cp.Size
}

const schema = `
CREATE TABLE IF NOT EXISTS leaves (
	idx  INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
	level INTEGER NOT NULL,
	idx   INTEGER NOT NULL,
	hash  BLOB NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leaf_hashes ON nodes(hash) WHERE level = 0;
CREATE TABLE IF NOT EXISTS checkpoints (
	size INTEGER PRIMARY KEY,
	root BLOB NOT NULL,
	note TEXT NOT NULL,
	at   TEXT NOT NULL
);
`

// openDB opens the ledger database with the store's durability settings:
// WAL, and an fsync of the log at every commit.
func openDB(ctx context.Context, path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(abs)
	// Its connections keep their prepared statements: a batch inserts a
	// row per entry and per tree node.
	db := sqlitecache.Open("file:" + esc + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	db.SetMaxOpenConns(4)
	// A damaged file fails here, naming it, instead of serving damaged
	// entries to verifiers later: load reads only a few pages.
	if err := quickCheck(ctx, db); err != nil {
		return nil, errors.Join(fmt.Errorf("ledger: database %s is corrupt or unreadable; writ will not serve from it: %w", path, err), db.Close())
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, errors.Join(fmt.Errorf("ledger: database %s is unusable: %w", path, err), db.Close())
	}
	return db, nil
}

// quickCheck runs SQLite's PRAGMA quick_check and returns what it found.
func quickCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		problems = append(problems, line)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) == 1 && problems[0] == "ok" {
		return nil
	}
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
	}
	return fmt.Errorf("quick_check: %s", strings.Join(problems, "; "))
}

// load reads the latest checkpoint and rebuilds the compact range of the
// tree from the stored nodes, refusing a database whose nodes do not hash
// to the root it signed.
func (l *Ledger) load(ctx context.Context) error {
	var (
		size   int64
		root   []byte
		signed string
	)
	err := l.db.QueryRowContext(ctx, `SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &root, &signed)
	if errors.Is(err, sql.ErrNoRows) {
		// A new ledger: sign the empty tree, so that there is always a
		// checkpoint to serve.
		rng := factory.NewEmptyRange(0)
		return l.commit(ctx, rng, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("ledger: read checkpoint from %s: %w", l.path, err)
	}
	cp, err := OpenCheckpoint([]byte(signed), l.verifier)
	if err != nil {
		return fmt.Errorf("ledger: the latest checkpoint in %s does not verify with the key %s: %w", l.path, l.signer.Name(), err)
	}
	if cp.Size != uint64(size) || !bytes.Equal(cp.Root, root) {
		return fmt.Errorf("ledger: %s: the checkpoint row for size %d disagrees with its signed note", l.path, size)
	}
	ids := compact.RangeNodes(0, cp.Size, nil)
	hashes, err := l.nodeHashes(ctx, ids)
	if err != nil {
		return fmt.Errorf("ledger: %s: %w", l.path, err)
	}
	rng, err := factory.NewRange(0, cp.Size, hashes)
	if err != nil {
		return fmt.Errorf("ledger: %s: %w", l.path, err)
	}
	got, err := rootOf(rng)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, cp.Root) {
		return fmt.Errorf("ledger: %s is damaged: its tree nodes hash to %x, not to the root %x of its latest checkpoint (size %d)", l.path, got, cp.Root, cp.Size)
	}
	l.rng = rng
	l.mu.Lock()
	l.cp, l.signed = cp, []byte(signed)
	l.mu.Unlock()

	// Entries are served from their own table. A count that differs from
	// the tree size means someone edited the file; verifiers will see it,
	// and the operator should hear it first.
	var n int64
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM leaves`).Scan(&n); err != nil {
		return fmt.Errorf("ledger: %s: %w", l.path, err)
	}
	if uint64(n) != cp.Size {
		l.log.Error("the ledger database holds a different number of entries than its tree: it was changed outside writ; `writ ledger verify` will name the entries",
			"file", l.path, "entries", n, "tree_size", cp.Size)
	}
	return nil
}

func rootOf(rng *compact.Range) ([]byte, error) {
	if rng.End() == 0 {
		return hasher.EmptyRoot(), nil
	}
	return rng.GetRootHash(nil)
}

// Sync appends every event of src after the ledger's last entry, in
// batches, each batch one transaction with its signed checkpoint. It
// returns how many entries it appended. Calling it again after an error
// or a crash resumes where the last committed batch ended.
func (l *Ledger) Sync(ctx context.Context, src Source) (int, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	total, unsettled := 0, 0
	for {
		head, latest, read, gap := scan(ctx, src, l.rng.End())
		if head == l.rng.End() {
			return total, gap
		}
		// Orders that keep changing while their documents are read are
		// given a few chances to settle, then recorded without a
		// document hash rather than holding the ledger back.
		n, settled, err := l.appendUpTo(ctx, src, head, latest, read, unsettled >= 2)
		total += n
		if err != nil {
			return total, err
		}
		if !settled {
			unsettled++
		}
		if gap != nil && settled {
			return total, gap
		}
	}
}

// scan reads the events after size to the end of the log and returns the
// seq of the last one (the head), for each order the seq of its latest
// event, and the first page of events read, so that the usual short
// batch is not read twice. A gap in the seqs ends the scan before it,
// with an error.
func scan(ctx context.Context, src Source, size uint64) (head uint64, latest map[string]uint64, first []order.Event, err error) {
	const page = 1000
	latest = map[string]uint64{}
	head = size
	for {
		events, err := src.EventsSince(ctx, head, page)
		if err != nil {
			return head, latest, first, fmt.Errorf("ledger: read events after %d: %w", head, err)
		}
		for i, e := range events {
			if e.Seq != head+1 {
				if head == size {
					first = events[:i]
				}
				return head, latest, first, fmt.Errorf("ledger: the store returned event seq %d where %d was due: every event must be recorded, in order", e.Seq, head+1)
			}
			head = e.Seq
			latest[e.OrderID] = e.Seq
		}
		if first == nil {
			first = events
		}
		if len(events) < page {
			return head, latest, first, nil
		}
	}
}

// appendUpTo appends the events up to head in batches. Each leaf records
// the hash of its order's document as it stood after the order's latest
// event up to head. A document read once an order has changed again
// after head could be newer than that; the batch is then not committed
// and settled is false, unless force, which records those orders'
// entries without a document hash.
//
// The check relies on the store committing events in seq order: a write
// that changed an order before its document was read has a seq above
// head and is visible to the read of newer events that follows.
//
// pre holds events already read from the current size on, used before
// reading more.
func (l *Ledger) appendUpTo(ctx context.Context, src Source, head uint64, latest map[string]uint64, pre []order.Event, force bool) (appended int, settled bool, err error) {
	docs := map[string][]byte{}
	read := map[string]bool{}
	for l.rng.End() < head {
		size := l.rng.End()
		want := int(min(batchSize, head-size))
		var events []order.Event
		if len(pre) > 0 && pre[0].Seq == size+1 {
			events, pre = pre[:min(want, len(pre))], pre[min(want, len(pre)):]
		} else if events, err = src.EventsSince(ctx, size, want); err != nil {
			return appended, false, fmt.Errorf("ledger: read events after %d: %w", size, err)
		}
		if len(events) == 0 {
			return appended, false, fmt.Errorf("ledger: the store no longer returns the events after %d that it listed", size)
		}
		var fresh []string
		for i, e := range events {
			if e.Seq != size+1+uint64(i) || e.Seq > head {
				return appended, false, fmt.Errorf("ledger: the store returned event seq %d where %d was due", e.Seq, size+1+uint64(i))
			}
			// The store records the document's hash with each event
			// since schema version 4; only older events need a read.
			if e.DocumentSHA256 != "" || read[e.OrderID] {
				continue
			}
			o, err := src.Order(ctx, e.OrderID)
			if err != nil {
				return appended, false, fmt.Errorf("ledger: read order %s: %w", e.OrderID, err)
			}
			read[e.OrderID] = true
			docs[e.OrderID] = order.PublicDocument(o)
			fresh = append(fresh, e.OrderID)
		}
		if len(fresh) > 0 {
			changed, err := changedAfter(ctx, src, head, fresh)
			if err != nil {
				return appended, false, err
			}
			if len(changed) > 0 {
				if !force {
					return appended, false, nil
				}
				l.log.Warn("orders kept changing while the ledger read them; their entries carry no document hash", "orders", changed)
				for _, id := range changed {
					delete(docs, id)
				}
			}
		}
		if err := l.appendEvents(ctx, events, docs, latest); err != nil {
			return appended, false, err
		}
		appended += len(events)
	}
	return appended, true, nil
}

// changedAfter returns the orders among ids that have an event after
// head, all of them if there are too many newer events to look at.
func changedAfter(ctx context.Context, src Source, head uint64, ids []string) ([]string, error) {
	const window = 1000
	newer, err := src.EventsSince(ctx, head, window)
	if err != nil {
		return nil, fmt.Errorf("ledger: read events after %d: %w", head, err)
	}
	if len(newer) == window {
		return ids, nil
	}
	has := map[string]bool{}
	for _, e := range newer {
		has[e.OrderID] = true
	}
	var out []string
	for _, id := range ids {
		if has[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// appendEvents appends one batch of events as entries, with their tree
// nodes and a new signed checkpoint, in one transaction.
func (l *Ledger) appendEvents(ctx context.Context, events []order.Event, docs map[string][]byte, latest map[string]uint64) error {
	size := l.rng.End()
	rng, err := factory.NewRange(0, size, append([][]byte(nil), l.rng.Hashes()...))
	if err != nil {
		return err
	}
	leaves := make([][]byte, len(events))
	var nodes []nodeHash
	visit := func(id compact.NodeID, h []byte) { nodes = append(nodes, nodeHash{id, h}) }
	for i, e := range events {
		leaf := NewLeaf(e, docs[e.OrderID], latest[e.OrderID])
		if e.DocumentSHA256 != "" {
			leaf.DocumentSHA256, leaf.DocumentSeq = e.DocumentSHA256, e.DocumentSeq
		}
		leaves[i] = leaf.Marshal()
		if err := rng.Append(hasher.HashLeaf(leaves[i]), visit); err != nil {
			return err
		}
	}
	return l.commit(ctx, rng, leaves, nodes)
}

// FollowGap is the least time between two syncs of Follow: a change
// after a quiet moment is appended at once, and a stream of changes (a
// regulator's hundred amendments a second) in batches, one transaction
// and one fsync each, rather than one per event.
const FollowGap = 100 * time.Millisecond

// Follow keeps the ledger in step with src until ctx ends: it syncs at
// once, then whenever the channel from changed is closed (the policy holder
// signals every store write this way), at most every FollowGap, and every
// interval in case a write came from elsewhere. Failures are logged and
// retried at the next turn.
func (l *Ledger) Follow(ctx context.Context, src Source, changed func() <-chan struct{}, interval time.Duration) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	pace.Follow(ctx, FollowGap, changed, tick.C, func(ctx context.Context) {
		if n, err := l.Sync(ctx, src); err != nil {
			if ctx.Err() == nil {
				l.log.Error("ledger sync failed; will retry", "err", err, "appended", n)
			}
		} else if n > 0 {
			l.log.Debug("ledger appended entries", "entries", n, "size", l.Size())
		}
	})
}

type nodeHash struct {
	id   compact.NodeID
	hash []byte
}

// commit stores new leaves and nodes with the checkpoint of rng in one
// transaction, then makes rng the ledger's tree.
func (l *Ledger) commit(ctx context.Context, rng *compact.Range, leaves [][]byte, nodes []nodeHash) (err error) {
	root, err := rootOf(rng)
	if err != nil {
		return err
	}
	cp := Checkpoint{Origin: l.signer.Name(), Size: rng.End(), Root: root}
	signed, err := signCheckpoint(cp, l.signer)
	if err != nil {
		return fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	first := rng.End() - uint64(len(leaves))
	for i, data := range leaves {
		if _, err := tx.ExecContext(ctx, `INSERT INTO leaves(idx, data) VALUES (?, ?)`, int64(first)+int64(i), data); err != nil {
			return fmt.Errorf("ledger: append entry %d: %w", first+uint64(i), err)
		}
	}
	for _, n := range nodes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO nodes(level, idx, hash) VALUES (?, ?, ?)`, n.id.Level, int64(n.id.Index), n.hash); err != nil {
			return fmt.Errorf("ledger: store node (%d, %d): %w", n.id.Level, n.id.Index, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO checkpoints(size, root, note, at) VALUES (?, ?, ?, ?)`,
		int64(cp.Size), cp.Root, string(signed), time.Now().UTC().Format(timeLayout)); err != nil {
		return fmt.Errorf("ledger: store checkpoint: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger: commit: %w", err)
	}
	l.rng = rng
	l.mu.Lock()
	l.cp, l.signed = cp, signed
	l.mu.Unlock()
	return nil
}

// nodeHashes reads the hashes of the given tree nodes.
func (l *Ledger) nodeHashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		err := l.db.QueryRowContext(ctx, `SELECT hash FROM nodes WHERE level = ? AND idx = ?`, id.Level, int64(id.Index)).Scan(&out[i])
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("tree node (level %d, index %d) is missing", id.Level, id.Index)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Entries returns the entries with index in [start, end), at most
// MaxEntries of them, ending at the tree size.
func (l *Ledger) Entries(ctx context.Context, start, end uint64) ([]Entry, error) {
	size := l.Size()
	if end > size {
		end = size
	}
	if start >= end {
		return nil, nil
	}
	if end-start > MaxEntries {
		end = start + MaxEntries
	}
	rows, err := l.db.QueryContext(ctx, `SELECT idx, data FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx`, int64(start), int64(end))
	if err != nil {
		return nil, fmt.Errorf("ledger: entries: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var (
			idx  int64
			data []byte
		)
		if err := rows.Scan(&idx, &data); err != nil {
			return nil, fmt.Errorf("ledger: entries: %w", err)
		}
		out = append(out, Entry{Index: uint64(idx), Data: data})
	}
	return out, rows.Err()
}

// LeafIndex returns the index of the entry whose RFC 6962 leaf hash is
// leafHash, or ErrNotFound.
func (l *Ledger) LeafIndex(ctx context.Context, leafHash []byte) (uint64, error) {
	var idx int64
	err := l.db.QueryRowContext(ctx, `SELECT idx FROM nodes WHERE level = 0 AND hash = ? ORDER BY idx LIMIT 1`, leafHash).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && uint64(idx) >= l.Size()) {
		return 0, fmt.Errorf("ledger: leaf hash %x: %w", leafHash, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	return uint64(idx), nil
}

// InclusionProof proves that entry index is in the tree of the given
// size, which must not exceed the current size.
func (l *Ledger) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if cur := l.Size(); size > cur {
		return nil, fmt.Errorf("tree size %d is beyond the ledger's %d", size, cur)
	}
	if index >= size {
		return nil, fmt.Errorf("index %d is not below tree size %d", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return l.rehash(ctx, nodes)
}

// ConsistencyProof proves that the tree of size first is a prefix of the
// tree of size second; first ≤ second ≤ the current size.
func (l *Ledger) ConsistencyProof(ctx context.Context, first, second uint64) ([][]byte, error) {
	if cur := l.Size(); second > cur {
		return nil, fmt.Errorf("tree size %d is beyond the ledger's %d", second, cur)
	}
	if first > second {
		return nil, fmt.Errorf("first size %d is above second size %d", first, second)
	}
	nodes, err := proof.Consistency(first, second)
	if err != nil {
		return nil, err
	}
	return l.rehash(ctx, nodes)
}

func (l *Ledger) rehash(ctx context.Context, nodes proof.Nodes) ([][]byte, error) {
	hashes, err := l.nodeHashes(ctx, nodes.IDs)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if p == nil {
		p = [][]byte{}
	}
	return p, nil
}

// LeafHash returns the RFC 6962 leaf hash of entry data.
func LeafHash(data []byte) []byte { return hasher.HashLeaf(data) }
