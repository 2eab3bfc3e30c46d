// Package order is writ's model of a legal blocking order: who issued it,
// under which law, for which jurisdictions, when, and against which
// targets; how an order submitted as JSON is checked before it is accepted;
// and the lifecycle an accepted order goes through.
//
// The package does no I/O. Storage, policy compilation and enforcement
// build on the types defined here.
package order

import (
	"net/netip"
	"strings"
	"time"

	"github.com/writ-project/writ/jurisdiction"
)

// AuthorityKind says what sort of body issued an order.
type AuthorityKind string

// The kinds of authority writ knows.
const (
	// Court is a judge's decision; it applies at once.
	Court AuthorityKind = "court"
	// Regulator is an administrative authority such as AGCOM or ARCOM.
	Regulator AuthorityKind = "regulator"
	// DelegatedReporter is a party the law lets report targets without a
	// judge, such as a rights holder on Italy's Piracy Shield platform.
	DelegatedReporter AuthorityKind = "delegated_reporter"
)

func (k AuthorityKind) valid() bool {
	return k == Court || k == Regulator || k == DelegatedReporter
}

// Authority is who issued an order.
type Authority struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	Kind         AuthorityKind `json:"kind"`
	Jurisdiction string        `json:"jurisdiction"`
}

// LegalBasis is the law and the decision an order rests on.
type LegalBasis struct {
	Statute string `json:"statute,omitempty"`
	Case    string `json:"case,omitempty"`
	URL     string `json:"url,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// String is a one-line citation: the case, then the statute.
func (b LegalBasis) String() string {
	switch {
	case b.Case != "" && b.Statute != "":
		return b.Case + " (" + b.Statute + ")"
	case b.Case != "":
		return b.Case
	default:
		return b.Statute
	}
}

// TargetState is where one target stands in its order's lifecycle.
type TargetState string

// Target states. Only active targets block, and only while their order
// is in force.
const (
	// TargetActive targets are enforced while their order is.
	TargetActive TargetState = "active"
	// TargetHeld targets wait for a human reviewer; they never block.
	TargetHeld TargetState = "held"
	// TargetSuspended targets are paused, typically while a contest
	// against them is examined; they can be reinstated.
	TargetSuspended TargetState = "suspended"
	// TargetRejected targets were held and refused by a reviewer.
	TargetRejected TargetState = "rejected"
	// TargetRemoved targets were withdrawn by an amendment or lifted by an
	// upheld contest.
	TargetRemoved TargetState = "removed"
)

// Live reports whether a target is still part of its order: active, held
// or suspended, as opposed to rejected or removed.
func (s TargetState) Live() bool {
	return s == TargetActive || s == TargetHeld || s == TargetSuspended
}

// Target is one thing an order blocks. Exactly one of FQDN, IP and URL is
// set. Accepted targets are normalised: FQDNs are lower-case A-labels
// without a trailing dot, IPs are canonical prefixes.
type Target struct {
	FQDN       string      `json:"fqdn,omitempty"`
	Subdomains bool        `json:"subdomains,omitempty"`
	IP         string      `json:"ip,omitempty"`
	URL        string      `json:"url,omitempty"`
	State      TargetState `json:"state,omitempty"`
	HoldReason string      `json:"hold_reason,omitempty"`
	// Amendment is the number of the amendment that added the target
	// (1 for the first); zero for a target of the original order.
	Amendment int `json:"amendment,omitempty"`
	// Added is when the amendment that added the target was received, from
	// which its authority's deadline runs; nil for a target of the
	// original order (see Order.Received).
	Added *time.Time `json:"added,omitempty"`
	// Decision explains the last change of state by a person: why it was
	// released, rejected, suspended, reinstated or removed.
	Decision string `json:"decision,omitempty"`
}

// Prefix returns the prefix of an IP target. It reports false for other
// targets and for an IP that is not canonical, which intake never accepts.
func (t Target) Prefix() (netip.Prefix, bool) {
	if t.IP == "" {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(t.IP)
	return p, err == nil
}

// String names the target as an operator would write it: the name, with
// "(and subdomains)" when it covers them; the canonical prefix; or the URL.
func (t Target) String() string {
	switch {
	case t.FQDN != "" && t.Subdomains:
		return t.FQDN + " (and subdomains)"
	case t.FQDN != "":
		return t.FQDN
	case t.IP != "":
		return t.IP
	default:
		return t.URL
	}
}

// key identifies a target for merging duplicates: the same name, address
// or URL is one target whatever the other fields say.
func (t Target) key() string {
	switch {
	case t.FQDN != "":
		return "n:" + t.FQDN
	case t.IP != "":
		return "i:" + t.IP
	default:
		return "u:" + t.URL
	}
}

// Disposition records a decision that ends or pauses an order before its
// expiry. The zero Disposition means none was taken.
type Disposition string

// Dispositions.
const (
	Revoked   Disposition = "revoked"
	Suspended Disposition = "suspended"
)

// Order is one accepted legal instrument.
type Order struct {
	ID           string     `json:"id"`
	Authority    Authority  `json:"authority"`
	LegalBasis   LegalBasis `json:"legal_basis"`
	Jurisdiction []string   `json:"jurisdiction"`
	Issued       *time.Time `json:"issued,omitempty"`
	Effective    time.Time  `json:"effective"`
	// Expires is when the order stops blocking; the zero time means an
	// open-ended order, which intake accepts only where the operator
	// allows it explicitly.
	Expires time.Time `json:"expires,omitzero"`
	Targets []Target  `json:"targets"`
	Note    string    `json:"note,omitempty"`
	// AmendingAuthorities may amend the order besides its own authority:
	// the regulator a court entrusts with dynamic blocking, for example.
	AmendingAuthorities []string `json:"amending_authorities,omitempty"`
	// Amendments counts the amendments applied to the order.
	Amendments int `json:"amendments,omitempty"`

	// Received is when writ accepted the order.
	Received time.Time `json:"received"`
	// Disposition, when set, overrides the time-based status.
	Disposition       Disposition `json:"disposition,omitempty"`
	DispositionAt     *time.Time  `json:"disposition_at,omitempty"`
	DispositionReason string      `json:"disposition_reason,omitempty"`
}

// Scope returns the set of countries whose clients the order applies to.
// Intake guarantees the codes are valid; an invalid one is left out, which
// narrows the scope and never widens it.
func (o *Order) Scope() jurisdiction.Set {
	var s jurisdiction.Set
	for _, j := range o.Jurisdiction {
		one, err := jurisdiction.ParseSet(j)
		if err == nil {
			s = s.Union(one)
		}
	}
	return s
}

// Status is where an order stands at a given time.
type Status string

// Statuses, in lifecycle order.
const (
	// StatusHeld: every target waits for review; nothing is enforced.
	StatusHeld Status = "held"
	// StatusScheduled: accepted, but its effective time is in the future.
	StatusScheduled Status = "scheduled"
	// StatusActive: enforced now (held targets excepted).
	StatusActive Status = "active"
	// StatusExpired: its expiry has passed.
	StatusExpired Status = "expired"
	// StatusRevoked: withdrawn before expiry.
	StatusRevoked Status = "revoked"
	// StatusSuspended: paused, for example while a contest is examined.
	StatusSuspended Status = "suspended"
	// StatusWithdrawn: no target is left; every one was rejected by a
	// reviewer or removed.
	StatusWithdrawn Status = "withdrawn"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusHeld, StatusScheduled, StatusActive, StatusExpired, StatusRevoked, StatusSuspended, StatusWithdrawn}

// StatusAt returns the order's status at time now.
func (o *Order) StatusAt(now time.Time) Status {
	switch o.Disposition {
	case Revoked:
		return StatusRevoked
	case Suspended:
		return StatusSuspended
	}
	switch {
	case !o.OpenEnded() && !now.Before(o.Expires):
		return StatusExpired
	case !o.has(TargetActive):
		switch {
		case o.has(TargetHeld):
			return StatusHeld
		case o.has(TargetSuspended):
			return StatusSuspended
		}
		return StatusWithdrawn
	case now.Before(o.Effective):
		return StatusScheduled
	default:
		return StatusActive
	}
}

// EnforcedAt reports whether the order's active targets block at time now:
// effective ≤ now < expires, and neither revoked nor suspended.
func (o *Order) EnforcedAt(now time.Time) bool {
	return o.StatusAt(now) == StatusActive
}

// NextChange returns the next instant after now at which the order's
// status changes on its own (it takes effect or expires), and false if it
// never will.
func (o *Order) NextChange(now time.Time) (time.Time, bool) {
	if o.Disposition != "" {
		return time.Time{}, false
	}
	if now.Before(o.Effective) {
		return o.Effective, true
	}
	if !o.OpenEnded() && now.Before(o.Expires) {
		return o.Expires, true
	}
	return time.Time{}, false
}

// OpenEnded reports whether the order has no expiry.
func (o *Order) OpenEnded() bool { return o.Expires.IsZero() }

func (o *Order) has(state TargetState) bool {
	for _, t := range o.Targets {
		if t.State == state {
			return true
		}
	}
	return false
}

// Clone returns a deep copy, so that a caller can derive a changed order
// without touching one that a published policy may still reference.
func (o *Order) Clone() *Order {
	c := *o
	c.Jurisdiction = append([]string(nil), o.Jurisdiction...)
	c.Targets = append([]Target(nil), o.Targets...)
	c.AmendingAuthorities = append([]string(nil), o.AmendingAuthorities...)
	if o.Issued != nil {
		t := *o.Issued
		c.Issued = &t
	}
	if o.DispositionAt != nil {
		t := *o.DispositionAt
		c.DispositionAt = &t
	}
	return &c
}

// EventKind names what happened to an order.
type EventKind string

// Event kinds. Details of contest events carry only what the public
// record shows, never the filer's identity or contact.
const (
	EventReceived   EventKind = "received"
	EventHeld       EventKind = "held"
	EventReleased   EventKind = "released"
	EventRejected   EventKind = "rejected"
	EventActivated  EventKind = "activated"
	EventAmended    EventKind = "amended"
	EventContested  EventKind = "contested"
	EventDecided    EventKind = "contest_decided"
	EventSuspended  EventKind = "suspended"
	EventReinstated EventKind = "reinstated"
	EventExpiring   EventKind = "expiring"
	EventExpired    EventKind = "expired"
	EventRevoked    EventKind = "revoked"
)

// Event is one entry in an order's history. Seq is assigned by the store
// and orders all events of all orders; it doubles as the policy version.
type Event struct {
	Seq       uint64    `json:"seq"`
	OrderID   string    `json:"order_id"`
	At        time.Time `json:"at"`
	Kind      EventKind `json:"kind"`
	Principal string    `json:"principal"`
	Detail    string    `json:"detail,omitempty"`

	// DocumentSHA256 is the hex SHA-256 of the order's PublicDocument as
	// it stood after event DocumentSeq, the last event of the write that
	// recorded this one. The store fills both; events recorded before
	// the store kept them have them empty.
	DocumentSHA256 string `json:"-"`
	DocumentSeq    uint64 `json:"-"`
}

// JurisdictionString returns the order's jurisdictions as written, joined
// with commas.
func (o *Order) JurisdictionString() string { return strings.Join(o.Jurisdiction, ",") }
