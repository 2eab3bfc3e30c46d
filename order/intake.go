package order

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/writ-project/writ/jurisdiction"
)

// Submission is an order as an authority sends it: the JSON of
// testdata/orders-fr-motogp-2025.json. Times are strings so that a bad
// one is reported with its field name.
type Submission struct {
	Authority    Authority         `json:"authority"`
	LegalBasis   LegalBasis        `json:"legal_basis"`
	Jurisdiction []string          `json:"jurisdiction"`
	Issued       string            `json:"issued,omitempty"`
	Effective    string            `json:"effective,omitempty"`
	Expires      string            `json:"expires,omitempty"`
	Targets      []SubmittedTarget `json:"targets"`
	Note         string            `json:"note,omitempty"`
	// AmendingAuthorities may amend the order besides its own authority.
	AmendingAuthorities []string `json:"amending_authorities,omitempty"`
}

// SubmittedTarget is a target as submitted: exactly one of FQDN, IP and
// URL. writ sets the state itself.
type SubmittedTarget struct {
	FQDN       string `json:"fqdn,omitempty"`
	Subdomains bool   `json:"subdomains,omitempty"`
	IP         string `json:"ip,omitempty"`
	URL        string `json:"url,omitempty"`
}

// Decode reads one order submission. Unknown fields, trailing data and
// type mismatches are errors naming the field, so that a typo such as
// "expiry" for "expires" is not silently ignored.
func Decode(r io.Reader) (*Submission, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var s Submission
	if err := dec.Decode(&s); err != nil {
		return nil, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &InvalidError{Fields: []FieldError{{Field: "(document)", Message: "has data after the order object; submit one order per request"}}}
	}
	return &s, nil
}

func describeJSONError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return &InvalidError{Fields: []FieldError{{Field: "(document)", Message: "is empty; expected an order object"}}}
	case errors.As(err, &syntax):
		return &InvalidError{Fields: []FieldError{{Field: "(document)", Message: fmt.Sprintf("is not valid JSON at byte %d: %v", syntax.Offset, syntax)}}}
	case errors.As(err, &typeError):
		field := typeError.Field
		if field == "" {
			field = "(document)"
		}
		return &InvalidError{Fields: []FieldError{{Field: field, Value: typeError.Value, Message: fmt.Sprintf("has the wrong type: expected %s", typeError.Type)}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			name = `""` // a key that is the empty string
		}
		return &InvalidError{Fields: []FieldError{{Field: name, Message: "is not a field of an order (see the API reference for the accepted fields)"}}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &InvalidError{Fields: []FieldError{{Field: "(document)", Message: "ends before the order object is complete"}}}
	}
	return &InvalidError{Fields: []FieldError{{Field: "(document)", Message: err.Error()}}}
}

// DecodeBytes is Decode for a document already in memory.
func DecodeBytes(b []byte) (*Submission, error) { return Decode(bytes.NewReader(b)) }

// Intake holds the operator's rules for accepting orders. The zero value
// accepts valid orders that state their expiry, with no safeguards.
type Intake struct {
	// DefaultExpiry, when set, is added to the effective time of an order
	// that states no expiry. When zero, such an order is rejected: nothing
	// is blocked forever by omission.
	DefaultExpiry time.Duration
	// AllowOpenEnded accepts orders without an expiry as open-ended
	// (DefaultExpiry, when set, takes precedence).
	AllowOpenEnded bool
	// ReviewDelegated holds every target of an order from a delegated
	// reporter (a rights holder, Piracy Shield style) until a reviewer
	// releases it; court and regulator orders apply at once.
	ReviewDelegated bool
	// ReviewExempt lists the ids of delegated reporters whose orders
	// ReviewDelegated does not hold, such as a national platform whose
	// notices bind within minutes: the safeguards still hold what they
	// find risky in them.
	ReviewExempt []string
	// Safeguards hold risky targets for review instead of enforcing them.
	Safeguards Safeguards
	// MaxTargets bounds the number of targets of one order.
	MaxTargets int
}

// DefaultMaxTargets bounds the targets of one order unless configured.
const DefaultMaxTargets = 1_000_000

var authorityID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Field length limits keep a single order from filling the store.
const (
	maxShortText = 512
	maxLongText  = 16 << 10
)

// Accept validates a submission and returns the order writ will record,
// with id and received time set, targets normalised and merged, and risky
// targets held. A submission with any invalid field is rejected whole with
// an *InvalidError that lists every problem; nothing of it is kept.
func (in *Intake) Accept(s *Submission, id string, now time.Time) (*Order, error) {
	bad := &InvalidError{}
	now = now.UTC()
	o := &Order{
		ID:         id,
		Authority:  s.Authority,
		LegalBasis: s.LegalBasis,
		Note:       s.Note,
		Received:   now,
	}

	checkText(bad, "authority.name", s.Authority.Name, true, maxShortText)
	switch {
	case s.Authority.ID == "":
		bad.add("authority.id", "", "is missing: give the authority's identifier, such as \"tj-paris\"")
	case !authorityID.MatchString(s.Authority.ID):
		bad.add("authority.id", s.Authority.ID, "is not an identifier: use lower-case letters, digits, '.', '_' and '-', at most 64 characters")
	}
	switch {
	case s.Authority.Kind == "":
		bad.add("authority.kind", "", "is missing: court, regulator or delegated_reporter")
	case !s.Authority.Kind.valid():
		bad.add("authority.kind", string(s.Authority.Kind), "is not one of court, regulator, delegated_reporter")
	}
	var authorityScope jurisdiction.Set
	if s.Authority.Jurisdiction == "" {
		bad.add("authority.jurisdiction", "", "is missing: give the ISO 3166-1 alpha-2 code of the authority's country, or EU")
	} else if set, err := jurisdiction.ParseSet(s.Authority.Jurisdiction); err != nil {
		bad.add("authority.jurisdiction", s.Authority.Jurisdiction, "is not an ISO 3166-1 alpha-2 country code or EU")
	} else {
		authorityScope = set
		o.Authority.Jurisdiction = strings.ToUpper(s.Authority.Jurisdiction)
	}

	if s.LegalBasis.Statute == "" && s.LegalBasis.Case == "" {
		bad.add("legal_basis", "", "names neither a statute nor a case: every order must cite the law or decision it rests on")
	}
	checkText(bad, "legal_basis.statute", s.LegalBasis.Statute, false, maxShortText*2)
	checkText(bad, "legal_basis.case", s.LegalBasis.Case, false, maxShortText*2)
	checkText(bad, "legal_basis.summary", s.LegalBasis.Summary, false, maxLongText)
	checkText(bad, "note", s.Note, false, maxLongText)
	if u := s.LegalBasis.URL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			bad.add("legal_basis.url", u, "is not an absolute http(s) URL")
		}
	}

	if len(s.Jurisdiction) == 0 {
		bad.add("jurisdiction", "", "is missing: list the ISO 3166-1 alpha-2 codes (or EU) of the countries where the order applies")
	}
	seen := map[string]bool{}
	var outside []string
	for i, j := range s.Jurisdiction {
		field := fmt.Sprintf("jurisdiction[%d]", i)
		set, err := jurisdiction.ParseSet(j)
		if err != nil {
			bad.add(field, j, "is not an ISO 3166-1 alpha-2 country code or EU")
			continue
		}
		if !authorityScope.Empty() && !set.Within(authorityScope) {
			outside = append(outside, strings.ToUpper(j))
		}
		up := strings.ToUpper(j)
		if !seen[up] {
			seen[up] = true
			o.Jurisdiction = append(o.Jurisdiction, up)
		}
	}

	if s.Issued != "" {
		if t, ok := parseTime(bad, "issued", s.Issued); ok {
			o.Issued = &t
		}
	}
	o.Effective = now
	if s.Effective != "" {
		if t, ok := parseTime(bad, "effective", s.Effective); ok {
			o.Effective = t
		}
	}
	switch {
	case s.Expires != "":
		if t, ok := parseTime(bad, "expires", s.Expires); ok {
			o.Expires = t
			if !t.After(o.Effective) {
				bad.add("expires", s.Expires, "is not after the effective time %s", o.Effective.Format(time.RFC3339))
			}
		}
	case in.DefaultExpiry > 0:
		o.Expires = o.Effective.Add(in.DefaultExpiry)
	case !in.AllowOpenEnded:
		bad.add("expires", "", "is missing: every order must say when it ends (this server sets no default expiry and accepts no open-ended orders)")
	}

	for i, a := range s.AmendingAuthorities {
		if !authorityID.MatchString(a) {
			bad.add(fmt.Sprintf("amending_authorities[%d]", i), a, "is not an authority identifier")
			continue
		}
		o.AmendingAuthorities = append(o.AmendingAuthorities, a)
	}

	in.acceptTargets(bad, s.Targets, o)
	if err := bad.orNil(); err != nil {
		return nil, err
	}
	// Holds that concern the whole order rather than one target.
	switch {
	case len(outside) > 0:
		holdAll(o, fmt.Sprintf("the order applies in %s, outside the jurisdiction of its authority (%s)", strings.Join(outside, ","), o.Authority.Jurisdiction))
	case in.reviews(o):
		holdAll(o, DelegatedReviewReason)
	}
	return o, nil
}

// holdAll holds every active target for the given reason.
func holdAll(o *Order, reason string) {
	for i := range o.Targets {
		if o.Targets[i].State == TargetActive {
			o.Targets[i].State, o.Targets[i].HoldReason = TargetHeld, reason
		}
	}
}

func (in *Intake) acceptTargets(bad *InvalidError, targets []SubmittedTarget, o *Order) {
	max := in.MaxTargets
	if max <= 0 {
		max = DefaultMaxTargets
	}
	switch {
	case len(targets) == 0:
		bad.add("targets", "", "is empty: an order must name at least one domain, address or URL")
		return
	case len(targets) > max:
		bad.add("targets", "", "has %d targets; this server accepts at most %d per order", len(targets), max)
		return
	}
	o.Targets = make([]Target, 0, len(targets))
	index := make(map[string]int, len(targets))
	for i, st := range targets {
		t, ok := in.acceptTarget(bad, fmt.Sprintf("targets[%d]", i), st)
		if !ok {
			continue
		}
		k := t.key()
		if j, dup := index[k]; dup {
			// The same target twice is one target; covering subdomains
			// once covers them.
			o.Targets[j].Subdomains = o.Targets[j].Subdomains || t.Subdomains
			continue
		}
		index[k] = len(o.Targets)
		o.Targets = append(o.Targets, t)
	}
	in.Safeguards.holdSharedAddresses(o.Targets)
}

func (in *Intake) acceptTarget(bad *InvalidError, field string, st SubmittedTarget) (Target, bool) {
	set := 0
	for _, v := range []string{st.FQDN, st.IP, st.URL} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		bad.add(field, "", "must have exactly one of fqdn, ip and url")
		return Target{}, false
	}
	t := Target{State: TargetActive}
	switch {
	case st.FQDN != "":
		name, err := NormalizeName(st.FQDN)
		if err != nil {
			bad.add(field+".fqdn", st.FQDN, "%v", err)
			return Target{}, false
		}
		t.FQDN, t.Subdomains = name, st.Subdomains
		if reason, hold := in.Safeguards.holdName(name); hold {
			t.State, t.HoldReason = TargetHeld, reason
		}
	case st.IP != "":
		if st.Subdomains {
			bad.add(field+".subdomains", "true", "applies only to fqdn targets")
			return Target{}, false
		}
		p, err := ParseIPTarget(st.IP)
		if err != nil {
			bad.add(field+".ip", st.IP, "%v", err)
			return Target{}, false
		}
		t.IP = p.String()
		if reason, hold := in.Safeguards.holdPrefix(p); hold {
			t.State, t.HoldReason = TargetHeld, reason
		}
	default:
		if st.Subdomains {
			bad.add(field+".subdomains", "true", "applies only to fqdn targets")
			return Target{}, false
		}
		u, err := normalizeURL(st.URL)
		if err != nil {
			bad.add(field+".url", st.URL, "%v", err)
			return Target{}, false
		}
		t.URL = u
	}
	return t, true
}

func normalizeURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("is not an http or https URL")
	}
	if u.User != nil {
		return "", errors.New("carries user credentials, which a blocking target must not")
	}
	host := u.Hostname()
	if host == "" {
		return "", errors.New("has no host")
	}
	if _, err := ParseIPTarget(host); err != nil {
		name, nerr := NormalizeName(host)
		if nerr != nil {
			return "", fmt.Errorf("has a host that %v", nerr)
		}
		host = name
	} else if strings.Contains(host, ":") {
		// An IPv6 literal keeps its brackets, or the URL no longer parses.
		host = "[" + host + "]"
	}
	if u.Fragment != "" {
		return "", errors.New("has a fragment, which is never sent to a server")
	}
	if u.RawQuery != "" {
		if _, err := url.ParseQuery(u.RawQuery); err != nil {
			return "", fmt.Errorf("has a query that does not parse (%v): a target with a query blocks only requests with its parameters, so they must be clear", err)
		}
	}
	if u.Port() != "" {
		host += ":" + u.Port()
	}
	u.Host = host
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), nil
}

func parseTime(bad *InvalidError, field, v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		bad.add(field, v, "is not an RFC 3339 time such as 2025-03-28T00:00:00Z")
		return time.Time{}, false
	}
	return t.UTC(), true
}

func checkText(bad *InvalidError, field, v string, required bool, max int) {
	switch {
	case required && strings.TrimSpace(v) == "":
		bad.add(field, "", "is missing")
	case len(v) > max:
		bad.add(field, "", "is %d bytes long; the limit is %d", len(v), max)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }):
		bad.add(field, "", "contains control characters")
	case !isValidUTF8(v):
		bad.add(field, "", "is not valid UTF-8")
	}
}

// Amendment adds targets to, or removes targets from, an accepted order
// under the order's own legal basis: how a regulator extends a court's
// order to the mirror sites that appear after it (dynamic blocking).
type Amendment struct {
	Add    []SubmittedTarget `json:"add,omitempty"`
	Remove []SubmittedTarget `json:"remove,omitempty"`
	Note   string            `json:"note,omitempty"`
}

// DecodeAmendment reads one amendment as strictly as Decode reads an order.
func DecodeAmendment(r io.Reader) (*Amendment, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var a Amendment
	if err := dec.Decode(&a); err != nil {
		return nil, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &InvalidError{Fields: []FieldError{{Field: "(document)", Message: "has data after the amendment object"}}}
	}
	return &a, nil
}

// Amend returns a copy of o with the amendment applied, and the targets
// it added and removed. Added targets pass the same validation and
// safeguards as an order's; removed targets must be live targets of the
// order. An amendment with any problem is rejected whole.
func (in *Intake) Amend(o *Order, a *Amendment) (amended *Order, added, removed []Target, err error) {
	return in.AmendBy(o, a, o.Authority)
}

// AmendBy is Amend for an amendment made by the authority by, the order's
// own or one it names as an amender: when by is a delegated reporter
// under review, the targets it adds wait for a reviewer even under a
// court's order.
func (in *Intake) AmendBy(o *Order, a *Amendment, by Authority) (amended *Order, added, removed []Target, err error) {
	bad := &InvalidError{}
	if len(a.Add) == 0 && len(a.Remove) == 0 {
		bad.add("(document)", "", "adds and removes nothing: give add and/or remove")
	}
	checkText(bad, "note", a.Note, false, maxLongText)
	c := o.Clone()
	c.Amendments++
	index := map[string]int{}
	for i, t := range c.Targets {
		index[t.key()] = i
	}
	for i, st := range a.Remove {
		field := fmt.Sprintf("remove[%d]", i)
		t, ok := in.acceptTarget(bad, field, st)
		if !ok {
			continue
		}
		j, found := index[t.key()]
		if !found || !c.Targets[j].State.Live() {
			bad.add(field, t.String(), "is not a live target of this order")
			continue
		}
		c.Targets[j].State, c.Targets[j].HoldReason = TargetRemoved, ""
		c.Targets[j].Decision = fmt.Sprintf("removed by amendment %d", c.Amendments)
		removed = append(removed, c.Targets[j])
	}
	live := 0
	for _, t := range c.Targets {
		if t.State.Live() {
			live++
		}
	}
	max := in.MaxTargets
	if max <= 0 {
		max = DefaultMaxTargets
	}
	if live+len(a.Add) > max {
		bad.add("add", "", "would give the order %d targets; this server accepts at most %d per order", live+len(a.Add), max)
	}
	for i, st := range a.Add {
		field := fmt.Sprintf("add[%d]", i)
		t, ok := in.acceptTarget(bad, field, st)
		if !ok {
			continue
		}
		t.Amendment = c.Amendments
		if !c.Scope().Within(c.authorityScope()) {
			t.State, t.HoldReason = TargetHeld, "the order applies outside the jurisdiction of its authority"
		} else if (in.reviews(c) || in.reviewsAuthority(by)) && t.State == TargetActive {
			t.State, t.HoldReason = TargetHeld, DelegatedReviewReason
		}
		if j, found := index[t.key()]; found {
			if c.Targets[j].State.Live() {
				bad.add(field, t.String(), "is already a target of this order (%s)", c.Targets[j].State)
				continue
			}
			c.Targets[j] = t // a removed or rejected target ordered again
		} else {
			index[t.key()] = len(c.Targets)
			c.Targets = append(c.Targets, t)
		}
		added = append(added, t)
	}
	if err := bad.orNil(); err != nil {
		return nil, nil, nil, err
	}
	return c, added, removed, nil
}

// authorityScope is the set of countries of the order's authority.
func (o *Order) authorityScope() jurisdiction.Set {
	s, _ := jurisdiction.ParseSet(o.Authority.Jurisdiction)
	return s
}

func parseJurisdictions(s string) (jurisdiction.Set, error) {
	if s == "" {
		return jurisdiction.Set{}, fmt.Errorf("empty")
	}
	return jurisdiction.ParseSet(s)
}

// DelegatedReviewReason is the hold reason of a target held only because
// its order comes from a delegated reporter (Intake.ReviewDelegated).
const DelegatedReviewReason = "orders from delegated reporters are reviewed before they are enforced"

// reviews reports whether every target of o waits for a reviewer because
// a delegated reporter, not exempt, ordered it.
func (in *Intake) reviews(o *Order) bool { return in.reviewsAuthority(o.Authority) }

// reviewsAuthority reports whether what a is ordering waits for a
// reviewer because a is a delegated reporter, not exempt.
func (in *Intake) reviewsAuthority(a Authority) bool {
	return in.ReviewDelegated && a.Kind == DelegatedReporter && !slices.Contains(in.ReviewExempt, a.ID)
}
