package order

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// publicTimeLayout writes every time of a public document in UTC with
// exactly nine fractional digits, so that a document has one encoding.
const publicTimeLayout = "2006-01-02T15:04:05.000000000Z"

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
func PublicDocument(o *Order) []byte {
	format := func(t time.Time) string { return t.UTC().Format(publicTimeLayout) }
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

// PublicDocumentSHA256 is the hex SHA-256 of PublicDocument(o), which
// the store records with each event and the ledger's entries carry.
func PublicDocumentSHA256(o *Order) string {
	sum := sha256.Sum256(PublicDocument(o))
	return hex.EncodeToString(sum[:])
}
