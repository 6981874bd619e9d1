package plan

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/sensitivity"
)

// robustTable is a random table of n layers with candidates 2, 4 and 8
// bits, and a size budget at frac of the range.
func robustTable(t *testing.T, rng *rand.Rand, n int, frac string) *Request {
	t.Helper()
	tab := &sensitivity.Table{Model: "random"}
	for i := range n {
		d8 := rng.Float64()
		tab.Layers = append(tab.Layers, sensitivity.Layer{
			Name: string(rune('a' + i)), Params: float64(1 + rng.IntN(100)), MACs: float64(1 + rng.IntN(1000)),
			AvgTrace: rng.Float64(),
			DeltaSq:  map[string]float64{"2": d8 * (200 + 100*rng.Float64()), "4": d8 * (10 + 10*rng.Float64()), "8": d8},
		})
	}
	spec, err := budget.Parse(budget.Size, frac)
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Table: tab, Budgets: []Budget{{Resource: "size", Spec: spec}}}
}

// bruteRegret is the nominal plan's largest regret over the box by
// enumeration: the regret max_p Ω(nominal; a) − Ω(p; a) is convex in a
// (a maximum of affine functions), so it is largest at a vertex of the
// box; every vertex and every feasible plan is tried.
func bruteRegret(req *Request, nominal []string, bx Box) float64 {
	t := req.Table
	n := len(t.Layers)
	lo, hi := bx.Lo, bx.Hi
	dims := n
	if bx.ActLo != nil {
		dims = 2 * n
	}
	keys := []string{"2", "4", "8"}
	bits := []float64{2, 4, 8}
	var size, sizeLo, sizeHi float64
	for _, l := range t.Layers {
		sizeLo += l.Params * 2 / 8
		sizeHi += l.Params * 8 / 8
	}
	limit := req.Budgets[0].Spec.Resolve(sizeLo, sizeHi)
	worst := math.Inf(-1)
	a, act := make([]float64, n), make([]float64, n)
	for v := range 1 << dims {
		for i := range n {
			a[i] = lo[i]
			if v>>i&1 == 1 {
				a[i] = hi[i]
			}
			act[i] = t.Layers[i].ActAvgTrace
			if bx.ActLo != nil {
				act[i] = bx.ActLo[i]
				if v>>(n+i)&1 == 1 {
					act[i] = bx.ActHi[i]
				}
			}
		}
		omega := func(i int, k string) float64 {
			return a[i]*t.Layers[i].DeltaSq[k] + act[i]*t.Layers[i].ActDeltaSq[k]
		}
		var nom float64
		for i := range n {
			nom += omega(i, nominal[i])
		}
		best := math.Inf(1)
		choice := make([]int, n)
		for {
			size = 0
			var o float64
			for i, c := range choice {
				size += t.Layers[i].Params * bits[c] / 8
				o += omega(i, keys[c])
			}
			if size <= limit+1e-9 {
				best = min(best, o)
			}
			j := 0
			for j < n && choice[j] == 2 {
				choice[j] = 0
				j++
			}
			if j == n {
				break
			}
			choice[j]++
		}
		worst = max(worst, nom-best)
	}
	return worst
}

// TestRobustWithinBruteForce compares RobustWithin's regret with
// enumeration over every box vertex and plan, on random tables (a third
// with the activation term, its traces in the box too), boxes of random
// widths (from zero, where the regret must be 0, to several times the
// trace) and budgets.
func TestRobustWithinBruteForce(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	stable, unstable, act := 0, 0, 0
	for trial := range 300 {
		n := 2 + rng.IntN(4)
		req := robustTable(t, rng, n, []string{"30%", "50%", "70%", "90%"}[trial%4])
		nominal, err := Solve(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if nominal.Objective == nil {
			continue
		}
		width := []float64{0, 0.05, 0.3, 2}[rng.IntN(4)]
		bx := Box{Lo: make([]float64, n), Hi: make([]float64, n)}
		withAct := trial%3 == 0 && n <= 4
		if withAct {
			// The activation term: its own trace and squared errors
			// (larger at the narrower activation widths), in the box too.
			bx.ActLo, bx.ActHi = make([]float64, n), make([]float64, n)
			for i := range req.Table.Layers {
				l := &req.Table.Layers[i]
				l.ActAvgTrace = rng.Float64()
				q := rng.Float64()
				l.ActDeltaSq = map[string]float64{"2": 100 * q, "4": 8 * q, "8": q / 2}
				w := width * l.ActAvgTrace * rng.Float64()
				bx.ActLo[i], bx.ActHi[i] = l.ActAvgTrace-w, l.ActAvgTrace+w*rng.Float64()
			}
			if nominal, err = Solve(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		var choice []string
		for i, l := range req.Table.Layers {
			w := width * l.AvgTrace * rng.Float64()
			bx.Lo[i], bx.Hi[i] = l.AvgTrace-w, l.AvgTrace+w*rng.Float64()
			choice = append(choice, nominal.Layers[i].Choice)
		}
		r, err := RobustWithin(ctx, req, nominal, bx)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteRegret(req, choice, bx)
		// The bound is proven to the solve's absolute gap (half the
		// tolerance).
		if math.Abs(r.Regret-max(0, want)) > r.Tolerance+1e-12*max(1, math.Abs(want)) {
			t.Fatalf("trial %d (%d layers, width %g): regret %v, enumeration %v", trial, n, width, r.Regret, want)
		}
		if d := want - r.Tolerance; r.Stable != (d <= 0) && math.Abs(d) > r.Tolerance {
			t.Fatalf("trial %d: stable %v with regret %v (tolerance %v)", trial, r.Stable, want, r.Tolerance)
		}
		if width == 0 && !r.Stable {
			t.Fatalf("trial %d: a zero-width box at the table's own traces is not stable (regret %v)", trial, r.Regret)
		}
		if withAct {
			act++
		}
		if r.Stable {
			stable++
		} else {
			unstable++
			if len(r.Rival) != n {
				t.Fatalf("trial %d: unstable without a rival plan", trial)
			}
		}
	}
	// Both outcomes must occur, or the test would not test the decision.
	if stable < 30 || unstable < 30 {
		t.Fatalf("%d stable and %d unstable boxes: the trials do not exercise both", stable, unstable)
	}
	if act < 50 {
		t.Fatalf("%d trials with an activation term, want at least 50", act)
	}
	t.Logf("%d stable, %d unstable boxes, %d with an activation term", stable, unstable, act)
}

func TestRobustWithinErrors(t *testing.T) {
	ctx := context.Background()
	req := robustTable(t, rand.New(rand.NewPCG(1, 2)), 3, "50%")
	nominal, err := Solve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RobustWithin(ctx, req, nominal, Box{Lo: []float64{1}, Hi: []float64{1}}); err == nil || !strings.Contains(err.Error(), "3 layers") {
		t.Errorf("short bounds: %v", err)
	}
	if _, err := RobustWithin(ctx, req, nominal, Box{Lo: []float64{1, 1, 2}, Hi: []float64{1, 1, 1}}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty interval: %v", err)
	}
	// A layer with Ω scores keeps them whatever its interval.
	l := &req.Table.Layers[0]
	l.Scores = map[string]float64{}
	for k := range l.DeltaSq {
		l.Scores[k] = l.Omega(k)
	}
	tr := func(i int) float64 { return req.Table.Layers[i].AvgTrace }
	narrow, err := RobustWithin(ctx, req, nominal, Box{Lo: []float64{0, tr(1) * 0.5, tr(2) * 0.5}, Hi: []float64{0, tr(1) * 2, tr(2) * 2}})
	if err != nil {
		t.Fatal(err)
	}
	wide, err := RobustWithin(ctx, req, nominal, Box{Lo: []float64{-1e6, tr(1) * 0.5, tr(2) * 0.5}, Hi: []float64{1e6, tr(1) * 2, tr(2) * 2}})
	if err != nil {
		t.Fatal(err)
	}
	if narrow.Regret != wide.Regret {
		t.Errorf("a scored layer's interval moved the regret: %v and %v", narrow.Regret, wide.Regret)
	}
}

// TestStableStop runs the rule on fabricated estimates: samples spread
// around the table's traces stop it once the box is narrow enough, and a
// wide box does not.
func TestStableStop(t *testing.T) {
	ctx := context.Background()
	req := robustTable(t, rand.New(rand.NewPCG(3, 4)), 4, "60%")
	s := &StableStop{Table: req.Table, Request: *req}
	rule := s.Rule(ctx)
	// n samples per block, mean the layer's trace, relative spread rel.
	result := func(n int, rel float64) *hessian.TraceResult {
		rng := rand.New(rand.NewPCG(uint64(n), 5))
		res := &hessian.TraceResult{Method: "hutchinson", Confidence: 0.95, Probes: n}
		for range n {
			row := make([]float64, len(req.Table.Layers))
			var tot float64
			for j, l := range req.Table.Layers {
				row[j] = l.AvgTrace * l.Params * (1 + rel*rng.NormFloat64())
				tot += row[j]
			}
			res.Samples, res.TotalSamples = append(res.Samples, row), append(res.TotalSamples, tot)
		}
		for _, l := range req.Table.Layers {
			res.Blocks = append(res.Blocks, hessian.Estimate{Name: l.Name, Size: int(l.Params)})
		}
		r, err := res.AtConfidence(0.95)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	why, err := rule(result(10, 3))
	if err != nil || why != "" {
		t.Fatalf("a relative spread of 3 at 10 probes stopped (%q, %v)", why, err)
	}
	if !strings.Contains(s.Status, "could change") {
		t.Errorf("status %q does not name the layers that could change", s.Status)
	}
	why, err = rule(result(1000, 0.001))
	if err != nil || why != StopPlanStable {
		t.Fatalf("a relative spread of 0.001 at 1000 probes did not stop (%q, %v)", why, err)
	}
	if s.Checks != 2 || s.Certificate == nil || !s.Certificate.Stable {
		t.Errorf("checks %d, certificate %+v", s.Checks, s.Certificate)
	}
	if want := 1 - 0.05/4; math.Abs(s.Level-want) > 1e-12 {
		t.Errorf("per-layer level %v, want Bonferroni's %v", s.Level, want)
	}
	if _, err := rule(&hessian.TraceResult{Blocks: make([]hessian.Estimate, 2)}); err == nil || !strings.Contains(err.Error(), "neither a trace block") {
		t.Errorf("an estimate without the table's layers: %v", err)
	}
}
