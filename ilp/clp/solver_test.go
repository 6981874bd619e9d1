//go:build clp

package clp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"

	"github.com/bitplan/bitplan/ilp"
)

// sameObjective reports whether a and b agree to 1e-9 relative.
func sameObjective(a, b float64) bool {
	if math.IsInf(a, 1) || math.IsInf(b, 1) {
		return a == b
	}
	return math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b))
}

// checkCertificate checks the internal consistency of a solution: the
// assignment respects pins and rows, objective, usage and slack are its
// sums, the bound is below the objective, and shadow prices are ≥ 0 (and 0
// on rows without a limit).
func checkCertificate(t *testing.T, name string, p *ilp.Problem, sol *ilp.Solution) {
	t.Helper()
	tol := rowTols(p)
	if sol.Status == ilp.Infeasible {
		if sol.Shadow != nil || sol.Choices != nil {
			t.Errorf("%s: infeasible with shadow %v choices %v", name, sol.Shadow, sol.Choices)
		}
		return
	}
	if len(sol.Shadow) != len(p.Rows) {
		t.Fatalf("%s: %d shadow prices for %d rows", name, len(sol.Shadow), len(p.Rows))
	}
	for k, s := range sol.Shadow {
		if s < 0 || math.IsNaN(s) || (math.IsInf(p.Rows[k].Limit, 1) && s != 0) {
			t.Errorf("%s: shadow price %d = %v", name, k, s)
		}
	}
	if sol.Choices == nil {
		if sol.Status == ilp.Optimal {
			t.Errorf("%s: optimal without choices", name)
		}
		return
	}
	if len(sol.Choices) != len(p.Groups) {
		t.Fatalf("%s: %d choices for %d groups", name, len(sol.Choices), len(p.Groups))
	}
	obj := 0.0
	for g, c := range sol.Choices {
		gr := p.Groups[g]
		if c < 0 || c >= len(gr.Choices) {
			t.Fatalf("%s: group %d choice %d out of range", name, g, c)
		}
		if gr.Pin != "" && gr.Choices[c].Label != gr.Pin {
			t.Errorf("%s: group %d pinned to %q but chose %q", name, g, gr.Pin, gr.Choices[c].Label)
		}
		obj += gr.Choices[c].Value
	}
	if math.Abs(obj-sol.Objective) > 1e-12*max(1, math.Abs(obj)) {
		t.Errorf("%s: objective %v, Σ values %v", name, sol.Objective, obj)
	}
	for k, row := range p.Rows {
		u := 0.0
		for g, c := range sol.Choices {
			u += p.Groups[g].Choices[c].Costs[k]
		}
		if math.Abs(u-sol.Usage[k]) > 1e-12*max(1, math.Abs(u)) || sol.Slack[k] != row.Limit-sol.Usage[k] {
			t.Errorf("%s: row %d usage %v slack %v, want %v and %v", name, k, sol.Usage[k], sol.Slack[k], u, row.Limit-u)
		}
		if u > row.Limit+tol[k] {
			t.Errorf("%s: row %d usage %v over limit %v", name, k, u, row.Limit)
		}
	}
	if sol.Bound > sol.Objective || sol.Gap < 0 {
		t.Errorf("%s: bound %v above objective %v (gap %v)", name, sol.Bound, sol.Objective, sol.Gap)
	}
}

// conflictMasks converts Conflicts to row masks.
func conflictMasks(cs [][]int) map[int]bool {
	out := map[int]bool{}
	for _, c := range cs {
		m := 0
		for _, k := range c {
			m |= 1 << k
		}
		out[m] = true
	}
	return out
}

// differential solves random instances with the engine and brute force.
func differential(t *testing.T, seed uint64, n int, opts func(*rand.Rand) genOpts) {
	rng := rand.New(rand.NewPCG(seed, seed))
	var sv Solver
	counts := map[ilp.Status]int{}
	nodes := 0
	for i := 0; i < n; i++ {
		o := opts(rng)
		p := genProblem(rng, o)
		name := fmt.Sprintf("seed %d instance %d (%d groups, %d rows)", seed, i, o.groups, len(p.Rows))
		sol, err := sv.Solve(context.Background(), p, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		counts[sol.Status]++
		nodes += sol.Nodes
		checkCertificate(t, name, p, sol)
		best, bestObj, feas := bruteForce(p)
		switch {
		case best == nil && sol.Status != ilp.Infeasible:
			t.Errorf("%s: status %v, brute force infeasible", name, sol.Status)
		case best != nil && sol.Status != ilp.Optimal:
			t.Errorf("%s: status %v, brute force optimum %v", name, sol.Status, bestObj)
		case best != nil && !sameObjective(sol.Objective, bestObj):
			t.Errorf("%s: objective %.15g, brute force %.15g", name, sol.Objective, bestObj)
		case best != nil && sol.Bound > bestObj+1e-9*max(1, math.Abs(bestObj)):
			t.Errorf("%s: bound %v above the optimum %v", name, sol.Bound, bestObj)
		}
		if best == nil && sol.Status == ilp.Infeasible {
			inf := sol.Infeasibility
			if inf == nil {
				t.Fatalf("%s: infeasible without explanation", name)
			}
			want := minUsage(p)
			if !slices.Equal(inf.MinUsage, want) {
				t.Errorf("%s: MinUsage %v, want %v", name, inf.MinUsage, want)
			}
			if feas == nil {
				// Too many rows to list all conflicts: each one reported
				// must be infeasible and minimal.
				if len(inf.Conflicts) == 0 {
					t.Errorf("%s: no conflicts", name)
				}
				for _, c := range inf.Conflicts {
					if subFeasible(p, c) {
						t.Errorf("%s: conflict %v is feasible", name, c)
					}
					for i := range c {
						if len(c) > 1 && !subFeasible(p, slices.Delete(slices.Clone(c), i, i+1)) {
							t.Errorf("%s: conflict %v is not minimal", name, c)
						}
					}
				}
				continue
			}
			got, wantC := conflictMasks(inf.Conflicts), minimalConflicts(len(p.Rows), feas)
			if len(got) != len(wantC) {
				t.Errorf("%s: conflicts %v, want masks %v", name, inf.Conflicts, wantC)
			}
			for m := range got {
				if !wantC[m] {
					t.Errorf("%s: conflict mask %b is not a minimal conflict (want %v)", name, m, wantC)
				}
			}
		}
	}
	t.Logf("seed %d: %d instances: %v, %d nodes", seed, n, counts, nodes)
}

// TestDifferentialSmall compares the engine with brute force on thousands
// of seeded instances: 1–6 groups, 1–5 choices, 1–4 rows, with integer
// data (ties, limits met exactly), negative numbers, pins and rows without
// a limit mixed in.
func TestDifferentialSmall(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	differential(t, 1, n, func(rng *rand.Rand) genOpts {
		return genOpts{
			groups: 1 + rng.IntN(6), minChoices: 1, maxChoices: 1 + rng.IntN(5), rows: 1 + rng.IntN(4),
			integer: rng.IntN(3) == 0, negative: rng.IntN(4) == 0,
			pinProb: 0.1, infRowProb: 0.1, slack: [2]float64{-0.1, 1},
		}
	})
}

// TestDifferentialExtraRows compares with brute force on instances with
// 20–100 extra sparse rows.
func TestDifferentialExtraRows(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 40
	}
	differential(t, 2, n, func(rng *rand.Rand) genOpts {
		return genOpts{
			groups: 2 + rng.IntN(5), minChoices: 2, maxChoices: 5, rows: 2,
			extraRows: 20 + rng.IntN(81), integer: rng.IntN(3) == 0,
			slack: [2]float64{0.1, 0.9}, plant: rng.IntN(5) > 0,
		}
	})
}

// TestDifferentialMedium compares with an independent depth-first search on
// larger instances (10–14 groups, up to 6 choices, up to 3 rows, and some
// with 20–50 extra rows).
func TestDifferentialMedium(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 20
	}
	rng := rand.New(rand.NewPCG(4, 4))
	var sv Solver
	for i := 0; i < n; i++ {
		o := genOpts{groups: 10 + rng.IntN(5), minChoices: 2, maxChoices: 6, rows: 1 + rng.IntN(3),
			integer: rng.IntN(4) == 0, slack: [2]float64{0.05, 0.9}}
		if i%4 == 3 {
			o.extraRows = 20 + rng.IntN(31)
			o.plant = rng.IntN(5) > 0
		}
		p := genProblem(rng, o)
		name := fmt.Sprintf("medium instance %d (%d groups, %d rows)", i, o.groups, len(p.Rows))
		sol, err := sv.Solve(context.Background(), p, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkCertificate(t, name, p, sol)
		best, bestObj := dfsSolve(p)
		switch {
		case best == nil && sol.Status != ilp.Infeasible:
			t.Errorf("%s: status %v, DFS infeasible", name, sol.Status)
		case best != nil && (sol.Status != ilp.Optimal || !sameObjective(sol.Objective, bestObj)):
			t.Errorf("%s: %v %.15g, DFS %.15g", name, sol.Status, sol.Objective, bestObj)
		}
	}
}

// TestShadowPricesAreLPDuals checks the shadow prices against an
// independent LP solve: gonum's simplex gives the LP relaxation's optimum
// z, and the Lagrangian bound at the reported prices,
//
//	L(λ) = Σ_g min_c (v_gc + Σ_k λ_k a_kgc) − Σ_k λ_k b_k,
//
// must equal z (weak duality gives ≤ for any λ ≥ 0; equality certifies that
// λ are optimal duals).
func TestShadowPricesAreLPDuals(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var sv Solver
	checked := 0
	for i := 0; i < 300; i++ {
		p := genProblem(rng, genOpts{groups: 1 + rng.IntN(6), minChoices: 1, maxChoices: 5, rows: 1 + rng.IntN(3), slack: [2]float64{0.1, 0.9}})
		sol, err := sv.Solve(context.Background(), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sol.Status != ilp.Optimal {
			continue
		}
		z, ok := lpRelaxation(p)
		if !ok {
			continue
		}
		L := 0.0
		for _, gr := range p.Groups {
			best := math.Inf(1)
			for _, ch := range gr.Choices {
				r := ch.Value
				for k, l := range sol.Shadow {
					r += l * ch.Costs[k]
				}
				best = min(best, r)
			}
			L += best
		}
		for k, l := range sol.Shadow {
			L -= l * p.Rows[k].Limit
		}
		if math.Abs(L-z) > 1e-7*max(1, math.Abs(z)) {
			t.Errorf("instance %d: L(shadow) = %v, LP optimum %v (shadow %v)", i, L, z, sol.Shadow)
		}
		if sol.Bound < z-1e-7*max(1, math.Abs(z)) {
			t.Errorf("instance %d: bound %v below the LP bound %v", i, sol.Bound, z)
		}
		checked++
	}
	if checked < 100 {
		t.Errorf("only %d instances checked", checked)
	}
}

// lpRelaxation solves the LP relaxation of p (no pins) with gonum's
// simplex in standard form: x ≥ 0, Σ_c x_gc = 1, A x + s = b, s ≥ 0.
func lpRelaxation(p *ilp.Problem) (float64, bool) {
	G, K := len(p.Groups), len(p.Rows)
	var cols int
	for _, gr := range p.Groups {
		cols += len(gr.Choices)
	}
	A := mat.NewDense(G+K, cols+K, nil)
	b := make([]float64, G+K)
	c := make([]float64, cols+K)
	j := 0
	for g, gr := range p.Groups {
		b[g] = 1
		for _, ch := range gr.Choices {
			A.Set(g, j, 1)
			c[j] = ch.Value
			for k := range p.Rows {
				A.Set(G+k, j, ch.Costs[k])
			}
			j++
		}
	}
	for k, row := range p.Rows {
		A.Set(G+k, cols+k, 1)
		b[G+k] = row.Limit
	}
	z, _, err := lp.Simplex(c, A, b, 0, nil)
	return z, err == nil
}

// TestPins checks that a pin overrides a cheaper choice.
func TestPins(t *testing.T) {
	p := &ilp.Problem{
		Rows: []ilp.Row{{Name: "size", Limit: 12}},
		Groups: []ilp.Group{
			{Name: "a", Pin: "8", Choices: []ilp.Choice{{Label: "4", Value: 1, Costs: []float64{4}}, {Label: "8", Value: 0.1, Costs: []float64{8}}}},
			{Name: "b", Choices: []ilp.Choice{{Label: "4", Value: 1, Costs: []float64{4}}, {Label: "8", Value: 0.1, Costs: []float64{8}}}},
		},
	}
	sol, err := Solver{}.Solve(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sol.Status != ilp.Optimal || !slices.Equal(sol.Choices, []int{1, 0}) || sol.Objective != 1.1 {
		t.Errorf("got %v %v %v, want optimal [1 0] 1.1", sol.Status, sol.Choices, sol.Objective)
	}
	p.Rows[0].Limit = 11.5
	sol, _ = Solver{}.Solve(context.Background(), p, nil)
	if sol.Status != ilp.Infeasible || !slices.Equal(sol.Infeasibility.MinUsage, []float64{12}) {
		t.Errorf("got %v %+v, want infeasible with MinUsage [12]", sol.Status, sol.Infeasibility)
	}
}

// TestBadProblems checks that invalid problems return errors.
func TestBadProblems(t *testing.T) {
	row := []ilp.Row{{Name: "r", Limit: 1}}
	ch := func(l string, v float64, c ...float64) ilp.Choice { return ilp.Choice{Label: l, Value: v, Costs: c} }
	for _, tc := range []struct {
		name string
		p    *ilp.Problem
	}{
		{"nil", nil},
		{"no choices", &ilp.Problem{Rows: row, Groups: []ilp.Group{{Name: "g"}}}},
		{"cost count", &ilp.Problem{Rows: row, Groups: []ilp.Group{{Name: "g", Choices: []ilp.Choice{ch("4", 1)}}}}},
		{"NaN value", &ilp.Problem{Rows: row, Groups: []ilp.Group{{Name: "g", Choices: []ilp.Choice{ch("4", math.NaN(), 1)}}}}},
		{"Inf cost", &ilp.Problem{Rows: row, Groups: []ilp.Group{{Name: "g", Choices: []ilp.Choice{ch("4", 1, math.Inf(1))}}}}},
		{"duplicate label", &ilp.Problem{Rows: row, Groups: []ilp.Group{{Name: "g", Choices: []ilp.Choice{ch("4", 1, 1), ch("4", 2, 2)}}}}},
		{"unknown pin", &ilp.Problem{Rows: row, Groups: []ilp.Group{{Name: "g", Pin: "2", Choices: []ilp.Choice{ch("4", 1, 1)}}}}},
		{"NaN limit", &ilp.Problem{Rows: []ilp.Row{{Name: "r", Limit: math.NaN()}}, Groups: []ilp.Group{{Name: "g", Choices: []ilp.Choice{ch("4", 1, 1)}}}}},
	} {
		if _, err := (Solver{}).Solve(context.Background(), tc.p, nil); !errors.Is(err, ilp.ErrMalformed) {
			t.Errorf("%s: error %v, want ilp.ErrMalformed", tc.name, err)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// TestEdgeCases covers no groups (malformed), no rows and −Inf limits.
func TestEdgeCases(t *testing.T) {
	if _, err := (Solver{}).Solve(context.Background(), &ilp.Problem{Rows: []ilp.Row{{Name: "r", Limit: 0}}}, nil); !errors.Is(err, ilp.ErrMalformed) {
		t.Errorf("empty problem: error %v, want ilp.ErrMalformed", err)
	}
	p := &ilp.Problem{Groups: []ilp.Group{{Name: "g", Choices: []ilp.Choice{{Label: "a", Value: 2}, {Label: "b", Value: -1}}}}}
	sol, err := Solver{}.Solve(context.Background(), p, nil)
	if err != nil || sol.Status != ilp.Optimal || sol.Objective != -1 {
		t.Errorf("no rows: %+v, %v", sol, err)
	}
	p = &ilp.Problem{Rows: []ilp.Row{{Name: "r", Limit: math.Inf(-1)}}, Groups: []ilp.Group{{Name: "g", Choices: []ilp.Choice{{Label: "a", Costs: []float64{1}}}}}}
	sol, err = Solver{}.Solve(context.Background(), p, nil)
	if err != nil || sol.Status != ilp.Infeasible || len(sol.Infeasibility.Conflicts) != 1 {
		t.Errorf("-Inf limit: %+v, %v", sol, err)
	}
}

// largeProblem is a random instance big enough not to finish instantly.
func largeProblem(groups, rows int, seed uint64) *ilp.Problem {
	rng := rand.New(rand.NewPCG(seed, seed))
	return genProblem(rng, genOpts{groups: groups, minChoices: 6, maxChoices: 6, rows: rows, slack: [2]float64{0.3, 0.5}})
}

// TestLimits checks that a time limit, a node limit and a cancelled
// context return Status Limit with a valid bound.
func TestLimits(t *testing.T) {
	p := largeProblem(2000, 3, 7)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		s    *ilp.Settings
	}{
		{"time", context.Background(), &ilp.Settings{TimeLimit: time.Microsecond}},
		{"nodes", context.Background(), &ilp.Settings{NodeLimit: 1, RelGap: 1e-15, AbsGap: 1e-15}},
		{"cancelled", ctx, nil},
	} {
		sol, err := Solver{}.Solve(tc.ctx, p, tc.s)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if sol.Status != ilp.Limit {
			t.Errorf("%s: status %v, want limit", tc.name, sol.Status)
		}
		checkCertificate(t, tc.name, p, sol)
		t.Logf("%s: objective %v bound %v gap %v nodes %d", tc.name, sol.Objective, sol.Bound, sol.Gap, sol.Nodes)
	}
}

// TestConcurrentSolves runs solves from several goroutines at once (run
// with -race).
func TestConcurrentSolves(t *testing.T) {
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func(w int) {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < 50; i++ {
				p := genProblem(rng, genOpts{groups: 1 + rng.IntN(5), minChoices: 1, maxChoices: 4, rows: 2, slack: [2]float64{0, 1}})
				sol, err := Solver{}.Solve(context.Background(), p, nil)
				if err != nil {
					errs <- err
					return
				}
				if _, obj, _ := bruteForce(p); !sameObjective(sol.Objective, obj) {
					errs <- fmt.Errorf("worker %d instance %d: %v, brute force %v", w, i, sol.Objective, obj)
					return
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < 4; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
