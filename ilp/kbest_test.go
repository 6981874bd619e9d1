package ilp

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// feasibleSorted enumerates every feasible assignment of p (pinned groups
// at their pin) and returns their values in increasing order.
func feasibleSorted(p *Problem) []float64 {
	mag := rowMagnitude(p)
	ng := len(p.Groups)
	a := make([]int, ng)
	lo, hi := make([]int, ng), make([]int, ng)
	for g := range p.Groups {
		if pi := pinIndex(&p.Groups[g]); pi >= 0 {
			lo[g], hi[g] = pi, pi
		} else {
			hi[g] = len(p.Groups[g].Choices) - 1
		}
		a[g] = lo[g]
	}
	var vals []float64
	for {
		obj, usage := evaluate(p, a)
		ok := true
		for k, r := range p.Rows {
			ok = ok && meets(r.Limit, usage[k], mag[k])
		}
		if ok {
			vals = append(vals, obj)
		}
		g := ng - 1
		for g >= 0 && a[g] == hi[g] {
			a[g] = lo[g]
			g--
		}
		if g < 0 {
			break
		}
		a[g]++
	}
	sort.Float64s(vals)
	return vals
}

// TestKBestAgreesWithBruteForce checks on random small problems that the
// k best assignments come out distinct, feasible, in non-decreasing value,
// and with the values of the k best of a full enumeration.
func TestKBestAgreesWithBruteForce(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 500
	}
	const k = 5
	rng := rand.New(rand.NewPCG(7, 11))
	lists := 0
	for i := 0; i < n; i++ {
		p := randProblem(rng)
		want := feasibleSorted(p)
		got, err := KBest(context.Background(), nil, p, k, nil)
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		if len(want) == 0 {
			if len(got) != 1 || got[0].Status != Infeasible {
				t.Fatalf("instance %d: infeasible problem gave %d solutions", i, len(got))
			}
			continue
		}
		if m := min(k+1, len(want)); len(got) != m {
			t.Fatalf("instance %d: %d solutions, want %d (of %d feasible)\n%+v", i, len(got), m, len(want), p)
		}
		if len(got) > 2 {
			lists++
		}
		mag := objMag(p)
		rmag := rowMagnitude(p)
		seen := map[string]bool{}
		for j, s := range got {
			if s.Status != Optimal {
				t.Fatalf("instance %d: solution %d has status %v", i, j, s.Status)
			}
			if !closeObj(s.Objective, want[j], mag) {
				t.Fatalf("instance %d: solution %d has value %.17g, brute force %.17g\n%+v", i, j, s.Objective, want[j], p)
			}
			if j > 0 && s.Objective < got[j-1].Objective-1e-9*math.Abs(s.Objective)-1e-12*mag {
				t.Fatalf("instance %d: solution %d value %.17g below the one before, %.17g", i, j, s.Objective, got[j-1].Objective)
			}
			key := fmtInts(s.Choices)
			if seen[key] {
				t.Fatalf("instance %d: solution %d repeats assignment %v", i, j, s.Choices)
			}
			seen[key] = true
			if len(s.Usage) != len(p.Rows) || len(s.Slack) != len(p.Rows) {
				t.Fatalf("instance %d: usage of %d rows, problem has %d", i, len(s.Usage), len(p.Rows))
			}
			obj, usage := evaluate(p, s.Choices)
			if !closeObj(obj, s.Objective, mag) {
				t.Fatalf("instance %d: solution %d reports %g, its choices are worth %g", i, j, s.Objective, obj)
			}
			for r := range p.Rows {
				if !meets(p.Rows[r].Limit, usage[r], rmag[r]) {
					t.Fatalf("instance %d: solution %d violates row %d", i, j, r)
				}
			}
			for g, c := range s.Choices {
				if pin := p.Groups[g].Pin; pin != "" && p.Groups[g].Choices[c].Label != pin {
					t.Fatalf("instance %d: solution %d ignores the pin of group %d", i, j, g)
				}
			}
		}
	}
	if lists < n/10 {
		t.Fatalf("only %d of %d instances had more than two feasible assignments", lists, n)
	}
}

func TestWithNoGoodsLeavesProblem(t *testing.T) {
	p := &Problem{Groups: []Group{
		{Name: "a", Choices: []Choice{{Label: "4", Value: 1, Costs: []float64{4}}, {Label: "8", Value: 0, Costs: []float64{8}}}},
		{Name: "b", Choices: []Choice{{Label: "4", Value: 2, Costs: []float64{4}}, {Label: "8", Value: 0, Costs: []float64{8}}}},
	}, Rows: []Row{{Name: "size", Limit: 16}}}
	q := p.WithNoGoods([][]int{{1, 1}, {0, 1}})
	if len(p.Rows) != 1 || len(p.Groups[0].Choices[0].Costs) != 1 {
		t.Fatal("WithNoGoods modified its receiver")
	}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(q.Rows) != 3 || q.Rows[1].Limit != 1 || q.Rows[2].Name != "no-good 2" {
		t.Fatalf("rows %+v", q.Rows)
	}
	if c := q.Groups[0].Choices[1].Costs; c[1] != 1 || c[2] != 0 {
		t.Fatalf("group a choice 8 costs %v, want [8 1 0]", c)
	}
	sol, err := Solve(context.Background(), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmtInts(sol.Choices) != "1,0," || sol.Objective != 2 {
		t.Fatalf("third best %v (%g), want a=8 b=4 (2)", sol.Choices, sol.Objective)
	}
}
