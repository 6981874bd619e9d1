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
	m := &model{p: p, mag: rowMagnitude(p)}
	nr := len(p.Rows)
	finite := make([]int, 0, nr)
	for k, r := range p.Rows {
		if (use == nil || use[k]) && !math.IsInf(r.Limit, 1) {
			finite = append(finite, k)
		}
	}
	val := func(ch *Choice) float64 {
		if zeroObj {
			return 0
		}
		return ch.Value
	}
	// Allowed choices: the pin, else the choices not dominated on the
	// finite rows (ties keep the lowest index); those of group g are
	// allowed[off[g]:off[g+1]].
	ng := len(p.Groups)
	off := make([]int32, ng+1)
	allowed := make([]int32, 0, 8*ng)
	for g := range p.Groups {
		gr := &p.Groups[g]
		if pi := pinIndex(gr); pi >= 0 {
			allowed = append(allowed, int32(pi))
			off[g+1] = int32(len(allowed))
			continue
		}
		for c := range gr.Choices {
			dominated := false
			for d := range gr.Choices {
				if d != c && dominates(&gr.Choices[d], &gr.Choices[c], d < c, finite, val) {
					dominated = true
					break
				}
			}
			if !dominated {
				allowed = append(allowed, int32(c))
			}
		}
		off[g+1] = int32(len(allowed))
	}
	// Per group and finite row: the least and largest allowed cost; per
	// row: shift Σ min, top Σ max and the largest range.
	nf := len(finite)
	lo := make([]float64, ng*nf)
	shift := make([]ksum, nf)
	top := make([]ksum, nf)
	rng := make([]float64, nf)
	hi := make([]float64, nf)
	for g := range p.Groups {
		ch := p.Groups[g].Choices
		l := lo[g*nf : g*nf+nf]
		for i := range l {
			l[i], hi[i] = math.Inf(1), math.Inf(-1)
		}
		for _, c := range allowed[off[g]:off[g+1]] {
			costs := ch[c].Costs
			for i, k := range finite {
				x := costs[k]
				l[i], hi[i] = math.Min(l[i], x), math.Max(hi[i], x)
			}
		}
		for i := range l {
			shift[i].add(l[i])
			top[i].add(hi[i])
			rng[i] = math.Max(rng[i], hi[i]-l[i])
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
	// Value shift and scale.
	var vc ksum
	vs := 0.0
	minv := make([]float64, ng)
	nfree, nch := 0, 0
	for g := range p.Groups {
		lv, hv := math.Inf(1), math.Inf(-1)
		for _, c := range allowed[off[g]:off[g+1]] {
			x := val(&p.Groups[g].Choices[c])
			lv, hv = math.Min(lv, x), math.Max(hv, x)
		}
		minv[g] = lv
		vc.add(lv)
		if n := int(off[g+1] - off[g]); n > 1 {
			vs = math.Max(vs, hv-lv)
			nfree++
			nch += n
		}
	}
	if vs == 0 {
		vs = 1
	}
	m.valScale, m.valConst = vs, vc.sum()
	// The root sub.
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
	for g := range p.Groups {
		gr := &p.Groups[g]
		al := allowed[off[g]:off[g+1]]
		if len(al) == 1 {
			q.up[g] = al[0]
			continue
		}
		q.up[g] = -1
		q.gid = append(q.gid, int32(g))
		for _, c := range al {
			ch := &gr.Choices[c]
			q.cid = append(q.cid, c)
			q.val = append(q.val, (val(ch)-minv[g])/vs)
			for i, r := range m.rows {
				q.cost = append(q.cost, (ch.Costs[r]-lo[g*nf+kept[i]])/m.scale[i])
			}
		}
		q.start = append(q.start, int32(len(q.cid)))
	}
	m.root = q
	return m
}

// dominates reports whether choice d is at least as good as c in value and
// in every finite row, and strictly better somewhere or tie-broken by index.
func dominates(d, c *Choice, earlier bool, rows []int, val func(*Choice) float64) bool {
	vd, vc := val(d), val(c)
	if vd > vc {
		return false
	}
	strict := vd < vc
	for _, k := range rows {
		if d.Costs[k] > c.Costs[k] {
			return false
		}
		if d.Costs[k] < c.Costs[k] {
			strict = true
		}
	}
	return strict || earlier
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
