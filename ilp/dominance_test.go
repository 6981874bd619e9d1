package ilp

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// dominanceFilter keeps exactly the states that no earlier kept state
// dominates, for one, two and three rows, with ties in the first row (the
// pairwise rule, without its bound, as the reference).
func TestDominanceFilterPairwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := 0; trial < 400; trial++ {
		k := 1 + trial%3
		n := 1 + rng.IntN(40)
		u := make([]float64, n*k)
		for i := range u {
			u[i] = float64(rng.IntN(8)) // small range: many ties
		}
		idx := rng.Perm(n)
		want := []int{}
		for _, s := range idx {
			dominated := false
			for _, q := range want {
				d := true
				for row := 0; row < k; row++ {
					if u[q*k+row] > u[s*k+row] {
						d = false
						break
					}
				}
				if d {
					dominated = true
					break
				}
			}
			if !dominated {
				want = append(want, s)
			}
		}
		if k == 3 && len(want) > maxPairwise {
			continue // the pairwise branch stops filtering there
		}
		got := dominanceFilter(idx, u, k)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d rows, %d states): kept %v, want %v", trial, k, n, got, want)
		}
	}
}
