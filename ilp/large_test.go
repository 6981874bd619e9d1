package ilp

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestLargeProblemPaths runs the paths of large problems (the expanding
// core, growCore, and its slack-aware neighbourhoods, slackMoves) in the
// default build, not only under the clp tag. A large problem has no brute
// force, so the certificate is checked for itself (feasible, objective the
// sum of the chosen values, bound below it) and against a transformed copy:
// groups in another order and every row scaled by a power of two (exact in
// floating point) have the same optimum.
func TestLargeProblemPaths(t *testing.T) {
	var grew, slack int
	testHook.growCore = func() { grew++ }
	testHook.slackMoves = func() { slack++ }
	defer func() { testHook.growCore, testHook.slackMoves = nil, nil }()
	// Rungs that give up at once hand every problem to growCore, as the
	// hard tail of large problems does.
	defer func(r int) { dpRungStates = r }(dpRungStates)
	dpRungStates = 1
	for _, c := range []struct{ n, rows int }{{3000, 2}, {1500, 3}} {
		for seed := uint64(1); seed <= 2; seed++ {
			p := benchProblem(c.n, c.rows, seed)
			sol := solveChecked(t, p)
			rng := rand.New(rand.NewPCG(seed, 99))
			q := &Problem{Rows: append([]Row(nil), p.Rows...), Groups: make([]Group, len(p.Groups))}
			scale := make([]float64, len(p.Rows))
			for k := range q.Rows {
				scale[k] = math.Ldexp(1, rng.IntN(21)-10)
				q.Rows[k].Limit *= scale[k]
			}
			for i, j := range rng.Perm(len(p.Groups)) {
				g := p.Groups[j]
				ng := Group{Name: g.Name, Pin: g.Pin, Choices: make([]Choice, len(g.Choices))}
				for c, ch := range g.Choices {
					costs := make([]float64, len(ch.Costs))
					for k := range costs {
						costs[k] = ch.Costs[k] * scale[k]
					}
					ng.Choices[c] = Choice{Label: ch.Label, Value: ch.Value, Costs: costs}
				}
				q.Groups[i] = ng
			}
			sol2 := solveChecked(t, q)
			if d := math.Abs(sol.Objective - sol2.Objective); d > 1e-9*math.Abs(sol.Objective) {
				t.Errorf("%d×%d seed %d: objective %.15g, permuted and scaled %.15g", c.n, c.rows, seed, sol.Objective, sol2.Objective)
			}
		}
	}
	if grew == 0 || slack == 0 {
		t.Errorf("growCore ran %d times, slackMoves %d: the large-problem paths were not exercised", grew, slack)
	}
}

// solveChecked solves p to optimality and checks the certificate.
func solveChecked(t *testing.T, p *Problem) *Solution {
	t.Helper()
	sol, err := Solve(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sol.Status != Optimal {
		t.Fatalf("%d groups: status %v, gap %g", len(p.Groups), sol.Status, sol.Gap)
	}
	obj := 0.0
	use := make([]float64, len(p.Rows))
	for g, c := range sol.Choices {
		ch := p.Groups[g].Choices[c]
		obj += ch.Value
		for k := range use {
			use[k] += ch.Costs[k]
		}
	}
	for k, r := range p.Rows {
		if use[k] > r.Limit*(1+1e-12) {
			t.Errorf("row %d: usage %g over the limit %g", k, use[k], r.Limit)
		}
	}
	if math.Abs(obj-sol.Objective) > 1e-9*math.Abs(obj) || sol.Bound > sol.Objective*(1+1e-12) {
		t.Errorf("objective %g, Σ chosen values %g, bound %g", sol.Objective, obj, sol.Bound)
	}
	return sol
}
