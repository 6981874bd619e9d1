package ilp

import (
	"math"
)

// model is a validated problem after presolve: pinned groups fixed, rows
// with an infinite limit or that no assignment can exceed dropped, dominated choices removed, constant rows
// checked and dropped, and the rest shifted and scaled into a sub.
type model struct {
	p        *Problem
	mag      []float64 // M_k of every row (see FeasTol)
	rows     []int     // rows kept in the search (finite, not constant)
	scale    []float64 // cost scale of every kept row
	valScale float64
	valConst float64 // Σ_g min value over allowed choices (original units)
	root     *sub
	// impossible lists rows that cannot be met even alone.
	impossible []int
}

// presolve builds the model. Only rows listed in use take part (nil: all).
// With zeroObj every value is treated as 0 (a pure feasibility problem).
func presolve(p *Problem, use []bool, zeroObj bool) *model {
	nr := len(p.Rows)
	m := &model{p: p, mag: make([]float64, nr)}
	finite := make([]int, 0, nr)
	for k, r := range p.Rows {
		if (use == nil || use[k]) && !math.IsInf(r.Limit, 1) {
			finite = append(finite, k)
		}
	}
	// One pass over the problem gathers, per group, the allowed choices
	// (the pin, else those not dominated on the finite rows; ties keep the
	// lowest index) with their values av and finite-row costs ac, and the
	// row magnitudes (see FeasTol). Group g's choices are off[g]:off[g+1].
	ng, nf := len(p.Groups), len(finite)
	off := make([]int32, ng+1)
	allowed := make([]int32, 0, 6*ng)
	av := make([]float64, 0, 6*ng)
	ac := make([]float64, 0, 6*ng*nf)
	mag := make([]ksum, nr)
	mx := make([]float64, nr)
	var bv, bc []float64
	for g := range p.Groups {
		gr := &p.Groups[g]
		n := len(gr.Choices)
		bv, bc = bv[:0], bc[:0]
		clear(mx)
		for c := range gr.Choices {
			ch := &gr.Choices[c]
			v := ch.Value
			if zeroObj {
				v = 0
			}
			bv = append(bv, v)
			for k, x := range ch.Costs {
				if x < 0 {
					x = -x
				}
				if x > mx[k] {
					mx[k] = x
				}
			}
			for _, k := range finite {
				bc = append(bc, ch.Costs[k])
			}
		}
		for k := range mag {
			mag[k].add(mx[k])
		}
		pin := pinIndex(gr)
		for c := 0; c < n; c++ {
			ok := pin == c
			if pin < 0 {
				ok = true
				for d := 0; d < n && ok; d++ {
					if d != c && bv[d] <= bv[c] {
						ok = !dominates(bv[d] < bv[c] || d < c, bc[d*nf:d*nf+nf], bc[c*nf:c*nf+nf])
					}
				}
			}
			if ok {
				allowed = append(allowed, int32(c))
				av = append(av, bv[c])
				ac = append(ac, bc[c*nf:c*nf+nf]...)
			}
		}
		off[g+1] = int32(len(allowed))
	}
	for k := range mag {
		m.mag[k] = mag[k].sum()
	}
	// Per group and finite row the least allowed cost; per row the shift
	// Σ min, the top Σ max and the largest range; per group the least
	// value, and the largest range of values.
	lo := make([]float64, ng*nf)
	shift := make([]ksum, nf)
	top := make([]ksum, nf)
	rng := make([]float64, nf)
	hi := make([]float64, nf)
	minv := make([]float64, ng)
	var vc ksum
	vs := 0.0
	nfree, nch := 0, 0
	for g := 0; g < ng; g++ {
		l := lo[g*nf : g*nf+nf]
		for i := range l {
			l[i], hi[i] = math.Inf(1), math.Inf(-1)
		}
		lv, hv := math.Inf(1), math.Inf(-1)
		for c := off[g]; c < off[g+1]; c++ {
			// Plain comparisons: Validate has ruled out NaN.
			if x := av[c]; x < lv {
				lv = x
			}
			if x := av[c]; x > hv {
				hv = x
			}
			for i, x := range ac[int(c)*nf : int(c)*nf+nf] {
				if x < l[i] {
					l[i] = x
				}
				if x > hi[i] {
					hi[i] = x
				}
			}
		}
		for i := range l {
			shift[i].add(l[i])
			top[i].add(hi[i])
			rng[i] = math.Max(rng[i], hi[i]-l[i])
		}
		minv[g] = lv
		vc.add(lv)
		if n := int(off[g+1] - off[g]); n > 1 {
			vs = math.Max(vs, hv-lv)
			nfree++
			nch += n
		}
	}
	var kept []int // indices into finite of the kept rows
	for i, k := range finite {
		lim := p.Rows[k].Limit
		if !meets(lim, shift[i].sum(), m.mag[k]) {
			m.impossible = append(m.impossible, k)
			continue
		}
		// A row met even with every group at its dearest choice never binds.
		if rng[i] > 0 && !meets(lim, top[i].sum(), 0) {
			m.rows = append(m.rows, k)
			m.scale = append(m.scale, rng[i])
			kept = append(kept, i)
		}
	}
	if vs == 0 {
		vs = 1
	}
	m.valScale, m.valConst = vs, vc.sum()
	// The root sub: free groups, values and kept rows shifted and scaled.
	k := len(m.rows)
	q := &sub{k: k, lim: make([]float64, k), up: make([]int32, ng)}
	for i, r := range m.rows {
		q.lim[i] = (p.Rows[r].Limit - shift[kept[i]].sum() + FeasTol*m.mag[r]) / m.scale[i]
	}
	q.gid = make([]int32, 0, nfree)
	q.start = make([]int32, 1, nfree+1)
	q.cid = make([]int32, 0, nch)
	q.val = make([]float64, 0, nch)
	q.cost = make([]float64, 0, nch*k)
	inv := 1 / vs
	sc := make([]float64, k)
	for i := range sc {
		sc[i] = 1 / m.scale[i]
	}
	for g := 0; g < ng; g++ {
		if off[g+1]-off[g] == 1 {
			q.up[g] = allowed[off[g]]
			continue
		}
		q.up[g] = -1
		q.gid = append(q.gid, int32(g))
		for c := off[g]; c < off[g+1]; c++ {
			q.cid = append(q.cid, allowed[c])
			q.val = append(q.val, (av[c]-minv[g])*inv)
			for i, f := range kept {
				q.cost = append(q.cost, (ac[int(c)*nf+f]-lo[g*nf+f])*sc[i])
			}
		}
		q.start = append(q.start, int32(len(q.cid)))
	}
	m.root = q
	return m
}

// dominates reports whether costs cd are nowhere above cc, given that the
// value of d is no worse than that of c; the domination must be strict
// somewhere, or tie-broken (strict true on entry: d has a better value or
// an earlier index).
func dominates(strict bool, cd, cc []float64) bool {
	for i, x := range cd {
		if x > cc[i] {
			return false
		}
		if x < cc[i] {
			strict = true
		}
	}
	return strict
}

// original maps a root-sub assignment to choice indices of the problem.
func (m *model) original(a []int32) []int {
	out := make([]int, len(m.p.Groups))
	for g, c := range m.root.up {
		out[g] = int(c)
	}
	for i, j := range a {
		out[m.root.gid[i]] = int(m.root.cid[j])
	}
	return out
}

// toOriginal converts a scaled objective or bound to original units.
func (m *model) toOriginal(x float64) float64 {
	if math.IsInf(x, 0) {
		return x
	}
	return m.valConst + m.valScale*x
}
