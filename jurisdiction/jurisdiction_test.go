package jurisdiction

import "testing"

func TestCountriesAreSortedUniqueAndComplete(t *testing.T) {
	// ISO 3166-1 assigns 249 alpha-2 codes.
	if len(countries) != 249 {
		t.Fatalf("have %d country codes, ISO 3166-1 assigns 249", len(countries))
	}
	for i := 1; i < len(countries); i++ {
		if countries[i-1] >= countries[i] {
			t.Fatalf("codes out of order or repeated at %q, %q", countries[i-1], countries[i])
		}
	}
	if len(euMembers) != 27 {
		t.Fatalf("EU has 27 members, list has %d", len(euMembers))
	}
	for _, m := range euMembers {
		if _, err := Parse(m); err != nil {
			t.Errorf("EU member %s: %v", m, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, ok := range []string{"FR", "fr", "It", "US", "ZW", "AD"} {
		c, err := Parse(ok)
		if err != nil || c == Unknown {
			t.Errorf("Parse(%q) = %v, %v; want a code", ok, c, err)
		}
	}
	for _, bad := range []string{"", "XX", "F", "FRA", "EU", "UK", "1A", "É"} {
		if c, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want error", bad, c)
		}
	}
	if got := MustParse("fr").String(); got != "FR" {
		t.Errorf("String() = %q", got)
	}
}

func TestSet(t *testing.T) {
	fr, it, us := MustParse("FR"), MustParse("IT"), MustParse("US")
	s := Of(fr, it)
	if !s.Has(fr) || !s.Has(it) || s.Has(us) || s.Has(Unknown) {
		t.Fatalf("membership wrong: %v", s)
	}
	if Of(Unknown) != (Set{}) {
		t.Fatal("Unknown must never enter a set")
	}
	eu, err := ParseSet("EU")
	if err != nil {
		t.Fatal(err)
	}
	if !eu.Has(fr) || eu.Has(us) || !eu.Has(MustParse("GR")) {
		t.Fatalf("EU expansion wrong: %v", eu)
	}
	if !s.Within(eu) || Of(us).Within(eu) {
		t.Fatal("Within wrong")
	}
	if got := eu.With(us).String(); got != "EU,US" {
		t.Fatalf("String() = %q", got)
	}
	if _, err := ParseSet("FR", "XX"); err == nil {
		t.Fatal("ParseSet accepted XX")
	}
	// Every code round-trips, including the last ones in the high words.
	for i := 1; i <= len(countries); i++ {
		c := Code(i)
		if !Of(c).Has(c) || Of(c).Has(Code(i%len(countries)+1)) {
			t.Fatalf("set bit for %s wrong", c)
		}
	}
}
