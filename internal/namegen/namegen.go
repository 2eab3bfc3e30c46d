// Package namegen generates realistic, distinct domain names for
// benchmarks and load tests: registrable names under common TLDs with a
// length distribution like that of blocklists (mostly 6–20 character
// second-level labels, some hosts one or two labels deeper).
package namegen

import (
	"math/rand/v2"
	"strconv"
)

var tlds = []string{"com", "net", "org", "me", "lat", "io", "xyz", "top", "live", "tv", "fr", "it", "co.uk", "com.br", "ru", "info", "site", "online", "cc", "to"}

var syllables = []string{"ka", "lo", "mi", "stream", "live", "tv", "sport", "foot", "moto", "gp", "hd", "go", "ra", "ze", "net", "play", "fast", "on", "vi", "de", "o", "x", "24", "7", "one", "max", "pro", "cast", "web", "star"}

var hosts = []string{"www", "m", "cdn", "live", "stream", "tv", "s1", "api", "player", "embed"}

// Generator produces names from a seeded source; the same seed gives the
// same sequence.
type Generator struct {
	r    *rand.Rand
	seen map[string]struct{}
}

// New returns a generator seeded with seed.
func New(seed uint64) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seen: map[string]struct{}{}}
}

// Name returns a name not returned before by this generator.
func (g *Generator) Name() string {
	for {
		n := g.candidate()
		if _, dup := g.seen[n]; !dup {
			g.seen[n] = struct{}{}
			return n
		}
	}
}

// Names returns n distinct names.
func (g *Generator) Names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = g.Name()
	}
	return out
}

func (g *Generator) candidate() string {
	r := g.r
	b := make([]byte, 0, 48)
	switch p := r.IntN(10); {
	case p < 2:
		b = append(b, hosts[r.IntN(len(hosts))]...)
		b = append(b, '.')
	case p < 3:
		b = append(b, hosts[r.IntN(len(hosts))]...)
		b = strconv.AppendInt(b, int64(r.IntN(100)), 10)
		b = append(b, '.', 'x', '.')
	}
	for k := 2 + r.IntN(3); k > 0; k-- {
		b = append(b, syllables[r.IntN(len(syllables))]...)
	}
	if r.IntN(3) == 0 {
		b = strconv.AppendInt(b, int64(r.IntN(1000)), 10)
	}
	b = append(b, '.')
	b = append(b, tlds[r.IntN(len(tlds))]...)
	return string(b)
}
