package httpgate

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// StatusUnavailableForLegalReasons is HTTP 451 (RFC 7725).
const StatusUnavailableForLegalReasons = http.StatusUnavailableForLegalReasons

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("451").Parse(pageHTML))

// messages are the texts of the page in one language. Lead takes two
// printf arguments, the host and the client's jurisdiction; Until one,
// the expiry date.
type messages struct {
	Title, Lead                              string
	Authority, LegalBasis, Decision, Summary string
	Order, Until, Record                     string
	ContestTitle, Contest, ContestNoRecord   string
	ContactOperator, Note                    string
	Kinds                                    map[order.AuthorityKind]string
}

// languages are the page's languages, the default first.
var languages = []struct {
	tag string
	msg *messages
}{
	{"en", &messages{
		Title:           "Unavailable for legal reasons",
		Lead:            "Access to %s is blocked for users in %s under the legal order described below.",
		Authority:       "Issued by",
		LegalBasis:      "Legal basis",
		Decision:        "the decision",
		Summary:         "Summary",
		Order:           "Order",
		Until:           "in force until %s",
		Record:          "Public record",
		ContestTitle:    "How to contest",
		Contest:         "The order, the targets it names and any contest filed against it are public. If you are affected and believe the block is wrong, the order's public record says how to contest it:",
		ContestNoRecord: "If you are affected and believe the block is wrong, contact the authority that issued the order, citing its number.",
		ContactOperator: "You can also reach the operator applying the block:",
		Note:            "HTTP 451 (RFC 7725). The block is applied by",
		Kinds:           map[order.AuthorityKind]string{order.Court: "court", order.Regulator: "regulator", order.DelegatedReporter: "delegated reporter"},
	}},
	{"fr", &messages{
		Title:           "Indisponible pour raisons juridiques",
		Lead:            "L'accès à %s est bloqué pour les utilisateurs situés en %s en application de la décision décrite ci-dessous.",
		Authority:       "Émise par",
		LegalBasis:      "Fondement juridique",
		Decision:        "la décision",
		Summary:         "Résumé",
		Order:           "Ordre",
		Until:           "en vigueur jusqu'au %s",
		Record:          "Registre public",
		ContestTitle:    "Comment contester",
		Contest:         "L'ordre, les cibles qu'il désigne et les contestations déposées contre lui sont publics. Si vous êtes concerné et estimez ce blocage injustifié, le registre public de l'ordre indique comment le contester :",
		ContestNoRecord: "Si vous êtes concerné et estimez ce blocage injustifié, adressez-vous à l'autorité qui a émis l'ordre en citant son numéro.",
		ContactOperator: "Vous pouvez aussi joindre l'opérateur qui applique le blocage :",
		Note:            "HTTP 451 (RFC 7725). Blocage appliqué par",
		Kinds:           map[order.AuthorityKind]string{order.Court: "juridiction", order.Regulator: "autorité de régulation", order.DelegatedReporter: "signaleur délégué"},
	}},
	{"it", &messages{
		Title:           "Non disponibile per motivi legali",
		Lead:            "L'accesso a %s è bloccato per gli utenti in %s in forza del provvedimento descritto qui sotto.",
		Authority:       "Emesso da",
		LegalBasis:      "Base giuridica",
		Decision:        "il provvedimento",
		Summary:         "Sintesi",
		Order:           "Ordine",
		Until:           "in vigore fino al %s",
		Record:          "Registro pubblico",
		ContestTitle:    "Come contestare",
		Contest:         "L'ordine, gli obiettivi che indica e le contestazioni presentate sono pubblici. Se ne sei interessato e ritieni il blocco ingiustificato, il registro pubblico dell'ordine spiega come contestarlo:",
		ContestNoRecord: "Se ne sei interessato e ritieni il blocco ingiustificato, rivolgiti all'autorità che ha emesso l'ordine citandone il numero.",
		ContactOperator: "Puoi anche contattare l'operatore che applica il blocco:",
		Note:            "HTTP 451 (RFC 7725). Blocco applicato da",
		Kinds:           map[order.AuthorityKind]string{order.Court: "autorità giudiziaria", order.Regulator: "autorità di regolamentazione", order.DelegatedReporter: "segnalatore delegato"},
	}},
}

// Languages lists the tags of the languages the page is written in, the
// default first.
func Languages() []string {
	out := make([]string, len(languages))
	for i, l := range languages {
		out[i] = l.tag
	}
	return out
}

// negotiate picks the page language from an Accept-Language header
// (RFC 9110, section 12.5.4): the supported language with the highest
// q-value, matched on the primary subtag ("fr-CH" is French); "*" gives
// its q-value to every language the header does not name; q=0 refuses.
// Ties go to the range written first. With nothing acceptable, the
// default (English), since a page in some language beats none.
func negotiate(header string) int {
	var q, pos [3]float64 // per language; pos -1: not named
	for i := range pos {
		pos[i] = -1
	}
	star, starPos := 0.0, -1.0
	for n, part := range strings.Split(header, ",") {
		rng, params, _ := strings.Cut(part, ";")
		rng = strings.ToLower(strings.TrimSpace(rng))
		if rng == "" {
			continue
		}
		w := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			w = f
		}
		if rng == "*" {
			star, starPos = w, float64(n)
			continue
		}
		primary, _, _ := strings.Cut(rng, "-")
		for i, l := range languages {
			if primary == l.tag && (pos[i] < 0 || w > q[i]) {
				if pos[i] < 0 {
					pos[i] = float64(n)
				}
				q[i] = w
			}
		}
	}
	best, bestQ, bestPos := 0, 0.0, 0.0
	for i := range languages {
		w, p := q[i], pos[i]
		if p < 0 {
			w, p = star, starPos
		}
		if w > bestQ || (w == bestQ && w > 0 && p < bestPos) {
			best, bestQ, bestPos = i, w, p
		}
	}
	return best
}

// contactLink is one operator contact on the page.
type contactLink struct {
	URL  template.URL
	Text string
}

// pageData fills page.html.
type pageData struct {
	T                                             *messages
	Lang, Host, Scope                             string
	OrderID, AuthorityName, AuthorityKind         string
	AuthorityJurisdiction, Case, Statute, Summary string
	BasisURL, RecordURL, BlockedBy                string
	Expires                                       string
	Operator                                      string
	Contact                                       []contactLink
}

// WriteBlocked answers a blocked request with status 451 and the page,
// in the client's language, with the headers of RFC 7725: a blocked-by
// link to the operator, and a Cache-Control that lets only the client
// itself keep the answer, never beyond the order's expiry.
func (g *Gate) WriteBlocked(w http.ResponseWriter, r *http.Request, d Decision) {
	li := negotiate(r.Header.Get("Accept-Language"))
	lang := languages[li]
	body := g.pages.get(pageKey{d.Order, li, d.Scope, d.Host}, func() []byte { return g.renderPage(lang.tag, lang.msg, d) })

	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang.tag)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Link", "<"+g.cfg.BlockedBy+`>; rel="blocked-by"`)
	// private: the decision depends on the client's address, which no
	// shared cache keys on; a cached 451 must never reach a client in
	// another jurisdiction.
	h.Set("Cache-Control", "private, max-age="+strconv.Itoa(g.maxAge(d, time.Now())))
	h.Add("Vary", "Accept-Language")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(StatusUnavailableForLegalReasons)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// maxAge is how long, in whole seconds, the client may keep a 451: the
// configured cap, and never past the order's expiry. The cap also bounds
// how long a revoked order's page may linger in a browser.
func (g *Gate) maxAge(d Decision, now time.Time) int {
	age := g.cfg.MaxAge
	if exp := d.Order.Expires; !exp.IsZero() && exp.Sub(now) < age {
		// An open-ended order (zero expiry) leaves the cap alone.
		age = exp.Sub(now)
	}
	return max(0, int(age/time.Second))
}

func (g *Gate) renderPage(tag string, msg *messages, d Decision) []byte {
	o := d.Order
	data := pageData{
		T:                     msg,
		Lang:                  tag,
		Host:                  d.Host,
		Scope:                 d.Scope.String(),
		OrderID:               o.ID,
		AuthorityName:         o.Authority.Name,
		AuthorityKind:         msg.Kinds[o.Authority.Kind],
		AuthorityJurisdiction: o.Authority.Jurisdiction,
		Case:                  o.LegalBasis.Case,
		Statute:               o.LegalBasis.Statute,
		Summary:               o.LegalBasis.Summary,
		BasisURL:              o.LegalBasis.URL,
		BlockedBy:             g.cfg.BlockedBy,
		Operator:              g.cfg.Operator,
	}
	if data.AuthorityKind == "" {
		data.AuthorityKind = string(o.Authority.Kind)
	}
	if !o.Expires.IsZero() {
		data.Expires = o.Expires.UTC().Format("2006-01-02 15:04 UTC")
	}
	if g.cfg.RecordURL != nil {
		data.RecordURL = g.cfg.RecordURL(o.ID)
	}
	for _, c := range g.cfg.Contact {
		data.Contact = append(data.Contact, contactLink{URL: contactURL(c), Text: contactText(c)})
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		// The template is fixed and its data plain strings: this is a bug.
		g.cfg.Logger.Error("rendering the 451 page", "err", err)
	}
	return buf.Bytes()
}

// contactURL admits the schemes a contact may use; html/template would
// otherwise neutralise tel: links, and anything else is not a contact.
func contactURL(c string) template.URL {
	for _, scheme := range []string{"mailto:", "tel:", "https://", "http://"} {
		if strings.HasPrefix(strings.ToLower(c), scheme) {
			return template.URL(c)
		}
	}
	return template.URL("#")
}

// contactText is a contact as people read it: "legal@isp.example"
// rather than "mailto:legal@isp.example".
func contactText(c string) string {
	for _, scheme := range []string{"mailto:", "tel:"} {
		if len(c) > len(scheme) && strings.EqualFold(c[:len(scheme)], scheme) {
			return c[len(scheme):]
		}
	}
	return c
}

// pageKey identifies a rendered page. The order is the snapshot's
// OrderRef: a new policy brings new refs, so a page never outlives the
// order text it was rendered from.
type pageKey struct {
	order *policy.OrderRef
	lang  int
	scope jurisdiction.Code
	host  string
}

// maxCachedPages bounds the page cache; when full it starts afresh.
const maxCachedPages = 4096

// pageCache keeps rendered pages: rendering with html/template costs far
// more than proxying a small answer, and a flood of blocked requests
// should not.
type pageCache struct {
	m atomic.Pointer[sync.Map]
	n atomic.Int64
}

func (c *pageCache) get(k pageKey, render func() []byte) []byte {
	m := c.m.Load()
	if m == nil {
		c.m.CompareAndSwap(nil, &sync.Map{})
		m = c.m.Load()
	}
	if v, ok := m.Load(k); ok {
		return v.([]byte)
	}
	page := render()
	if c.n.Add(1) > maxCachedPages {
		// Hosts under a blocked name are unbounded: start afresh rather
		// than grow. Old snapshots' pages go with them.
		c.n.Store(1)
		m = &sync.Map{}
		c.m.Store(m)
	}
	m.Store(k, page)
	return page
}
