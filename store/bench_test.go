package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
)

// BenchmarkModifyOrder is the store's part of an amendment: read an
// order, change it, write it and an event, commit (with its fsync).
//
//	go test -run XXX -bench ModifyOrder -benchmem ./store
func BenchmarkModifyOrder(b *testing.B) {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "writ.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchModifyOrder(b, s.db)
}

// benchModifyOrder amends one order of s in a loop.
func benchModifyOrder(b *testing.B, s *db) {
	ctx := context.Background()
	now := time.Now()
	o := fullOrder("20261123-00000001", now)
	if _, err := s.CreateOrder(ctx, o, events(o.ID, now, order.EventReceived)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, _, err := s.ModifyOrder(ctx, o.ID, func(o *order.Order) ([]order.Event, error) {
			o.Amendments++
			return []order.Event{{Kind: order.EventAmended, At: time.Now()}}, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrincipalByTokenHash is the store's part of authenticating a
// request: one read transaction and one row. "cancellable" reads with a
// context that can be cancelled, as an HTTP request's.
//
//	go test -run XXX -bench PrincipalByTokenHash -benchmem ./store
func BenchmarkPrincipalByTokenHash(b *testing.B) {
	s, err := OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "writ.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := access.Principal{ID: "op", Name: "op", Role: access.Operator, TokenHash: access.HashToken("secret")}
	if err := s.CreatePrincipal(b.Context(), p); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"cancellable", b.Context()}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.PrincipalByTokenHash(c.ctx, p.TokenHash); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkModifyOrderPostgres is BenchmarkModifyOrder on PostgreSQL
// (a local server, as the tests start one).
//
//	go test -run XXX -bench ModifyOrderPostgres ./store
func BenchmarkModifyOrderPostgres(b *testing.B) {
	s, err := OpenPostgres(context.Background(), pg.FreshDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchModifyOrder(b, s.db)
}
