package ilp

import (
	"cmp"
	"math"
	"slices"
)

// dpResult is the outcome of dp.
type dpResult struct {
	a         []int32 // best assignment found with value below the cutoff, or nil
	v         float64 // its value
	complete  bool    // the enumeration finished: a is optimal below the cutoff
	minPruned float64 // least bound of a state pruned by the cutoff
	states    int     // states generated
}

// dp solves a small sub exactly by dynamic programming over groups with
// dominance and bounds, the multi-row form of the state enumeration Pisinger
// uses on the core of a knapsack problem (Pisinger 1995, "A minimal
// algorithm for the multiple-choice knapsack problem", §4; Kellerer,
// Pferschy & Pisinger 2004, §11.9). A state is a partial assignment of the
// first i groups, summarised by its usage u and value v. A state is dropped
//   - when a row cannot be met even with the cheapest remaining choices;
//   - when it is dominated: another state at the same level has no more
//     value and no more usage in any row;
//   - when its bound reaches the cutoff; the bound is v plus the best of
//     several surrogate LP bounds on the remaining groups: the LP of the
//     rest under one row w·C ≤ w·(L − u) (Glover 1965), for w = λ* and for
//     λ* with each row's weight raised and lowered (see newSurrogates).
//
// Groups with the largest spread of surrogate cost come first, and each
// level is ordered by value by merging per-choice blocks. With two rows
// dominance uses a Fenwick tree of prefix minima; with more it compares
// against at most maxPairwise kept states (a state it cannot test is kept,
// which costs time but not exactness).
//
// dp gives up (complete false) when the states at a level exceed maxStates.
// With beam > 0 it is a heuristic instead (beam search): a level keeps only
// its beam states of least bound, and the best assignment found is returned
// with complete false whenever states were dropped.
func (q *sub) dp(lam []float64, cutoff float64, maxStates, beam int, st *stopper) dpResult {
	k, ng := q.k, q.ng()
	res := dpResult{minPruned: math.Inf(1)}
	// Order: groups with the largest moves (spread of surrogate cost w·c)
	// first, so that the groups left at any level are fine-grained and the
	// LP bound of the rest is nearly integral.
	w := append([]float64(nil), lam...)
	if slices.Max(append([]float64{0}, w...)) <= 0 {
		for i := range w {
			w[i] = 1
		}
	}
	order := make([]int, ng)
	key := make([]float64, ng)
	for g := range order {
		order[g] = g
		lo, hi := math.Inf(1), math.Inf(-1)
		for j := q.start[g]; j < q.start[g+1]; j++ {
			c := 0.0
			for row := 0; row < k; row++ {
				c += w[row] * q.cost[int(j)*k+row]
			}
			lo, hi = math.Min(lo, c), math.Max(hi, c)
		}
		key[g] = hi - lo
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case key[a] > key[b]:
			return -1
		case key[b] > key[a]:
			return 1
		}
		return 0
	})
	// Bounds: the LP relaxation of the remaining groups under the surrogate
	// row Σ_k w_k C_k ≤ Σ_k w_k L_k with w = λ* (Glover 1965, surrogate
	// constraints), solved exactly for every capacity by the convex-hull
	// greedy: per level, the hull edges of the remaining groups sorted by
	// efficiency with prefix sums, queried by binary search. Each is built
	// when first queried (a low rung often prunes the root with the first).
	sbs := newSurrogates(q, order, w)
	minc := make([]float64, (ng+1)*k)
	for i := ng - 1; i >= 0; i-- {
		g := order[i]
		for row := 0; row < k; row++ {
			m := math.Inf(1)
			for j := q.start[g]; j < q.start[g+1]; j++ {
				m = math.Min(m, q.cost[int(j)*k+row])
			}
			minc[i*k+row] = minc[(i+1)*k+row] + m
		}
	}
	maxc := make([]float64, (ng+1)*k)
	for i := ng - 1; i >= 0; i-- {
		g := order[i]
		for row := 0; row < k; row++ {
			m := math.Inf(-1)
			for j := q.start[g]; j < q.start[g+1]; j++ {
				m = math.Max(m, q.cost[int(j)*k+row])
			}
			maxc[i*k+row] = maxc[(i+1)*k+row] + m
		}
	}
	limT := make([]float64, k) // limits with the rounding allowance
	for row := range limT {
		limT[row] = q.lim[row] + tolCost
	}
	levels := make([][]back, ng)
	u := make([]float64, k) // states' usage, state-major
	v := []float64{q.c0}
	var u2, v2 []float64 // the next level's states (buffers swapped with u, v)
	var nu, nv []float64
	var nb []back
	var nbd []float64
	un := make([]float64, k)
	truncated := false
	var idx, keep, rel, blocks []int
	var bs, tree []float64
	var pu []float64
	// With two rows the states are also kept in order of their first row's
	// usage (pord): a child adds its choice's cost to its parent's, which
	// keeps that order within a choice's block, so merging the blocks ranks
	// a level's states for the dominance test without sorting.
	ordered := k == 2
	pord := []int32{0}
	var cidx, uord, rank, fresh, heads []int32
	for i := 0; i < ng; i++ {
		if i%4 == 3 && st.stop() {
			return res
		}
		g := order[i]
		np := len(v)
		nu, nv, nb, nbd = nu[:0], nv[:0], nb[:0], nbd[:0]
		mr := minc[(i+1)*k : (i+2)*k]
		if ordered {
			cidx = slices.Grow(cidx[:0], int(q.start[g+1]-q.start[g])*np)[:int(q.start[g+1]-q.start[g])*np]
		}
		// Children are made choice by choice; parents are in increasing
		// value, so each choice's block is too, and a merge of the blocks
		// orders the level by value.
		blocks = blocks[:0]
		for j := q.start[g]; j < q.start[g+1]; j++ {
			blocks = append(blocks, len(nv))
			c := q.cost[int(j)*k : int(j)*k+k]
			vj := q.val[j]
			var ci []int32
			if ordered {
				off := int(j-q.start[g]) * np
				ci = cidx[off : off+np]
			}
		next:
			for s := 0; s < np; s++ {
				if ordered {
					ci[s] = -1
				}
				us := u[s*k : s*k+k]
				for row := 0; row < k; row++ {
					un[row] = us[row] + c[row]
					if un[row]+mr[row] > limT[row] {
						continue next
					}
				}
				vn := v[s] + vj
				b := math.Inf(-1)
				for _, sb := range sbs {
					if !sb.built {
						sb.build()
					}
					us := 0.0
					for row, x := range sb.w {
						us += x * un[row]
					}
					x, ok := sb.cached(i+1, sb.wLim-us)
					if !ok {
						x = sb.descend(i+1, sb.wLim-us, sb.wTol)
					}
					b = maxf(b, vn+x)
					if b >= cutoff {
						break
					}
				}
				if b >= cutoff {
					res.minPruned = minf(res.minPruned, b)
					continue
				}
				if ordered {
					ci[s] = int32(len(nv))
				}
				nu = append(nu, un...)
				nv = append(nv, vn)
				nb = append(nb, back{int32(s), j})
				if beam > 0 {
					nbd = append(nbd, b)
				}
			}
		}
		blocks = append(blocks, len(nv))
		res.states += len(nv)
		// Rows that no completion of any state can violate play no part in
		// dominance (Σ of the largest remaining costs still fits).
		rel = rel[:0]
		mx := maxc[(i+1)*k : (i+2)*k]
		for row := 0; row < k; row++ {
			for s := range nv {
				if nu[s*k+row]+mx[row] > limT[row] {
					rel = append(rel, row)
					break
				}
			}
		}
		kr := len(rel)
		if ordered {
			// The level's states by first-row usage: each block's children
			// in their parents' order, the blocks merged.
			uord = uord[:0]
			nblk := len(blocks) - 1
			heads = heads[:0]
			for t := 0; t < nblk; t++ {
				start := len(uord)
				for _, p := range pord {
					if c := cidx[t*np+int(p)]; c >= 0 {
						uord = append(uord, c)
					}
				}
				heads = append(heads, int32(start))
			}
			heads = append(heads, int32(len(uord)))
			if nblk > 1 {
				uord = mergeByRow(uord, heads, nu)
			}
		}
		// Dominance filter, over the states in increasing value (states of
		// equal value in any order: a dominated one may survive, which
		// costs time but not exactness).
		idx = mergeBlocks(idx[:0], nv, blocks)
		switch {
		case kr == 0:
			keep = append(keep[:0], idx[:min(1, len(idx))]...)
		case ordered && kr == 2:
			rank = slices.Grow(rank[:0], len(nv))[:len(nv)]
			r := int32(-1)
			for t, s := range uord {
				if t == 0 || nu[int(s)*2] != nu[int(uord[t-1])*2] {
					r++
				}
				rank[s] = r
			}
			keep, tree = dominance2(keep[:0], tree, idx, nu, rank, int(r)+1)
		default:
			pu = pu[:0]
			for s := range nv {
				for _, row := range rel {
					pu = append(pu, nu[s*k+row])
				}
			}
			keep = append(keep[:0], dominanceFilter(idx, pu, kr)...)
		}
		if beam > 0 && len(keep) > beam {
			// Keep the beam states of least bound, still in value order.
			bs = bs[:0]
			for _, s := range keep {
				bs = append(bs, nbd[s])
			}
			slices.Sort(bs)
			thr, ties := bs[beam-1], 0
			for _, b := range bs[:beam] {
				if b == thr {
					ties++
				}
			}
			out := keep[:0]
			for _, s := range keep {
				if nbd[s] < thr || (nbd[s] == thr && ties > 0) {
					if nbd[s] == thr {
						ties--
					}
					out = append(out, s)
				}
			}
			keep = out
			truncated = true
		}
		if len(keep) > maxStates {
			return res
		}
		u2, v2 = u2[:0], v2[:0]
		lv := make([]back, 0, len(keep))
		for _, s := range keep {
			u2 = append(u2, nu[s*k:s*k+k]...)
			v2 = append(v2, nv[s])
			lv = append(lv, nb[s])
		}
		u, u2, v, v2 = u2, u, v2, v
		levels[i] = lv
		if len(v) == 0 {
			res.complete = !truncated
			return res
		}
		if ordered {
			// The kept states' first-row order, in their new numbering.
			fresh = slices.Grow(fresh[:0], len(nv))[:len(nv)]
			for s := range fresh {
				fresh[s] = -1
			}
			for t, s := range keep {
				fresh[s] = int32(t)
			}
			pord = pord[:0]
			for _, s := range uord {
				if t := fresh[s]; t >= 0 {
					pord = append(pord, t)
				}
			}
		}
	}
	best := 0
	for s := range v {
		if v[s] < v[best] {
			best = s
		}
	}
	res.a = make([]int32, ng)
	s := int32(best)
	for i := ng - 1; i >= 0; i-- {
		b := levels[i][s]
		res.a[order[i]] = b.choice
		s = b.parent
	}
	res.v = v[best]
	res.complete = !truncated
	return res
}

// back is a dp state's link to its parent: the parent's index at the level
// before and the choice that extends it.
type back struct {
	parent int32
	choice int32
}

// maxf is math.Max(x, y), inlined where neither is NaN and they differ.
func maxf(x, y float64) float64 {
	if x > y {
		return x
	}
	if y > x {
		return y
	}
	return math.Max(x, y)
}

// minf is math.Min(x, y), inlined where neither is NaN and they differ.
func minf(x, y float64) float64 {
	if x < y {
		return x
	}
	if y < x {
		return y
	}
	return math.Min(x, y)
}

// mergeByRow merges the runs ord[heads[t]:heads[t+1]] of states, each in
// increasing first-row usage u[s*2], into one such order (ties in any
// order), using the space after ord.
func mergeByRow(ord, heads []int32, u []float64) []int32 {
	n := len(ord)
	out := slices.Grow(ord, n)[n : 2*n]
	nb := len(heads) - 1
	pos := make([]int32, nb)
	copy(pos, heads[:nb])
	for o := range out {
		best := -1
		bu := 0.0
		for t := 0; t < nb; t++ {
			if pos[t] < heads[t+1] {
				if x := u[int(ord[pos[t]])*2]; best < 0 || x < bu {
					best, bu = t, x
				}
			}
		}
		out[o] = ord[pos[best]]
		pos[best]++
	}
	return append(ord[:0], out...)
}

// mergeBlocks appends to idx the indices of nv ordered by value, where
// nv[blocks[t]:blocks[t+1]] are each in increasing order.
func mergeBlocks(idx []int, nv []float64, blocks []int) []int {
	nb := len(blocks) - 1
	pos := append([]int(nil), blocks[:nb]...)
	for {
		best := -1
		for t := 0; t < nb; t++ {
			if pos[t] < blocks[t+1] && (best < 0 || nv[pos[t]] < nv[pos[best]]) {
				best = t
			}
		}
		if best < 0 {
			return idx
		}
		idx = append(idx, pos[best])
		pos[best]++
	}
}

// maxPairwise bounds the kept states compared pairwise (three or more rows).
var maxPairwise = 64

// dominanceFilter returns the states of idx (sorted by value, then usage)
// that no earlier state dominates (usage no larger in every row). One row is
// a prefix minimum; two rows use a Fenwick tree of prefix minima over the
// first row's ranks; more rows compare against the kept states.
func dominanceFilter(idx []int, u []float64, k int) []int {
	var keep []int
	switch k {
	case 1:
		best := math.Inf(1)
		for _, s := range idx {
			if u[s] < best {
				best = u[s]
				keep = append(keep, s)
			}
		}
	case 2:
		xs := make([]float64, len(idx))
		for i, s := range idx {
			xs[i] = u[s*2]
		}
		slices.Sort(xs)
		xs = slices.Compact(xs)
		rank := make([]int32, len(u)/2)
		for _, s := range idx {
			r, _ := slices.BinarySearch(xs, u[s*2])
			rank[s] = int32(r)
		}
		keep, _ = dominance2(make([]int, 0, len(idx)), nil, idx, u, rank, len(xs))
	default:
		for i, s := range idx {
			dominated := false
			for _, t := range keep {
				d := true
				for row := 0; row < k; row++ {
					if u[t*k+row] > u[s*k+row] {
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
				keep = append(keep, s)
			}
			if len(keep) > maxPairwise {
				// Too many to compare: keep the rest unfiltered.
				return append(keep, idx[i+1:]...)
			}
		}
	}
	return keep
}

// dominance2 appends to keep the states of idx (sorted by value) that no
// earlier state dominates in two rows, u holding the usages (state-major)
// and rank the states' ranks among the n distinct first-row usages: a
// Fenwick tree over the ranks holds the least second-row usage of the kept
// states, tree its reused storage.
func dominance2(keep []int, tree []float64, idx []int, u []float64, rank []int32, n int) ([]int, []float64) {
	tree = slices.Grow(tree[:0], n+1)[:n+1]
	for i := range tree {
		tree[i] = math.Inf(1)
	}
	for _, s := range idx {
		r := int(rank[s])
		// Least second-row usage among kept states with first row ≤ this
		// (plain comparisons: usages are never NaN).
		y := u[s*2+1]
		dominated := false
		for i := r + 1; i > 0; i -= i & -i {
			if tree[i] <= y {
				dominated = true
				break
			}
		}
		if dominated {
			continue
		}
		keep = append(keep, s)
		for i := r + 1; i < len(tree); i += i & -i {
			if y < tree[i] {
				tree[i] = y
			}
		}
	}
	return keep, tree
}

func floatsSum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// surrogateBound gives, for the groups order[i:] left at level i, the LP
// relaxation under one surrogate row w·C ≤ w·L as a function of capacity,
// solved exactly by the convex-hull greedy (Sinha & Zoltners 1979): every
// group starts at its cheapest hull point and hull edges are taken in
// decreasing efficiency. The edges of all groups are sorted once by
// efficiency and held in Fenwick trees of their cost and value steps; a
// group's edges are removed when dp passes its level, and a query descends
// the tree to the edge the capacity splits. Levels must be queried in
// increasing order. Memory is O(edges), and the sums are compensated
// (ksum) so that removals leave no rounding residue above the noise.
type surrogateBound struct {
	w          []float64 // row weights
	wLim, wTol float64   // w·lim and the tolerance of a capacity

	// q and order describe the levels; built tells whether the fields
	// below are (build makes them from q, order and w).
	q     *sub
	order []int
	built bool

	baseC, baseV []float64 // per level: Σ hull start cost and value of order[i:]
	eff          []float64 // per edge (sorted): efficiency −Δv/Δc, decreasing
	dc, dv       []float64 // per edge: cost and value step
	edges        [][]int32 // per group: its edges' positions
	fc, fv       []ksum    // Fenwick trees (1-based) over the edges
	node         []fnode   // their node values, rounded; NaN past the edges
	top          int       // highest power of two ≤ len(eff)
	level        int       // groups order[:level] are removed
	// last is the last query's result as a function of the capacity,
	// valid over the capacities whose descent takes the same path.
	last segmentHit
}

// segmentHit is a query's result for every finite capacity c (after
// subtracting baseC) in [lo, hi) at one level: the descent compares c with
// the same sums and takes the same path for all of them, and the result is
// b − (c − used)·eff (eff 0 without an edge to split: b, as b is never −0).
// A dp level's states lie close together, so most queries fall into the
// last one's range.
type segmentHit struct {
	level   int
	lo, hi  float64
	b, used float64
	eff     float64
}

// fnode is a node of the surrogate bound's Fenwick trees: the cost and value
// steps of its range of edges.
type fnode struct{ c, v float64 }

type edge struct {
	dc, dv, eff float64
	g, t        int32 // level of the group; position in the order made
}

// newSurrogates returns the surrogate bounds dp uses: the surrogate row of
// weights w, and for every row k with two or more rows, w with row k's
// weight raised and lowered, which penalises states that lean on one row.
func newSurrogates(q *sub, order []int, w []float64) []*surrogateBound {
	ws := [][]float64{w}
	if q.k > 1 {
		mean := floatsSum(w) / float64(len(w))
		for k := range w {
			for _, f := range []float64{1, -0.5} {
				x := append([]float64(nil), w...)
				x[k] += f * math.Max(w[k], mean*0.5)
				if x[k] < 0 {
					x[k] = 0
				}
				ws = append(ws, x)
			}
		}
	}
	var out []*surrogateBound
	for _, x := range ws {
		sb := &surrogateBound{w: x, q: q, order: order}
		for row := 0; row < q.k; row++ {
			sb.wLim += x[row] * q.lim[row]
		}
		sb.wTol = tolCost * (1 + floatsSum(x))
		out = append(out, sb)
	}
	return out
}

func newSurrogateBound(q *sub, order []int, w []float64) *surrogateBound {
	sb := &surrogateBound{w: w, q: q, order: order}
	sb.build()
	return sb
}

// build makes the bound's levels from q, order and w.
func (sb *surrogateBound) build() {
	q, order, w := sb.q, sb.order, sb.w
	k, ng := q.k, len(order)
	sb.built = true
	sb.baseC, sb.baseV, sb.edges = make([]float64, ng+1), make([]float64, ng+1), make([][]int32, ng)
	var all []edge
	type pt struct{ c, v float64 }
	var pts, hull []pt
	var bc, bv ksum
	for i := ng - 1; i >= 0; i-- {
		g := order[i]
		pts = pts[:0]
		for j := q.start[g]; j < q.start[g+1]; j++ {
			c := 0.0
			for row := 0; row < k; row++ {
				c += w[row] * q.cost[int(j)*k+row]
			}
			pts = append(pts, pt{c, q.val[j]})
		}
		slices.SortFunc(pts, func(a, b pt) int {
			if c := cmp.Compare(a.c, b.c); c != 0 {
				return c
			}
			return cmp.Compare(a.v, b.v)
		})
		hull = hull[:0]
		for _, p := range pts {
			if len(hull) > 0 && p.v >= hull[len(hull)-1].v {
				continue
			}
			for len(hull) >= 2 {
				a, b := hull[len(hull)-2], hull[len(hull)-1]
				if (b.v-a.v)*(p.c-b.c) >= (p.v-b.v)*(b.c-a.c) {
					hull = hull[:len(hull)-1]
					continue
				}
				break
			}
			hull = append(hull, p)
		}
		bc.add(hull[0].c)
		bv.add(hull[0].v)
		sb.baseC[i], sb.baseV[i] = bc.sum(), bv.sum()
		for h := 1; h < len(hull); h++ {
			dc, dv := hull[h].c-hull[h-1].c, hull[h].v-hull[h-1].v
			all = append(all, edge{dc, dv, -dv / dc, int32(i), int32(len(all))})
		}
	}
	// Decreasing efficiency, ties in the order made (a stable sort's order,
	// by the faster unstable sort).
	slices.SortFunc(all, func(a, b edge) int {
		if c := cmp.Compare(b.eff, a.eff); c != 0 {
			return c
		}
		return cmp.Compare(a.t, b.t)
	})
	n := len(all)
	sb.eff, sb.dc, sb.dv = make([]float64, n), make([]float64, n), make([]float64, n)
	sb.fc, sb.fv = make([]ksum, n+1), make([]ksum, n+1)
	for t, e := range all {
		sb.eff[t], sb.dc[t], sb.dv[t] = e.eff, e.dc, e.dv
		sb.edges[e.g] = append(sb.edges[e.g], int32(t))
		// Linear-time Fenwick build: add to the node, push to the parent.
		sb.fc[t+1].add(e.dc)
		sb.fv[t+1].add(e.dv)
	}
	for t := 1; t <= n; t++ {
		if p := t + t&-t; p <= n {
			sb.fc[p].add(sb.fc[t].s)
			sb.fc[p].add(sb.fc[t].c)
			sb.fv[p].add(sb.fv[t].s)
			sb.fv[p].add(sb.fv[t].c)
		}
	}
	sb.top = 1
	for sb.top*2 <= n {
		sb.top *= 2
	}
	// A descent from top reaches at most index 2·top − 1; the nodes past
	// the edges are NaN, which no comparison takes.
	sb.node = make([]fnode, 2*sb.top)
	for t := range sb.node {
		if t <= n {
			sb.node[t] = fnode{sb.fc[t].sum(), sb.fv[t].sum()}
		} else {
			sb.node[t] = fnode{math.NaN(), math.NaN()}
		}
	}
}

// advance removes the edges of the groups before level i.
func (sb *surrogateBound) advance(i int) {
	for ; sb.level < i; sb.level++ {
		for _, t := range sb.edges[sb.level] {
			dc, dv := sb.dc[t], sb.dv[t]
			for x := int(t) + 1; x < len(sb.fc); x += x & -x {
				sb.fc[x].add(-dc)
				sb.fv[x].add(-dv)
				sb.node[x] = fnode{sb.fc[x].sum(), sb.fv[x].sum()}
			}
			sb.dc[t], sb.dv[t] = 0, 0
		}
	}
}

// query returns the LP value of the groups of level i with surrogate
// capacity capacity (+Inf when even the cheapest choices exceed it).
func (sb *surrogateBound) query(i int, capacity, tol float64) float64 {
	if v, ok := sb.cached(i, capacity); ok {
		return v
	}
	return sb.descend(i, capacity, tol)
}

// cached is query when capacity falls into the last query's range and
// leaves a positive capacity (ok false otherwise); small enough to be
// inlined into dp.
func (sb *surrogateBound) cached(i int, capacity float64) (float64, bool) {
	h := &sb.last
	if c := capacity - sb.baseC[i]; h.level == i && c > 0 && h.lo <= c && c < h.hi {
		return h.b - (c-h.used)*h.eff, true
	}
	return 0, false
}

// descend is query by a descent of the Fenwick trees.
func (sb *surrogateBound) descend(i int, capacity, tol float64) float64 {
	if i > sb.level {
		sb.advance(i)
	}
	c := capacity - sb.baseC[i]
	if c < -tol {
		return math.Inf(1)
	}
	if c <= 0 { // math.Max(c, 0): −0 too becomes +0
		c = 0
	}
	// Descend to the longest prefix of edges whose cost fits in c, noting
	// the range of capacities that take the same path: at least every sum
	// taken, below every sum not taken (never NaN, past the edges).
	pos := 0
	lo, hi := math.Inf(-1), math.Inf(1)
	// Node values are compensated sums, cached as floats; a prefix adds at
	// most log₂(edges) of them, all of one sign per tree.
	used, v := 0.0, 0.0
	node := sb.node
	for step := sb.top; step > 0; step >>= 1 {
		nx := pos + step
		if x := used + node[nx].c; x <= c {
			pos, used, v = nx, x, v+node[nx].v
			if x > lo {
				lo = x
			}
		} else if x < hi {
			hi = x
		}
	}
	out := sb.baseV[i] + v
	h := segmentHit{level: i, lo: lo, hi: hi, b: out, used: used}
	// Edge pos (0-based) is the first that does not fit; skip removed ones
	// (no cost) that rounding may have left there.
	dc := sb.dc
	for pos < len(dc) && dc[pos] == 0 {
		pos++
	}
	if pos < len(sb.eff) {
		h.eff = sb.eff[pos]
		out -= (c - used) * sb.eff[pos]
	}
	if c == c {
		sb.last = h
	}
	return out
}

// dpLazy runs dp on the relaxation of q to the rows that bind in the
// relaxed solution (λ_k > 0) and adds back, one round at a time, every row
// the result violates. A relaxation's optimum that meets every row is q's
// optimum, and a relaxation without an assignment below the cutoff proves
// that q has none, so the outcome has dp's meaning for q itself. Rows with
// slack at λ* seldom bind near the optimum; leaving them out keeps the
// dominance test in fewer dimensions and the state lists short.
func (q *sub) dpLazy(lam []float64, cutoff float64, maxStates, beam int, st *stopper) dpResult {
	active := make([]bool, q.k)
	for r, l := range lam {
		active[r] = l > 0
	}
	u := make([]float64, q.k)
	states := 0
	for {
		var rows []int
		for r, a := range active {
			if a {
				rows = append(rows, r)
			}
		}
		pq, pl := q, lam
		if len(rows) < q.k {
			pq, pl = q.project(rows), make([]float64, len(rows))
			for i, r := range rows {
				pl[i] = lam[r]
			}
		}
		res := pq.dp(pl, cutoff, maxStates, beam, st)
		states += res.states
		res.states = states
		if res.a == nil || len(rows) == q.k {
			return res
		}
		q.usage(res.a, u)
		added := false
		for r := range u {
			if !active[r] && u[r] > q.lim[r]+tolCost {
				active[r], added = true, true
			}
		}
		if !added {
			return res
		}
	}
}

// project returns q with only the given rows (the same groups and choice
// indices; it does not map into a parent).
func (q *sub) project(rows []int) *sub {
	k := len(rows)
	n := &sub{k: k, start: q.start, val: q.val, c0: q.c0, lim: make([]float64, k),
		cost: make([]float64, len(q.val)*k)}
	for i, r := range rows {
		n.lim[i] = q.lim[r]
	}
	for j := range q.val {
		for i, r := range rows {
			n.cost[j*k+i] = q.cost[j*q.k+r]
		}
	}
	return n
}
