//go:build clp

package clp

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/bitplan/bitplan/ilp"
)

// genOpts shapes a random instance.
type genOpts struct {
	groups, minChoices, maxChoices, rows int
	extraRows                            int     // sparse extra rows over random choices
	integer                              bool    // small integer costs and values: ties, limits hit exactly
	negative                             bool    // allow negative values and costs
	pinProb                              float64 // chance that a group is pinned
	infRowProb                           float64 // chance that a row has limit +Inf
	slack                                [2]float64
	plant                                bool // extra rows admit a random assignment
}

// genProblem draws a seeded random multiple-choice instance. Row limits are
// cost(all cheapest) + t·(cost(all dearest) − cost(all cheapest)) with t
// uniform in o.slack, so some instances are infeasible.
func genProblem(rng *rand.Rand, o genOpts) *ilp.Problem {
	K := o.rows + o.extraRows
	p := &ilp.Problem{Rows: make([]ilp.Row, K)}
	num := func(scale float64) float64 {
		if o.integer {
			v := float64(rng.IntN(6))
			if o.negative && rng.IntN(5) == 0 {
				v = -v
			}
			return v
		}
		v := rng.Float64() * scale
		if o.negative && rng.IntN(6) == 0 {
			v = -v
		}
		return v
	}
	for g := 0; g < o.groups; g++ {
		nc := o.minChoices + rng.IntN(o.maxChoices-o.minChoices+1)
		gr := ilp.Group{Name: "g" + strconv.Itoa(g)}
		for c := 0; c < nc; c++ {
			ch := ilp.Choice{Label: strconv.Itoa(c), Value: num(1), Costs: make([]float64, K)}
			for k := 0; k < o.rows; k++ {
				ch.Costs[k] = num(float64(k + 1))
			}
			for k := o.rows; k < K; k++ {
				if rng.Float64() < 0.3 {
					ch.Costs[k] = num(1)
				}
			}
			gr.Choices = append(gr.Choices, ch)
		}
		if rng.Float64() < o.pinProb {
			gr.Pin = gr.Choices[rng.IntN(nc)].Label
		}
		p.Groups = append(p.Groups, gr)
	}
	planted := make([]int, len(p.Groups))
	for g, gr := range p.Groups {
		planted[g] = rng.IntN(len(gr.Choices))
		if gr.Pin != "" {
			for c, ch := range gr.Choices {
				if ch.Label == gr.Pin {
					planted[g] = c
				}
			}
		}
	}
	for k := range p.Rows {
		lo, hi := 0.0, 0.0
		for _, gr := range p.Groups {
			a, b := math.Inf(1), math.Inf(-1)
			for _, ch := range gr.Choices {
				if gr.Pin == "" || gr.Pin == ch.Label {
					a, b = min(a, ch.Costs[k]), max(b, ch.Costs[k])
				}
			}
			lo, hi = lo+a, hi+b
		}
		t := o.slack[0] + rng.Float64()*(o.slack[1]-o.slack[0])
		lim := lo + t*(hi-lo)
		if o.plant {
			u := 0.0
			for g, c := range planted {
				u += p.Groups[g].Choices[c].Costs[k]
			}
			if k >= o.rows {
				lim = u + rng.Float64()*0.5*(hi-u)
			} else {
				lim = max(lim, u)
			}
		}
		if o.integer {
			lim = math.Round(lim)
		}
		if rng.Float64() < o.infRowProb {
			lim = math.Inf(1)
		}
		p.Rows[k] = ilp.Row{Name: "r" + strconv.Itoa(k), Limit: lim}
	}
	return p
}

// bruteForce enumerates every assignment of p. It returns the optimum
// (Choices nil if infeasible) and, when p has at most 16 rows, for every
// subset mask of the rows whether some assignment meets all its rows.
func bruteForce(p *ilp.Problem) (best []int, bestObj float64, feasibleMask []bool) {
	K := len(p.Rows)
	tol := rowTols(p)
	bestObj = math.Inf(1)
	var satisfied []bool
	if K <= 16 {
		satisfied = make([]bool, 1<<K)
	}
	feasibleAll := false
	choice := make([]int, len(p.Groups))
	allowed := func(g, c int) bool { return p.Groups[g].Pin == "" || p.Groups[g].Choices[c].Label == p.Groups[g].Pin }
	var rec func(g int)
	rec = func(g int) {
		if g == len(p.Groups) {
			mask, obj, all := 0, 0.0, true
			for k, row := range p.Rows {
				u := 0.0
				for h, c := range choice {
					u += p.Groups[h].Choices[c].Costs[k]
				}
				if u <= row.Limit+tol[k] {
					mask |= 1 << (k % 63)
				} else {
					all = false
				}
			}
			if satisfied != nil {
				satisfied[mask] = true
			}
			feasibleAll = feasibleAll || all
			for h, c := range choice {
				obj += p.Groups[h].Choices[c].Value
			}
			if all && obj < bestObj {
				bestObj, best = obj, append([]int(nil), choice...)
			}
			return
		}
		for c := range p.Groups[g].Choices {
			if allowed(g, c) {
				choice[g] = c
				rec(g + 1)
			}
		}
	}
	rec(0)
	if satisfied == nil {
		return best, bestObj, nil
	}
	// A subset is feasible if it is contained in some satisfied mask.
	feasibleMask = make([]bool, 1<<K)
	for m := 1<<K - 1; m >= 0; m-- {
		if satisfied[m] {
			feasibleMask[m] = true
			continue
		}
		for k := 0; k < K; k++ {
			if m&(1<<k) == 0 && feasibleMask[m|1<<k] {
				feasibleMask[m] = true
				break
			}
		}
	}
	return best, bestObj, feasibleMask
}

// subFeasible reports by enumeration whether some assignment of p meets
// every row in rows.
func subFeasible(p *ilp.Problem, rows []int) bool {
	q := &ilp.Problem{Groups: make([]ilp.Group, len(p.Groups))}
	for _, k := range rows {
		q.Rows = append(q.Rows, p.Rows[k])
	}
	for g, gr := range p.Groups {
		q.Groups[g] = gr
		q.Groups[g].Choices = nil
		for _, ch := range gr.Choices {
			c := ch
			c.Costs = nil
			for _, k := range rows {
				c.Costs = append(c.Costs, ch.Costs[k])
			}
			q.Groups[g].Choices = append(q.Groups[g].Choices, c)
		}
	}
	best, _, _ := bruteForce(q)
	return best != nil
}

// minimalConflicts lists the minimal infeasible row subsets of feasibleMask
// as sorted index lists, in mask order.
func minimalConflicts(K int, feasibleMask []bool) map[int]bool {
	out := map[int]bool{}
	for m := 1; m < 1<<K; m++ {
		if feasibleMask[m] {
			continue
		}
		minimal := true
		for k := 0; k < K; k++ {
			if m&(1<<k) != 0 && !feasibleMask[m&^(1<<k)] {
				minimal = false
				break
			}
		}
		if minimal {
			out[m] = true
		}
	}
	return out
}

// dfsSolve is an independent exact solver for medium instances: depth-first
// search with the bound "partial value + Σ remaining minimum values" and
// the feasibility test "partial usage + Σ remaining minimum costs ≤ limit".
func dfsSolve(p *ilp.Problem) (best []int, bestObj float64) {
	G, K := len(p.Groups), len(p.Rows)
	tol := rowTols(p)
	allowed := func(g, c int) bool { return p.Groups[g].Pin == "" || p.Groups[g].Choices[c].Label == p.Groups[g].Pin }
	minVal := make([]float64, G+1)
	minCost := make([][]float64, G+1)
	minCost[G] = make([]float64, K)
	for g := G - 1; g >= 0; g-- {
		mv := math.Inf(1)
		mc := make([]float64, K)
		for k := range mc {
			mc[k] = math.Inf(1)
		}
		for c, ch := range p.Groups[g].Choices {
			if !allowed(g, c) {
				continue
			}
			mv = min(mv, ch.Value)
			for k := range mc {
				mc[k] = min(mc[k], ch.Costs[k])
			}
		}
		minVal[g] = minVal[g+1] + mv
		minCost[g] = make([]float64, K)
		for k := range mc {
			minCost[g][k] = minCost[g+1][k] + mc[k]
		}
	}
	bestObj = math.Inf(1)
	choice := make([]int, G)
	use := make([]float64, K)
	var rec func(g int, val float64)
	rec = func(g int, val float64) {
		if val+minVal[g] >= bestObj {
			return
		}
		for k, row := range p.Rows {
			if use[k]+minCost[g][k] > row.Limit+tol[k]+1e-9*math.Abs(use[k]) {
				return
			}
		}
		if g == G {
			for k, row := range p.Rows {
				u := 0.0 // summed afresh: use[k] carries rounding drift
				for h, c := range choice {
					u += p.Groups[h].Choices[c].Costs[k]
				}
				if u > row.Limit+tol[k] {
					return
				}
			}
			bestObj, best = val, append([]int(nil), choice...)
			return
		}
		for c, ch := range p.Groups[g].Choices {
			if !allowed(g, c) {
				continue
			}
			choice[g] = c
			for k := range use {
				use[k] += ch.Costs[k]
			}
			rec(g+1, val+ch.Value)
			for k := range use {
				use[k] -= ch.Costs[k]
			}
		}
	}
	rec(0, 0)
	return best, bestObj
}
