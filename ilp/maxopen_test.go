package ilp

import (
	"context"
	"testing"
	"time"
)

// A cap on open nodes stops a branch-and-bound search that would hold more
// nodes, with a valid bound and the best plan found.
func TestMaxOpen(t *testing.T) {
	p := benchProblem(300, 3, 5)
	full, err := Solve(context.Background(), p, nil)
	if err != nil || full.Status != Optimal {
		t.Fatalf("full solve: %v %v", full.Status, err)
	}
	// Without the dynamic programme the search must branch.
	defer func(a, b, c int) { dpMaxStates, dpRungStates, dpMaxGroups = a, b, c }(dpMaxStates, dpRungStates, dpMaxGroups)
	dpMaxStates, dpRungStates, dpMaxGroups = 1, 1, 0
	lim, err := Solve(context.Background(), p, &Settings{MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MaxOpen 2: %v, %d nodes, objective %g bound %g", lim.Status, lim.Nodes, lim.Objective, lim.Bound)
	if lim.Status != Limit {
		t.Fatalf("status %v with MaxOpen 2; want limit", lim.Status)
	}
	if lim.Bound > full.Objective*(1+1e-9) {
		t.Errorf("bound %g above the optimum %g", lim.Bound, full.Objective)
	}
	if lim.Choices != nil && lim.Objective < full.Objective*(1-1e-9) {
		t.Errorf("objective %g below the optimum %g", lim.Objective, full.Objective)
	}
}

// Settings.Progress reports a long search about once a second with a
// bound that never exceeds the best value found.
func TestProgress(t *testing.T) {
	defer func(a, b, c int) { dpMaxStates, dpRungStates, dpMaxGroups = a, b, c }(dpMaxStates, dpRungStates, dpMaxGroups)
	dpMaxStates, dpRungStates, dpMaxGroups = 1, 1, 0 // a slow branch-and-bound
	p := benchProblem(1000, 3, 5)
	var calls []time.Duration
	sol, err := Solve(context.Background(), p, &Settings{TimeLimit: 2500 * time.Millisecond,
		Progress: func(el time.Duration, obj, bound float64) {
			calls = append(calls, el)
			if bound > obj {
				t.Errorf("at %v: bound %g above the best value %g", el, bound, obj)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if sol.Status != Limit {
		// Skipping here let the test pass without checking anything.
		t.Fatalf("solved in %v, so progress was never due: the problem is too easy for this test", sol.Time)
	}
	if len(calls) < 2 || calls[0] < 900*time.Millisecond {
		t.Errorf("progress calls at %v; want one about every second", calls)
	}
}
