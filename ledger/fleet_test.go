package ledger

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/store"
)

// Two ledgers following one store, syncing at different moments and so
// in different batches, with the store's shared key: their trees and
// signed checkpoints are byte for byte the same, which is what lets any
// node of a fleet answer a verifier.
func TestLedgersOfOneStoreAgree(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := GenerateKey("writ.test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	open := func() *Ledger {
		l, err := Open(ctx, t.TempDir(), Options{SignerKey: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	eager, lazy := open(), open()

	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	o := testOrder("20261123-00000001")
	if _, err := st.CreateOrder(ctx, o, []order.Event{{Kind: order.EventReceived, At: now}, {Kind: order.EventHeld, At: now}}); err != nil {
		t.Fatal(err)
	}
	if _, err := eager.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		// Each change alters the public document; the eager ledger reads
		// the order after each, the lazy one only at the end, when the
		// document has changed three times since the first events.
		if _, _, _, err := st.ModifyOrder(ctx, o.ID, func(o *order.Order) ([]order.Event, error) {
			o.Note = "change " + string(rune('a'+i))
			return []order.Event{{Kind: order.EventAmended, At: now}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := eager.Sync(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := lazy.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	_, a := eager.Checkpoint()
	_, b := lazy.Checkpoint()
	if eager.Size() != 5 || !bytes.Equal(a, b) {
		t.Fatalf("checkpoints differ or are short (size %d):\n%s\n%s", eager.Size(), a, b)
	}
	ea, la := eager.allEntries(t), lazy.allEntries(t)
	for i := range ea {
		if !bytes.Equal(ea[i], la[i]) {
			t.Errorf("entry %d differs:\n%s\n%s", i, ea[i], la[i])
		}
	}
	// The first entry hashes the document as the order was received, not
	// as the lazy ledger found it.
	first, err := ParseLeaf(la[0])
	if err != nil {
		t.Fatal(err)
	}
	if first.DocumentSHA256 != order.PublicDocumentSHA256(o) || first.DocumentSeq != 2 {
		t.Errorf("first entry records document %s after %d, want the received order's %s after 2", first.DocumentSHA256, first.DocumentSeq, order.PublicDocumentSHA256(o))
	}
}
