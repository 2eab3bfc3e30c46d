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
// A URL target with a query names one resource, not a tree: it blocks
// its path exactly, and only when the request's query has each of the
// target's parameters with the target's value (in any order, among
// others, however percent-encoded), so that an order against
// /watch?v=abc does not block every /watch.

// urlRule is one compiled URL target.
type urlRule struct {
	port  string   // "" matches the default ports (80, 443)
	path  string   // path prefix, cleaned, starting with "/"
	query []qParam // the parameters a request must have; none: any query
	r     uint32   // ruleset
}

// qParam is one query parameter of a URL target, decoded.
type qParam struct{ key, value string }

// urlKey identifies a URL target for merging duplicates; query is the
// canonical form of its parameters (decoded, sorted, encoded again).
type urlKey struct{ host, port, path, query string }

// parseURLKey returns the key of a URL target; false for a URL that
// intake would not have accepted, which is then left out (narrowing,
// never widening, what is blocked).
func parseURLKey(raw string) (urlKey, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return urlKey{}, false
	}
	// The target's path in the form requests are matched in: "/%6Cive"
	// and "/a/../live" are "/live".
	k := urlKey{host: strings.ToLower(u.Hostname()), port: u.Port(), path: CanonicalPath(u.Path)}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return urlKey{}, false
		}
		// Encode sorts by key; a key given twice keeps its values' order.
		k.query = q.Encode()
	}
	return k, true
}

// queryParams returns the parameters of a canonical query.
func queryParams(canonical string) []qParam {
	if canonical == "" {
		return nil
	}
	q, _ := url.ParseQuery(canonical)
	var out []qParam
	for key, values := range q {
		for _, v := range values {
			out = append(out, qParam{key, v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key != out[j].key {
			return out[i].key < out[j].key
		}
		return out[i].value < out[j].value
	})
	return out
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
		s.urls[k.host] = append(s.urls[k.host], urlRule{port: k.port, path: k.path, query: queryParams(k.query), r: r})
	}
	for _, rules := range s.urls {
		// Longest path first, then most parameters: the most specific
		// target is cited.
		sort.Slice(rules, func(i, j int) bool {
			if len(rules[i].path) != len(rules[j].path) {
				return len(rules[i].path) > len(rules[j].path)
			}
			return len(rules[i].query) > len(rules[j].query)
		})
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
// It is MatchURLQuery for a request without a query.
func (s *Snapshot) MatchURL(host, port, path string, c jurisdiction.Code) *OrderRef {
	return s.MatchURLQuery(host, port, path, "", c)
}

// MatchURLQuery is MatchURL for a request with the raw (still encoded)
// query rawQuery: a target with a query blocks its path exactly, when
// the request's query has each of its parameters. It takes no lock and
// does not allocate.
func (s *Snapshot) MatchURLQuery(host, port, path, rawQuery string, c jurisdiction.Code) *OrderRef {
	if s.urls == nil || !s.scope.Has(c) {
		return nil
	}
	for _, u := range s.urls[host] {
		if !portMatches(u.port, port) {
			continue
		}
		if u.query == nil && !pathUnder(path, u.path) || u.query != nil && (path != u.path || !hasParams(rawQuery, u.query)) {
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

// hasParams reports whether the raw query has every parameter of want,
// comparing decoded keys and values ('+' and %20 alike) without
// allocating.
func hasParams(rawQuery string, want []qParam) bool {
	for _, p := range want {
		found := false
		for rest := rawQuery; rest != "" && !found; {
			var pair string
			pair, rest, _ = strings.Cut(rest, "&")
			if pair == "" {
				continue // "a=1&&b=2": nothing between
			}
			key, value, _ := strings.Cut(pair, "=")
			found = decodedEqual(key, p.key) && decodedEqual(value, p.value)
		}
		if !found {
			return false
		}
	}
	return true
}

// decodedEqual reports whether the query component raw, once decoded
// ('+' as a space, %XX as its byte), is want. A '%' not followed by two
// hex digits stands for itself, as browsers send it.
func decodedEqual(raw, want string) bool {
	j := 0
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		switch {
		case b == '+':
			b = ' '
		case b == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			b = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		}
		if j >= len(want) || want[j] != b {
			return false
		}
		j++
	}
	return j == len(want)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
