package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/registry"
)

// created is a credential just created: its token is shown this once.
type created struct {
	Principal access.Principal
	Token     string
}

type credentialsView struct {
	Principals  []access.Principal
	Authorities []order.RegisteredAuthority
	Roles       []access.Role
	Created     *created
}

func (c *Console) credentialsPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showCredentials(w, r, s, nil)
}

func (c *Console) showCredentials(w http.ResponseWriter, r *http.Request, s *session, made *created) {
	list, err := c.src.Registry.Principals(r.Context(), s.who)
	if errors.Is(err, registry.ErrForbidden) {
		c.errorPage(w, r, s, http.StatusForbidden, "Only operators manage credentials.")
		return
	}
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	v := credentialsView{Principals: list, Authorities: c.src.Registry.Authorities(),
		Roles: []access.Role{access.Reviewer, access.Authority, access.Operator}, Created: made}
	c.render(w, r, s, http.StatusOK, "credentials", "Credentials", v)
}

func (c *Console) createCredentials(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	p := access.Principal{ID: strings.TrimSpace(f.Get("id")), Name: strings.TrimSpace(f.Get("name")), Role: access.Role(f.Get("role"))}
	if p.Role == access.Authority {
		p.Authority = f.Get("authority")
	}
	token, err := c.src.Registry.CreatePrincipal(r.Context(), p, s.who)
	if err != nil {
		c.done(w, r, s, err, "", Prefix+"credentials")
		return
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	// The token is shown in this response and never again: it is
	// stored only as a hash, and this page is not cached.
	c.sessions.setFlash(s.id, flash{Message: fmt.Sprintf("Credentials created for %s. Copy the token below now: it is not shown again.", p)})
	c.showCredentials(w, r, s, &created{Principal: p, Token: token})
}

func (c *Console) setDisabled(disabled bool) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		id := r.PathValue("id")
		err := c.src.Registry.DisablePrincipal(r.Context(), id, disabled, s.who)
		msg := fmt.Sprintf("Credentials of %s disabled: any console session they hold ends at its next request.", id)
		if !disabled {
			msg = fmt.Sprintf("Credentials of %s enabled again.", id)
		}
		c.done(w, r, s, err, msg, Prefix+"credentials")
	}
}
