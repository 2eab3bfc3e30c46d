package policy

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzHasParams: the allocation-free matching of a URL target's query
// parameter agrees with Go's own query decoding wherever that decoding
// succeeds, and never panics on anything.
func FuzzHasParams(f *testing.F) {
	f.Add("v=abc&list=x", "v", "abc")
	f.Add("list=x&v=abc+d", "v", "abc d")
	f.Add("%6Cist=%78", "list", "x")
	f.Add("v=%zz", "v", "%zz")
	f.Add("v", "v", "")
	f.Add("=&&=x", "", "x")
	f.Fuzz(func(t *testing.T, raw, key, value string) {
		got := hasParams(raw, []qParam{{key, value}})
		want, decodable := false, true
		for _, pair := range strings.Split(raw, "&") {
			if pair == "" {
				continue
			}
			k, v, _ := strings.Cut(pair, "=")
			dk, err1 := url.QueryUnescape(k)
			dv, err2 := url.QueryUnescape(v)
			if err1 != nil || err2 != nil {
				decodable = false
				break
			}
			want = want || dk == key && dv == value
		}
		// An empty raw query has no parameter, not one empty one.
		if raw == "" {
			want = false
		}
		if decodable && got != want {
			t.Fatalf("hasParams(%q, %q=%q) = %v, Go's decoding says %v", raw, key, value, got, want)
		}
	})
}
