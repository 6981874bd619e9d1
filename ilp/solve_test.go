package ilp

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// objMag is Σ_g max_c |Value|, the scale of rounding in objective sums.
func objMag(p *Problem) float64 {
	s := 0.0
	for _, g := range p.Groups {
		m := 0.0
		for _, c := range g.Choices {
			m = math.Max(m, math.Abs(c.Value))
		}
		s += m
	}
	return s
}

// closeObj compares objectives: relative 1e-9, plus a floor of 1e-12 of the
// objective's magnitude (values of opposite signs can cancel).
func closeObj(a, b, mag float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))+1e-12*mag
}

func sameSets(a, b [][]int) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(s []int) string { return fmtInts(s) }
	ka := make([]string, len(a))
	kb := make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

func fmtInts(s []int) string {
	b := make([]byte, 0, 3*len(s))
	for _, x := range s {
		b = append(b, byte('0'+x), ',')
	}
	return string(b)
}

func TestSolveAgreesWithBruteForce(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[Status]int{}
	for i := 0; i < n; i++ {
		p := randProblem(rng)
		want, err := BruteForce(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Solve(context.Background(), p, nil)
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		counts[want.Status]++
		if got.Status != want.Status {
			t.Fatalf("instance %d: status %v, brute force %v\n%+v", i, got.Status, want.Status, p)
		}
		mag := objMag(p)
		switch want.Status {
		case Optimal:
			if !closeObj(got.Objective, want.Objective, mag) {
				t.Fatalf("instance %d: objective %.17g, brute force %.17g\n%+v", i, got.Objective, want.Objective, p)
			}
			if got.Bound > want.Objective+1e-9*math.Abs(want.Objective)+1e-12*mag {
				t.Fatalf("instance %d: bound %.17g above optimum %.17g", i, got.Bound, want.Objective)
			}
			if len(got.Choices) != len(p.Groups) {
				t.Fatalf("instance %d: %d choices", i, len(got.Choices))
			}
			for g, c := range got.Choices {
				if pin := p.Groups[g].Pin; pin != "" && p.Groups[g].Choices[c].Label != pin {
					t.Fatalf("instance %d: group %d ignores pin", i, g)
				}
			}
			for k := range p.Rows {
				if !meets(p.Rows[k].Limit, got.Usage[k], rowMagnitude(p)[k]) {
					t.Fatalf("instance %d: row %d violated", i, k)
				}
				if got.Shadow[k] < 0 {
					t.Fatalf("instance %d: negative shadow price", i)
				}
			}
		case Infeasible:
			if !sameSets(got.Infeasibility.Conflicts, want.Infeasibility.Conflicts) {
				t.Fatalf("instance %d: conflicts %v, brute force %v\n%+v", i, got.Infeasibility.Conflicts, want.Infeasibility.Conflicts, p)
			}
			for k := range p.Rows {
				if got.Infeasibility.MinUsage[k] != want.Infeasibility.MinUsage[k] {
					t.Fatalf("instance %d: min usage differs", i)
				}
			}
		}
	}
	t.Logf("statuses: %v", counts)
}
