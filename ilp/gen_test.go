package ilp

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// randProblem draws a small random problem of one of several kinds: uniform
// data, small integers (many ties and equal costs), wide magnitudes
// 1e-12..1e12, and mixed signs. Some groups are tied (merged), some pinned,
// some limits infinite, some exactly at an assignment's usage, some
// infeasible.
func randProblem(rng *rand.Rand) *Problem {
	ng := 1 + rng.IntN(6)
	nr := 1 + rng.IntN(4)
	kind := rng.IntN(4)
	num := func() float64 {
		switch kind {
		case 1:
			return float64(rng.IntN(3))
		case 2:
			return math.Pow(10, -12+24*rng.Float64())
		case 3:
			return 2*rng.Float64() - 1
		}
		return rng.Float64()
	}
	groups := make([]Group, ng)
	for g := range groups {
		m := 1 + rng.IntN(5)
		if g > 0 && rng.IntN(3) == 0 {
			m = len(groups[g-1].Choices)
		}
		groups[g].Name = fmt.Sprintf("L%d", g)
		for c := 0; c < m; c++ {
			ch := Choice{Label: fmt.Sprint(2 + c), Value: num()}
			for k := 0; k < nr; k++ {
				ch.Costs = append(ch.Costs, num())
			}
			groups[g].Choices = append(groups[g].Choices, ch)
		}
		if rng.IntN(10) == 0 {
			groups[g].Pin = groups[g].Choices[rng.IntN(m)].Label
		}
	}
	var ties [][]int
	if rng.IntN(3) == 0 {
		for g := 1; g < ng; g++ {
			if len(groups[g].Choices) == len(groups[g-1].Choices) && rng.IntN(2) == 0 &&
				(groups[g].Pin == "" || groups[g-1].Pin == "" || groups[g].Pin == groups[g-1].Pin) {
				ties = append(ties, []int{g - 1, g})
			}
		}
	}
	merged, err := Merge(groups, ties)
	if err != nil { // transitive ties joined conflicting pins
		merged = groups
	}
	p := &Problem{Groups: merged}
	for k := 0; k < nr; k++ {
		lo, hi := 0.0, 0.0
		for _, g := range merged {
			l, h := math.Inf(1), math.Inf(-1)
			for _, c := range g.Choices {
				l, h = math.Min(l, c.Costs[k]), math.Max(h, c.Costs[k])
			}
			lo, hi = lo+l, hi+h
		}
		var lim float64
		switch rng.IntN(6) {
		case 0:
			lim = math.Inf(1)
		case 1: // exactly a random assignment's usage
			for _, g := range merged {
				lim += g.Choices[rng.IntN(len(g.Choices))].Costs[k]
			}
		default:
			lim = lo + (rng.Float64()*1.3-0.2)*(hi-lo)
		}
		p.Rows = append(p.Rows, Row{Name: fmt.Sprintf("r%d", k), Limit: lim})
	}
	return p
}
