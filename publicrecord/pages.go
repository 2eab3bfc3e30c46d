package publicrecord

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/writ-project/writ/order"
)

// The pages are plain server-rendered HTML: no script, one inline style
// sheet, forms that submit with GET. They read the same in a text browser.

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"date": formatTime,
	"inc":  func(i int) int { return i + 1 },
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} — public record of blocking orders</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;line-height:1.5;color:#111;background:#fff}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}td,th{border:1px solid #999;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}code{font-size:.95em}.status{font-weight:bold}form p{margin:.3rem 0}label{margin-right:.3rem}
nav{margin-bottom:1rem}.note{color:#444}
</style>
</head><body><nav><a href="/">All orders</a> · <a href="/v1/report">Transparency report (JSON)</a> · <a href="/v1/report?format=csv">(CSV)</a> · <a href="/v1/ledger/checkpoint">Ledger checkpoint</a></nav>{{end}}

{{define "index"}}{{template "head" "Orders"}}
<main>
<h1>Blocking orders on record</h1>
<p>Every legal blocking order this operator received: who issued it, under which law, for which jurisdictions, against which targets, and what became of it. Each order is enforced only for users in the jurisdictions it names. Every event below is also an entry of a public, verifiable ledger.</p>
<form method="get" action="/" role="search">
<p><label for="q">Search</label><input id="q" name="q" type="search" value="{{.Query}}" placeholder="order id, authority or target" size="32"></p>
<p><label for="status">Status</label><select id="status" name="status"><option value="">any</option>{{range .Statuses}}<option value="{{.Value}}"{{if .Selected}} selected{{end}}>{{.Value}}</option>{{end}}</select>
<label for="jurisdiction">Jurisdiction</label><select id="jurisdiction" name="jurisdiction"><option value="">any</option>{{range .Jurisdictions}}<option value="{{.Value}}"{{if .Selected}} selected{{end}}>{{.Value}}</option>{{end}}</select>
<label for="kind">Authority kind</label><select id="kind" name="kind"><option value="">any</option>{{range .Kinds}}<option value="{{.Value}}"{{if .Selected}} selected{{end}}>{{.Value}}</option>{{end}}</select>
<button type="submit">Search</button></p>
</form>
<p>{{len .Rows}} of {{.Total}} orders{{if .Filtered}} match (<a href="/">show all</a>){{end}}.</p>
<table><thead><tr><th>Order</th><th>Authority</th><th>Jurisdiction</th><th>Targets</th><th>Status</th><th>Received</th><th>Expires</th></tr></thead><tbody>
{{range .Rows}}<tr><td><a href="/orders/{{.ID}}">{{.ID}}</a></td><td>{{.Authority}} ({{.Kind}})</td><td>{{.Jurisdiction}}</td><td>{{.TargetCount}}: {{range $i, $t := .Targets}}{{if $i}}, {{end}}<code>{{$t}}</code>{{end}}{{if .MoreTargets}}, and {{.MoreTargets}} more{{end}}</td><td class="status">{{.Status}}</td><td>{{date .Received}}</td><td>{{.Expires}}</td></tr>
{{else}}<tr><td colspan="7">No order matches.</td></tr>{{end}}
</tbody></table>
</main></body></html>{{end}}

{{define "order"}}{{template "head" (printf "Order %s" .O.ID)}}
<main>
<h1>Order {{.O.ID}}</h1>
<p>Status: <span class="status">{{.Status}}</span>. {{if .Enforced}}Enforced now, for users in {{.Jurisdiction}} only.{{else}}Not enforced now.{{end}}</p>

<h2>Authority</h2>
<p>{{.O.Authority.Name}}: {{.O.Authority.Kind}}, jurisdiction {{.O.Authority.Jurisdiction}} (identifier <code>{{.O.Authority.ID}}</code>).</p>
{{with .O.AmendingAuthorities}}<p>Also allowed to amend this order: {{range $i, $a := .}}{{if $i}}, {{end}}<code>{{$a}}</code>{{end}}.</p>{{end}}

<h2>Legal basis</h2>
<ul>{{with .O.LegalBasis.Statute}}<li>Law: {{.}}</li>{{end}}{{with .O.LegalBasis.Case}}<li>Decision: {{.}}</li>{{end}}{{with .O.LegalBasis.URL}}<li>Text of the decision: <a href="{{.}}" rel="noreferrer noopener">{{.}}</a></li>{{end}}</ul>
{{with .O.LegalBasis.Summary}}<p>{{.}}</p>{{end}}
{{with .O.Note}}<p class="note">Note: {{.}}</p>{{end}}

<h2>Scope and dates</h2>
<table><tbody>
<tr><th>Applies to users in</th><td>{{.Jurisdiction}}</td></tr>
{{with .Issued}}<tr><th>Issued</th><td>{{.}}</td></tr>{{end}}
<tr><th>Effective</th><td>{{date .O.Effective}}</td></tr>
<tr><th>Expires</th><td>{{.Expires}}</td></tr>
<tr><th>Received</th><td>{{date .O.Received}}</td></tr>
{{with .Disposition}}<tr><th>{{.}}</th><td>{{$.DispositionAt}}{{with $.O.DispositionReason}}: {{.}}{{end}}</td></tr>{{end}}
{{if .O.Amendments}}<tr><th>Amendments</th><td>{{.O.Amendments}}</td></tr>{{end}}
</tbody></table>

<h2>Targets</h2>
<p>{{len .O.Targets}} target{{if ne (len .O.Targets) 1}}s{{end}}. Only active targets are blocked; a held target waits for a person's review and blocks nothing.</p>
<table><thead><tr><th>Target</th><th>Kind</th><th>State</th><th>Reason or decision</th></tr></thead><tbody>
{{range .Targets}}<tr><td><code>{{.Name}}</code></td><td>{{.Kind}}{{with .Amendment}} (amendment {{.}}){{end}}</td><td>{{.State}}</td><td>{{.Reason}}</td></tr>
{{end}}</tbody></table>

<h2>Contests and decisions</h2>
{{if .Decisions}}<table><thead><tr><th>When</th><th>What</th><th>Details</th></tr></thead><tbody>
{{range .Decisions}}<tr><td>{{date .At}}</td><td>{{.Kind}}</td><td>{{.Detail}}</td></tr>
{{end}}</tbody></table>
{{else}}<p>No contest has been filed against this order, and no person has suspended, released, rejected or revoked any of it.</p>{{end}}

<h2>History</h2>
<p>Each event is an entry of the public ledger (entry number = seq − 1), with a proof that it is in the signed tree.</p>
<table><thead><tr><th>Seq</th><th>When</th><th>Event</th><th>Details</th><th>Ledger</th></tr></thead><tbody>
{{range .Events}}<tr><td>{{.Seq}}</td><td>{{date .At}}</td><td>{{.Kind}}</td><td>{{.Detail}}</td><td><a href="/v1/ledger/proof/inclusion?index={{.Index}}">proof of entry {{.Index}}</a></td></tr>
{{end}}</tbody></table>

<h2>Machine-readable</h2>
<ul>
<li><a href="/v1/orders/{{.O.ID}}">The order as JSON</a></li>
<li><a href="/v1/ledger/documents/{{.O.ID}}">Its public document</a>, whose SHA-256 the ledger entries record</li>
<li><a href="/v1/orders/{{.O.ID}}/lumen">Lumen notice (JSON)</a>{{with .LumenURL}}, published at <a href="{{.}}" rel="noreferrer noopener">{{.}}</a>{{end}}</li>
<li><a href="/v1/orders/{{.O.ID}}/dsa">DSA statement of reasons (JSON)</a></li>
</ul>
</main></body></html>{{end}}
`))

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

type option struct {
	Value    string
	Selected bool
}

type indexRow struct {
	ID, Authority, Kind, Jurisdiction string
	Status                            order.Status
	Received                          time.Time
	Expires                           string
	TargetCount                       int
	Targets                           []string
	MoreTargets                       int
}

// filter is what the index was asked for.
type filter struct {
	query, status, jurisdiction, kind string
}

func (f filter) active() bool { return f != filter{} }

// matches reports whether o passes the filter at time now.
func (f filter) matches(o *order.Order, now time.Time) bool {
	if f.status != "" && string(o.StatusAt(now)) != f.status {
		return false
	}
	if f.jurisdiction != "" && !slices.ContainsFunc(o.Jurisdiction, func(j string) bool { return strings.EqualFold(j, f.jurisdiction) }) {
		return false
	}
	if f.kind != "" && string(o.Authority.Kind) != f.kind {
		return false
	}
	if f.query == "" {
		return true
	}
	q := strings.ToLower(f.query)
	for _, s := range []string{o.ID, o.Authority.ID, o.Authority.Name, o.LegalBasis.Case, o.LegalBasis.Statute} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	for _, t := range o.Targets {
		if strings.Contains(strings.ToLower(t.FQDN+t.IP+t.URL), q) {
			return true
		}
	}
	return false
}

// options lists the distinct values seen, sorted, marking the chosen one;
// a chosen value that no order has is listed too, so the form shows it.
func options(seen map[string]bool, chosen string) []option {
	if chosen != "" {
		seen[chosen] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]option, len(keys))
	for i, k := range keys {
		out[i] = option{k, k == chosen}
	}
	return out
}

func (s *Server) indexPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := filter{query: strings.TrimSpace(q.Get("q")), status: q.Get("status"), jurisdiction: strings.ToUpper(q.Get("jurisdiction")), kind: q.Get("kind")}
	now := s.rec.Now()
	all := s.rec.Orders()
	statuses, jurisdictions, kinds := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var rows []indexRow
	for _, o := range all {
		statuses[string(o.StatusAt(now))] = true
		kinds[string(o.Authority.Kind)] = true
		for _, j := range o.Jurisdiction {
			jurisdictions[j] = true
		}
		if !f.matches(o, now) {
			continue
		}
		row := indexRow{ID: o.ID, Authority: o.Authority.Name, Kind: string(o.Authority.Kind), Jurisdiction: o.JurisdictionString(),
			Status: o.StatusAt(now), Received: o.Received, Expires: expiry(o), TargetCount: len(o.Targets)}
		const shown = 3
		for i, t := range o.Targets {
			if i == shown {
				row.MoreTargets = len(o.Targets) - shown
				break
			}
			row.Targets = append(row.Targets, t.String())
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b indexRow) int {
		if c := b.Received.Compare(a.Received); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	s.render(w, "index", struct {
		Query                          string
		Statuses, Jurisdictions, Kinds []option
		Rows                           []indexRow
		Total                          int
		Filtered                       bool
	}{f.query, options(statuses, f.status), options(jurisdictions, f.jurisdiction), options(kinds, f.kind), rows, len(all), f.active()})
}

func expiry(o *order.Order) string {
	if o.Expires.IsZero() {
		return "no expiry"
	}
	return formatTime(o.Expires)
}

type targetRow struct {
	Name, Kind, State, Reason string
	Amendment                 int
}

type eventRow struct {
	order.Event
	Index uint64
}

// decisionKinds are the events that record a contest or a person's
// decision about the order; they are listed apart so that a reader sees
// at once whether and how the order was challenged. Any kind whose name
// starts with "contest" counts too.
var decisionKinds = map[order.EventKind]bool{
	"contested": true, "contest_decided": true, "suspended": true, "reinstated": true,
	"released": true, "rejected": true, "revoked": true,
}

func isDecision(k order.EventKind) bool {
	return decisionKinds[k] || strings.HasPrefix(string(k), "contest")
}

func (s *Server) orderPage(w http.ResponseWriter, r *http.Request) {
	o, events, err := s.lookup(r.Context(), r.PathValue("id"))
	if errors.Is(err, errNoOrder) {
		securityHeaders(w.Header())
		http.Error(w, "No order with this id is on record.", http.StatusNotFound)
		return
	}
	if err != nil {
		securityHeaders(w.Header())
		http.Error(w, "The record could not be read.", http.StatusInternalServerError)
		return
	}
	now := s.rec.Now()
	view := struct {
		O                             *order.Order
		Status                        order.Status
		Enforced                      bool
		Jurisdiction, Expires, Issued string
		Disposition, DispositionAt    string
		Targets                       []targetRow
		Decisions                     []order.Event
		Events                        []eventRow
		LumenURL                      string
	}{O: o, Status: o.StatusAt(now), Enforced: o.EnforcedAt(now), Jurisdiction: o.JurisdictionString(), Expires: expiry(o)}
	if o.Issued != nil {
		view.Issued = formatTime(*o.Issued)
	}
	if o.Disposition != "" {
		view.Disposition = strings.ToUpper(string(o.Disposition[:1])) + string(o.Disposition[1:])
		if o.DispositionAt != nil {
			view.DispositionAt = formatTime(*o.DispositionAt)
		}
	}
	for _, t := range o.Targets {
		reason := t.HoldReason
		if t.Decision != "" {
			reason = t.Decision
		}
		view.Targets = append(view.Targets, targetRow{Name: t.String(), Kind: targetKind(t), State: string(t.State), Reason: reason, Amendment: t.Amendment})
	}
	for _, e := range events {
		if isDecision(e.Kind) {
			view.Decisions = append(view.Decisions, e)
		}
		var idx uint64
		if e.Seq > 0 {
			idx = e.Seq - 1
		}
		view.Events = append(view.Events, eventRow{e, idx})
	}
	if s.cfg.Lumen != nil {
		view.LumenURL = s.cfg.Lumen.NoticeURL(o.ID)
	}
	s.render(w, "order", view)
}

// targetKind names what sort of thing a target is, for people.
func targetKind(t order.Target) string {
	switch {
	case t.FQDN != "" && t.Subdomains:
		return "domain name and its subdomains"
	case t.FQDN != "":
		return "domain name"
	case t.IP != "":
		if p, ok := t.Prefix(); !strings.Contains(t.IP, "/") || (ok && p.IsSingleIP()) {
			return "IP address"
		}
		return "IP prefix"
	default:
		return "URL"
	}
}

// render writes a page whole or, if the template fails, an error: a page
// cut off half-way would misstate the record.
func (s *Server) render(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	securityHeaders(w.Header())
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		s.cfg.Logger.Error("rendering a public page", "page", name, "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(b.Len()))
	w.Write(b.Bytes())
}
