// Package demo holds what `writ serve --demo` needs to show writ working
// on a fresh machine with no network: the sample court order, a client
// mapping for France, and answers for an upstream resolver.
package demo

import (
	_ "embed"
	"time"

	"github.com/writ-project/writ/order"
)

//go:embed order.json
var sampleOrder []byte

// Client addresses of the demo: FranceClient is mapped to France,
// OutsideClient to no jurisdiction.
const (
	FranceClient  = "127.0.0.2"
	OutsideClient = "127.0.0.1"
	// BlockedName is covered by the sample order.
	BlockedName = "www.motogpstream.me"
	// BlockedAddr is what the demo upstream answers for BlockedName.
	BlockedAddr = "198.51.100.7"
)

// Upstream returns the records of the demo upstream resolver.
func Upstream() []string {
	return []string{
		"motogpstream.me. 300 IN A 198.51.100.7",
		"www.motogpstream.me. 300 IN A 198.51.100.7",
		"tarjetarojaenvivo.lat. 300 IN A 198.51.100.8",
		"www.tarjetarojaenvivo.lat. 300 IN A 198.51.100.8",
		"livetv821.me. 300 IN A 198.51.100.9",
		"www.livetv821.me. 300 IN A 198.51.100.9",
		"example.org. 300 IN A 192.0.2.10",
		"www.example.org. 300 IN A 192.0.2.10",
	}
}

// Order returns the sample court order (Paris, March 2025) as a
// submission whose dates are moved to now: as published it expired on
// 30 November 2025, and the demo must show it in force.
func Order(now time.Time) (*order.Submission, error) {
	s, err := order.DecodeBytes(sampleOrder)
	if err != nil {
		return nil, err
	}
	s.Effective = now.UTC().Add(-time.Minute).Format(time.RFC3339)
	s.Expires = now.UTC().Add(7 * 24 * time.Hour).Format(time.RFC3339)
	s.Note = "Demo: " + s.Note + " Dates moved to the demo's start so that the order is in force."
	return s, nil
}
