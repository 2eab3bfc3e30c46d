package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/writ-project/writ/order"
)

// TestStrictBodies sends every route that reads a body what
// encoding/json alone would let through: keys given twice, keys in
// another case, unknown keys, data after the object, a body that is not
// an object, and bodies over the limit. Each is refused and changes
// nothing.
func TestStrictBodies(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"), map[string]any{"ip": "1.1.1.1"})))
	c := decode[order.Contest](t, w.pub.want(http.StatusCreated, "POST", "/v1/orders/"+o.ID+"/contests",
		map[string]any{"grounds": "This order is wrong for these reasons.", "contact": map[string]string{"name": "A", "email": "a@example.org"}}))
	base := "/v1/orders/" + o.ID
	big := `{"reason": "` + strings.Repeat("x", maxSmallBody) + `"}`
	for _, tc := range []struct {
		name   string
		as     *client
		path   string
		body   string
		status int
		field  string // a field the error must name, if any
	}{
		{"order: key twice", w.court, "/v1/orders", strings.Replace(string(mustJSON(t, courtOrder(fqdn("a.example")))), `"targets":`, `"targets":[{"fqdn":"b.example"}],"targets":`, 1), 400, "targets"},
		{"order: key twice in a target", w.court, "/v1/orders", strings.Replace(string(mustJSON(t, courtOrder(map[string]any{"fqdn": "a.example"}))),
			`{"fqdn":"a.example"}`, `{"fqdn":"a.example","fqdn":"b.example"}`, 1), 400, "targets[0].fqdn"},
		{"order: key in another case", w.court, "/v1/orders", strings.Replace(string(mustJSON(t, courtOrder(fqdn("a.example")))), `"targets":`, `"Targets":`, 1), 400, "Targets"},
		{"order: nested key in another case", w.court, "/v1/orders", strings.Replace(string(mustJSON(t, courtOrder(fqdn("a.example")))), `"case":`, `"Case":`, 1), 400, "legal_basis.Case"},
		{"amendment: key twice", w.court, base + "/amendments", `{"add": [{"fqdn": "x.example"}], "add": [{"fqdn": "y.example"}]}`, 400, "add"},
		{"amendment: key in another case", w.court, base + "/amendments", `{"ADD": [{"fqdn": "x.example"}]}`, 400, "ADD"},
		{"revoke: key twice", w.court, base + "/revoke", `{"reason": "a", "reason": "b"}`, 400, "reason"},
		{"revoke: key in another case", w.court, base + "/revoke", `{"Reason": "appeal"}`, 400, "Reason"},
		{"revoke: data after the object", w.court, base + "/revoke", `{"reason": "a"} {"reason": "b"}`, 400, ""},
		{"revoke: garbage after the object", w.court, base + "/revoke", `{"reason": "a"} trailing`, 400, ""},
		{"revoke: null", w.court, base + "/revoke", `null`, 400, ""},
		{"revoke: an array", w.court, base + "/revoke", `[{"reason": "a"}]`, 400, ""},
		{"revoke: a string", w.court, base + "/revoke", `"revoke it"`, 400, ""},
		{"revoke: over the limit", w.court, base + "/revoke", big, 413, ""},
		{"release: key twice", w.rev, base + "/release", `{"target": "1.1.1.1", "target": "motogpstream.me", "reason": "x"}`, 400, "target"},
		{"suspend: unknown key", w.op, base + "/suspend", `{"target": "motogpstream.me", "reason": "x", "until": "tomorrow"}`, 400, ""},
		{"contest: nested key in another case", w.pub, base + "/contests", `{"grounds": "This order is wrong for these reasons.", "contact": {"name": "A", "Email": "a@example.org"}}`, 400, "contact.Email"},
		{"contest: key twice", w.pub, base + "/contests", `{"grounds": "This order is wrong for these reasons.", "grounds": "Other grounds entirely, longer.", "contact": {"name": "A", "email": "a@example.org"}}`, 400, "grounds"},
		{"contest: over the limit", w.pub, base + "/contests", `{"grounds": "` + strings.Repeat("x", maxSmallBody) + `", "contact": {"name": "A", "email": "a@example.org"}}`, 413, ""},
		{"decision: key in another case", w.rev, fmt.Sprintf("/v1/contests/%d/decision", c.ID), `{"outcome": "upheld", "Reason": "x"}`, 400, "Reason"},
		{"principal: fields the registry sets", w.op, "/v1/principals", `{"id": "eve", "role": "operator", "disabled": false, "created": "2020-01-01T00:00:00Z"}`, 400, ""},
		{"principal: key twice", w.op, "/v1/principals", `{"id": "eve", "role": "reviewer", "role": "operator"}`, 400, "role"},
		{"authority: key in another case", w.op, "/v1/authorities", `{"id": "x", "name": "X", "kind": "court", "Jurisdiction": "FR"}`, 400, "Jurisdiction"},
		{"receipt: key twice", w.op, "/v1/receipts", `{"point": "dns", "version": 1, "version": 999}`, 400, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.s.list(t, "")
			_, events, err := w.s.reg.Order(t.Context(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			code, data := tc.as.do("POST", tc.path, []byte(tc.body))
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, data)
			}
			e := decode[errorBody](t, data)
			if e.Error == "" {
				t.Error("no error sentence")
			}
			if tc.field != "" && !slices.ContainsFunc(e.Fields, func(f order.FieldError) bool { return f.Field == tc.field && f.Message != "" }) {
				t.Errorf("fields %+v do not name %s", e.Fields, tc.field)
			}
			after := w.s.list(t, "")
			_, events2, err := w.s.reg.Order(t.Context(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(after.Orders) != len(before.Orders) || after.PolicyVersion != before.PolicyVersion || len(events2) != len(events) {
				t.Errorf("a refused request changed the record")
			}
		})
	}
	// The names in another case point at the right one.
	_, data := w.court.do("POST", base+"/revoke", []byte(`{"REASON": "x"}`))
	if !strings.Contains(string(data), `did you mean \"reason\"`) {
		t.Errorf("error does not suggest the field: %s", data)
	}
	if list := string(w.op.want(http.StatusOK, "GET", "/v1/principals", nil)); strings.Contains(list, `"eve"`) {
		t.Errorf("a refused request created credentials: %s", list)
	}

	// Orders and amendments are not held to the small limit: they carry
	// lists of targets.
	var targets []map[string]any
	for i := range 3000 {
		targets = append(targets, map[string]any{"fqdn": fmt.Sprintf("mirror-%05d.example", i)})
	}
	body := mustJSON(t, courtOrder(targets...))
	if len(body) <= maxSmallBody {
		t.Fatalf("test order of %d bytes is not over the small limit", len(body))
	}
	w.court.want(http.StatusCreated, "POST", "/v1/orders", body)
	w.court.want(http.StatusOK, "POST", base+"/amendments", mustJSON(t, map[string]any{"add": targets[:2500]}))
}

func TestStrictKeysTypes(t *testing.T) {
	type inner struct {
		B string `json:"b"`
	}
	type embedded struct {
		E string `json:"e"`
	}
	type doc struct {
		embedded
		A     string            `json:"a,omitempty"`
		In    inner             `json:"in"`
		List  []inner           `json:"list"`
		Free  map[string]inner  `json:"free"`
		Any   any               `json:"any"`
		Skip  string            `json:"-"`
		Raw   map[string]string `json:"raw"`
		Plain string
	}
	typ := reflect.TypeFor[doc]()
	for _, tc := range []struct {
		doc  string
		bad  []string // fields reported
		fail bool
	}{
		{`{"a": "x", "e": "y", "in": {"b": "z"}, "list": [{"b": "1"}, {"b": "2"}], "free": {"K": {"b": "3"}}, "any": {"X": 1, "x": 2}, "Plain": "p"}`, nil, false},
		{`{"A": "x"}`, []string{"A"}, false},
		{`{"E": "x"}`, []string{"E"}, false},
		{`{"in": {"B": "z"}}`, []string{"in.B"}, false},
		{`{"list": [{"b": "1"}, {"b": "1", "b": "2"}]}`, []string{"list[1].b"}, false},
		{`{"free": {"k": {"B": "3"}}}`, []string{"free.k.B"}, false},
		{`{"free": {"k": {}, "k": {}}}`, []string{"free.k"}, false},
		{`{"any": {"x": 1, "x": 2}}`, []string{"any.x"}, false},
		{`{"Skip": "x", "-": "y"}`, []string{"Skip", "-"}, false},
		{`{"plain": "p"}`, []string{"plain"}, false},
		{`{"a": "1", "a": "2", "A": "3"}`, []string{"a", "A"}, false},
		{`{"any": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, []string{"(document)"}, true},
	} {
		t.Run(tc.doc[:min(len(tc.doc), 40)], func(t *testing.T) {
			err := strictKeys([]byte(tc.doc), typ)
			if len(tc.bad) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			inv, ok := err.(*order.InvalidError)
			if !ok {
				t.Fatalf("error %v, want an *order.InvalidError", err)
			}
			var got []string
			for _, f := range inv.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tc.bad) {
				t.Errorf("fields %v, want %v", got, tc.bad)
			}
			if tc.fail != strings.Contains(inv.Fields[0].Message, "nests deeper") {
				t.Errorf("message %q", inv.Fields[0].Message)
			}
		})
	}
}

// BenchmarkStrictKeys compares checking an order of 100,000 targets with
// decoding it: the check must stay a fraction of the decoding.
func BenchmarkStrictKeys(b *testing.B) {
	var targets []map[string]any
	for i := range 100000 {
		targets = append(targets, map[string]any{"fqdn": fmt.Sprintf("mirror-%06d.example", i), "subdomains": true})
	}
	body, err := json.Marshal(courtOrder(targets...))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("strict", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := strictKeys(body, reflect.TypeFor[order.Submission]()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := order.DecodeBytes(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzStrictKeys checks the byte scanner against encoding/json's own
// tokenizer: on any valid document it finds a key given twice exactly
// when the tokenizer does.
func FuzzStrictKeys(f *testing.F) {
	for _, seed := range []string{
		`{"a": 1, "b": [1, {"c": 2, "c": 3}], "d": {"e": "\"}"}}`,
		`{"t\u0061rgets": [], "targets": []}`,
		`[{"a": 1}, {"a": 1, "a": 2}]`,
		`{"k": "\\", "k\\": 1}`,
		`"just a string"`, `12.5e3`, `null`, `{}`, `[[[]]]`,
		`{"a":{"a":{"a":1}},"b":true,"c":false,"d":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		want, depth := duplicatesByTokens(t, data)
		if depth > maxDepth {
			return
		}
		var got []string
		if err := strictKeys(data, nil); err != nil {
			inv, ok := err.(*order.InvalidError)
			if !ok {
				t.Fatalf("error %v is not an *order.InvalidError", err)
			}
			for _, fe := range inv.Fields {
				got = append(got, fe.Field)
			}
		}
		if len(want) > maxKeyErrors {
			want = want[:maxKeyErrors]
		}
		if !slices.Equal(got, want) {
			t.Errorf("scanner reports %q, tokenizer finds %q in %s", got, want, data)
		}
	})
}

// duplicatesByTokens lists, in document order, the paths of keys given
// twice, as encoding/json's tokenizer reads them, and the nesting depth.
func duplicatesByTokens(t *testing.T, data []byte) ([]string, int) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var dups []string
	maxSeen := 0
	var walk func(path string, depth int)
	walk = func(path string, depth int) {
		maxSeen = max(maxSeen, depth)
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					t.Fatal(err)
				}
				key := k.(string)
				full := key
				if path != "" {
					full = path + "." + key
				}
				if seen[key] {
					dups = append(dups, full)
				}
				seen[key] = true
				walk(full, depth+1)
			}
			dec.Token()
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				walk(fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
			dec.Token()
		}
	}
	walk("", 0)
	return dups, maxSeen
}
