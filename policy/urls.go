package policy

import (
	"github.com/writ-project/writ/jurisdiction"
	"net/url"
	"sort"
	"strings"
)

// URL targets block a path, and everything under it, on one host, at the
// HTTP layer only; DNS cannot see paths. http and https are matched alike:
// the same resource over plain HTTP would otherwise be a trivial bypass.

// urlRule is one compiled URL target.
type urlRule struct {
	port string // "" matches the default ports (80, 443)
	path string // path prefix, cleaned, starting with "/"
	r    uint32 // ruleset
}

// urlKey identifies a URL target for merging duplicates.
type urlKey struct{ host, port, path string }

// parseURLKey returns the key of a URL target; false for a URL that
// intake would not have accepted, which is then left out (narrowing,
// never widening, what is blocked).
func parseURLKey(raw string) (urlKey, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return urlKey{}, false
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return urlKey{host: strings.ToLower(u.Hostname()), port: u.Port(), path: path}, true
}

func (st *state) addURL(raw string, idx, single uint32) {
	if k, ok := parseURLKey(raw); ok {
		st.urlRules[k] = st.withOrder(st.urlRules[k], idx, single)
	}
}

func (st *state) removeURL(raw string, idx uint32) {
	if k, ok := parseURLKey(raw); ok {
		if r := st.withoutOrder(st.urlRules[k], idx); r != 0 {
			st.urlRules[k] = r
		} else {
			delete(st.urlRules, k)
		}
	}
}

func (s *Snapshot) buildURLs(byKey map[urlKey]uint32) {
	s.urls = nil
	if len(byKey) == 0 {
		return
	}
	s.urls = map[string][]urlRule{}
	for k, r := range byKey {
		s.urls[k.host] = append(s.urls[k.host], urlRule{port: k.port, path: k.path, r: r})
	}
	for _, rules := range s.urls {
		// Longest path first: the most specific target is cited.
		sort.Slice(rules, func(i, j int) bool { return len(rules[i].path) > len(rules[j].path) })
	}
}

// URLs is the number of distinct URL targets enforced.
func (s *Snapshot) URLs() int {
	n := 0
	for _, rules := range s.urls {
		for _, u := range rules {
			if len(s.rulesets[u.r].orders) > 0 {
				n++
			}
		}
	}
	return n
}

// MatchURL returns the order that blocks the URL path on host (lower
// case, without port) and port ("" for the scheme's default) for a client
// in jurisdiction c, or nil. A target blocks its path and every path
// below it: "/live" blocks "/live" and "/live/1" but not "/lively". It
// does not consider name targets; use MatchName on the host for those.
// It takes no lock and does not allocate.
func (s *Snapshot) MatchURL(host, port, path string, c jurisdiction.Code) *OrderRef {
	if s.urls == nil || !s.scope.Has(c) {
		return nil
	}
	for _, u := range s.urls[host] {
		if !portMatches(u.port, port) || !pathUnder(path, u.path) {
			continue
		}
		if o := s.inScope(u.r, c); o != nil {
			return o
		}
	}
	return nil
}

func portMatches(rule, req string) bool {
	if rule == "" {
		return req == "" || req == "80" || req == "443"
	}
	return rule == req
}

// pathUnder reports whether path is prefix or below it, by whole
// segments.
func pathUnder(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/' || path[len(prefix)] == '?'
}
