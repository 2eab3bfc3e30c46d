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
	// (order.PublicDocument) as it stood after event DocumentSeq.
	DocumentSHA256 string `json:"document_sha256,omitempty"`
	// DocumentSeq is the seq of the order's event after which the document
	// was hashed: the seq of the order's last event in the store write
	// that recorded this one, so this event's own seq unless the write
	// recorded several. The store hashes the document in that write, so
	// every ledger following the store derives the same entry. (Events
	// recorded before the store did so are hashed when the ledger reads
	// them, after the order's last event in the same ledger batch.)
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
