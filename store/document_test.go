package store

import (
	"context"
	"errors"
	"strings"
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
		// The hash is that of the document as stored, read back.
		stored, err := s.Order(ctx, "o1")
		if err != nil {
			t.Fatal(err)
		}
		if h := order.PublicDocumentSHA256(stored); h != second {
			t.Errorf("the stored order's document hashes to %s; its events say %s", h, second)
		}
	})
}

// The hash of an order's public document is the same before and after
// the store's encoding round trip, whatever the time zones, empty lists
// or invalid UTF-8 of the order in memory: the store records the hash of
// the order it was handed, and anyone checks it against the order as
// stored.
func TestDocumentHashSurvivesRoundTrip(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	now := time.Date(2026, 11, 24, 10, 30, 15, 123456789, paris)
	cases := map[string]*order.Order{"full": fullOrder("o1", now)}
	empty := fullOrder("o2", now)
	empty.Jurisdiction, empty.Targets, empty.AmendingAuthorities = []string{}, []order.Target{}, []string{}
	cases["empty lists"] = empty
	odd := fullOrder("o3", now)
	odd.Note, odd.LegalBasis.Summary = "bad \xff utf-8 <&>", "\u2028 line separator"
	odd.AmendingAuthorities = []string{"it-agcom"}
	at := now.Add(time.Minute)
	odd.Disposition, odd.DispositionAt, odd.DispositionReason = order.Suspended, &at, "appeal"
	cases["odd text"] = odd
	for name, o := range cases {
		doc, err := encodeOrder(o)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeOrder(o.ID, doc)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := order.PublicDocumentSHA256(o), order.PublicDocumentSHA256(back); a != b {
			t.Errorf("%s: %s in memory, %s after the round trip:\n%s\n%s", name, a, b, order.PublicDocument(o), order.PublicDocument(back))
		}
	}
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

// ModifyOrderFrom hands the change the caller's copy only while no event
// of the order was recorded after the caller's last: a change made in
// between by another writer (another node) is read, never lost. The copy
// it hands over is the order as stored, whatever the zones of its times.
func TestModifyOrderFrom(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := context.Background()
		paris := time.FixedZone("CEST", 2*3600)
		now := time.Now().In(paris)
		o := fullOrder("o1", now)
		evs := []order.Event{{Kind: order.EventReceived, At: now}}
		if _, err := s.CreateOrder(ctx, o, evs); err != nil {
			t.Fatal(err)
		}
		addTarget := func(name string) func(o *order.Order) ([]order.Event, error) {
			return func(o *order.Order) ([]order.Event, error) {
				at := time.Now().In(paris)
				o.Targets = append(o.Targets, order.Target{FQDN: name, State: order.TargetActive, Added: &at})
				o.Amendments++
				return []order.Event{{Kind: order.EventAmended, At: at, Detail: name}}, nil
			}
		}
		mine, myEvents, _, err := s.ModifyOrderFrom(ctx, o, evs[0].Seq, addTarget("mine-1.example"))
		if err != nil {
			t.Fatal(err)
		}
		last := myEvents[len(myEvents)-1].Seq

		// Unchanged since: the copy is used, and it is the stored order.
		var seen *order.Order
		if mine, myEvents, _, err = s.ModifyOrderFrom(ctx, mine, last, func(o *order.Order) ([]order.Event, error) {
			seen = o.Clone()
			return addTarget("mine-2.example")(o)
		}); err != nil {
			t.Fatal(err)
		}
		stored, err := s.Order(ctx, "o1")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := encodeOrder(stored)
		seen.Targets = append(seen.Targets, stored.Targets[len(stored.Targets)-1])
		seen.Amendments++
		if got, _ := encodeOrder(seen); got != want {
			t.Errorf("the copy handed over differs from the order stored:\n%s\n%s", got, want)
		}
		last = myEvents[len(myEvents)-1].Seq

		// Another writer amends it meanwhile.
		if _, _, _, err := s.ModifyOrder(ctx, "o1", addTarget("theirs.example")); err != nil {
			t.Fatal(err)
		}
		// My next change starts from the stored order, theirs included.
		changed, _, _, err := s.ModifyOrderFrom(ctx, mine, last, addTarget("mine-3.example"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tg := range changed.Targets {
			names = append(names, tg.FQDN)
		}
		if got := strings.Join(names, " "); !strings.Contains(got, "theirs.example") || !strings.HasSuffix(got, "mine-2.example theirs.example mine-3.example") {
			t.Fatalf("targets after the other writer's change: %s", got)
		}
	})
}
