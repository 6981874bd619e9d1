//go:build clp

package clp

import (
	"context"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/bitplan/bitplan/ilp"
)

const (
	// defaultRelGap and defaultAbsGap are ilp.Settings' documented defaults.
	defaultRelGap = 1e-9
	defaultAbsGap = 1e-12
	// defaultBasisCap is the default of Solver.MaxBasisBytes.
	defaultBasisCap = 256 << 20
	// maxEnumConflictRows is the largest number of individually feasible
	// rows for which every minimal conflicting row set is enumerated; above
	// it one minimal set is found by a deletion filter.
	maxEnumConflictRows = 10
	// maxConflictNodes caps the branch-and-bound nodes spent on finding
	// conflicting row sets.
	maxConflictNodes = 20000
)

// Solver is a branch-and-bound engine for ilp.Problem whose LP relaxations
// are solved by COIN-OR CLP (see the package documentation for the method).
// The zero value is ready to use. Solver is safe for concurrent use: every
// call of Solve builds and frees its own Model.
type Solver struct {
	// MaxBasisBytes caps the memory spent on stored warm-start bases of
	// open nodes (one byte per column and row each); 0 means 256 MiB. A
	// node beyond the cap starts from the last solved node's basis.
	MaxBasisBytes int
}

var _ ilp.Solver = Solver{}

// Solve solves p to the gap tolerances of s (nil means defaults) and
// returns its certificate.
//
// Rows whose limit is +Inf are left out of the LP; their usage and slack
// (+Inf) are still reported. Pins fix the other choices of a group to zero.
// A time or node limit, or the cancellation of ctx, returns Status Limit
// with the best assignment found (if any) and a valid bound; ctx is checked
// between LP solves and CLP's own time limit follows s.TimeLimit. If CLP
// fails numerically on a node even after a cold restart, Solve returns
// Status Limit with the bound reached; on the root relaxation it returns an
// error. An invalid problem returns an error naming the group, choice or
// row at fault.
//
// Shadow prices are the root relaxation's −duals of the resource rows
// (≥ 0), in objective units per unit of the row (nil when infeasible).
// Objective and Usage are compensated sums. For an Infeasible status,
// Infeasibility lists the least usage of every row and minimal conflicting
// row sets (all of them when at most ten rows are each feasible alone, one
// otherwise).
func (sv Solver) Solve(ctx context.Context, p *ilp.Problem, s *ilp.Settings) (*ilp.Solution, error) {
	start := time.Now()
	if ctx == nil {
		ctx = context.Background()
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	lim := &limits{ctx: ctx, relGap: defaultRelGap, absGap: defaultAbsGap, basisCap: sv.MaxBasisBytes}
	if lim.basisCap <= 0 {
		lim.basisCap = defaultBasisCap
	}
	if s != nil {
		if s.TimeLimit > 0 {
			lim.deadline = start.Add(s.TimeLimit)
		}
		lim.nodeLimit = max(s.NodeLimit, 0)
		if s.RelGap > 0 {
			lim.relGap = s.RelGap
		}
		if s.AbsGap > 0 {
			lim.absGap = s.AbsGap
		}
	}
	K := len(p.Rows)
	sol := &ilp.Solution{Shadow: make([]float64, K), Objective: math.Inf(1)}
	defer func() { sol.Time = time.Since(start) }()

	minUse := minUsage(p)
	tol := rowTols(p)
	var single [][]int
	var finite []int
	for k, row := range p.Rows {
		switch {
		case minUse[k] > row.Limit+tol[k]:
			single = append(single, []int{k})
		case !math.IsInf(row.Limit, 1):
			finite = append(finite, k)
		}
	}
	if len(single) > 0 {
		sol.Status, sol.Bound, sol.Shadow = ilp.Infeasible, math.Inf(1), nil
		m := NewModel()
		defer m.Close()
		more := conflicts(m, p, finite, tol, lim)
		sol.Infeasibility = &ilp.Infeasibility{MinUsage: minUse, Conflicts: append(single, more...)}
		return sol, nil
	}
	m := NewModel()
	defer m.Close()
	in := newInstance(p, finite, tol, false)
	res, err := in.solve(m, lim)
	if err != nil {
		return nil, err
	}
	sol.Nodes = res.nodes
	for i, r := range in.rows {
		if res.lambda != nil {
			sol.Shadow[r] = res.lambda[i]
		}
	}
	finish(sol, p, res.status, res.choice, res.bound)
	if res.status == ilp.Infeasible {
		sol.Shadow = nil
		sol.Infeasibility = &ilp.Infeasibility{MinUsage: minUse, Conflicts: conflicts(m, p, finite, tol, lim)}
	}
	return sol, nil
}

// finish fills the status, assignment, objective, bound, gap, usage and
// slack of sol.
func finish(sol *ilp.Solution, p *ilp.Problem, st ilp.Status, choice []int, bound float64) {
	sol.Status, sol.Choices, sol.Bound = st, choice, bound
	if choice == nil {
		sol.Objective = math.Inf(1)
		if st == ilp.Infeasible {
			sol.Gap = 0
		} else {
			sol.Gap = math.Inf(1)
		}
		return
	}
	var o ksum
	for g, c := range choice {
		o.add(p.Groups[g].Choices[c].Value)
	}
	obj := o.sum()
	sol.Objective = obj
	sol.Bound = min(bound, obj)
	sol.Gap = (obj - sol.Bound) / max(math.Abs(obj), 1e-300)
	sol.Usage = make([]float64, len(p.Rows))
	sol.Slack = make([]float64, len(p.Rows))
	for k, row := range p.Rows {
		var u ksum
		for g, c := range choice {
			u.add(p.Groups[g].Choices[c].Costs[k])
		}
		sol.Usage[k] = u.sum()
		sol.Slack[k] = row.Limit - sol.Usage[k]
	}
}

// minUsage returns, for every row, the least value it can take: every
// group at its cheapest allowed choice for that row alone (a compensated
// sum).
func minUsage(p *ilp.Problem) []float64 {
	u := make([]float64, len(p.Rows))
	for k := range p.Rows {
		var s ksum
		for _, gr := range p.Groups {
			best := math.Inf(1)
			for _, ch := range gr.Choices {
				if gr.Pin == "" || ch.Label == gr.Pin {
					best = min(best, ch.Costs[k])
				}
			}
			s.add(best)
		}
		u[k] = s.sum()
	}
	return u
}

// conflicts returns minimal sets of the rows in rows (each feasible alone)
// that cannot be met together; none if all of them can. With at most
// maxEnumConflictRows rows it enumerates row subsets by size, skipping
// supersets of conflicts found, and returns all minimal sets; otherwise
// QuickXplain (Junker 2004) returns one. Each check is a feasibility run of
// the branch-and-bound; all checks together may explore at most
// maxConflictNodes nodes, and the analysis stops early (returning what it
// found) on that or any other limit.
func conflicts(m *Model, p *ilp.Problem, rows []int, tol []float64, lim *limits) [][]int {
	if len(rows) < 2 {
		return nil
	}
	budget := maxConflictNodes
	// infeasible reports whether the rows sub cannot be met together;
	// known is false when a limit stopped the check.
	infeasible := func(sub []int) (inf, known bool) {
		if len(sub) == 0 {
			return false, true
		}
		if budget <= 0 || lim.stop(0) {
			return false, false
		}
		sl := *lim
		sl.nodeLimit, sl.anyFeas = budget, true
		res, err := newInstance(p, sub, tol, true).solve(m, &sl)
		if err != nil || res.status == ilp.Limit {
			return false, false
		}
		budget -= res.nodes
		return res.status == ilp.Infeasible, true
	}
	if inf, known := infeasible(rows); !inf || !known {
		return nil
	}
	if len(rows) > maxEnumConflictRows {
		var qx func(bg []int, delta bool, cand []int) ([]int, bool)
		qx = func(bg []int, delta bool, cand []int) ([]int, bool) {
			if delta {
				inf, known := infeasible(bg)
				if !known {
					return nil, false
				}
				if inf {
					return nil, true
				}
			}
			if len(cand) == 1 {
				return cand, true
			}
			c1, c2 := cand[:len(cand)/2], cand[len(cand)/2:]
			x2, ok := qx(append(slices.Clone(bg), c1...), len(c1) > 0, c2)
			if !ok {
				return nil, false
			}
			x1, ok := qx(append(slices.Clone(bg), x2...), len(x2) > 0, c1)
			if !ok {
				return nil, false
			}
			return append(x1, x2...), true
		}
		set, ok := qx(nil, false, rows)
		if !ok {
			return nil
		}
		slices.Sort(set)
		return [][]int{set}
	}
	var out [][]int
	R := len(rows)
	for size := 2; size <= R; size++ {
		for mask := 1; mask < 1<<R; mask++ {
			if bits.OnesCount(uint(mask)) != size {
				continue
			}
			skip := false
			for _, c := range out {
				if mask&maskOf(c, rows) == maskOf(c, rows) {
					skip = true
					break
				}
			}
			if skip {
				continue
			}
			var sub []int
			for i := 0; i < R; i++ {
				if mask&(1<<i) != 0 {
					sub = append(sub, rows[i])
				}
			}
			inf, known := infeasible(sub)
			if !known {
				return out
			}
			if inf {
				out = append(out, sub)
			}
		}
	}
	return out
}

// maskOf returns the bit mask of the problem rows c within rows.
func maskOf(c, rows []int) int {
	m := 0
	for i, r := range rows {
		for _, k := range c {
			if k == r {
				m |= 1 << i
			}
		}
	}
	return m
}
