package ilp

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
)

// Incumbent heuristics: round a relaxed solution, repair it until every row
// is met, then improve it by single moves and pairs of moves. They follow
// the usual MCKP practice of greedy completion around the LP solution
// (Kellerer, Pferschy & Pisinger 2004, "Knapsack Problems", §11.5).

// round picks, in every group, the choice of largest weight in x (ties go
// to the smaller cost sum).
func (q *sub) round(x []float64) []int32 {
	a := make([]int32, q.ng())
	k := q.k
	for g := range a {
		best, bj, bc := -1.0, q.start[g], math.Inf(1)
		for j := q.start[g]; j < q.start[g+1]; j++ {
			c := 0.0
			for r := 0; r < k; r++ {
				c += q.cost[int(j)*k+r]
			}
			if x[j] > best+tolFrac || (x[j] >= best-tolFrac && c < bc) {
				best, bj, bc = x[j], j, c
			}
		}
		a[g] = bj
	}
	return a
}

// excess is the total violation Σ_r max(0, u_r − L_r) (rows are scaled, so
// the terms are comparable).
func (q *sub) excess(u []float64) float64 {
	e := 0.0
	for r, x := range u {
		if d := x - q.lim[r]; d > tolCost {
			e += d
		}
	}
	return e
}

// repair makes a feasible by single moves, each time taking the move with
// the least value increase per unit of violation removed (moves that lower
// the value first). It returns false when no move reduces the violation.
func (q *sub) repair(a []int32, u []float64) bool {
	k, ng := q.k, q.ng()
	val, cost, lim, start := q.val, q.cost, q.lim, q.start
	for step := 0; step < 2*ng+10; step++ {
		e := q.excess(u)
		if e == 0 {
			return true
		}
		bg, bj, bs := -1, int32(-1), math.Inf(1)
		// Two rows (the common case) with the usage and limits in
		// registers; the same sums as the general loop.
		var u0, u1, l0, l1 float64
		if k == 2 {
			u0, u1, l0, l1 = u[0], u[1], lim[0], lim[1]
		}
		for g := 0; g < ng; g++ {
			cur := a[g]
			cc := cost[int(cur)*k : int(cur)*k+k]
			for j := start[g]; j < start[g+1]; j++ {
				if j == cur {
					continue
				}
				c := cost[int(j)*k : int(j)*k+k]
				ne := 0.0
				if k == 2 {
					if d := u0 + c[0] - cc[0] - l0; d > tolCost {
						ne += d
					}
					if d := u1 + c[1] - cc[1] - l1; d > tolCost {
						ne += d
					}
				} else {
					for r := range k {
						if d := u[r] + c[r] - cc[r] - lim[r]; d > tolCost {
							ne += d
						}
					}
				}
				gain := e - ne
				if gain <= tolCost*(1+e) {
					continue
				}
				if s := (val[j] - val[cur]) / gain; s < bs {
					bg, bj, bs = g, j, s
				}
			}
		}
		if bg < 0 {
			return false
		}
		q.move(a, u, bg, bj)
	}
	return q.excess(u) == 0
}

// move switches group g to choice j, updating usage u.
func (q *sub) move(a []int32, u []float64, g int, j int32) {
	k := q.k
	cur := a[g]
	for r := range u {
		u[r] += q.cost[int(j)*k+r] - q.cost[int(cur)*k+r]
	}
	a[g] = j
}

// fits reports whether moving group g from its choice to j keeps every row.
func (q *sub) fits(a []int32, u []float64, g int, j int32) bool {
	k := q.k
	cur := a[g]
	for r := range u {
		if u[r]+q.cost[int(j)*k+r]-q.cost[int(cur)*k+r] > q.lim[r]+tolCost {
			return false
		}
	}
	return true
}

// candMove is a move considered by improve.
type candMove struct {
	g  int32
	j  int32
	dv float64 // value change
	rc float64 // Lagrangian reduced change dv + λ·dc (ranking key)
}

// moveHeap keeps the candidates of smallest rc (a max-heap on rc).
type moveHeap []candMove

func (h moveHeap) Len() int           { return len(h) }
func (h moveHeap) Less(i, j int) bool { return h[i].rc > h[j].rc }
func (h moveHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *moveHeap) Push(x any)        { *h = append(*h, x.(candMove)) }
func (h *moveHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// improve lowers the value of the feasible assignment a: repeated passes of
// improving single moves (largest gain first), then pairs of moves among the
// candidates of smallest Lagrangian reduced change at λ (one move frees the
// budget the other uses), until neither finds a gain.
func (q *sub) improve(a []int32, u []float64, lam []float64, budget int) {
	k := q.k
	ng := q.ng()
	type single struct {
		g     int
		j     int32
		ratio float64
	}
	var moves []single
	for round := 0; round < 30 && budget > 0; round++ {
		// Single moves, the most efficient first: a move's value change is
		// Δv = Δr − λ·Δc, the waste Δr (change of reduced cost) against the
		// budget λ·Δc it puts to use, so moves are taken in increasing
		// Δr / (λ·Δc), like the greedy for the knapsack LP; moves that gain
		// value and budget at once come first.
		for pass := 0; pass < 50; pass++ {
			moves = moves[:0]
			for g := 0; g < ng; g++ {
				cur := a[g]
				for j := q.start[g]; j < q.start[g+1]; j++ {
					dv := q.val[j] - q.val[cur]
					if dv >= 0 || !q.fits(a, u, g, j) {
						continue
					}
					lc := 0.0
					for r, l := range lam {
						lc += l * (q.cost[int(j)*k+r] - q.cost[int(cur)*k+r])
					}
					var ratio float64
					if lc > 0 {
						ratio = (dv + lc) / lc
					} else {
						ratio = -1e300 * -dv // gains value and budget: best first
					}
					moves = append(moves, single{g, j, ratio})
				}
			}
			budget -= len(q.val)
			if len(moves) == 0 {
				break
			}
			slices.SortFunc(moves, func(x, y single) int { return cmp.Compare(x.ratio, y.ratio) })
			applied := 0
			for _, mv := range moves {
				if q.val[mv.j] < q.val[a[mv.g]] && q.fits(a, u, mv.g, mv.j) {
					q.move(a, u, mv.g, mv.j)
					applied++
				}
			}
			if applied == 0 {
				break
			}
		}
		// Pairs among the most promising moves.
		top := 40
		if ng >= 2000 {
			top = 150 // large problems: more candidates to balance rows
		}
		h := make(moveHeap, 0, top+1)
		for g := 0; g < ng; g++ {
			cur := a[g]
			cc := q.cost[int(cur)*k : int(cur)*k+k]
			for j := q.start[g]; j < q.start[g+1]; j++ {
				if j == cur {
					continue
				}
				dv := q.val[j] - q.val[cur]
				rc := dv
				c := q.cost[int(j)*k : int(j)*k+k]
				for r, l := range lam {
					rc += l * (c[r] - cc[r])
				}
				if len(h) < top {
					heap.Push(&h, candMove{int32(g), j, dv, rc})
				} else if rc < h[0].rc {
					h[0] = candMove{int32(g), j, dv, rc}
					heap.Fix(&h, 0)
				}
			}
		}
		budget -= len(q.val) + top*top
		bi, bk, bgain := -1, -1, 0.0
		for i := range h {
			for t := i + 1; t < len(h); t++ {
				m1, m2 := h[i], h[t]
				if m1.g == m2.g {
					continue
				}
				gain := -(m1.dv + m2.dv)
				if gain <= bgain || gain <= 1e-15 {
					continue
				}
				ok := true
				c1, c2 := a[m1.g], a[m2.g]
				for r := 0; r < k && ok; r++ {
					d := q.cost[int(m1.j)*k+r] - q.cost[int(c1)*k+r] + q.cost[int(m2.j)*k+r] - q.cost[int(c2)*k+r]
					ok = u[r]+d <= q.lim[r]+tolCost
				}
				if ok {
					bi, bk, bgain = i, t, gain
				}
			}
		}
		if bi < 0 {
			return
		}
		q.move(a, u, int(h[bi].g), h[bi].j)
		q.move(a, u, int(h[bk].g), h[bk].j)
	}
}
