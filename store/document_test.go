package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
)

// Every event carries the hash of its order's public document as its
// write left it, and the seq after which that document stands: what lets
// the ledgers of several nodes derive identical entries.
func TestEventsCarryDocumentHash(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := context.Background()
		now := time.Now()
		o := fullOrder("o1", now)
		created := []order.Event{{Kind: order.EventReceived, At: now}, {Kind: order.EventHeld, At: now}}
		if _, err := s.CreateOrder(ctx, o, created); err != nil {
			t.Fatal(err)
		}
		first := order.PublicDocumentSHA256(o)
		changed, _, _, err := s.ModifyOrder(ctx, "o1", func(o *order.Order) ([]order.Event, error) {
			o.Targets[2].State = order.TargetActive
			return []order.Event{{Kind: order.EventReleased, At: now}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		second := order.PublicDocumentSHA256(changed)
		if first == second {
			t.Fatal("releasing a target left the public document unchanged")
		}
		if _, err := s.AppendEvents(ctx, []order.Event{{OrderID: "o1", Kind: order.EventActivated, At: now}}); err != nil {
			t.Fatal(err)
		}
		// A write naming an unknown order records nothing.
		if _, err := s.AppendEvents(ctx, []order.Event{{OrderID: "o1", Kind: order.EventExpiring, At: now}, {OrderID: "nope", Kind: order.EventExpired, At: now}}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("event for an unknown order: %v, want ErrNotFound", err)
		}
		want := []struct {
			hash string
			seq  uint64
		}{{first, 2}, {first, 2}, {second, 3}, {second, 4}}
		got, err := s.EventsSince(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d events, want %d", len(got), len(want))
		}
		for i, e := range got {
			if e.DocumentSHA256 != want[i].hash || e.DocumentSeq != want[i].seq {
				t.Errorf("event %d (%s): document %s after %d, want %s after %d", e.Seq, e.Kind, e.DocumentSHA256, e.DocumentSeq, want[i].hash, want[i].seq)
			}
		}
	})
}

func TestEnsureSettingFirstWins(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := context.Background()
		v, err := s.EnsureSetting(ctx, "k", "first")
		if err != nil || v != "first" {
			t.Fatalf("first: %q %v", v, err)
		}
		if v, err = s.EnsureSetting(ctx, "k", "second"); err != nil || v != "first" {
			t.Fatalf("second: %q %v, want the first value", v, err)
		}
		if v, err = s.EnsureSetting(ctx, "other", "x"); err != nil || v != "x" {
			t.Fatalf("another name: %q %v", v, err)
		}
		if _, err := s.EnsureSetting(ctx, "", "x"); err == nil {
			t.Fatal("a setting without a name was stored")
		}
	})
}
