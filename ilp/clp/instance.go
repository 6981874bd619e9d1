//go:build clp

package clp

import (
	"fmt"
	"math"

	"github.com/bitplan/bitplan/ilp"
)

const (
	// feasRelTol is the feasibility tolerance of a resource row relative to
	// its limit: an assignment meets row k when
	// Σ cost ≤ Limit + feasRelTol·max(1, |Limit|). It absorbs the rounding
	// of summing float64 costs and matches the brute force of the tests.
	feasRelTol = 1e-9
	// intTol is how far from 0 or 1 an LP value may be and still count as
	// integral.
	intTol = 1e-6
	// lpPrimalTol is CLP's primal feasibility tolerance on the scaled rows
	// (every resource row is divided by its largest |cost|), tighter than
	// CLP's default 1e-7 so that integral LP points rarely fail feasRelTol.
	lpPrimalTol = 1e-9
	// maxRoundCombos caps the assignments tried by the rounding heuristic
	// (the product of the support sizes of the fractional groups).
	maxRoundCombos = 256
)

// validate checks p and returns an error naming the group, choice, row and
// value at fault.
func validate(p *ilp.Problem) error {
	if p == nil {
		return fmt.Errorf("clp: nil problem")
	}
	k := len(p.Rows)
	for r, row := range p.Rows {
		if math.IsNaN(row.Limit) {
			return fmt.Errorf("clp: row %d (%q): limit is NaN", r, row.Name)
		}
	}
	for g := range p.Groups {
		gr := &p.Groups[g]
		if len(gr.Choices) == 0 {
			return fmt.Errorf("clp: group %d (%q) has no choices: want at least one", g, gr.Name)
		}
		seen := make(map[string]bool, len(gr.Choices))
		pinned := gr.Pin == ""
		for c := range gr.Choices {
			ch := &gr.Choices[c]
			if seen[ch.Label] {
				return fmt.Errorf("clp: group %d (%q): duplicate choice label %q", g, gr.Name, ch.Label)
			}
			seen[ch.Label] = true
			if ch.Label == gr.Pin {
				pinned = true
			}
			if math.IsNaN(ch.Value) || math.IsInf(ch.Value, 0) {
				return fmt.Errorf("clp: group %d (%q) choice %q: value %v: want a finite number", g, gr.Name, ch.Label, ch.Value)
			}
			if len(ch.Costs) != k {
				return fmt.Errorf("clp: group %d (%q) choice %q has %d costs: want one per row (%d)", g, gr.Name, ch.Label, len(ch.Costs), k)
			}
			for r, a := range ch.Costs {
				if math.IsNaN(a) || math.IsInf(a, 0) {
					return fmt.Errorf("clp: group %d (%q) choice %q: cost of row %d (%q) is %v: want a finite number", g, gr.Name, ch.Label, r, p.Rows[r].Name, a)
				}
			}
		}
		if !pinned {
			return fmt.Errorf("clp: group %d (%q): pin %q is not one of its choice labels", g, gr.Name, gr.Pin)
		}
	}
	return nil
}

// rowTol returns the absolute feasibility tolerance of a row with limit b.
// An infinite limit has tolerance 0.
func rowTol(b float64) float64 {
	if math.IsInf(b, 0) {
		return 0
	}
	return feasRelTol * max(1, math.Abs(b))
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

// newInstance flattens p keeping the problem rows in rows. A feasibility
// instance replaces the values by Σ_i cost_i/scale_i over its rows, which
// steers the LP towards cheap points where rounding tends to succeed.
func newInstance(p *ilp.Problem, rows []int, feasibility bool) *instance {
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
		in.tol[i] = rowTol(p.Rows[r].Limit)
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
	for g, c := range choice {
		obj += in.val[in.off[g]+c]
	}
	for i := range in.rows {
		u := 0.0
		for g, c := range choice {
			u += in.cost[i][in.off[g]+c]
		}
		if u > in.limit[i]+in.tol[i] {
			feasible = false
		}
	}
	return obj, feasible
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
