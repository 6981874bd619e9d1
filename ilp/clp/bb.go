//go:build clp

package clp

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bitplan/bitplan/ilp"
)

// limits are the stopping rules of one branch-and-bound run.
type limits struct {
	ctx       context.Context
	deadline  time.Time // zero: no time limit
	nodeLimit int       // 0: no node limit
	relGap    float64
	absGap    float64
	basisCap  int  // bytes of warm-start bases kept for open nodes
	anyFeas   bool // stop at the first feasible assignment
}

// stop reports whether a limit or the context ends the search after nodes
// nodes.
func (l *limits) stop(nodes int) bool {
	if l.ctx.Err() != nil {
		return true
	}
	if !l.deadline.IsZero() && !time.Now().Before(l.deadline) {
		return true
	}
	return l.nodeLimit > 0 && nodes >= l.nodeLimit
}

// gapTol is the objective slack below the incumbent inc that a node must
// reach to be worth exploring.
func (l *limits) gapTol(inc float64) float64 {
	if math.IsInf(inc, 0) {
		return 0
	}
	return max(l.absGap, l.relGap*math.Abs(inc))
}

// sharedBasis is a parent's final basis, shared by its two children.
type sharedBasis struct {
	b    []byte
	refs int
}

// node is a branch-and-bound node: the columns fixed to zero along the path
// from the root, and the bound inherited from its parent.
type node struct {
	parent *node
	fix    []int32 // columns fixed to 0 here, on top of the parent's
	bound  float64 // a lower bound on every solution of the subtree
	depth  int
	basis  *sharedBasis
}

// nodeQueue is a best-first priority queue (container/heap): least bound
// first, deeper first among equal bounds. Push and Pop cost O(log n).
type nodeQueue []*node

func (q nodeQueue) Len() int { return len(q) }
func (q nodeQueue) Less(i, j int) bool {
	if q[i].bound != q[j].bound {
		return q[i].bound < q[j].bound
	}
	return q[i].depth > q[j].depth
}
func (q nodeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *nodeQueue) Push(x any)   { *q = append(*q, x.(*node)) }
func (q *nodeQueue) Pop() any {
	old := *q
	n := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return n
}

// result is the outcome of one branch-and-bound run.
type result struct {
	status    ilp.Status
	choice    []int     // best assignment, nil if none
	obj       float64   // its objective, +Inf if none
	bound     float64   // proven lower bound
	nodes     int       // LP relaxations solved
	lambda    []float64 // root multipliers of the model rows, nil if none
	numerical bool      // stopped because CLP failed on a node
}

// errRootLP reports a root relaxation CLP could not solve.
type errRootLP struct{ status LPStatus }

func (e errRootLP) Error() string {
	return fmt.Sprintf("clp: root LP relaxation: CLP %s (numerical trouble), also after a cold restart", e.status)
}

// solveLP runs the dual simplex from the current basis and, if CLP ends
// with neither an optimal nor an infeasible status, once more from scratch.
func solveLP(m *Model, lim *limits) LPStatus {
	if !lim.deadline.IsZero() {
		m.SetMaxSeconds(max(time.Until(lim.deadline).Seconds(), 1e-3))
	} else {
		m.SetMaxSeconds(-1)
	}
	st := m.Dual()
	if st == LPOptimal || st == LPPrimalInfeasible {
		return st
	}
	if st == LPStopped && lim.stop(0) {
		return st
	}
	m.SetBasis(nil)
	return m.InitialSolve()
}

// solve runs best-first branch-and-bound on the multiple-choice formulation
// with LP relaxations solved by CLP in m.
//
// Branching is the GUB (SOS1) dichotomy: the allowed choices of a
// fractional group, ordered by value, are split where the LP's cumulative
// weight is nearest one half; each child forbids one side, so both cut off
// the LP point. Node bounds are Lagrangian bounds L(λ) from the LP duals,
// and a choice whose reduced value r_j − min_g r exceeds the distance from
// L to the incumbent is fixed to zero in the subtree (at the root: for the
// rest of the search), the classic reduced-cost fixing.
func (in *instance) solve(m *Model, lim *limits) (*result, error) {
	if err := in.load(m); err != nil {
		return nil, err
	}
	m.SetPrimalTolerance(lpPrimalTol)
	m.SetDualTolerance(lpDualTol)
	n := len(in.val)
	res := &result{obj: math.Inf(1)}
	prunedMin := math.Inf(1)
	basisBytes := 0
	q := &nodeQueue{}
	heap.Push(q, &node{bound: math.Inf(-1)})
	upper := make([]float64, n)
	var rootL float64
	var rootR, rootMinr []float64

	// improve offers an assignment; on a better incumbent it tightens the
	// global fixings with the root multipliers.
	improve := func(choice []int) {
		obj, ok := in.evaluate(choice)
		if !ok || obj >= res.obj {
			return
		}
		res.obj, res.choice = obj, slices.Clone(choice)
		if rootR != nil {
			in.fixGlobally(rootL, rootR, rootMinr, res.obj-lim.gapTol(res.obj))
		}
	}

	stopped := false
	for q.Len() > 0 {
		top := (*q)[0]
		if top.bound >= res.obj-lim.gapTol(res.obj) {
			prunedMin = min(prunedMin, top.bound)
			break
		}
		if lim.stop(res.nodes) {
			stopped = true
			break
		}
		nd := heap.Pop(q).(*node)
		if nd.basis != nil {
			if nd.basis.refs--; nd.basis.refs == 0 {
				basisBytes -= len(nd.basis.b)
			}
		}
		copy(upper, in.upper)
		for a := nd; a != nil; a = a.parent {
			for _, j := range a.fix {
				upper[j] = 0
			}
		}
		if !in.everyGroupAllowed(upper) {
			continue
		}
		if err := m.SetColumnBounds(nil, upper); err != nil {
			return nil, err
		}
		if nd.basis != nil {
			if err := m.SetBasis(nd.basis.b); err != nil {
				return nil, err
			}
		}
		st := solveLP(m, lim)
		res.nodes++
		if st != LPOptimal && st != LPPrimalInfeasible {
			if nd.parent == nil && st != LPStopped {
				return nil, errRootLP{st}
			}
			heap.Push(q, nd) // its bound stays in the reported bound
			res.numerical = st != LPStopped
			stopped = true
			break
		}
		if st == LPPrimalInfeasible {
			continue
		}
		x := m.ColSolution()
		lam := in.lambda(m.RowPrice())
		L, r, minr, ok := in.lagrangian(lam, upper)
		if !ok {
			continue
		}
		bound := max(nd.bound, L)
		if nd.parent == nil {
			res.lambda = lam
			rootL, rootR, rootMinr = L, r, minr
		}

		// Incumbents: the LP point rounded, and the Lagrangian minimiser.
		if choice, ok := in.round(x, upper, r); ok {
			improve(choice)
		}
		improve(in.argminReduced(r, upper))
		if lim.anyFeas && res.choice != nil {
			break
		}
		if bound >= res.obj-lim.gapTol(res.obj) {
			prunedMin = min(prunedMin, bound)
			continue
		}
		g, split := in.branchGroup(x, upper)
		if g < 0 {
			// The LP point is integral but fails the rows in exact
			// arithmetic (CLP's tolerance): nothing better lies here.
			prunedMin = min(prunedMin, bound)
			continue
		}
		var local []int32
		if !math.IsInf(res.obj, 1) {
			local = in.fixable(L, r, minr, res.obj-lim.gapTol(res.obj), upper)
		}
		var sb *sharedBasis
		if b := m.Basis(); b != nil && basisBytes+len(b) <= lim.basisCap {
			sb = &sharedBasis{b: b, refs: 2}
			basisBytes += len(b)
		}
		left, right := slices.Clone(local), slices.Clone(local)
		for _, j := range split.low {
			right = append(right, int32(j))
		}
		for _, j := range split.high {
			left = append(left, int32(j))
		}
		heap.Push(q, &node{parent: nd, fix: left, bound: bound, depth: nd.depth + 1, basis: sb})
		heap.Push(q, &node{parent: nd, fix: right, bound: bound, depth: nd.depth + 1, basis: sb})
	}

	res.bound = min(prunedMin, res.obj)
	for _, nd := range *q {
		res.bound = min(res.bound, nd.bound)
	}
	switch {
	case stopped:
		res.status = ilp.Limit
	case res.choice == nil:
		res.status = ilp.Infeasible
		res.bound = math.Inf(1)
	case lim.anyFeas:
		res.status = ilp.Optimal // feasible; the bound is not closed
	default:
		res.status = ilp.Optimal
	}
	return res, nil
}

// everyGroupAllowed reports whether every group keeps an allowed column.
func (in *instance) everyGroupAllowed(upper []float64) bool {
	for g := 0; g < in.groups(); g++ {
		if !slices.ContainsFunc(upper[in.off[g]:in.off[g+1]], func(u float64) bool { return u > 0 }) {
			return false
		}
	}
	return true
}

// fixable returns every allowed column j whose Lagrangian bound with
// x_j = 1, L + r_j − min_g r, exceeds cutoff: no solution of the node using
// j can beat the incumbent by more than the gap tolerance (reduced-cost
// fixing).
func (in *instance) fixable(L float64, r, minr []float64, cutoff float64, upper []float64) []int32 {
	var out []int32
	for j := range upper {
		if upper[j] > 0 && L+(r[j]-minr[in.grp[j]]) > cutoff {
			out = append(out, int32(j))
		}
	}
	return out
}

// fixGlobally applies fixable with the root's multipliers to the global
// upper bounds, for the rest of the search.
func (in *instance) fixGlobally(L float64, r, minr []float64, cutoff float64) {
	for _, j := range in.fixable(L, r, minr, cutoff, in.upper) {
		in.upper[j] = 0
	}
}

// argminReduced returns the Lagrangian minimiser: in every group the
// allowed choice of least reduced value.
func (in *instance) argminReduced(r, upper []float64) []int {
	choice := make([]int, in.groups())
	for g := range choice {
		best := -1
		for j := in.off[g]; j < in.off[g+1]; j++ {
			if upper[j] > 0 && (best < 0 || r[j] < r[best]) {
				best = j
			}
		}
		choice[g] = best - in.off[g]
	}
	return choice
}

// round turns the LP point x into an assignment: integral groups keep their
// choice; the fractional groups try every combination of their supports
// (when there are at most maxRoundCombos) and otherwise their largest
// weight followed by a greedy repair. It returns false if nothing feasible
// was found.
func (in *instance) round(x, upper, r []float64) ([]int, bool) {
	G := in.groups()
	choice := make([]int, G)
	var frac []int
	var supp [][]int
	combos := 1
	for g := 0; g < G; g++ {
		best := -1
		var s []int
		for j := in.off[g]; j < in.off[g+1]; j++ {
			if upper[j] <= 0 {
				continue
			}
			if best < 0 || x[j] > x[best] || (x[j] == x[best] && r[j] < r[best]) {
				best = j
			}
			if x[j] > intTol {
				s = append(s, j-in.off[g])
			}
		}
		choice[g] = best - in.off[g]
		if x[best] < 1-intTol && len(s) > 1 {
			frac = append(frac, g)
			supp = append(supp, s)
			combos = min(combos*len(s), maxRoundCombos+1)
		}
	}
	if len(frac) == 0 {
		if _, ok := in.evaluate(choice); ok {
			return choice, true
		}
	} else if combos <= maxRoundCombos {
		best, bestObj := []int(nil), math.Inf(1)
		idx := make([]int, len(frac))
		for {
			for t, g := range frac {
				choice[g] = supp[t][idx[t]]
			}
			if obj, ok := in.evaluate(choice); ok && obj < bestObj {
				best, bestObj = slices.Clone(choice), obj
			}
			t := 0
			for ; t < len(idx); t++ {
				if idx[t]++; idx[t] < len(supp[t]) {
					break
				}
				idx[t] = 0
			}
			if t == len(idx) {
				break
			}
		}
		if best != nil {
			return best, true
		}
	}
	if in.repair(choice, upper) {
		return choice, true
	}
	return nil, false
}

// split is a GUB dichotomy of one group's allowed columns.
type split struct {
	low, high []int // columns of the two sides
}

// branchGroup picks the most fractional group of x and its split: allowed
// columns ordered by value, cut where the cumulative LP weight is nearest
// 1/2 with positive weight on both sides. The score of a group is the
// lighter side's weight. It returns −1 if no group has two columns of
// weight above 1e-12.
func (in *instance) branchGroup(x, upper []float64) (int, split) {
	const eps = 1e-12
	bestG, bestScore := -1, 0.0
	var best split
	var cols []int
	for g := 0; g < in.groups(); g++ {
		cols = cols[:0]
		mass, nsupp := 0.0, 0
		for j := in.off[g]; j < in.off[g+1]; j++ {
			if upper[j] > 0 {
				cols = append(cols, j)
				if x[j] > eps {
					nsupp++
					mass += x[j]
				}
			}
		}
		if nsupp < 2 || mass-max(0, maxOf(x, cols)) < eps {
			continue
		}
		slices.SortStableFunc(cols, func(a, b int) int {
			switch {
			case in.val[a] < in.val[b]:
				return -1
			case in.val[a] > in.val[b]:
				return 1
			}
			return a - b
		})
		// Candidate cuts after position p, for p before the last support
		// column; pick the one with cumulative weight nearest mass/2.
		lastSupp := -1
		for p, j := range cols {
			if x[j] > eps {
				lastSupp = p
			}
		}
		cum, cut, cutScore := 0.0, -1, -1.0
		for p := 0; p < lastSupp; p++ {
			cum += max(0, x[cols[p]])
			if cum <= eps {
				continue
			}
			if s := min(cum, mass-cum); s > cutScore {
				cut, cutScore = p, s
			}
		}
		if cut < 0 || cutScore <= bestScore {
			continue
		}
		bestG, bestScore = g, cutScore
		best = split{low: slices.Clone(cols[:cut+1]), high: slices.Clone(cols[cut+1:])}
	}
	return bestG, best
}

// maxOf returns the largest x[j] over cols.
func maxOf(x []float64, cols []int) float64 {
	m := math.Inf(-1)
	for _, j := range cols {
		m = max(m, x[j])
	}
	return m
}
