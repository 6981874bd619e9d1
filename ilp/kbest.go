package ilp

import (
	"context"
	"fmt"
)

// WithNoGoods returns a copy of p with one no-good row per assignment in
// excluded (a choice index per group, as Solution.Choices): the row
//
//	Σ_g [c_g = a_g] ≤ n − 1,   n = len(p.Groups),
//
// costs 1 for the excluded assignment's choice of every group and 0 for
// every other choice, so it holds for every assignment except a — the
// classic no-good cut of Balas & Jeroslow (1972), "Canonical cuts on the
// unit hypercube", written as one more resource row of the multiple-choice
// model. The rows are named "no-good 1", "no-good 2", … after p's rows;
// p is not modified. An assignment of the wrong length or with a choice
// index out of range is a caller bug and panics.
func (p *Problem) WithNoGoods(excluded [][]int) *Problem {
	n := len(p.Groups)
	q := &Problem{Rows: append(make([]Row, 0, len(p.Rows)+len(excluded)), p.Rows...)}
	for j, a := range excluded {
		if len(a) != n {
			panic("ilp: no-good assignment length does not match the groups")
		}
		q.Rows = append(q.Rows, Row{Name: fmt.Sprintf("no-good %d", j+1), Limit: float64(n - 1)})
	}
	q.Groups = make([]Group, n)
	for g := range p.Groups {
		gr := p.Groups[g]
		gr.Choices = make([]Choice, len(p.Groups[g].Choices))
		for c, ch := range p.Groups[g].Choices {
			costs := make([]float64, len(q.Rows))
			copy(costs, ch.Costs)
			ch.Costs = costs
			gr.Choices[c] = ch
		}
		for j, a := range excluded {
			if a[g] < 0 || a[g] >= len(gr.Choices) {
				panic("ilp: no-good choice index out of range")
			}
			gr.Choices[a[g]].Costs[len(p.Rows)+j] = 1
		}
		q.Groups[g] = gr
	}
	return q
}

// NextBest returns the best assignment of p that differs from every
// assignment in excluded: the optimum of p.WithNoGoods(excluded), solved by
// solver (nil means Solve) with s, with Usage, Slack and Shadow cut back to
// p's rows. Choices is nil when no other assignment is feasible (Status
// Infeasible; its Infeasibility, if any, counts the no-good rows too).
func NextBest(ctx context.Context, solver Solver, p *Problem, excluded [][]int, s *Settings) (*Solution, error) {
	if solver == nil {
		solver = Default{}
	}
	q := p
	if len(excluded) > 0 {
		q = p.WithNoGoods(excluded)
	}
	sol, err := solver.Solve(ctx, q, s)
	if err != nil {
		return nil, err
	}
	nr := len(p.Rows)
	for _, v := range []*[]float64{&sol.Usage, &sol.Slack, &sol.Shadow} {
		if len(*v) > nr {
			*v = (*v)[:nr]
		}
	}
	return sol, nil
}

// KBest returns up to k+1 assignments of p in order of value: the optimum,
// then the best assignment that differs from it, then the best that
// differs from both, and so on. Each is the optimum of p with no-good
// rows excluding the ones before it (NextBest), so each carries its own
// certificate: Status Optimal proves it the next best within the gap
// tolerances. The list ends early when p has no further feasible
// assignment or a solve stops without one; a solve that stops at a limit
// with an assignment ends the list after it (Status Limit). An infeasible p
// gives a one-element list with Status Infeasible.
func KBest(ctx context.Context, solver Solver, p *Problem, k int, s *Settings) ([]*Solution, error) {
	var out []*Solution
	var excluded [][]int
	for len(out) <= k {
		sol, err := NextBest(ctx, solver, p, excluded, s)
		if err != nil {
			return out, err
		}
		if sol.Choices == nil {
			if len(out) == 0 {
				out = append(out, sol)
			}
			return out, nil
		}
		out = append(out, sol)
		if sol.Status != Optimal {
			return out, nil
		}
		excluded = append(excluded, sol.Choices)
	}
	return out, nil
}
