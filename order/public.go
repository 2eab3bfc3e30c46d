package order

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
	"unicode/utf8"
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
	v, vs := validUTF8, func(l []string) []string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = validUTF8(s)
		}
		return out
	}
	p := publicOrder{
		ID:                v(o.ID),
		Authority:         publicAuth{v(o.Authority.ID), v(o.Authority.Name), v(string(o.Authority.Kind)), v(o.Authority.Jurisdiction)},
		LegalBasis:        publicBasis{v(o.LegalBasis.Statute), v(o.LegalBasis.Case), v(o.LegalBasis.URL), v(o.LegalBasis.Summary)},
		Jurisdiction:      vs(o.Jurisdiction),
		Effective:         format(o.Effective),
		Received:          format(o.Received),
		Targets:           make([]publicTarget, 0, len(o.Targets)),
		Note:              v(o.Note),
		AmendingAuths:     vs(o.AmendingAuthorities),
		Amendments:        o.Amendments,
		Disposition:       v(string(o.Disposition)),
		DispositionReason: v(o.DispositionReason),
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
		p.Targets = append(p.Targets, publicTarget{v(t.FQDN), t.Subdomains, v(t.IP), v(t.URL), v(string(t.State)), v(t.HoldReason), t.Amendment, v(t.Decision)})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// validUTF8 returns s with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as a JSON encoding and decoding would leave it: so
// that an order has the same public document before it is stored and
// after, when its invalid bytes have become U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s))
}

// PublicDocumentSHA256 is the hex SHA-256 of PublicDocument(o), which
// the store records with each event and the ledger's entries carry.
func PublicDocumentSHA256(o *Order) string {
	sum := sha256.Sum256(PublicDocument(o))
	return hex.EncodeToString(sum[:])
}
