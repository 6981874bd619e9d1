package ilp

import "math"

// sub is the working form of a (sub)problem: a multiple-choice knapsack in
// scaled units over free groups only. Values and costs are shifted and scaled
// by presolve (values of a root group lie in [0, 1] with minimum 0, each row's
// costs likewise), so the tolerances below are absolute in these units.
//
// A sub records how it maps into its parent (the original problem for the
// root sub, the root sub for the core, the core for a node): up holds, for
// every parent group, the parent choice a fixed group takes (-1 for a free
// group); gid and cid map this sub's groups and choices to the parent's.
type sub struct {
	k     int
	start []int32   // choices of group g are start[g]..start[g+1]-1
	val   []float64 // value per choice
	cost  []float64 // cost per choice and row, choice-major
	lim   []float64 // limit per row
	c0    float64   // value of the fixed groups (objective offset)

	up  []int32 // per parent group: fixed parent choice, or -1
	gid []int32 // per group: parent group
	cid []int32 // per choice: parent choice
}

// Tolerances in scaled units (values and costs of one group lie in [0, 1]).
const (
	// tolCost absorbs rounding in cost sums when comparing with a limit that
	// already includes FeasTol; it is far below FeasTol.
	tolCost = 1e-12
	// tolFrac is the weight below which a choice counts as unused in a
	// relaxed solution (and above 1-tolFrac as fully used).
	tolFrac = 1e-9
	// tolRel is the relative accuracy to which the Lagrangian dual is
	// maximised (model bound minus best value, relative to 1+|value|).
	tolRel = 1e-11
)

func (q *sub) ng() int { return len(q.start) - 1 }

// usage computes Σ cost of assignment a (a[g] is a choice index of q).
func (q *sub) usage(a []int32, u []float64) {
	clear(u)
	k := q.k
	for _, j := range a {
		c := q.cost[int(j)*k : int(j)*k+k]
		for r := range u {
			u[r] += c[r]
		}
	}
}

// value returns c0 + Σ val of assignment a.
func (q *sub) value(a []int32) float64 {
	var s ksum
	s.add(q.c0)
	for _, j := range a {
		s.add(q.val[j])
	}
	return s.sum()
}

// feasible reports whether usage u meets every limit.
func (q *sub) feasible(u []float64) bool {
	for r, x := range u {
		if x > q.lim[r]+tolCost {
			return false
		}
	}
	return true
}

// maxValue returns c0 + Σ_g max val: no assignment is worth more, so a
// relaxation bound above it proves infeasibility.
func (q *sub) maxValue() float64 {
	var s ksum
	s.add(q.c0)
	for g := 0; g < q.ng(); g++ {
		m := math.Inf(-1)
		for j := q.start[g]; j < q.start[g+1]; j++ {
			m = math.Max(m, q.val[j])
		}
		s.add(m)
	}
	return s.sum()
}

// rowsPossible reports whether every row alone can be met (each group at
// its cheapest choice for that row).
func (q *sub) rowsPossible() bool {
	k := q.k
	for r := 0; r < k; r++ {
		s := 0.0
		for g := 0; g < q.ng(); g++ {
			m := math.Inf(1)
			for j := q.start[g]; j < q.start[g+1]; j++ {
				m = math.Min(m, q.cost[int(j)*k+r])
			}
			s += m
		}
		if s > q.lim[r]+tolCost {
			return false
		}
	}
	return true
}

// lagrange evaluates the Lagrangian dual function (Fisher 1981, "The
// Lagrangian relaxation method for solving integer programming problems")
//
//	φ(λ) = Σ_g min_c (v_gc + λ·c_gc) − λ·L,   λ ≥ 0,
//
// a lower bound on every feasible assignment's value for any λ ≥ 0 (weak
// duality), whose maximum equals the LP relaxation's value because each
// group's polytope (a simplex) is integral. It stores the minimising choices
// in a, their value Σ v in *va and the subgradient C(a) − L in s, and
// returns c0 + φ(λ).
func (q *sub) lagrange(lam []float64, a []int32, s []float64, va *float64) float64 {
	k := q.k
	clear(s)
	v := 0.0
	val, cost, start := q.val, q.cost, q.start
	ng := len(start) - 1
	switch k {
	case 2:
		l0, l1 := lam[0], lam[1]
		cost = cost[:2*len(val)]
		for g := 0; g < ng; g++ {
			lo, hi := int(start[g]), int(start[g+1])
			best, bj := math.Inf(1), lo
			for j := lo; j < hi; j++ {
				if t := val[j] + l0*cost[2*j] + l1*cost[2*j+1]; t < best {
					best, bj = t, j
				}
			}
			a[g] = int32(bj)
			v += val[bj]
			s[0] += cost[2*bj]
			s[1] += cost[2*bj+1]
		}
	case 3:
		l0, l1, l2 := lam[0], lam[1], lam[2]
		cost = cost[:3*len(val)]
		for g := 0; g < ng; g++ {
			lo, hi := int(start[g]), int(start[g+1])
			best, bj := math.Inf(1), lo
			for j := lo; j < hi; j++ {
				if t := val[j] + l0*cost[3*j] + l1*cost[3*j+1] + l2*cost[3*j+2]; t < best {
					best, bj = t, j
				}
			}
			a[g] = int32(bj)
			v += val[bj]
			s[0] += cost[3*bj]
			s[1] += cost[3*bj+1]
			s[2] += cost[3*bj+2]
		}
	default:
		for g := 0; g < ng; g++ {
			lo, hi := int(start[g]), int(start[g+1])
			best, bj := math.Inf(1), lo
			for j := lo; j < hi; j++ {
				t := val[j]
				c := cost[j*k : j*k+k]
				for r, l := range lam {
					t += l * c[r]
				}
				if t < best {
					best, bj = t, j
				}
			}
			a[g] = int32(bj)
			v += val[bj]
			c := cost[bj*k : bj*k+k]
			for r := range s {
				s[r] += c[r]
			}
		}
	}
	phi := v
	for r := range s {
		s[r] -= q.lim[r]
		phi += lam[r] * s[r]
	}
	*va = v
	return q.c0 + phi
}

// reduced fills r with the reduced cost of every choice at λ,
// r_gc = v_gc + λ·c_gc − min_c' (v_gc' + λ·c_gc') ≥ 0: any assignment a
// meeting every row is worth at least φ(λ) + Σ_g r_{g,a_g}. It returns
// c0 + φ(λ).
func (q *sub) reduced(lam []float64, r []float64) (phi float64) {
	k := q.k
	var sum ksum
	sum.add(q.c0)
	for i, l := range lam {
		sum.add(-l * q.lim[i])
	}
	for g := 0; g < q.ng(); g++ {
		lo, hi := q.start[g], q.start[g+1]
		m := math.Inf(1)
		for j := lo; j < hi; j++ {
			t := q.val[j]
			c := q.cost[int(j)*k : int(j)*k+k]
			for i, l := range lam {
				t += l * c[i]
			}
			r[j] = t
			m = math.Min(m, t)
		}
		for j := lo; j < hi; j++ {
			r[j] -= m
		}
		sum.add(m)
	}
	return sum.sum()
}

// restrict returns the sub of q whose groups may use only the choices j with
// keep[j]; a group left with one choice is fixed (its value moves to c0, its
// costs out of the limits). Every group must keep at least one choice.
func (q *sub) restrict(keep []bool) *sub {
	k := q.k
	n := &sub{k: k, c0: q.c0, lim: append([]float64(nil), q.lim...)}
	n.up = make([]int32, q.ng())
	n.start = []int32{0}
	var c0 ksum
	c0.add(q.c0)
	for g := 0; g < q.ng(); g++ {
		cnt, last := 0, int32(-1)
		for j := q.start[g]; j < q.start[g+1]; j++ {
			if keep[j] {
				cnt++
				last = j
			}
		}
		if cnt == 1 {
			n.up[g] = last
			c0.add(q.val[last])
			for r := 0; r < k; r++ {
				n.lim[r] -= q.cost[int(last)*k+r]
			}
			continue
		}
		n.up[g] = -1
		n.gid = append(n.gid, int32(g))
		for j := q.start[g]; j < q.start[g+1]; j++ {
			if keep[j] {
				n.cid = append(n.cid, j)
				n.val = append(n.val, q.val[j])
				n.cost = append(n.cost, q.cost[int(j)*k:int(j)*k+k]...)
			}
		}
		n.start = append(n.start, int32(len(n.cid)))
	}
	n.c0 = c0.sum()
	return n
}

// lift maps an assignment of q to one of q's parent.
func (q *sub) lift(a []int32) []int32 {
	out := append([]int32(nil), q.up...)
	for g, j := range a {
		out[q.gid[g]] = q.cid[j]
	}
	return out
}
