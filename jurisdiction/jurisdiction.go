// Package jurisdiction names the places whose law an order applies in:
// ISO 3166-1 alpha-2 countries, and the European Union as the set of its
// member states.
//
// A Code is a small integer so that a set of jurisdictions fits in a few
// machine words and membership is one bit test: the DNS hot path asks
// "is this client's country among the order's jurisdictions?" for every
// blocked name.
package jurisdiction

import (
	"fmt"
	"strings"
)

// Code identifies one ISO 3166-1 alpha-2 country. The zero Code is Unknown:
// a client whose country is not known. Unknown is a member of no Set, so a
// client of unknown location is never inside a national order's scope.
type Code uint8

// Unknown is the Code of a client whose jurisdiction is not known.
const Unknown Code = 0

// EU is the pseudo-code accepted wherever an order or authority names the
// European Union; it expands to the member states.
const EU = "EU"

// countries lists the officially assigned ISO 3166-1 alpha-2 codes in
// alphabetical order; a country's Code is its index plus one.
var countries = [...]string{
	"AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
	"BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ",
	"CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ",
	"DE", "DJ", "DK", "DM", "DO", "DZ",
	"EC", "EE", "EG", "EH", "ER", "ES", "ET",
	"FI", "FJ", "FK", "FM", "FO", "FR",
	"GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY",
	"HK", "HM", "HN", "HR", "HT", "HU",
	"ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT",
	"JE", "JM", "JO", "JP",
	"KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ",
	"LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
	"MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ",
	"NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
	"OM",
	"PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY",
	"QA",
	"RE", "RO", "RS", "RU", "RW",
	"SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV", "SX", "SY", "SZ",
	"TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ",
	"UA", "UG", "UM", "US", "UY", "UZ",
	"VA", "VC", "VE", "VG", "VI", "VN", "VU",
	"WF", "WS",
	"YE", "YT",
	"ZA", "ZM", "ZW",
}

// euMembers are the member states of the European Union, by ISO code
// (Greece is GR here, not the EU's own "EL").
var euMembers = [...]string{
	"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
	"IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
}

var byName = func() map[string]Code {
	m := make(map[string]Code, len(countries))
	for i, c := range countries {
		m[c] = Code(i + 1)
	}
	return m
}()

// Parse returns the Code of an ISO 3166-1 alpha-2 country code, given in
// either case. "EU" is not a country: use ParseSet for it.
func Parse(s string) (Code, error) {
	if c, ok := byName[strings.ToUpper(s)]; ok && len(s) == 2 {
		return c, nil
	}
	if strings.EqualFold(s, EU) {
		return Unknown, fmt.Errorf("%q is the European Union, not a country; it is accepted where a set of jurisdictions is expected", s)
	}
	return Unknown, fmt.Errorf("%q is not an ISO 3166-1 alpha-2 country code", s)
}

// MustParse is Parse for constants known to be valid; it panics otherwise.
func MustParse(s string) Code {
	c, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return c
}

// String returns the two-letter code, or "" for Unknown.
func (c Code) String() string {
	if c == Unknown || int(c) > len(countries) {
		return ""
	}
	return countries[c-1]
}

// Set is a set of countries. The zero Set is empty. A Set is a value: copy
// it freely; membership is a single bit test.
type Set [4]uint64

// Of returns the set of the given codes; Unknown is ignored.
func Of(codes ...Code) Set {
	var s Set
	for _, c := range codes {
		s = s.With(c)
	}
	return s
}

// ParseSet parses jurisdiction names (ISO codes or "EU") into a Set.
func ParseSet(names ...string) (Set, error) {
	var s Set
	for _, n := range names {
		if strings.EqualFold(n, EU) {
			s = s.Union(EUMembers())
			continue
		}
		c, err := Parse(n)
		if err != nil {
			return Set{}, err
		}
		s = s.With(c)
	}
	return s, nil
}

// EUMembers returns the set of the member states of the European Union.
func EUMembers() Set {
	var s Set
	for _, m := range euMembers {
		s = s.With(byName[m])
	}
	return s
}

// With returns s with c added.
func (s Set) With(c Code) Set {
	if c != Unknown {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

// Has reports whether c is in s. Unknown is in no set.
func (s Set) Has(c Code) bool {
	return c != Unknown && s[c>>6]&(1<<(c&63)) != 0
}

// Union returns the countries in s or t.
func (s Set) Union(t Set) Set {
	for i := range s {
		s[i] |= t[i]
	}
	return s
}

// Within reports whether every country of s is also in t.
func (s Set) Within(t Set) bool {
	for i := range s {
		if s[i]&^t[i] != 0 {
			return false
		}
	}
	return true
}

// Empty reports whether s has no country.
func (s Set) Empty() bool { return s == Set{} }

// Codes returns the countries of s in alphabetical order.
func (s Set) Codes() []Code {
	var out []Code
	for i := 1; i <= len(countries); i++ {
		if s.Has(Code(i)) {
			out = append(out, Code(i))
		}
	}
	return out
}

// String lists the countries of s, comma-separated, writing "EU" for the
// whole European Union when all its members are present.
func (s Set) String() string {
	var parts []string
	eu := EUMembers()
	rest := s
	if eu.Within(s) {
		parts = append(parts, EU)
		for i := range rest {
			rest[i] &^= eu[i]
		}
	}
	for _, c := range rest.Codes() {
		parts = append(parts, c.String())
	}
	return strings.Join(parts, ",")
}
