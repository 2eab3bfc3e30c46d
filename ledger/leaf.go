package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/writ-project/writ/order"
)

// timeLayout writes every time in UTC with exactly nine fractional digits,
// so that a time has one encoding and a leaf one byte sequence.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Leaf is the content of one ledger entry: the public part of one order
// event. Its canonical encoding (Marshal) is what the Merkle tree hashes.
//
// Who did something (order.Event.Principal) is left out: it can name a
// person, and the public record does not show it.
type Leaf struct {
	// Seq is the event's sequence number in the store; entry i holds
	// seq i+1, so a gap or a reordering shows in the entries themselves.
	Seq uint64 `json:"seq"`
	// OrderID is the order the event is about.
	OrderID string `json:"order_id"`
	// At is when the event happened, RFC 3339 in UTC with nine digits.
	At string `json:"at"`
	// Kind is the event kind: received, held, activated, revoked, …
	Kind string `json:"kind"`
	// Detail is the event's public text, as the order's page shows it.
	Detail string `json:"detail,omitempty"`
	// DocumentSHA256 is the hex SHA-256 of the order's public document
	// (PublicDocument) as it stood after event DocumentSeq.
	DocumentSHA256 string `json:"document_sha256,omitempty"`
	// DocumentSeq is the seq of the order's event after which the document
	// was hashed: this event's own seq or, when the event was recorded in
	// the same write as later ones or the ledger caught up after a
	// restart, the seq of the order's last event in the same ledger batch.
	DocumentSeq uint64 `json:"document_seq,omitempty"`
}

// NewLeaf returns the leaf of event e, whose order's public document,
// hashed after event docSeq, is doc. A nil doc leaves the document fields
// out.
func NewLeaf(e order.Event, doc []byte, docSeq uint64) Leaf {
	l := Leaf{
		Seq:     e.Seq,
		OrderID: e.OrderID,
		At:      e.At.UTC().Format(timeLayout),
		Kind:    string(e.Kind),
		Detail:  e.Detail,
	}
	if doc != nil {
		sum := sha256.Sum256(doc)
		l.DocumentSHA256 = hex.EncodeToString(sum[:])
		l.DocumentSeq = docSeq
	}
	return l
}

// Marshal returns the leaf's canonical encoding: compact JSON with the
// fields in the order of the struct and no HTML escaping.
func (l Leaf) Marshal() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	// A struct of strings and integers always encodes.
	_ = enc.Encode(l)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// ParseLeaf decodes an entry and checks that it is in canonical form, so
// that two different byte strings never claim to be the same event.
func ParseLeaf(data []byte) (Leaf, error) {
	var l Leaf
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Leaf{}, fmt.Errorf("not a ledger entry: %w", err)
	}
	if !bytes.Equal(l.Marshal(), data) {
		return Leaf{}, fmt.Errorf("ledger entry is not in canonical form")
	}
	if _, err := time.Parse(timeLayout, l.At); err != nil {
		return Leaf{}, fmt.Errorf("ledger entry time %q: %w", l.At, err)
	}
	return l, nil
}

// publicOrder is the part of an order that the public record shows. It
// names every field on purpose: a field added to order.Order later stays
// out of the ledger until someone decides it is public.
type publicOrder struct {
	ID                string         `json:"id"`
	Authority         publicAuth     `json:"authority"`
	LegalBasis        publicBasis    `json:"legal_basis"`
	Jurisdiction      []string       `json:"jurisdiction"`
	Issued            string         `json:"issued,omitempty"`
	Effective         string         `json:"effective"`
	Expires           string         `json:"expires,omitempty"`
	Received          string         `json:"received"`
	Targets           []publicTarget `json:"targets"`
	Note              string         `json:"note,omitempty"`
	AmendingAuths     []string       `json:"amending_authorities,omitempty"`
	Amendments        int            `json:"amendments,omitempty"`
	Disposition       string         `json:"disposition,omitempty"`
	DispositionAt     string         `json:"disposition_at,omitempty"`
	DispositionReason string         `json:"disposition_reason,omitempty"`
}

type publicAuth struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Kind         string `json:"kind"`
	Jurisdiction string `json:"jurisdiction"`
}

type publicBasis struct {
	Statute string `json:"statute,omitempty"`
	Case    string `json:"case,omitempty"`
	URL     string `json:"url,omitempty"`
	Summary string `json:"summary,omitempty"`
}

type publicTarget struct {
	FQDN       string `json:"fqdn,omitempty"`
	Subdomains bool   `json:"subdomains,omitempty"`
	IP         string `json:"ip,omitempty"`
	URL        string `json:"url,omitempty"`
	State      string `json:"state,omitempty"`
	HoldReason string `json:"hold_reason,omitempty"`
	Amendment  int    `json:"amendment,omitempty"`
	Decision   string `json:"decision,omitempty"`
}

// PublicDocument returns the canonical JSON of the public part of o: the
// document whose SHA-256 a leaf records and that GET
// /v1/ledger/documents/{id} serves, so that anyone can check the public
// record of an order against the ledger.
func PublicDocument(o *order.Order) []byte {
	format := func(t time.Time) string { return t.UTC().Format(timeLayout) }
	p := publicOrder{
		ID:                o.ID,
		Authority:         publicAuth{o.Authority.ID, o.Authority.Name, string(o.Authority.Kind), o.Authority.Jurisdiction},
		LegalBasis:        publicBasis{o.LegalBasis.Statute, o.LegalBasis.Case, o.LegalBasis.URL, o.LegalBasis.Summary},
		Jurisdiction:      append([]string{}, o.Jurisdiction...),
		Effective:         format(o.Effective),
		Received:          format(o.Received),
		Targets:           make([]publicTarget, 0, len(o.Targets)),
		Note:              o.Note,
		AmendingAuths:     o.AmendingAuthorities,
		Amendments:        o.Amendments,
		Disposition:       string(o.Disposition),
		DispositionReason: o.DispositionReason,
	}
	if !o.Expires.IsZero() {
		p.Expires = format(o.Expires)
	}
	if o.Issued != nil {
		p.Issued = format(*o.Issued)
	}
	if o.DispositionAt != nil {
		p.DispositionAt = format(*o.DispositionAt)
	}
	for _, t := range o.Targets {
		p.Targets = append(p.Targets, publicTarget{t.FQDN, t.Subdomains, t.IP, t.URL, string(t.State), t.HoldReason, t.Amendment, t.Decision})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
