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
	// finite rows (ties keep the lowest index).
	ng := len(p.Groups)
	allowed := make([][]int, ng)
	for g := range p.Groups {
		gr := &p.Groups[g]
		if pi := pinIndex(gr); pi >= 0 {
			allowed[g] = []int{pi}
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
				allowed[g] = append(allowed[g], c)
			}
		}
	}
	// Row shifts (Σ_g min cost) and ranges.
	type rowInfo struct {
		shift, rng, top float64 // Σ min, largest range, Σ max
	}
	info := make([]rowInfo, len(finite))
	for i, k := range finite {
		var s, t ksum
		rng := 0.0
		for g := range p.Groups {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, c := range allowed[g] {
				x := p.Groups[g].Choices[c].Costs[k]
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
			s.add(lo)
			t.add(hi)
			rng = math.Max(rng, hi-lo)
		}
		info[i] = rowInfo{shift: s.sum(), rng: rng, top: t.sum()}
	}
	for i, k := range finite {
		lim := p.Rows[k].Limit
		if !meets(lim, info[i].shift, m.mag[k]) {
			m.impossible = append(m.impossible, k)
			continue
		}
		// A row met even with every group at its dearest choice never binds.
		if info[i].rng > 0 && !meets(lim, info[i].top, 0) {
			m.rows = append(m.rows, k)
			m.scale = append(m.scale, info[i].rng)
		}
	}
	// Value shift and scale.
	var vc ksum
	vs := 0.0
	minv := make([]float64, ng)
	for g := range p.Groups {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, c := range allowed[g] {
			x := val(&p.Groups[g].Choices[c])
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
		minv[g] = lo
		vc.add(lo)
		if len(allowed[g]) > 1 {
			vs = math.Max(vs, hi-lo)
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
		var sh float64
		for j, kk := range finite {
			if kk == r {
				sh = info[j].shift
			}
		}
		q.lim[i] = (p.Rows[r].Limit - sh + FeasTol*m.mag[r]) / m.scale[i]
	}
	minc := make([]float64, k)
	nfree, nch := 0, 0
	for g := range allowed {
		if len(allowed[g]) > 1 {
			nfree++
			nch += len(allowed[g])
		}
	}
	q.gid = make([]int32, 0, nfree)
	q.start = make([]int32, 1, nfree+1)
	q.cid = make([]int32, 0, nch)
	q.val = make([]float64, 0, nch)
	q.cost = make([]float64, 0, nch*k)
	for g := range p.Groups {
		gr := &p.Groups[g]
		if len(allowed[g]) == 1 {
			q.up[g] = int32(allowed[g][0])
			continue
		}
		q.up[g] = -1
		for i, r := range m.rows {
			minc[i] = math.Inf(1)
			for _, c := range allowed[g] {
				minc[i] = math.Min(minc[i], gr.Choices[c].Costs[r])
			}
		}
		q.gid = append(q.gid, int32(g))
		for _, c := range allowed[g] {
			ch := &gr.Choices[c]
			q.cid = append(q.cid, int32(c))
			q.val = append(q.val, (val(ch)-minv[g])/vs)
			for i, r := range m.rows {
				q.cost = append(q.cost, (ch.Costs[r]-minc[i])/m.scale[i])
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
