package publicrecord

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
)

// StatementOfReasons is an order as a statement of reasons for the DSA
// Transparency Database (Article 17 and 24(5) of Regulation (EU)
// 2022/2065), in the JSON its API takes (POST /api/v1/statement). The
// schema it meets is schemas/dsa-statement-of-reasons.schema.json.
type StatementOfReasons struct {
	DecisionVisibility           []string `json:"decision_visibility"`
	DecisionGround               string   `json:"decision_ground"`
	DecisionGroundReferenceURL   string   `json:"decision_ground_reference_url,omitempty"`
	IllegalContentLegalGround    string   `json:"illegal_content_legal_ground"`
	IllegalContentExplanation    string   `json:"illegal_content_explanation"`
	ContentType                  []string `json:"content_type"`
	ContentTypeOther             string   `json:"content_type_other"`
	Category                     string   `json:"category"`
	TerritorialScope             []string `json:"territorial_scope"`
	ContentDate                  string   `json:"content_date"`
	ApplicationDate              string   `json:"application_date"`
	EndDateVisibilityRestriction string   `json:"end_date_visibility_restriction,omitempty"`
	DecisionFacts                string   `json:"decision_facts"`
	SourceType                   string   `json:"source_type"`
	SourceIdentity               string   `json:"source_identity,omitempty"`
	AutomatedDetection           string   `json:"automated_detection"`
	AutomatedDecision            string   `json:"automated_decision"`
	PUID                         string   `json:"puid"`
}

// eeaCountries are the territorial scopes the DSA Transparency Database
// accepts: the EU and EEA member states (Greece as GR).
var eeaCountries = func() jurisdiction.Set {
	s := jurisdiction.EUMembers()
	for _, c := range []string{"IS", "LI", "NO"} {
		s = s.With(jurisdiction.MustParse(c))
	}
	return s
}()

// Date limits of the Transparency Database's validation.
var (
	minApplicationDate = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	minContentDate     = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDate            = time.Date(2038, 1, 1, 0, 0, 0, 0, time.UTC)
)

// errNotDSA says an order cannot be stated under the DSA.
var errNotDSA = errors.New("no DSA statement of reasons")

var puidUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// StatementFor returns the DSA statement of reasons of order o, enforced
// by operator, whose public record is at recordURL. An order whose scope
// holds no EU or EEA country, or whose dates the database cannot take,
// is an error wrapping the reason.
func StatementFor(o *order.Order, operator, recordURL string) (*StatementOfReasons, error) {
	var scope []string
	for _, c := range o.Scope().Codes() {
		if eeaCountries.Has(c) {
			scope = append(scope, c.String())
		}
	}
	if len(scope) == 0 {
		return nil, fmt.Errorf("%w: the order applies in %s, outside the EU and the EEA", errNotDSA, o.JurisdictionString())
	}
	application := o.Effective.UTC()
	if application.Before(minApplicationDate) || !application.Before(maxDate) {
		return nil, fmt.Errorf("%w: the effective date %s is outside the database's range 2020-01-01 to 2038-01-01", errNotDSA, application.Format(time.DateOnly))
	}
	content := o.Received.UTC()
	if o.Issued != nil {
		content = o.Issued.UTC()
	}
	if content.Before(minContentDate) {
		content = minContentDate
	}
	if content.After(maxDate) {
		return nil, fmt.Errorf("%w: the issue date %s is after 2038-01-01", errNotDSA, content.Format(time.DateOnly))
	}
	sor := &StatementOfReasons{
		DecisionVisibility:        []string{"DECISION_VISIBILITY_CONTENT_DISABLED"},
		DecisionGround:            "DECISION_GROUND_ILLEGAL_CONTENT",
		IllegalContentLegalGround: clip(firstNonEmpty(o.LegalBasis.Statute, o.LegalBasis.Case), 500),
		IllegalContentExplanation: clip(explanation(o), 2000),
		ContentType:               []string{"CONTENT_TYPE_OTHER"},
		ContentTypeOther:          "Websites and online services reached by domain name, IP address or URL",
		Category:                  "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE",
		TerritorialScope:          scope,
		ContentDate:               content.Format(time.DateOnly),
		ApplicationDate:           application.Format(time.DateOnly),
		DecisionFacts:             clip(facts(o, operator, recordURL), 5000),
		SourceType:                "SOURCE_TYPE_OTHER_NOTIFICATION",
		SourceIdentity:            clip(fmt.Sprintf("%s (%s, %s)", o.Authority.Name, o.Authority.Kind, o.Authority.Jurisdiction), 500),
		AutomatedDetection:        "No",
		AutomatedDecision:         "AUTOMATED_DECISION_NOT_AUTOMATED",
		PUID:                      clip(puidUnsafe.ReplaceAllString(o.ID, "-"), 500),
	}
	if u, err := url.Parse(o.LegalBasis.URL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && len(o.LegalBasis.URL) <= 500 {
		sor.DecisionGroundReferenceURL = o.LegalBasis.URL
	}
	if end, ok := restrictionEnd(o); ok {
		if end.Before(application) {
			end = application
		}
		if !end.Before(maxDate) {
			return nil, fmt.Errorf("%w: the order ends on %s, after 2038-01-01, the last date the database takes", errNotDSA, end.Format(time.DateOnly))
		}
		sor.EndDateVisibilityRestriction = end.Format(time.DateOnly)
	}
	return sor, nil
}

// restrictionEnd is when the order stops restricting access: its
// revocation, or its expiry; an open-ended order has none.
func restrictionEnd(o *order.Order) (time.Time, bool) {
	if o.Disposition == order.Revoked && o.DispositionAt != nil {
		return o.DispositionAt.UTC(), true
	}
	if o.Expires.IsZero() {
		return time.Time{}, false
	}
	return o.Expires.UTC(), true
}

func explanation(o *order.Order) string {
	if o.LegalBasis.Summary != "" {
		return o.LegalBasis.Summary
	}
	return fmt.Sprintf("%s, an authority of kind %s, ordered access to these targets disabled under %s.", o.Authority.Name, o.Authority.Kind, o.LegalBasis)
}

// facts states the order in a few sentences: who, under what, where,
// which targets, and where its public record is.
func facts(o *order.Order, operator, recordURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Order %s of %s (%s, %s)", o.ID, o.Authority.Name, o.Authority.Kind, o.Authority.Jurisdiction)
	if c := o.LegalBasis.Case; c != "" {
		fmt.Fprintf(&b, ", %s", c)
	}
	fmt.Fprintf(&b, ", requires %s to disable access, for users in %s only, to %d target(s): ", operator, o.JurisdictionString(), len(o.Targets))
	for i, t := range o.Targets {
		if i > 0 {
			b.WriteString(", ")
		}
		if b.Len() > 4000 {
			fmt.Fprintf(&b, "and %d more", len(o.Targets)-i)
			break
		}
		b.WriteString(t.String())
	}
	fmt.Fprintf(&b, ". Access is disabled by DNS and, where configured, HTTP blocking. Public record: %s", recordURL)
	return b.String()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// clip shortens s to at most n characters (runes, as the database
// counts), marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (s *Server) dsaExport(w http.ResponseWriter, r *http.Request) {
	o, _, err := s.lookup(r.Context(), r.PathValue("id"))
	if errors.Is(err, errNoOrder) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the record could not be read")
		return
	}
	sor, err := StatementFor(o, s.cfg.Operator, RecordURL(s.cfg.PublicURL, o.ID))
	if errors.Is(err, errNotDSA) {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, sor)
}
