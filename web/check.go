package web

import (
	"net/http"
	"strings"

	"github.com/writ-project/writ/api"
)

type checkView struct {
	Name, Client, Scope string
	Error               string
	Decision            *api.Decision
}

func (c *Console) checkPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := checkView{Name: strings.TrimSpace(q.Get("name")), Client: strings.TrimSpace(q.Get("client")), Scope: strings.TrimSpace(q.Get("scope"))}
	status := http.StatusOK
	if v.Name != "" || v.Client != "" || v.Scope != "" {
		d, err := c.decide(v.Name, v.Client, v.Scope)
		if err != nil {
			v.Error, status = err.Error(), http.StatusBadRequest
		}
		v.Decision = d
	}
	c.render(w, r, s, status, "check", "Check a name", v)
}

// decide answers for name (or an address) and a client address or a
// jurisdiction, from the published policy, as the DNS server would.
func (c *Console) decide(name, client, sc string) (*api.Decision, error) {
	return api.Decide(c.src.Policy.Load(), c.src.Scoper, api.Question{Name: name, Client: client, Scope: sc}, c.cfg.BlockAnswer, nil)
}
