package api

import (
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/registry"
)

// The public record pages are plain server-rendered HTML, readable
// without JavaScript and in a text browser.

var pageTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} — writ public record</title>
<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111}
table{border-collapse:collapse}td,th{border:1px solid #999;padding:.25rem .5rem;text-align:left}code{font-size:.95em}</style>
</head><body>{{end}}

{{define "index"}}{{template "head" "Orders"}}
<h1>Orders on record</h1>
<p>Every blocking order this operator received, with its legal basis, scope and status. Machine-readable: <a href="/v1/orders">/v1/orders</a>.</p>
<table><thead><tr><th>Order</th><th>Authority</th><th>Jurisdiction</th><th>Status</th><th>Expires</th></tr></thead><tbody>
{{range .}}<tr><td><a href="/orders/{{.Order.ID}}">{{.Order.ID}}</a></td><td>{{.Order.Authority.Name}}</td><td>{{.Order.JurisdictionString}}</td><td>{{.Status}}</td><td>{{date .Order.Expires}}</td></tr>
{{else}}<tr><td colspan="5">No orders.</td></tr>{{end}}
</tbody></table></body></html>{{end}}

{{define "order"}}{{template "head" .Order.ID}}
<h1>Order {{.Order.ID}}</h1>
<p>Status: <strong>{{.Status}}</strong></p>
<h2>Authority</h2>
<p>{{.Order.Authority.Name}} ({{.Order.Authority.Kind}}, {{.Order.Authority.Jurisdiction}})</p>
<h2>Legal basis</h2>
<ul>{{with .Order.LegalBasis.Statute}}<li>Statute: {{.}}</li>{{end}}{{with .Order.LegalBasis.Case}}<li>Decision: {{.}}</li>{{end}}
{{with .Order.LegalBasis.URL}}<li><a href="{{.}}">{{.}}</a></li>{{end}}</ul>
{{with .Order.LegalBasis.Summary}}<p>{{.}}</p>{{end}}
<h2>Scope and dates</h2>
<p>Applies to clients in: {{.Order.JurisdictionString}}.<br>
Effective {{date .Order.Effective}}; expires {{date .Order.Expires}}; received {{date .Order.Received}}.</p>
{{with .Order.Disposition}}<p>{{.}} on {{date $.DispositionAt}}{{with $.Order.DispositionReason}}: {{.}}{{end}}</p>{{end}}
<h2>Targets</h2>
<table><thead><tr><th>Target</th><th>State</th></tr></thead><tbody>
{{range .Order.Targets}}<tr><td><code>{{.}}</code></td><td>{{.State}}{{with .HoldReason}}: {{.}}{{end}}</td></tr>{{end}}
</tbody></table>
<h2>History</h2>
<ol>{{range .Events}}<li>{{date .At}}: {{.Kind}}{{with .Detail}} — {{.}}{{end}}</li>{{end}}</ol>
<p><a href="/">All orders</a> · <a href="/v1/orders/{{.Order.ID}}">JSON</a></p>
</body></html>{{end}}
`))

type recordRow struct {
	Order  *order.Order
	Status order.Status
}

func (s *server) indexPage(w http.ResponseWriter, r *http.Request) {
	now := s.reg.Now()
	var rows []recordRow
	for _, o := range s.reg.Orders() {
		rows = append(rows, recordRow{o, o.StatusAt(now)})
	}
	s.render(w, "index", rows)
}

func (s *server) recordPage(w http.ResponseWriter, r *http.Request) {
	o, events, err := s.reg.Order(r.Context(), r.PathValue("id"))
	if errors.Is(err, registry.ErrNotFound) {
		http.Error(w, "No order with this id is on record.", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "The record could not be read.", http.StatusInternalServerError)
		return
	}
	var at time.Time
	if o.DispositionAt != nil {
		at = *o.DispositionAt
	}
	s.render(w, "order", struct {
		Order         *order.Order
		Status        order.Status
		Events        []order.Event
		DispositionAt time.Time
	}{o, o.StatusAt(s.reg.Now()), events, at})
}

func (s *server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if err := pageTemplates.ExecuteTemplate(w, name, data); err != nil {
		s.cfg.Logger.Error("rendering page", "page", name, "err", err)
	}
}
