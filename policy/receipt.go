package policy

import "time"

// Receipt is an enforcement point's statement that, from At on, it
// enforced policy Version (and therefore every earlier change). Points
// are named by kind and place: "dns@resolver-1", "gate@edge-1" (the
// node of writ serve that runs them), "rpz:192.0.2.53/fr.rpz.writ".
type Receipt struct {
	Point   string    `json:"point"`
	Version uint64    `json:"version"`
	At      time.Time `json:"at"`
	// Scope, when set, is the one jurisdiction the point enforces (an RPZ
	// zone of one country): it then vouches only for orders that apply
	// there. Empty for points that enforce every jurisdiction (the DNS
	// server, the gate).
	Scope string `json:"scope,omitempty"`
}

// Retirement records an enforcement point taken out of service: the last
// policy Version it had applied then, when and by whom. It stands until
// the point sends a receipt for a later version.
type Retirement struct {
	Point   string    `json:"point"`
	Version uint64    `json:"version"`
	At      time.Time `json:"retired_at"`
	By      string    `json:"retired_by"`
}
