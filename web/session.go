package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/registry"
)

// Cookie names. The session cookie carries only a random session id;
// the login cookie carries the login form's anti-forgery value.
const (
	sessionCookie = "writ_console"
	loginCookie   = "writ_console_login"
)

// maxFormBytes bounds a form post: the longest is a contest's grounds.
const maxFormBytes = 256 << 10

// session is one person logged in to the console. The token is kept, in
// memory only, to authenticate again at each request: credentials
// disabled while a session is open stop working at once.
type session struct {
	id, csrf, token string
	who             access.Principal
	created, last   time.Time
	flash           flash
}

// flash is a message shown once, on the page a form post redirects to.
type flash struct {
	Message string
	Error   bool
}

// sessions is the in-memory session store.
type sessions struct {
	mu     sync.Mutex
	m      map[string]*session
	idle   time.Duration
	maxAge time.Duration
	now    func() time.Time
}

func newSessions(idle, maxAge time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, idle: idle, maxAge: maxAge, now: now}
}

// create opens a session for who and returns a copy of it.
func (s *sessions) create(who access.Principal, token string) session {
	now := s.now()
	ns := &session{id: randomString(32), csrf: randomString(32), token: token, who: who, created: now, last: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[ns.id] = ns
	return *ns
}

// get returns a copy of the live session with this id and marks it
// active; an idle or too old session is ended instead.
func (s *sessions) get(id string) (session, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ns, ok := s.m[id]
	if !ok {
		return session{}, false
	}
	if s.expired(ns, now) {
		delete(s.m, id)
		return session{}, false
	}
	ns.last = now
	return *ns, true
}

func (s *sessions) expired(ns *session, now time.Time) bool {
	return now.Sub(ns.last) >= s.idle || now.Sub(ns.created) >= s.maxAge
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (s *sessions) setPrincipal(id string, who access.Principal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns, ok := s.m[id]; ok {
		ns.who = who
	}
}

func (s *sessions) setFlash(id string, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns, ok := s.m[id]; ok {
		ns.flash = f
	}
}

// takeFlash returns the session's message and forgets it.
func (s *sessions) takeFlash(id string) flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns, ok := s.m[id]
	if !ok {
		return flash{}
	}
	f := ns.flash
	ns.flash = flash{}
	return f
}

// sweep forgets expired sessions, so that abandoned ones do not pile up.
func (s *sessions) sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ns := range s.m {
		if s.expired(ns, now) {
			delete(s.m, id)
		}
	}
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// sessionHandler serves a request of a logged-in person.
type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

var errNoSession = errors.New("no session")

// session returns the request's session, authenticated again with its
// credentials, or errNoSession.
func (c *Console) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, errNoSession
	}
	s, ok := c.sessions.get(ck.Value)
	if !ok {
		return nil, errNoSession
	}
	who, err := c.src.Registry.Authenticate(r.Context(), s.token)
	if errors.Is(err, registry.ErrForbidden) {
		c.sessions.end(s.id)
		c.cfg.Logger.Info("console session ended: credentials disabled", "principal", s.who.String())
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	s.who = who
	c.sessions.setPrincipal(s.id, who)
	return &s, nil
}

// authed serves h to logged-in people only. Reading pages redirects to
// the login form; anything else without a session is refused with 401.
// A form post must come from the console's own origin (Sec-Fetch-Site,
// else Origin) and carry the session's anti-forgery token, or it is
// refused with 403.
func (c *Console) authed(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		if !safe {
			if err := c.origins.Check(r); err != nil {
				c.cfg.Logger.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path,
					"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
				c.errorPage(w, r, nil, http.StatusForbidden, "Refused: this form was sent from another site. Only the console's own pages may change the record.")
				return
			}
		}
		s, err := c.session(r)
		if errors.Is(err, errNoSession) {
			if safe {
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.errorPage(w, r, nil, http.StatusUnauthorized, "You are not logged in, or your session has ended. Log in again, then repeat what you were doing.")
			return
		}
		if err != nil {
			c.cfg.Logger.Error("console: checking credentials failed", "err", err)
			c.errorPage(w, r, nil, http.StatusInternalServerError, "Your credentials could not be checked: "+err.Error())
			return
		}
		if !safe {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.errorPage(w, r, s, http.StatusBadRequest, "The form could not be read: "+err.Error())
				return
			}
			if !sameSecret(r.PostForm.Get("csrf"), s.csrf) {
				c.cfg.Logger.Warn("console: form without a valid anti-forgery token refused", "path", r.URL.Path, "principal", s.who.String(), "remote", r.RemoteAddr)
				c.errorPage(w, r, s, http.StatusForbidden, "Refused: this form did not come from your current console session. Reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	}
}

func sameSecret(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// secure reports whether cookies must be Secure: on TLS, or when the
// public URL says browsers reach the console over https.
func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.secureURL }

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
}

type loginView struct {
	Next, Form, Error, Notice string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.session(r); err == nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	v := loginView{Next: localPath(r.URL.Query().Get("next"))}
	if r.URL.Query().Has("logged_out") {
		v.Notice = "You have logged out."
	}
	c.showLogin(w, r, http.StatusOK, v)
}

// showLogin renders the login form with a fresh anti-forgery value, sent
// both as a cookie and in the form: a page on another site can make a
// browser post the form, but cannot read or set the cookie to match.
func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, v loginView) {
	v.Form = randomString(32)
	c.setCookie(w, r, loginCookie, v.Form, 3600)
	c.render(w, r, nil, status, "login", "Log in", v)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := c.origins.Check(r); err != nil {
		c.cfg.Logger.Warn("console: cross-origin login refused", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		c.errorPage(w, r, nil, http.StatusForbidden, "Refused: this login form was sent from another site.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, nil, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	next := localPath(r.PostForm.Get("next"))
	ck, err := r.Cookie(loginCookie)
	if err != nil || !sameSecret(r.PostForm.Get("login_form"), ck.Value) {
		c.showLogin(w, r, http.StatusForbidden, loginView{Next: next, Error: "This login form has expired or did not come from this console. Enter your token again."})
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	who, err := c.src.Registry.Authenticate(r.Context(), token)
	if err != nil || who.Role == access.Public {
		if err != nil && !errors.Is(err, registry.ErrForbidden) {
			c.cfg.Logger.Error("console: checking credentials failed", "err", err)
		}
		c.cfg.Logger.Warn("console login refused", "remote", r.RemoteAddr)
		c.showLogin(w, r, http.StatusUnauthorized, loginView{Next: next, Error: "These credentials are unknown or disabled."})
		return
	}
	// A new id at each login: an id planted before it is worth nothing.
	if old, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.end(old.Value)
	}
	s := c.sessions.create(who, token)
	c.setCookie(w, r, sessionCookie, s.id, 0)
	c.setCookie(w, r, loginCookie, "", -1)
	c.cfg.Logger.Info("console login", "principal", who.String(), "remote", r.RemoteAddr)
	if next == "" {
		next = Prefix
		if who.Role == access.Reviewer {
			next = Prefix + "queue"
		}
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.end(s.id)
	c.setCookie(w, r, sessionCookie, "", -1)
	c.cfg.Logger.Info("console logout", "principal", s.who.String(), "remote", r.RemoteAddr)
	http.Redirect(w, r, Prefix+"login?logged_out=1", http.StatusSeeOther)
}

// localPath returns p if it is a path of the console, and "" otherwise:
// where a form may send the browser next, never to another site.
func localPath(p string) string {
	if !strings.HasPrefix(p, Prefix) || strings.Contains(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return p
}
