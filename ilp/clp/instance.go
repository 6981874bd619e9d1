//go:build clp

package clp

import (
	"math"

	"github.com/bitplan/bitplan/ilp"
)

// Rows are met within ilp.FeasTol (see rowTols), the rule of ilp.Solve and
// ilp.BruteForce.
const (
	// intTol is how far from 0 or 1 an LP value may be and still count as
	// integral.
	intTol = 1e-6
	// lpPrimalTol is CLP's primal feasibility tolerance on the scaled rows
	// (every resource row is divided by its largest |cost|), tighter than
	// CLP's default 1e-7 so that integral LP points rarely fail feasRelTol.
	lpPrimalTol = 1e-9
	// lpDualTol is CLP's dual feasibility tolerance (default 1e-7). The
	// node bounds are Lagrangian bounds from CLP's duals, valid whatever
	// their accuracy, but values spanning many orders of magnitude (Ω of
	// HAWQ-like layers spans 1e10) leave the default duals loose enough to
	// keep gaps near 1e-6; 1e-9 closes them to the 1e-9 default.
	lpDualTol = 1e-9
	// maxRoundCombos caps the assignments tried by the rounding heuristic
	// (the product of the support sizes of the fractional groups).
	maxRoundCombos = 256
)

// ksum is a Neumaier compensated sum, as ilp uses for objectives and
// usages, so both engines report the same numbers.
type ksum struct{ s, c float64 }

func (k *ksum) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k *ksum) sum() float64 { return k.s + k.c }

// rowTols returns the absolute feasibility tolerance of every row under
// ilp's rule: FeasTol·M_k with M_k = Σ_g max_c |Cost_k(g, c)|. A row with
// an infinite limit has tolerance 0.
func rowTols(p *ilp.Problem) []float64 {
	tol := make([]float64, len(p.Rows))
	for k, row := range p.Rows {
		if math.IsInf(row.Limit, 0) {
			continue
		}
		var m ksum
		for _, gr := range p.Groups {
			mx := 0.0
			for _, ch := range gr.Choices {
				mx = max(mx, math.Abs(ch.Costs[k]))
			}
			m.add(mx)
		}
		tol[k] = ilp.FeasTol * m.sum()
	}
	return tol
}

// instance is a Problem flattened for the engine: column j = off[g]+c is
// choice c of group g, and only the rows listed in rows take part.
type instance struct {
	p     *ilp.Problem
	off   []int       // off[g] is the first column of group g; off[G] = n
	grp   []int       // grp[j] is the group of column j
	val   []float64   // objective of every column (zero for feasibility runs)
	rows  []int       // problem rows in the model, in model order
	cost  [][]float64 // cost[i][j]: cost of column j in model row i
	limit []float64   // limit[i] of model row i
	tol   []float64   // feasibility tolerance of model row i
	scale []float64   // model row i is divided by scale[i] in the LP
	upper []float64   // global column upper bounds: pins and fixings
}

// newInstance flattens p keeping the problem rows in rows (tol holds the
// tolerance of every problem row, from rowTols). A feasibility
// instance replaces the values by Σ_i cost_i/scale_i over its rows, which
// steers the LP towards cheap points where rounding tends to succeed.
func newInstance(p *ilp.Problem, rows []int, tol []float64, feasibility bool) *instance {
	G := len(p.Groups)
	in := &instance{p: p, off: make([]int, G+1), rows: rows}
	for g := range p.Groups {
		in.off[g+1] = in.off[g] + len(p.Groups[g].Choices)
	}
	n := in.off[G]
	in.grp = make([]int, n)
	in.val = make([]float64, n)
	in.upper = make([]float64, n)
	for g := range p.Groups {
		gr := &p.Groups[g]
		for c := range gr.Choices {
			j := in.off[g] + c
			in.grp[j] = g
			if !feasibility {
				in.val[j] = gr.Choices[c].Value
			}
			if gr.Pin == "" || gr.Choices[c].Label == gr.Pin {
				in.upper[j] = 1
			}
		}
	}
	in.cost = make([][]float64, len(rows))
	in.limit = make([]float64, len(rows))
	in.tol = make([]float64, len(rows))
	in.scale = make([]float64, len(rows))
	for i, r := range rows {
		a := make([]float64, n)
		s := 0.0
		for g := range p.Groups {
			for c, ch := range p.Groups[g].Choices {
				a[in.off[g]+c] = ch.Costs[r]
				s = max(s, math.Abs(ch.Costs[r]))
			}
		}
		if s == 0 {
			s = 1
		}
		in.cost[i] = a
		in.limit[i] = p.Rows[r].Limit
		in.tol[i] = tol[r]
		in.scale[i] = s
	}
	if feasibility {
		for i := range rows {
			for j, a := range in.cost[i] {
				in.val[j] += a / in.scale[i]
			}
		}
	}
	return in
}

// groups returns the number of groups.
func (in *instance) groups() int { return len(in.off) - 1 }

// objScale returns the factor the LP objective is divided by.
func (in *instance) objScale() float64 {
	s := 0.0
	for _, v := range in.val {
		s = max(s, math.Abs(v))
	}
	if s == 0 {
		return 1
	}
	return s
}

// load builds the LP relaxation in m: G group rows Σ_c x = 1 followed by
// the scaled resource rows, columns bounded by [0, upper].
func (in *instance) load(m *Model) error {
	G, n, K := in.groups(), len(in.val), len(in.rows)
	a := &CSC{Rows: G + K, Cols: n, Start: make([]int, n+1)}
	for j := 0; j < n; j++ {
		a.Index = append(a.Index, in.grp[j])
		a.Value = append(a.Value, 1)
		for i := range in.rows {
			if v := in.cost[i][j]; v != 0 {
				a.Index = append(a.Index, G+i)
				a.Value = append(a.Value, v/in.scale[i])
			}
		}
		a.Start[j+1] = len(a.Index)
	}
	os := in.objScale()
	obj := make([]float64, n)
	for j, v := range in.val {
		obj[j] = v / os
	}
	rl := make([]float64, G+K)
	ru := make([]float64, G+K)
	for g := 0; g < G; g++ {
		rl[g], ru[g] = 1, 1
	}
	for i := range in.rows {
		rl[G+i] = math.Inf(-1)
		ru[G+i] = in.limit[i] / in.scale[i]
	}
	return m.LoadProblem(a, make([]float64, n), in.upper, obj, rl, ru)
}

// lambda converts the LP row duals y into non-negative Lagrange multipliers
// of the resource rows in problem units: λ_i = max(0, −y_{G+i}·σ/s_i), with
// σ the objective scale and s_i the row scale.
func (in *instance) lambda(y []float64) []float64 {
	G, os := in.groups(), in.objScale()
	lam := make([]float64, len(in.rows))
	for i := range in.rows {
		lam[i] = max(0, -y[G+i]*os/in.scale[i])
	}
	return lam
}

// lagrangian returns the Lagrangian bound
//
//	L(λ) = Σ_g min_{c: upper>0} (v_{g,c} + Σ_i λ_i a_{i,g,c}) − Σ_i λ_i (b_i + tol_i)
//
// valid for every λ ≥ 0 (Sinha–Zoltners 1979: with λ the optimal LP duals
// it equals the LP bound of the multiple-choice knapsack), together with the
// reduced values r_j = v_j + Σ_i λ_i a_{i,j} and their per-group minima.
// It returns ok = false if some group has no allowed column.
func (in *instance) lagrangian(lam, upper []float64) (L float64, r, minr []float64, ok bool) {
	G, n := in.groups(), len(in.val)
	r = make([]float64, n)
	copy(r, in.val)
	for i, l := range lam {
		if l == 0 {
			continue
		}
		for j, a := range in.cost[i] {
			r[j] += l * a
		}
		L -= l * (in.limit[i] + in.tol[i]) // also valid for tolerance-feasible points
	}
	minr = make([]float64, G)
	for g := 0; g < G; g++ {
		best := math.Inf(1)
		for j := in.off[g]; j < in.off[g+1]; j++ {
			if upper[j] > 0 && r[j] < best {
				best = r[j]
			}
		}
		if math.IsInf(best, 1) {
			return math.Inf(1), r, minr, false
		}
		minr[g] = best
		L += best
	}
	return L, r, minr, true
}

// evaluate returns the objective of an assignment (choice index per group)
// and whether it meets every model row within tolerance.
func (in *instance) evaluate(choice []int) (obj float64, feasible bool) {
	feasible = true
	var o ksum
	for g, c := range choice {
		o.add(in.val[in.off[g]+c])
	}
	for i := range in.rows {
		var u ksum
		for g, c := range choice {
			u.add(in.cost[i][in.off[g]+c])
		}
		if u.sum() > in.limit[i]+in.tol[i] {
			feasible = false
		}
	}
	return o.sum(), feasible
}

// violation returns Σ_i max(0, usage_i − b_i)/s_i for row usages u.
func (in *instance) violation(u []float64) float64 {
	v := 0.0
	for i := range in.rows {
		if d := u[i] - in.limit[i] - in.tol[i]; d > 0 {
			v += d / in.scale[i]
		}
	}
	return v
}

// usage returns the model-row usages of an assignment.
func (in *instance) usage(choice []int) []float64 {
	u := make([]float64, len(in.rows))
	for i := range in.rows {
		for g, c := range choice {
			u[i] += in.cost[i][in.off[g]+c]
		}
	}
	return u
}

// repair moves an infeasible assignment towards feasibility greedily: each
// step takes the allowed switch (g, c) with the largest decrease of the
// scaled violation per unit of objective increase. It returns false if it
// gets stuck.
func (in *instance) repair(choice []int, upper []float64) bool {
	u := in.usage(choice)
	v := in.violation(u)
	nu := make([]float64, len(u))
	for step := 0; v > 0 && step <= 2*in.groups()+8; step++ {
		bestG, bestC := -1, -1
		bestScore, bestDv, bestFinish := 0.0, 0.0, false
		for g := 0; g < in.groups(); g++ {
			cur := in.off[g] + choice[g]
			for j := in.off[g]; j < in.off[g+1]; j++ {
				if j == cur || upper[j] <= 0 {
					continue
				}
				for i := range u {
					nu[i] = u[i] + in.cost[i][j] - in.cost[i][cur]
				}
				nv := in.violation(nu)
				if nv >= v {
					continue
				}
				dv := in.val[j] - in.val[cur]
				score := (v - nv) / max(dv, 1e-12*max(1, math.Abs(in.val[cur])))
				finish := nv == 0
				var better bool
				switch {
				case bestG < 0:
					better = true
				case finish != bestFinish:
					better = finish
				case finish:
					better = dv < bestDv
				default:
					better = score > bestScore
				}
				if better {
					bestG, bestC, bestScore, bestDv, bestFinish = g, j-in.off[g], score, dv, finish
				}
			}
		}
		if bestG < 0 {
			return false
		}
		cur := in.off[bestG] + choice[bestG]
		j := in.off[bestG] + bestC
		for i := range u {
			u[i] += in.cost[i][j] - in.cost[i][cur]
		}
		choice[bestG] = bestC
		v = in.violation(u)
	}
	return v == 0
}
