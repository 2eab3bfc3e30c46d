// Package access says who may do what: principals hold API credentials
// and one role each, and every change to the record is checked against
// the role (and, for authorities, against the orders they issued and the
// jurisdiction they hold). The package does no I/O; tokens are stored as
// hashes by whoever persists principals.
package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Role is what a principal is for.
type Role string

// Roles. Public is everyone without a credential.
const (
	// Authority principals submit and amend orders of their own authority,
	// within its jurisdiction.
	Authority Role = "authority"
	// Reviewer principals release or reject held targets and decide
	// contests.
	Reviewer Role = "reviewer"
	// Operator principals run the service: authorities and credentials,
	// suspension, receipts from enforcement points, orders received on
	// paper.
	Operator Role = "operator"
	// Public is anyone: reading the record, filing a contest.
	Public Role = "public"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(s)); r {
	case Authority, Reviewer, Operator:
		return r, nil
	case Public:
		return "", fmt.Errorf("role %q needs no credential: reading and contesting are open to everyone", s)
	}
	return "", fmt.Errorf("role %q: want authority, reviewer or operator", s)
}

// Principal is one holder of API credentials.
type Principal struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Authority is the authority an Authority principal acts for.
	Authority string    `json:"authority,omitempty"`
	Created   time.Time `json:"created"`
	Disabled  bool      `json:"disabled,omitempty"`
	// TokenHash is the SHA-256 of the principal's token; the token itself
	// is shown once, when created, and never stored.
	TokenHash string `json:"-"`
}

// Anonymous is the principal of a request without credentials.
var Anonymous = Principal{ID: "public", Name: "public", Role: Public}

// String identifies the principal in events and logs: "reviewer:alice".
func (p Principal) String() string {
	if p.Role == Public {
		return "public"
	}
	return string(p.Role) + ":" + p.ID
}

var principalID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Validate checks a principal before it is created.
func (p Principal) Validate() error {
	if !principalID.MatchString(p.ID) {
		return fmt.Errorf("principal id %q: use lower-case letters, digits, '.', '_' and '-', at most 64", p.ID)
	}
	if _, err := ParseRole(string(p.Role)); err != nil {
		return err
	}
	if p.Role == Authority && p.Authority == "" {
		return fmt.Errorf("principal %s: an authority principal must name the authority it acts for", p.ID)
	}
	if p.Role != Authority && p.Authority != "" {
		return fmt.Errorf("principal %s: only authority principals act for an authority", p.ID)
	}
	return nil
}

// NewToken returns a fresh random token and its hash. Tokens carry a
// "writ_" prefix so that secret scanners can recognise them.
func NewToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = "writ_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	return token, HashToken(token), nil
}

// HashToken returns the hex SHA-256 of a token: what is stored and looked
// up. Tokens are long random strings, so a fast hash is enough; looking
// up a hash reveals nothing about tokens that do not match.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Action is something a request does to the record.
type Action string

// Actions that need a role.
const (
	SubmitOrder       Action = "submit an order"
	AmendOrder        Action = "amend an order"
	RevokeOrder       Action = "revoke an order"
	ReviewTarget      Action = "release or reject a held target"
	DecideContest     Action = "decide a contest"
	SuspendOrder      Action = "suspend or reinstate an order or target"
	ManageAuthorities Action = "register authorities"
	ManagePrincipals  Action = "manage credentials"
	RecordReceipt     Action = "record an enforcement receipt"
	RetirePoint       Action = "retire an enforcement point"
	ReadPrivate       Action = "read contest filers' contact details"
)

// allowed lists, for each action, the roles that may take it. Reading the
// public record and filing contests need no role.
var allowed = map[Action][]Role{
	SubmitOrder:       {Authority, Operator},
	AmendOrder:        {Authority, Operator},
	RevokeOrder:       {Authority, Operator},
	ReviewTarget:      {Reviewer},
	DecideContest:     {Reviewer},
	SuspendOrder:      {Operator, Reviewer},
	ManageAuthorities: {Operator},
	ManagePrincipals:  {Operator},
	RecordReceipt:     {Operator},
	RetirePoint:       {Operator},
	ReadPrivate:       {Reviewer, Operator},
}

// Can reports whether the principal's role permits the action. Whether an
// authority may act on a given order is decided by CanActFor.
func (p Principal) Can(a Action) bool {
	if p.Disabled {
		return false
	}
	for _, r := range allowed[a] {
		if r == p.Role {
			return true
		}
	}
	return false
}

// Roles returns the roles that may take an action, for error messages.
func Roles(a Action) []Role { return allowed[a] }

// CanActFor reports whether the principal may act on an order of the
// given authority, which lists amenders besides itself: operators may act
// for any authority, authority principals only for their own (or one that
// names them as an amender, for amendments).
func (p Principal) CanActFor(orderAuthority string, amenders []string, amending bool) bool {
	switch p.Role {
	case Operator:
		return true
	case Authority:
		if p.Authority == orderAuthority {
			return true
		}
		if amending {
			for _, a := range amenders {
				if a == p.Authority {
					return true
				}
			}
		}
	}
	return false
}
