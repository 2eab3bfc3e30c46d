package piracyshield

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/writ-project/writ/order"
)

// Genre is the kind of an item, as the platform names it.
type Genre string

// The platform's item genres.
const (
	FQDN Genre = "fqdn"
	IPv4 Genre = "ipv4"
	IPv6 Genre = "ipv6"
)

// Genres lists every genre, in the platform's order.
var Genres = []Genre{FQDN, IPv4, IPv6}

// Ticket is a blocking ticket as the platform shows it to a provider:
// only the items assigned to the provider and not flagged (duplicate,
// whitelisted, error) are listed.
type Ticket struct {
	ID          string   `json:"ticket_id"`
	Description string   `json:"description"`
	FQDN        []string `json:"fqdn"`
	IPv4        []string `json:"ipv4"`
	IPv6        []string `json:"ipv6"`
	// Status is open, then closed 1875 s after creation; closed tickets'
	// items stay in force.
	Status   string `json:"status"`
	Metadata struct {
		CreatedAt string `json:"created_at"`
	} `json:"metadata"`
	// DDAID is the regulator's authorisation ("1234/24/DDA"), when the
	// platform shows it.
	DDAID string `json:"dda_id,omitempty"`
}

// Items returns the ticket's values of one genre.
func (t *Ticket) Items(g Genre) []string {
	switch g {
	case FQDN:
		return t.FQDN
	case IPv4:
		return t.IPv4
	case IPv6:
		return t.IPv6
	}
	return nil
}

// Created parses the ticket's creation time; it reports false when the
// platform gave none it could read.
func (t *Ticket) Created() (time.Time, bool) {
	ts, err := time.Parse(time.RFC3339Nano, t.Metadata.CreatedAt)
	if err != nil {
		return time.Time{}, false
	}
	return ts, true
}

// ItemState is one item's status as the provider set it.
type ItemState struct {
	Value     string `json:"value"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	Note      string `json:"note"`
	Timestamp string `json:"timestamp"`
}

// Status is what a provider reports about an item.
type Status string

// Statuses a provider sets.
const (
	Processed   Status = "processed"
	Unprocessed Status = "unprocessed"
)

// Reason says why an item was not processed: one of the platform's three.
type Reason string

// The platform's reasons for an unprocessed item. writ's own reasons
// (held for review, refused) have no code of their own and are reported
// as Undefined with the reason in the note.
const (
	AlreadyBlocked Reason = "ALREADY_BLOCKED"
	Undefined      Reason = "UNDEFINED"
	Unknown        Reason = "UNKNOWN"
)

// UpdateWindow is how long after an item's creation the platform accepts
// a status for it.
const UpdateWindow = 48 * time.Hour

// Deadline is the time the law gives a provider to block an item.
const Deadline = 30 * time.Minute

var (
	fqdnRule     = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,}$`)
	ticketIDRule = regexp.MustCompile(`^[a-zA-Z0-9]{32}$`)
)

// ValidTicketID reports whether s is a ticket identifier: 32 letters or
// digits (a UUID4 without dashes).
func ValidTicketID(s string) bool { return ticketIDRule.MatchString(s) }

// ErrMalformed marks a value that breaks the platform's own validation
// rules: the platform should never have listed it, and refuses any report
// about it.
var ErrMalformed = errors.New("breaks the platform's own rules")

// CheckValue checks an item value the way the platform validates it
// (textually: letters-only TLD, dotted-quad IPv4 with leading zeros
// accepted, no prefixes) and returns the writ target it stands for. The
// error completes a sentence that starts with the quoted value.
//
// Names are lower-cased and IPv4 octets read as decimal, as the
// platform's own validator reads them, so "010.1.1.1" is 10.1.1.1. A
// value the platform accepts but writ never blocks (a public suffix
// alone, a private address) is an error too.
func CheckValue(g Genre, value string) (order.SubmittedTarget, error) {
	switch g {
	case FQDN:
		if !fqdnRule.MatchString(value) {
			return order.SubmittedTarget{}, fmt.Errorf("is not an FQDN: it %w", ErrMalformed)
		}
		name, err := order.NormalizeName(value)
		if err != nil {
			return order.SubmittedTarget{}, err
		}
		return order.SubmittedTarget{FQDN: name}, nil
	case IPv4:
		addr, ok := parseDottedQuad(value)
		if !ok {
			return order.SubmittedTarget{}, fmt.Errorf("is not an IPv4 address (four decimal octets): it %w", ErrMalformed)
		}
		return ipTarget(addr)
	case IPv6:
		addr, err := netip.ParseAddr(value)
		if err != nil || !addr.Is6() || strings.ContainsAny(value, "%./") {
			return order.SubmittedTarget{}, fmt.Errorf("is not an IPv6 address: it %w", ErrMalformed)
		}
		return ipTarget(addr.String())
	}
	return order.SubmittedTarget{}, fmt.Errorf("has the unknown genre %q", g)
}

func ipTarget(addr string) (order.SubmittedTarget, error) {
	p, err := order.ParseIPTarget(addr)
	if err != nil {
		return order.SubmittedTarget{}, err
	}
	return order.SubmittedTarget{IP: p.Addr().String()}, nil
}

// parseDottedQuad reads four decimal octets of up to three digits each,
// leading zeros allowed, and returns the canonical address.
func parseDottedQuad(s string) (string, bool) {
	octets := strings.Split(s, ".")
	if len(octets) != 4 {
		return "", false
	}
	out := make([]string, 4)
	for i, o := range octets {
		if o == "" || len(o) > 3 || strings.Trim(o, "0123456789") != "" {
			return "", false
		}
		n, _ := strconv.Atoi(o)
		if n > 255 {
			return "", false
		}
		out[i] = strconv.Itoa(n)
	}
	return strings.Join(out, "."), true
}

// Checksum is the platform's checksum of a list: the hex SHA-256 of the
// values joined by newlines.
func Checksum(values []string) string {
	sum := sha256.Sum256([]byte(strings.Join(values, "\n")))
	return hex.EncodeToString(sum[:])
}

// The platform accepts notes of 3 to 512 characters made of letters,
// digits and these.
const noteExtra = ` .,-&/$"@`

// Note turns writ's text into a note the platform accepts: characters it
// refuses become spaces or commas, runs of spaces one, and the result is
// cut to 512 characters at a word boundary where it can be.
func Note(text string) string {
	var b strings.Builder
	space := false
	for _, r := range text {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(noteExtra, r) && r != ' ':
		case r == ':' || r == ';':
			r = ','
		default:
			r = ' '
		}
		if r == ' ' {
			space = true
			continue
		}
		// No space before a comma or a full stop.
		if space && b.Len() > 0 && r != ',' && r != '.' {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	s := b.String()
	if utf8.RuneCountInString(s) > 512 {
		s = s[:512]
		if i := strings.LastIndexByte(s, ' '); i > 400 {
			s = s[:i]
		}
	}
	for len(s) < 3 {
		s += "."
	}
	return s
}
