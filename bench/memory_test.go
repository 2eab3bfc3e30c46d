package bench

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkMemoryLatency chases pointers through a random cycle over
// arrays of growing size: each step is one dependent load, so ns/op is
// the latency of a random access at that working-set size (cache or main
// memory). A lookup that misses every cache cannot be faster than one
// such access.
func BenchmarkMemoryLatency(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"256KiB", 256 << 10}, {"4MiB", 4 << 20}, {"32MiB", 32 << 20}, {"256MiB", 256 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			n := size.bytes / 8
			next := make([]uint64, n)
			perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
			for i := range n {
				next[perm[i]] = uint64(perm[(i+1)%n])
			}
			p := uint64(0)
			for b.Loop() {
				p = next[p]
			}
			if p == uint64(n) { // keep p alive
				b.Fatal("impossible")
			}
		})
	}
}
