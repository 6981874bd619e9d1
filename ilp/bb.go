package ilp

import (
	"container/heap"
	"context"
	"math"
	"time"
)

// stopper tells the search when a limit is reached.
type stopper struct {
	ctx       context.Context
	deadline  time.Time
	nodeLimit int
	nodes     int
	stopped   bool
}

func (s *stopper) stop() bool {
	if s.stopped {
		return true
	}
	if s.ctx.Err() != nil || (!s.deadline.IsZero() && time.Now().After(s.deadline)) ||
		(s.nodeLimit > 0 && s.nodes >= s.nodeLimit) {
		s.stopped = true
	}
	return s.stopped
}

// search is one branch-and-bound run over a model's root sub.
type search struct {
	st      *stopper
	root    *sub
	relGap  float64 // RelGap (relative to |objective| in original units)
	absGap  float64 // absolute gap, scaled units
	noise   float64 // numerical floor of the gap, scaled units
	toOrig  func(float64) float64
	feasOnly bool // stop at the first feasible assignment

	best  []int32 // incumbent over the root sub, nil if none
	z     float64 // its value (scaled)
	bound float64 // proven lower bound (scaled) when finished
	lam   []float64
	done  bool // search space exhausted (optimal or infeasible)

	pruneMin float64 // least bound of a region pruned by the cutoff
}

// cutoff is the value a node's bound must stay below to be explored: an
// assignment must beat the incumbent by more than the gap tolerance.
func (s *search) cutoff() float64 {
	if s.best == nil {
		return math.Inf(1)
	}
	if s.feasOnly {
		return math.Inf(-1)
	}
	return s.z - s.tol()
}

// tol is the gap tolerance in scaled units at the incumbent.
func (s *search) tol() float64 {
	zo := math.Abs(s.toOrig(s.z))
	t := math.Max(s.absGap, s.noise)
	return math.Max(t, s.relGap*zo*s.scaleBack())
}

// scaleBack converts original units to scaled units.
func (s *search) scaleBack() float64 {
	d := s.toOrig(1) - s.toOrig(0)
	if d <= 0 {
		return 1
	}
	return 1 / d
}

// offer considers assignment a of q (lifted through chain to the root) as a
// new incumbent; it recomputes usage and value from scratch.
func (s *search) offer(q *sub, a []int32, chain ...*sub) {
	u := make([]float64, q.k)
	q.usage(a, u)
	if !q.feasible(u) {
		return
	}
	v := q.value(a)
	if s.best != nil && v >= s.z {
		return
	}
	for _, c := range chain {
		a = c.lift(a)
	}
	s.best, s.z = append(make([]int32, 0, len(a)), a...), v
}

// heuristic rounds x, repairs and improves the result, and offers it.
func (s *search) heuristic(q *sub, x []float64, lam []float64, chain ...*sub) {
	if x == nil {
		return
	}
	a := q.round(x)
	u := make([]float64, q.k)
	q.usage(a, u)
	if !q.repair(a, u) {
		return
	}
	q.improve(a, u, lam, 40*len(q.val)+4000)
	s.offer(q, a, chain...)
}

// run solves the root sub.
func (s *search) run() {
	q := s.root
	s.pruneMin = math.Inf(1)
	rel := q.relax(nil, math.Inf(1), s.st)
	s.lam = rel.lam
	if math.IsInf(rel.bound, 1) {
		s.done, s.bound = true, math.Inf(1)
		return
	}
	rootBound := rel.bound
	s.heuristic(q, rel.x, rel.lam)
	if s.best != nil && (s.feasOnly || s.z-rootBound <= s.tol()) {
		s.done, s.bound = true, math.Min(rootBound, s.z)
		return
	}
	// Reduced-cost fixing at the root: a choice whose reduced cost lifts the
	// bound past the cutoff is in no better assignment.
	core, pre := q, &rel
	if s.best != nil && !s.st.stop() {
		r := make([]float64, len(q.val))
		q.reduced(rel.lam, r)
		gap := s.cutoff() - rootBound
		keep := make([]bool, len(q.val))
		nkeep := 0
		for j := range r {
			if r[j] <= gap+s.noise {
				keep[j] = true
				nkeep++
			} else {
				s.pruneMin = math.Min(s.pruneMin, rootBound+r[j])
			}
		}
		if nkeep < len(q.val) {
			core, pre = q.restrict(keep), nil
		}
	}
	s.branch(core, rootBound, rel.lam, pre)
}

// node is a branch-and-bound node: the core with one more group fixed than
// its parent, plus the choices reduced-cost fixing removed at the node.
type node struct {
	parent  *node
	fixG    int32 // core group fixed by the branch (-1 at the root)
	fixC    int32 // core choice it is fixed to
	removed []int32
	est     float64 // lower bound known before evaluation
	lam     []float64
	depth   int
	index   int
}

// nodeQueue is a best-first priority queue of nodes (least bound first,
// deeper first on ties), after container/heap's PriorityQueue example.
type nodeQueue []*node

func (h nodeQueue) Len() int { return len(h) }
func (h nodeQueue) Less(i, j int) bool {
	if h[i].est != h[j].est {
		return h[i].est < h[j].est
	}
	return h[i].depth > h[j].depth
}
func (h nodeQueue) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *nodeQueue) Push(x any) {
	n := x.(*node)
	n.index = len(*h)
	*h = append(*h, n)
}
func (h *nodeQueue) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return n
}

// branch runs best-first branch-and-bound over the core (a restriction of
// the root sub; core == root when nothing was fixed). Each node's bound is
// its Lagrangian/LP relaxation; children are the choices of the most
// fractional group, each bounded at once by parent bound + reduced cost.
func (s *search) branch(core *sub, rootBound float64, lam []float64, pre *relaxation) {
	var chainUp []*sub
	if core != s.root {
		chainUp = []*sub{core}
	}
	q := &nodeQueue{}
	heap.Push(q, &node{fixG: -1, est: rootBound, lam: lam})
	keep := make([]bool, len(core.val))
	r := make([]float64, 0)
	for q.Len() > 0 {
		if s.feasOnly && s.best != nil {
			s.done = true
			return
		}
		if s.st.stop() {
			s.bound = math.Min(s.pruneMin, (*q)[0].est)
			if s.best != nil {
				s.bound = math.Min(s.bound, s.z)
			}
			return
		}
		n := heap.Pop(q).(*node)
		cut := s.cutoff()
		if n.est >= cut {
			s.pruneMin = math.Min(s.pruneMin, n.est)
			continue
		}
		s.st.nodes++
		// The node's sub.
		for i := range keep {
			keep[i] = true
		}
		for a := n; a != nil; a = a.parent {
			if a.fixG >= 0 {
				for j := core.start[a.fixG]; j < core.start[a.fixG+1]; j++ {
					keep[j] = j == a.fixC
				}
			}
			for _, j := range a.removed {
				keep[j] = false
			}
		}
		var nq *sub
		var rel relaxation
		if pre != nil && n.parent == nil {
			nq, rel = core, *pre
		} else {
			nq = core.restrict(keep)
			if !nq.rowsPossible() {
				continue
			}
			rel = nq.relax(n.lam, cut, s.st)
		}
		if math.IsInf(rel.bound, 1) {
			continue
		}
		bound := math.Max(n.est, rel.bound)
		if bound >= cut {
			s.pruneMin = math.Min(s.pruneMin, bound)
			continue
		}
		chain := append([]*sub{nq}, chainUp...)
		if nq == core {
			chain = chainUp
		}
		if nq.ng() == 0 {
			s.offer(nq, nil, chain...)
			continue
		}
		s.heuristic(nq, rel.x, rel.lam, chain...)
		cut = s.cutoff()
		if bound >= cut {
			s.pruneMin = math.Min(s.pruneMin, bound)
			continue
		}
		// Reduced-cost fixing at the node.
		r = append(r[:0], make([]float64, len(nq.val))...)
		nq.reduced(rel.lam, r)
		gap := cut - rel.bound
		alive := make([]int, nq.ng())
		for g := 0; g < nq.ng(); g++ {
			for j := nq.start[g]; j < nq.start[g+1]; j++ {
				if r[j] > gap+s.noise {
					n.removed = append(n.removed, s.coreID(nq, core, j))
					s.pruneMin = math.Min(s.pruneMin, rel.bound+r[j])
				} else {
					alive[g]++
				}
			}
		}
		// Branching group: most fractional alive group, else the alive group
		// with the smallest second reduced cost.
		bg, bscore := -1, -1.0
		for g := 0; g < nq.ng(); g++ {
			if alive[g] < 2 {
				continue
			}
			mx, second := 0.0, math.Inf(1)
			for j := nq.start[g]; j < nq.start[g+1]; j++ {
				if r[j] <= gap+s.noise {
					if rel.x != nil {
						mx = math.Max(mx, rel.x[j])
					}
					if r[j] > 0 {
						second = math.Min(second, r[j])
					}
				}
			}
			score := 1 - mx
			if rel.x == nil || score <= tolFrac {
				score = tolFrac / (1 + second)
			}
			if score > bscore {
				bg, bscore = g, score
			}
		}
		if bg < 0 {
			// Every group has one alive choice: a single assignment is left.
			a := make([]int32, nq.ng())
			for g := range a {
				for j := nq.start[g]; j < nq.start[g+1]; j++ {
					if r[j] <= gap+s.noise {
						a[g] = j
					}
				}
			}
			s.offer(nq, a, chain...)
			continue
		}
		for j := nq.start[bg]; j < nq.start[bg+1]; j++ {
			if r[j] > gap+s.noise {
				continue
			}
			est := math.Max(bound, rel.bound+r[j])
			if est >= cut {
				s.pruneMin = math.Min(s.pruneMin, est)
				continue
			}
			heap.Push(q, &node{parent: n, fixG: s.coreGroup(nq, core, bg), fixC: s.coreID(nq, core, j),
				est: est, lam: rel.lam, depth: n.depth + 1})
		}
	}
	s.done = true
	s.bound = s.pruneMin
	if s.best != nil {
		s.bound = math.Min(s.bound, s.z)
	}
}

// coreID maps choice j of node sub nq to the core.
func (s *search) coreID(nq, core *sub, j int32) int32 {
	if nq == core {
		return j
	}
	return nq.cid[j]
}

// coreGroup maps group g of node sub nq to the core.
func (s *search) coreGroup(nq, core *sub, g int) int32 {
	if nq == core {
		return int32(g)
	}
	return nq.gid[g]
}
