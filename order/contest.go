package order

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// RegisteredAuthority is an authority writ knows: who it is, and within
// what time its orders must be enforced.
type RegisteredAuthority struct {
	Authority
	// DeadlineSeconds is the time allowed from receiving (or, for a
	// scheduled order, from the effective time) to enforcement at every
	// enforcement point: 1800 for Piracy Shield's thirty minutes.
	DeadlineSeconds int       `json:"deadline_seconds"`
	Registered      time.Time `json:"registered"`
}

// DefaultDeadline is the enforcement deadline of an authority registered
// without one: Italy's thirty minutes, the strictest in force.
const DefaultDeadline = 30 * time.Minute

// Deadline returns the enforcement deadline.
func (a RegisteredAuthority) Deadline() time.Duration {
	if a.DeadlineSeconds <= 0 {
		return DefaultDeadline
	}
	return time.Duration(a.DeadlineSeconds) * time.Second
}

// ValidateAuthority checks an authority before it is registered.
func ValidateAuthority(a RegisteredAuthority) error {
	bad := &InvalidError{}
	switch {
	case a.ID == "":
		bad.add("id", "", "is missing")
	case !authorityID.MatchString(a.ID):
		bad.add("id", a.ID, "is not an identifier: use lower-case letters, digits, '.', '_' and '-', at most 64 characters")
	}
	checkText(bad, "name", a.Name, true, maxShortText)
	switch {
	case a.Kind == "":
		bad.add("kind", "", "is missing: court, regulator or delegated_reporter")
	case !a.Kind.valid():
		bad.add("kind", string(a.Kind), "is not one of court, regulator, delegated_reporter")
	}
	if _, err := parseJurisdictions(a.Jurisdiction); err != nil {
		bad.add("jurisdiction", a.Jurisdiction, "is not an ISO 3166-1 alpha-2 country code or EU")
	}
	if a.DeadlineSeconds < 0 {
		bad.add("deadline_seconds", fmt.Sprint(a.DeadlineSeconds), "is negative")
	}
	return bad.orNil()
}

// ContestStatus is where a contest stands.
type ContestStatus string

// Contest statuses.
const (
	ContestPending   ContestStatus = "pending"
	ContestUpheld    ContestStatus = "upheld"
	ContestDismissed ContestStatus = "dismissed"
)

// Contest is a challenge, by anyone affected, to an order or to one of its
// targets. Its grounds and outcome are public; who filed it is not.
type Contest struct {
	ID      int64  `json:"id"`
	OrderID string `json:"order_id"`
	// Target is the contested target as the order names it, or empty for
	// the whole order.
	Target   string        `json:"target,omitempty"`
	Grounds  string        `json:"grounds"`
	Filed    time.Time     `json:"filed"`
	Status   ContestStatus `json:"status"`
	Decided  *time.Time    `json:"decided,omitempty"`
	Decision string        `json:"decision,omitempty"`
	// Filer is how to reach whoever filed the contest. It is personal
	// data: kept for reviewers, never in events, the ledger or pages.
	Filer ContestFiler `json:"-"`
}

// ContestFiler identifies who filed a contest.
type ContestFiler struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// ContestSubmission is a contest as filed through the API.
type ContestSubmission struct {
	Target  string       `json:"target,omitempty"`
	Grounds string       `json:"grounds"`
	Contact ContestFiler `json:"contact"`
}

// AcceptContest validates a contest against the order it challenges.
func AcceptContest(o *Order, s *ContestSubmission, now time.Time) (*Contest, error) {
	bad := &InvalidError{}
	c := &Contest{OrderID: o.ID, Grounds: strings.TrimSpace(s.Grounds), Filed: now.UTC(), Status: ContestPending, Filer: s.Contact}
	checkText(bad, "grounds", c.Grounds, true, maxLongText)
	if len(c.Grounds) > 0 && len(c.Grounds) < 10 {
		bad.add("grounds", c.Grounds, "is too short to examine: say who is affected and why the block is wrong")
	}
	checkText(bad, "contact.name", s.Contact.Name, true, maxShortText)
	if _, err := mail.ParseAddress(s.Contact.Email); err != nil || !strings.Contains(s.Contact.Email, "@") {
		bad.add("contact.email", s.Contact.Email, "is not an e-mail address: reviewers need a way to reach you")
	}
	if s.Target != "" {
		t, ok := o.FindTarget(s.Target)
		if !ok {
			bad.add("target", s.Target, "is not a target of order %s", o.ID)
		} else {
			c.Target = t.String()
		}
	}
	if err := bad.orNil(); err != nil {
		return nil, err
	}
	return c, nil
}

// FindTarget finds a target of the order by any spelling intake accepts:
// "MotoGPStream.me", "203.0.113.7/32", or its String form.
func (o *Order) FindTarget(s string) (Target, bool) {
	_, i, ok := o.findTarget(s)
	if !ok {
		return Target{}, false
	}
	return o.Targets[i], true
}

func (o *Order) findTarget(s string) (Target, int, bool) {
	s = strings.TrimSpace(strings.TrimSuffix(s, " (and subdomains)"))
	var key string
	switch {
	case strings.Contains(s, "://"):
		if u, err := normalizeURL(s); err == nil {
			key = "u:" + u
		}
	default:
		if p, err := ParseIPTarget(s); err == nil {
			key = "i:" + p.String()
		} else if n, err := NormalizeName(s); err == nil {
			key = "n:" + n
		}
	}
	for i, t := range o.Targets {
		if key != "" && t.key() == key {
			return t, i, true
		}
	}
	return Target{}, 0, false
}

// TargetIndex returns the index of the target named s (see FindTarget).
func (o *Order) TargetIndex(s string) (int, bool) {
	_, i, ok := o.findTarget(s)
	return i, ok
}
