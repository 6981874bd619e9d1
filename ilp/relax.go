package ilp

import (
	"cmp"
	"math"
	"slices"
)

// relaxation is the result of bounding a sub: a valid lower bound, the
// multipliers that prove it and a relaxed (fractional) solution.
type relaxation struct {
	// bound is c0 + φ(λ) for the best λ found, a true lower bound on every
	// feasible assignment; +Inf when the sub is proven infeasible.
	bound float64
	// lam are the multipliers (shadow prices in scaled units).
	lam []float64
	// x is the weight of every choice in the relaxed solution (Σ over a
	// group is 1), or nil when none is available.
	x []float64
	// exact tells whether bound equals the LP relaxation's optimum within
	// tolRel (false when stopped early by the cutoff or an iteration cap).
	exact bool
}

// relax bounds q. For one row it runs the exact convex-hull greedy; for more
// rows the proximal cutting-plane method on the Lagrangian dual, started at
// lam0 (nil means 0). It stops early, with exact false, once the bound
// exceeds cutoff.
func (q *sub) relax(lam0 []float64, cutoff float64, st *stopper) relaxation {
	if q.ng() == 0 || q.k == 0 {
		lam := make([]float64, q.k)
		a := make([]int32, q.ng())
		s := make([]float64, q.k)
		var va float64
		b := q.lagrange(lam, a, s, &va)
		x := make([]float64, len(q.val))
		for _, j := range a {
			x[j] = 1
		}
		if !q.feasible(addLim(s, q.lim)) {
			return relaxation{bound: math.Inf(1), lam: lam, exact: true}
		}
		return relaxation{bound: b, lam: lam, x: x, exact: true}
	}
	if q.k == 1 {
		return q.greedy1()
	}
	d := newDual(q)
	return d.maximize(lam0, cutoff, st)
}

// addLim returns s + lim (turns a subgradient back into a usage).
func addLim(s, lim []float64) []float64 {
	if lim == nil {
		return s
	}
	u := make([]float64, len(s))
	for i := range s {
		u[i] = s[i] + lim[i]
	}
	return u
}

// segment is an edge of a group's lower convex hull in the (cost, value)
// plane, used by greedy1.
type segment struct {
	g        int32
	to       int32 // choice reached
	dc, eff  float64
	from     int32
	position int32 // index of the edge along its group's hull
}

// greedy1 solves the LP relaxation of a one-row sub exactly: it keeps each
// group's lower convex hull (LP dominance, Sinha & Zoltners 1979, "The
// multiple-choice knapsack problem", Oper. Res. 27(3), Theorems 1–3),
// starts every group at its cheapest hull point and takes hull edges in
// decreasing efficiency −Δv/Δc until the budget is spent; the edge that does
// not fit is taken fractionally and its efficiency is the optimal multiplier
// λ*. At most one group is fractional (Pisinger 1995, "A minimal algorithm
// for the multiple-choice knapsack problem", EJOR 83).
func (q *sub) greedy1() relaxation {
	ng := q.ng()
	x := make([]float64, len(q.val))
	cur := make([]int32, ng)
	var segs []segment
	var used float64
	idx := make([]int32, 0, 16)
	hull := make([]int32, 0, 16)
	for g := 0; g < ng; g++ {
		idx = idx[:0]
		for j := q.start[g]; j < q.start[g+1]; j++ {
			idx = append(idx, j)
		}
		slices.SortFunc(idx, func(a, b int32) int {
			if c := cmp.Compare(q.cost[a], q.cost[b]); c != 0 {
				return c
			}
			return cmp.Compare(q.val[a], q.val[b])
		})
		hull = hull[:0]
		for _, j := range idx {
			if len(hull) > 0 && q.val[j] >= q.val[hull[len(hull)-1]] {
				continue // dominated: no cheaper in value, no cheaper in cost
			}
			for len(hull) >= 2 {
				a, b := hull[len(hull)-2], hull[len(hull)-1]
				// b is above the chord a–j: not on the lower hull.
				if (q.val[b]-q.val[a])*(q.cost[j]-q.cost[b]) >= (q.val[j]-q.val[b])*(q.cost[b]-q.cost[a]) {
					hull = hull[:len(hull)-1]
					continue
				}
				break
			}
			hull = append(hull, j)
		}
		cur[g] = hull[0]
		used += q.cost[hull[0]]
		for i := 1; i < len(hull); i++ {
			a, b := hull[i-1], hull[i]
			dc := q.cost[b] - q.cost[a]
			segs = append(segs, segment{g: int32(g), from: a, to: b, dc: dc,
				eff: (q.val[a] - q.val[b]) / dc, position: int32(i)})
		}
	}
	if used > q.lim[0]+tolCost {
		return relaxation{bound: math.Inf(1), lam: []float64{0}, exact: true}
	}
	slices.SortStableFunc(segs, func(a, b segment) int {
		if c := cmp.Compare(b.eff, a.eff); c != 0 {
			return c
		}
		if c := cmp.Compare(a.g, b.g); c != 0 {
			return c
		}
		return cmp.Compare(a.position, b.position)
	})
	budget := q.lim[0] - used
	lam := 0.0
	frac, theta := -1, 0.0
	for i := range segs {
		s := &segs[i]
		if s.dc <= budget {
			budget -= s.dc
			cur[s.g] = s.to
			continue
		}
		lam = s.eff
		frac, theta = i, math.Max(budget, 0)/s.dc
		break
	}
	for g := 0; g < ng; g++ {
		x[cur[g]] = 1
	}
	if frac >= 0 && theta > 0 {
		s := segs[frac]
		x[s.from] = 1 - theta
		x[s.to] = theta
	}
	l := []float64{lam}
	a := make([]int32, ng)
	sg := make([]float64, 1)
	var va float64
	b := q.lagrange(l, a, sg, &va)
	return relaxation{bound: b, lam: l, x: x, exact: true}
}

// dual maximises the Lagrangian dual φ(λ) of a sub with K ≥ 2 rows by a
// proximal cutting-plane (boxstep) method: Kelley's cutting planes (Kelley
// 1960) restricted to a box around the best point, which moves on serious
// steps (Marsten, Hogan & Blankenship 1975, "The BOXSTEP method for
// large-scale optimization", Oper. Res. 23(3)). The master problem
//
//	max t  s.t.  t ≤ V(a_i) + λ·(C(a_i) − L)  for every cut i,  lo ≤ λ ≤ hi
//
// is solved in its Dantzig–Wolfe form, a (K+1)-row LP over the cuts'
// convex-combination weights μ (whose duals are t and λ), so the master basis
// is a (K+1)×(K+1) working basis (Dantzig & Van Slyke 1967, generalized upper
// bounding). The weights μ give the relaxed primal solution: at most K+1
// assignments mixed, i.e. at most K fractional groups at a vertex.
type dual struct {
	q    *sub
	k    int
	cuts []cut
	pool [][]int32
	m    master
	// evals counts Lagrangian evaluations.
	evals int
}

// cut is one assignment a_i with its value V and subgradient s = C(a) − L.
type cut struct {
	v float64
	s []float64
	a []int32
}

func newDual(q *sub) *dual {
	return &dual{q: q, k: q.k, m: newMaster(q.k)}
}

// maxCuts bounds the cuts kept in the master (the basic ones are never
// dropped).
func (d *dual) maxCuts() int { return bundleBaseCuts + bundleCutsPerRow*d.k }

// Tuning of the box-constrained cutting-plane (bundle) method with which
// maximize climbs the Lagrangian dual. They trade iterations against the
// size of the master LP and so change speed, never the bound's validity:
// every bound reported is φ at an evaluated λ, and a capped run says it is
// not exact.
const (
	// bundleBaseCuts and bundleCutsPerRow bound the cuts kept in the master:
	// base + per-row · K.
	bundleBaseCuts, bundleCutsPerRow = 12, 4
	// bundleBaseIters and bundleItersPerRow cap the iterations: base +
	// per-row · K (the dual is K-dimensional).
	bundleBaseIters, bundleItersPerRow = 60, 30
	// bundleStopEvery is how often (in iterations) the stopper is polled.
	bundleStopEvery = 8
	// boxStart is the initial box half-width relative to the start λ (at
	// least 1 in absolute terms, so a zero start can move).
	boxStart = 0.5
	// seriousStep is the fraction of the predicted ascent an evaluation must
	// achieve to move the centre (Kiwiel's m parameter).
	seriousStep = 0.1
	// boxHit is the relative distance to a box face at which λ counts as
	// having hit it, and boxWiden the factor the box then widens by.
	boxHit, boxWiden = 1e-12, 4
)

// eval evaluates φ at lam and adds the cut; it returns c0 + φ(lam).
func (d *dual) eval(lam []float64) (float64, *cut) {
	d.evals++
	var a []int32
	if n := len(d.pool); n > 0 {
		a, d.pool = d.pool[n-1], d.pool[:n-1]
	} else {
		a = make([]int32, d.q.ng())
	}
	c := cut{s: make([]float64, d.k), a: a}
	f := d.q.lagrange(lam, a, c.s, &c.v)
	d.cuts = append(d.cuts, c)
	return f, &d.cuts[len(d.cuts)-1]
}

func (d *dual) maximize(lam0 []float64, cutoff float64, st *stopper) relaxation {
	q, k := d.q, d.k
	vmax := q.maxValue()
	center := make([]float64, k)
	if lam0 != nil {
		for r := range center {
			center[r] = math.Max(lam0[r], 0)
		}
	}
	fc, c := d.eval(center)
	if optimalAt(center, c.s) {
		return d.finish(center, fc, true, c.a)
	}
	// Initial box: wide enough to move, comparable to the start.
	delta := make([]float64, k)
	for r := range delta {
		delta[r] = math.Max(1, boxStart*center[r])
	}
	lam := make([]float64, k)
	lo := make([]float64, k)
	hi := make([]float64, k)
	exact := false
	for it := 0; ; it++ {
		if fc > cutoff || fc > vmax+tolRel*(1+math.Abs(vmax)) {
			break
		}
		if it >= bundleBaseIters+bundleItersPerRow*k || (it%bundleStopEvery == bundleStopEvery-1 && st.stop()) {
			break
		}
		for r := range lo {
			lo[r] = math.Max(0, center[r]-delta[r])
			hi[r] = center[r] + delta[r]
		}
		t, ok := d.m.solve(d.cuts, lo, hi, lam)
		if !ok {
			break
		}
		pred := t - fc
		tol := tolRel * (1 + math.Abs(fc))
		if pred <= tol {
			exact = true
			break
		}
		f, c := d.eval(lam)
		if f >= fc+seriousStep*pred {
			// Serious step: move the centre; widen the box where λ hit it.
			for r := range delta {
				if lam[r] >= hi[r]-boxHit*(1+hi[r]) || (lo[r] > 0 && lam[r] <= lo[r]+boxHit*(1+lo[r])) {
					delta[r] *= boxWiden
				}
			}
			copy(center, lam)
			fc = f
			if optimalAt(center, c.s) {
				return d.finish(center, fc, true, c.a)
			}
		}
		d.purge()
	}
	if fc > vmax+tolRel*(1+math.Abs(vmax)) {
		return relaxation{bound: math.Inf(1), lam: center, exact: true}
	}
	return d.finish(center, fc, exact, nil)
}

// optimalAt reports whether the Lagrangian minimiser with subgradient s is
// feasible and complementary at λ (then λ is dual optimal and the minimiser
// is an optimal integer solution).
func optimalAt(lam, s []float64) bool {
	for r, x := range s {
		if x > tolCost || (lam[r] > 0 && x < -tolCost) {
			return false
		}
	}
	return true
}

// finish builds the relaxed primal solution from the master weights.
// A non-nil direct is an optimal assignment that becomes the solution.
func (d *dual) finish(center []float64, fc float64, exact bool, direct []int32) relaxation {
	x := make([]float64, len(d.q.val))
	if direct != nil {
		for _, j := range direct {
			x[j] = 1
		}
		return relaxation{bound: fc, lam: center, x: x, exact: exact}
	}
	w := d.m.weights(len(d.cuts))
	tot := 0.0
	for i := range d.cuts {
		tot += w[i]
	}
	if tot <= 0 {
		// The master was never solved: the only cut is the centre's.
		w[0], tot = 1, 1
	}
	for i := range d.cuts {
		if w[i] <= 0 {
			continue
		}
		for _, j := range d.cuts[i].a {
			x[j] += w[i] / tot
		}
	}
	return relaxation{bound: fc, lam: center, x: x, exact: exact}
}

// purge drops the oldest non-basic cuts beyond maxCuts.
func (d *dual) purge() {
	if len(d.cuts) <= d.maxCuts() {
		return
	}
	basic := d.m.basicCuts()
	keep := d.cuts[:0]
	drop := len(d.cuts) - d.maxCuts()
	remap := make([]int, len(d.cuts))
	for i := range d.cuts {
		remap[i] = -1
		if drop > 0 && !basic[i] && i < len(d.cuts)-1 {
			drop--
			d.pool = append(d.pool, d.cuts[i].a)
			continue
		}
		remap[i] = len(keep)
		keep = append(keep, d.cuts[i])
	}
	d.cuts = keep
	d.m.remap(remap)
}
