package ilp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The surrogate bound after removing the groups of earlier levels equals a
// bound built afresh over the groups left, for capacities across the range.
func TestSurrogateRemoval(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for trial := 0; trial < 50; trial++ {
		p := benchProblem(20+rng.IntN(60), 1+rng.IntN(3), uint64(trial))
		q := presolve(p, nil, false).root
		w := make([]float64, q.k)
		for i := range w {
			w[i] = rng.Float64()
		}
		order := rng.Perm(q.ng())
		sb := newSurrogateBound(q, order, w)
		for i := 0; i <= len(order); i++ {
			fresh := newSurrogateBound(q, order[i:], w)
			hi := fresh.baseC[0]
			for _, d := range fresh.dc {
				hi += d
			}
			for _, f := range []float64{-0.1, 0, 0.1, 0.37, 0.5, 0.9, 1, 1.2} {
				c := fresh.baseC[0] + f*(hi-fresh.baseC[0])
				got, want := sb.query(i, c, 1e-12), fresh.query(0, c, 1e-12)
				if math.IsInf(want, 1) != math.IsInf(got, 1) ||
					(!math.IsInf(want, 1) && math.Abs(got-want) > 1e-12*(1+math.Abs(want))) {
					t.Fatalf("trial %d level %d capacity %g: got %.17g, want %.17g", trial, i, c, got, want)
				}
			}
		}
	}
}

func TestKthSmallest(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := 0; trial < 500; trial++ {
		n := 1 + rng.IntN(50)
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(rng.IntN(10)) // many ties
		}
		sorted := append([]float64(nil), xs...)
		slices.Sort(sorted)
		k := rng.IntN(n)
		if got := kthSmallest(xs, k); got != sorted[k] {
			t.Fatalf("trial %d: k=%d got %g want %g", trial, k, got, sorted[k])
		}
	}
}

// A query answered from the last one's segment equals a full descent, for
// capacities close together (as a dp level's are) and far apart.
func TestSurrogateCachedQuery(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := 0; trial < 50; trial++ {
		p := benchProblem(20+rng.IntN(60), 1+rng.IntN(3), uint64(trial))
		q := presolve(p, nil, false).root
		w := make([]float64, q.k)
		for i := range w {
			w[i] = rng.Float64()
		}
		order := rng.Perm(q.ng())
		sb := newSurrogateBound(q, order, w)
		hits := 0
		for i := 0; i <= len(order); i++ {
			hi := sb.baseC[0]
			for _, d := range sb.dc {
				hi += d
			}
			mid := sb.baseC[i] + rng.Float64()*(hi-sb.baseC[i])
			for n := 0; n < 40; n++ {
				c := mid * (1 + 1e-3*rng.NormFloat64())
				if n%10 == 0 {
					c = sb.baseC[0] + (1.2*rng.Float64()-0.1)*(hi-sb.baseC[0])
				}
				if _, ok := sb.cached(i, c); ok {
					hits++
				}
				got := sb.query(i, c, 1e-12)
				sb.last.level = -1
				want := sb.descend(i, c, 1e-12)
				if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
					t.Fatalf("trial %d level %d capacity %g: cached %.17g, descent %.17g", trial, i, c, got, want)
				}
			}
		}
		if hits == 0 {
			t.Fatalf("trial %d: no query was answered from the cache", trial)
		}
	}
}
