package ilp

import (
	"context"
	"math"
	"time"
)

// Default is the package's own engine; its Solve method is Solve.
type Default struct{}

// Solve implements Solver with the package-level Solve.
func (Default) Solve(ctx context.Context, p *Problem, s *Settings) (*Solution, error) {
	return Solve(ctx, p, s)
}

// noiseRel is the relative numerical floor of the optimality gap: a gap
// below noiseRel·Σ_g max_c |Value(g, c)| is within rounding of the sums and
// is treated as closed.
const noiseRel = 1e-13

// Solve finds an assignment of least value meeting every row of p, proven
// optimal within s.RelGap and s.AbsGap unless a limit stops it.
//
// The method, written for the multiple-choice structure:
//   - presolve fixes pinned groups, drops rows with Limit = +Inf, removes
//     dominated choices (no better value and no cheaper cost in any row),
//     drops rows that are constant, and shifts and scales values and rows;
//   - the LP relaxation is solved through the Lagrangian dual: exactly by the
//     convex-hull greedy for one row (Sinha & Zoltners 1979), by a boxstep
//     cutting-plane method with a (K+1)×(K+1) Dantzig–Wolfe master basis for
//     K rows; every multiplier vector gives a valid bound (weak duality);
//   - an incumbent is built by rounding the relaxed solution, greedy repair
//     and single- and pair-move improvement on the reduced-cost core;
//   - every assignment is worth at least the bound plus its choices' reduced
//     costs, so below a cutoff c only the core of choices with reduced cost
//     under c − bound matters: an exact dynamic programme over groups with
//     dominance and surrogate LP bounds (Pisinger 1995's core idea, several
//     rows) solves cores of rising cutoff ("rungs") until one holds an
//     assignment below its cutoff (the optimum) or the cutoff reaches the
//     incumbent (which is then optimal);
//   - when the state lists grow too long, a beam search over growing
//     neighbourhoods improves the incumbent and sends the search back to
//     the rungs, and as a last resort best-first branch-and-bound branches
//     on the most fractional group, fixes choices by reduced costs at every
//     node and solves small nodes by the dynamic programme; Settings.MaxOpen
//     caps its open nodes.
//
// A malformed problem gives an error wrapping ErrMalformed. An infeasible
// one is not an error: the Solution has Status Infeasible and an
// Infeasibility explaining it. A time or node limit or a cancelled context
// gives Status Limit with the best assignment found and a valid Bound.
// Objective and Usage are recomputed from the chosen choices with
// compensated sums; rows are met within FeasTol.
func Solve(ctx context.Context, p *Problem, s *Settings) (*Solution, error) {
	t0 := time.Now()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var set Settings
	if s != nil {
		set = *s
	}
	if set.RelGap <= 0 {
		set.RelGap = 1e-9
	}
	if set.AbsGap <= 0 {
		set.AbsGap = 1e-12
	}
	st := &stopper{ctx: ctx, nodeLimit: set.NodeLimit, maxOpen: set.MaxOpen}
	if st.maxOpen == 0 {
		st.maxOpen = 1 << 20
	} else if st.maxOpen < 0 {
		st.maxOpen = 0
	}
	if set.TimeLimit > 0 {
		st.deadline = t0.Add(set.TimeLimit)
	}
	sol := &Solution{Objective: math.Inf(1), Bound: math.Inf(-1)}
	m := presolve(p, nil, false)
	if len(m.impossible) > 0 {
		sol.Status, sol.Bound = Infeasible, math.Inf(1)
		sol.Infeasibility = explain(p, st, m.impossible)
		sol.Time = time.Since(t0)
		return sol, nil
	}
	sr := newSearch(m, st, &set, false)
	if set.Progress != nil {
		st.next = t0.Add(progressEvery)
		st.report = func() {
			obj := math.Inf(1)
			if sr.best != nil {
				obj = m.toOriginal(sr.z)
			}
			set.Progress(time.Since(t0), obj, m.toOriginal(math.Max(sr.rootBnd, sr.lower)))
		}
	}
	st.nodes++
	sr.run()
	sol.Nodes = st.nodes
	sol.Bound = m.toOriginal(math.Max(sr.bound, sr.lower))
	switch {
	case sr.best != nil:
		sol.Choices = m.original(sr.best)
		sol.Objective, sol.Usage = evaluate(p, sol.Choices)
		sol.Bound = math.Min(sol.Bound, sol.Objective)
		sol.Gap = (sol.Objective - sol.Bound) / math.Max(math.Abs(sol.Objective), 1e-300)
		sol.Slack = make([]float64, len(p.Rows))
		for k, r := range p.Rows {
			sol.Slack[k] = r.Limit - sol.Usage[k]
		}
		sol.Status = Limit
		if sr.done {
			sol.Status = Optimal
		}
	case sr.done:
		sol.Status, sol.Bound = Infeasible, math.Inf(1)
		sol.Infeasibility = explain(p, st, nil)
	default:
		sol.Status = Limit
	}
	if sol.Status != Infeasible {
		sol.Shadow = make([]float64, len(p.Rows))
		for i, r := range m.rows {
			if i < len(sr.lam) {
				sol.Shadow[r] = sr.lam[i] * m.valScale / m.scale[i]
			}
		}
	}
	sol.Time = time.Since(t0)
	return sol, nil
}

// newSearch prepares a search over m's root sub.
func newSearch(m *model, st *stopper, set *Settings, feasOnly bool) *search {
	mag := 0.0
	for _, g := range m.p.Groups {
		mx := 0.0
		for _, c := range g.Choices {
			mx = math.Max(mx, math.Abs(c.Value))
		}
		mag += mx
	}
	return &search{
		st: st, root: m.root, relGap: set.RelGap,
		absGap:   set.AbsGap / m.valScale,
		noise:    noiseRel * mag / m.valScale,
		toOrig:   m.toOriginal,
		feasOnly: feasOnly,
	}
}

// maxConflictRows bounds the rows for which every subset is examined when
// explaining infeasibility; above it only subsets of up to three rows are.
const maxConflictRows = 10

// explain fills an Infeasibility: the least usage of every row and the
// minimal sets of rows that cannot be met together, found by feasibility
// solves over row subsets in increasing size (a subset containing a known
// conflict is skipped, so every reported set is minimal). impossible lists
// rows already known to be impossible alone (nil: compute).
func explain(p *Problem, st *stopper, impossible []int) *Infeasibility {
	inf := &Infeasibility{MinUsage: minUsage(p)}
	mag := rowMagnitude(p)
	var rows []int
	for k, r := range p.Rows {
		if math.IsInf(r.Limit, 1) {
			continue
		}
		if !meets(r.Limit, inf.MinUsage[k], mag[k]) {
			inf.Conflicts = append(inf.Conflicts, []int{k})
			continue
		}
		rows = append(rows, k)
	}
	maxSize := len(rows)
	if len(rows) > maxConflictRows {
		maxSize = 3
	}
	set := &Settings{}
	for size := 2; size <= maxSize; size++ {
		subsets(len(rows), size, func(idx []int) {
			if st.stopped {
				return
			}
			use := make([]bool, len(p.Rows))
			set := make([]int, len(idx))
			for i, x := range idx {
				set[i] = rows[x]
				use[rows[x]] = true
			}
			for _, c := range inf.Conflicts {
				if contains(set, c) {
					return
				}
			}
			if !feasibleRows(p, use, st, set) {
				inf.Conflicts = append(inf.Conflicts, set)
			}
		})
	}
	_ = set
	return inf
}

// feasibleRows reports whether some assignment meets the rows in use (a
// feasibility solve with a zero objective, stopped at the first feasible
// assignment). A search stopped by a limit counts as feasible.
func feasibleRows(p *Problem, use []bool, st *stopper, _ []int) bool {
	m := presolve(p, use, true)
	if len(m.impossible) > 0 {
		return false
	}
	sr := newSearch(m, st, &Settings{RelGap: 1e-9, AbsGap: 1e-12}, true)
	sr.run()
	return sr.best != nil || !sr.done
}

// minUsage returns, for every row, Σ_g min_c Cost_k(g, c) (a pinned group
// at its pin).
func minUsage(p *Problem) []float64 {
	out := make([]float64, len(p.Rows))
	for k := range p.Rows {
		var s ksum
		for g := range p.Groups {
			gr := &p.Groups[g]
			if pi := pinIndex(gr); pi >= 0 {
				s.add(gr.Choices[pi].Costs[k])
				continue
			}
			m := math.Inf(1)
			for _, c := range gr.Choices {
				m = math.Min(m, c.Costs[k])
			}
			s.add(m)
		}
		out[k] = s.sum()
	}
	return out
}

// subsets calls f with every size-element subset of [0, n) in
// lexicographic order.
func subsets(n, size int, f func([]int)) {
	idx := make([]int, size)
	var rec func(pos, from int)
	rec = func(pos, from int) {
		if pos == size {
			f(append([]int(nil), idx...))
			return
		}
		for i := from; i <= n-(size-pos); i++ {
			idx[pos] = i
			rec(pos+1, i+1)
		}
	}
	rec(0, 0)
}

// contains reports whether every element of c is in set.
func contains(set, c []int) bool {
	for _, x := range c {
		found := false
		for _, y := range set {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
