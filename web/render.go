package web

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/writ-project/writ/access"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages maps each page name to its template: the layout plus the page's
// own "content".
var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"date": formatTime,
		"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago": func(now, t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return formatSeconds(now.Sub(t).Seconds()) + " ago"
		},
		"seconds":    formatSeconds,
		"anchor":     anchor,
		"statusText": http.StatusText,
	}
	layout := template.Must(template.New("layout").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html"))
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "error", "dashboard", "queue", "orders", "order", "check", "credentials"} {
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFiles, "templates/"+name+".html"))
	}
	return out
}()

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// anchor turns a target or an id into something usable in an HTML id.
func anchor(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// perms says which forms a page offers. The registry decides again when
// a form is posted; these only keep the pages from offering what would
// be refused.
type perms struct {
	Review, Decide, Suspend, Manage, ReadPrivate, Retire bool
}

func permsOf(p access.Principal) perms {
	return perms{
		Review:      p.Can(access.ReviewTarget),
		Decide:      p.Can(access.DecideContest),
		Suspend:     p.Can(access.SuspendOrder),
		Manage:      p.Can(access.ManagePrincipals),
		ReadPrivate: p.Can(access.ReadPrivate),
		Retire:      p.Can(access.RetirePoint),
	}
}

// pageData is what the layout needs, with the page's own data in Body.
type pageData struct {
	Title, Page, Nonce, CSRF string
	LoggedIn                 bool
	Who                      access.Principal
	Perm                     perms
	Flash                    flash
	// Held is the number of held targets, shown in the navigation.
	Held int
	// Countdown includes the script that ticks deadlines.
	Countdown bool
	Body      any
}

// render writes a page. s is nil for pages shown without a session.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, page, title string, body any) {
	d := pageData{Title: title, Page: page, Nonce: nonceOf(r), Body: body, Countdown: page == "queue" || page == "order"}
	if s != nil {
		d.LoggedIn, d.Who, d.CSRF, d.Perm = true, s.who, s.csrf, permsOf(s.who)
		d.Flash = c.sessions.takeFlash(s.id)
		d.Held = c.heldCount()
	}
	var buf bytes.Buffer
	if err := pages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		c.cfg.Logger.Error("console: rendering a page failed", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorView struct {
	Status  int
	Message string
}

// errorPage answers with status and a sentence saying what went wrong.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	c.render(w, r, s, status, "error", http.StatusText(status), errorView{Status: status, Message: msg})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	c.errorPage(w, r, s, http.StatusNotFound, "There is no such page in the console.")
}
