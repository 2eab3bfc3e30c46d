package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/writ-project/writ/order"
)

// strictKeys checks a JSON document that encoding/json has already
// decoded into a value of type t for what encoding/json lets through: a
// key given twice in one object (it keeps the last, where another reader
// of the same bytes may keep the first) and a key that names a field of
// t only regardless of case ("Reason" for "reason"). Unknown keys are
// reported too. It returns an *order.InvalidError naming each key at
// fault, or nil.
//
// It reads the bytes once, without building values, so that checking an
// order of a million targets costs a fraction of decoding it.
func strictKeys(data []byte, t reflect.Type) error {
	s := keyScanner{data: data, bad: &order.InvalidError{}}
	if err := s.value(t, 0); err != nil {
		return &order.InvalidError{Fields: []order.FieldError{{Field: "(document)", Message: err.Error()}}}
	}
	if len(s.bad.Fields) > 0 {
		return s.bad
	}
	return nil
}

// maxDepth bounds the nesting strictKeys follows; writ's documents nest
// four deep at most.
const maxDepth = 32

// maxKeyErrors bounds the keys reported, like order's field errors.
const maxKeyErrors = 100

var errTruncated = errors.New("ends before the document is complete")

// keyScanner walks a JSON document, known to be valid, keeping the path
// to where it is for error messages.
type keyScanner struct {
	data []byte
	pos  int
	path []pathStep
	bad  *order.InvalidError
}

// pathStep is a key or, when key is empty and index >= 0, an index.
type pathStep struct {
	key   []byte
	index int
}

func (s *keyScanner) report(key, msg string) {
	if len(s.bad.Fields) >= maxKeyErrors {
		return
	}
	var b strings.Builder
	for _, p := range s.path {
		if p.index >= 0 {
			fmt.Fprintf(&b, "[%d]", p.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(p.key)
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(key)
	s.bad.Fields = append(s.bad.Fields, order.FieldError{Field: b.String(), Message: msg})
}

func (s *keyScanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// next returns the next byte that is not white space, without taking it.
func (s *keyScanner) next() (byte, error) {
	s.space()
	if s.pos >= len(s.data) {
		return 0, errTruncated
	}
	return s.data[s.pos], nil
}

// str takes a string and returns its raw bytes between the quotes, and
// whether it holds escapes.
func (s *keyScanner) str() ([]byte, bool, error) {
	s.pos++ // the opening quote
	start, escaped := s.pos, false
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '\\':
			escaped = true
			s.pos += 2
		case '"':
			s.pos++
			return s.data[start : s.pos-1], escaped, nil
		default:
			s.pos++
		}
	}
	return nil, false, errTruncated
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value walks one value expected to fill type t (nil: anything).
func (s *keyScanner) value(t reflect.Type, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nests deeper than %d levels", maxDepth)
	}
	t = checkedType(t)
	c, err := s.next()
	if err != nil {
		return err
	}
	switch c {
	case '{':
		return s.object(t, depth)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		s.pos++
		s.path = append(s.path, pathStep{index: 0})
		defer func() { s.path = s.path[:len(s.path)-1] }()
		for i := 0; ; i++ {
			if c, err := s.next(); err != nil {
				return err
			} else if c == ']' {
				s.pos++
				return nil
			} else if c == ',' {
				s.pos++
			}
			s.path[len(s.path)-1].index = i
			if err := s.value(elem, depth+1); err != nil {
				return err
			}
		}
	case '"':
		_, _, err := s.str()
		return err
	}
	// A number, true, false or null.
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return nil
		}
		s.pos++
	}
	return nil
}

func (s *keyScanner) object(t reflect.Type, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = jsonFieldTypes(t)
	} else if t != nil && t.Kind() == reflect.Map {
		elem = t.Elem()
	}
	s.pos++
	var buf [8][]byte
	seen := buf[:0] // objects have few keys: a list beats a map
	for {
		c, err := s.next()
		if err != nil {
			return err
		}
		switch c {
		case '}':
			s.pos++
			return nil
		case ',':
			s.pos++
			if c, err = s.next(); err != nil {
				return err
			}
		}
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		key := raw
		if escaped {
			// "\u0074argets" is "targets" to encoding/json, and so here.
			var k string
			if err := json.Unmarshal(s.data[s.pos-len(raw)-2:s.pos], &k); err != nil {
				return fmt.Errorf("key %s: %v", strconv.Quote(string(raw)), err)
			}
			key = []byte(k)
		}
		for _, k := range seen {
			if bytes.Equal(k, key) {
				s.report(string(key), "is given twice; give each field once")
				break
			}
		}
		seen = append(seen, key)
		ft := elem
		if fields != nil {
			var ok bool
			if ft, ok = fields[string(key)]; !ok {
				s.report(string(key), unknownField(fields, string(key)))
			}
		}
		if c, err := s.next(); err != nil {
			return err
		} else if c == ':' {
			s.pos++
		}
		s.path = append(s.path, pathStep{key: key, index: -1})
		err = s.value(ft, depth+1)
		s.path = s.path[:len(s.path)-1]
		if err != nil {
			return err
		}
	}
}

// unknownField says what is wrong with a key that is no field's name.
func unknownField(fields map[string]reflect.Type, key string) string {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return fmt.Sprintf("is not a field; names are case-sensitive: did you mean %q?", name)
		}
	}
	return "is not a field of this request (see the API reference for the accepted fields)"
}

var (
	fieldTypes sync.Map // reflect.Type → map[string]reflect.Type
	checked    sync.Map // reflect.Type → reflect.Type
)

// checkedType is the type whose keys are checked for a value of type t:
// t without pointers, or nil for a type that decodes itself (only
// duplicate keys are looked for in it).
func checkedType(t reflect.Type) reflect.Type {
	if t == nil {
		return nil
	}
	if c, ok := checked.Load(t); ok {
		c, _ := c.(reflect.Type)
		return c
	}
	c := t
	for c.Kind() == reflect.Pointer {
		c = c.Elem()
	}
	if reflect.PointerTo(c).Implements(jsonUnmarshaler) || reflect.PointerTo(c).Implements(textUnmarshaler) {
		c = nil
	}
	checked.Store(t, c)
	return c
}

// jsonFieldTypes maps the JSON names of a struct's fields, those of
// embedded structs included, to their types.
func jsonFieldTypes(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldTypes.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFieldTypes(ft) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	fieldTypes.Store(t, out)
	return out
}
