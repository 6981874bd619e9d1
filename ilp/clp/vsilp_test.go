//go:build clp

package clp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/bitplan/bitplan/ilp"
)

// vsILP solves instances with this engine and with ilp.Solve and requires
// the same status, objectives within 1e-9 relative, and bounds that do not
// cross the other engine's optimum.
func vsILP(t *testing.T, seed uint64, n int, opts func(*rand.Rand) genOpts) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	counts := map[ilp.Status]int{}
	nodesCLP, nodesILP := 0, 0
	for i := 0; i < n; i++ {
		o := opts(rng)
		p := genProblem(rng, o)
		name := fmt.Sprintf("seed %d instance %d (%d groups, %d rows)", seed, i, o.groups, len(p.Rows))
		set := &ilp.Settings{TimeLimit: time.Second}
		got, err := Solver{}.Solve(context.Background(), p, set)
		if err != nil {
			t.Fatalf("%s: clp: %v", name, err)
		}
		want, err := ilp.Solve(context.Background(), p, set)
		if err != nil {
			t.Fatalf("%s: ilp: %v", name, err)
		}
		if got.Time+want.Time > time.Second {
			t.Logf("%s: clp %v %v nodes %d, ilp %v %v nodes %d", name, got.Status, got.Time, got.Nodes, want.Status, want.Time, want.Nodes)
		}
		if got.Status == ilp.Limit || want.Status == ilp.Limit {
			t.Logf("%s: limit reached (clp %v gap %.2g, ilp %v gap %.2g): not compared", name, got.Status, got.Gap, want.Status, want.Gap)
			continue
		}
		counts[got.Status]++
		nodesCLP += got.Nodes
		nodesILP += want.Nodes
		checkCertificate(t, name, p, got)
		if got.Status != want.Status {
			t.Errorf("%s: status %v, ilp.Solve %v", name, got.Status, want.Status)
			continue
		}
		if got.Status != ilp.Optimal {
			if got.Status == ilp.Infeasible && !slices.EqualFunc(got.Infeasibility.MinUsage, want.Infeasibility.MinUsage, sameObjective) {
				t.Errorf("%s: MinUsage %v, ilp.Solve %v", name, got.Infeasibility.MinUsage, want.Infeasibility.MinUsage)
			}
			continue
		}
		if !sameObjective(got.Objective, want.Objective) {
			t.Errorf("%s: objective %.15g, ilp.Solve %.15g", name, got.Objective, want.Objective)
		}
		if slack := 1e-9 * max(1, abs(want.Objective)); got.Bound > want.Objective+slack || want.Bound > got.Objective+slack {
			t.Errorf("%s: bounds cross: clp %v/%v, ilp %v/%v", name, got.Bound, got.Objective, want.Bound, want.Objective)
		}
	}
	t.Logf("seed %d: %d instances %v; nodes clp %d, ilp %d", seed, n, counts, nodesCLP, nodesILP)
}

func abs(x float64) float64 { return max(x, -x) }

// TestVsILPSmall compares with ilp.Solve on small instances.
func TestVsILPSmall(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	vsILP(t, 11, n, func(rng *rand.Rand) genOpts {
		return genOpts{
			groups: 1 + rng.IntN(6), minChoices: 1, maxChoices: 1 + rng.IntN(5), rows: 1 + rng.IntN(4),
			integer: rng.IntN(3) == 0, negative: rng.IntN(4) == 0,
			pinProb: 0.1, infRowProb: 0.1, slack: [2]float64{-0.1, 1},
		}
	})
}

// TestVsILPLarge compares with ilp.Solve on 20–150 groups with up to 6
// choices and 1–3 rows, a quarter of them with 8–15 groups and 20–100
// extra rows (random instances with many rows are hard for both engines:
// with 50 groups some take more than 5 s; see the benchmarks).
func TestVsILPLarge(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 10
	}
	vsILP(t, 12, n, func(rng *rand.Rand) genOpts {
		o := genOpts{
			groups: 20 + rng.IntN(131), minChoices: 2, maxChoices: 6, rows: 1 + rng.IntN(3),
			integer: rng.IntN(4) == 0, pinProb: 0.05, slack: [2]float64{0.05, 0.95},
		}
		if rng.IntN(4) == 0 {
			o.groups = 8 + rng.IntN(8)
			o.extraRows = 20 + rng.IntN(81)
			o.plant = rng.IntN(5) > 0
		}
		return o
	})
}
