package hessian

import (
	"context"
	"math"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
)

// concentrated returns per-sample matrices of which a few (every 12th)
// carry almost all of the curvature (a rank-2 PSD part, 300× the others'
// scale), like a trained classifier's few unconfident samples, and the
// samples' exact traces as scores.
func concentrated(n, d int, seed uint64) ([]*mat.SymDense, []float64) {
	rng := newTestRand(seed)
	per := make([]*mat.SymDense, n)
	scores := make([]float64, n)
	for s := range per {
		scale := 0.01
		if s%12 == 0 {
			scale = 3
		}
		m := mat.NewSymDense(d, nil)
		for r := 0; r < 2; r++ {
			u := make([]float64, d)
			for q := range u {
				u[q] = rng.NormFloat64()
			}
			for i := range d {
				for j := i; j < d; j++ {
					m.SetSym(i, j, m.At(i, j)+scale*u[i]*u[j])
				}
			}
		}
		for i := range d {
			for j := i; j < d; j++ {
				m.SetSym(i, j, m.At(i, j)+0.1*scale*rng.NormFloat64())
			}
			scores[s] += m.At(i, i)
		}
		per[s] = m
	}
	return per, scores
}

// Stratified products (the heavy samples whole, 4 of the others per
// probe) against the exact full-data traces over 1,000 seeds: unbiased
// (mean within 4 standard errors) and 95 % intervals covering 93–97 %
// of the time on every block, with Hutchinson; Auto with the same
// strata is unbiased too (300 seeds); and a stratified probe's variance
// × samples is at least 3× a full-data probe's.
func TestStrataUnbiasedCoverage(t *testing.T) {
	const d, n, seeds, probes = 20, 48, 1000, 20
	per, scores := concentrated(n, d, 3)
	blocks := []Block{{"a", 0, 8}, {"b", 8, 12}}
	op := newSampledDense(per, blocks)
	st := NewStrata(scores, 4, 4)
	if len(st.Samples) != 2 || st.Size() != 8 {
		t.Fatalf("strata %+v", st)
	}
	for _, s := range st.Samples[0] {
		if s%12 != 0 {
			t.Fatalf("whole stratum %v: not the heavy samples", st.Samples[0])
		}
	}
	full := meanOf(per, nil)
	want := make([]float64, len(blocks))
	for j, b := range blocks {
		want[j] = blockTrace(full, b)
	}
	ctx := context.Background()
	check := func(name string, seeds int, run func(seed uint64) (*TraceResult, error), coverage bool) []float64 {
		sum, sum2 := make([]float64, len(blocks)), make([]float64, len(blocks))
		cover := make([]int, len(blocks))
		rowVar := make([]float64, len(blocks))
		for seed := 1; seed <= seeds; seed++ {
			res, err := run(uint64(seed))
			if err != nil {
				t.Fatal(err)
			}
			if res.Strata != st || res.Epoch != 0 {
				t.Fatalf("%s: strata %v, epoch %d", name, res.Strata, res.Epoch)
			}
			for j, e := range res.Blocks {
				sum[j] += e.Trace
				sum2[j] += e.Trace * e.Trace
				if e.Lo <= want[j] && want[j] <= e.Hi {
					cover[j]++
				}
				rowVar[j] += e.StdErr * e.StdErr * float64(res.Probes) / float64(seeds)
			}
		}
		for j, b := range blocks {
			m := sum[j] / float64(seeds)
			sd := math.Sqrt(max(0, sum2[j]/float64(seeds)-m*m))
			rate := float64(cover[j]) / float64(seeds)
			t.Logf("%s: block %s: exact %.5g, mean %.5g (z %.2f), coverage %.1f %%", name, b.Name, want[j], m, (m-want[j])/(sd/math.Sqrt(float64(seeds))), 100*rate)
			if math.Abs(m-want[j]) > 4*sd/math.Sqrt(float64(seeds)) {
				t.Errorf("%s: block %s: mean %.6g over %d seeds, exact %.6g: biased", name, b.Name, m, seeds, want[j])
			}
			if coverage && (rate < 0.93 || rate > 0.97) {
				t.Errorf("%s: block %s: 95 %% intervals covered the exact trace in %.1f %% of the runs, want 93–97 %%", name, b.Name, 100*rate)
			}
		}
		return rowVar
	}
	strat := check("hutchinson, strata", seeds, func(seed uint64) (*TraceResult, error) {
		return Hutchinson(ctx, op, &Settings{Seed: seed, MinProbes: probes, MaxProbes: probes, Strata: st, Workers: 1})
	}, true)
	check("auto, strata", 300, func(seed uint64) (*TraceResult, error) {
		return Auto(ctx, op, &Settings{Seed: seed, Tol: 0.05, MinProbes: 10, MaxProbes: 60, Strata: st, Workers: 1})
	}, false)
	// Full-data probes' per-probe variance, from 200 runs.
	var fullVar []float64
	for seed := 1; seed <= 200; seed++ {
		res, err := Hutchinson(ctx, op.full, &Settings{Seed: uint64(seed), MinProbes: probes, MaxProbes: probes, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if fullVar == nil {
			fullVar = make([]float64, len(blocks))
		}
		for j, e := range res.Blocks {
			fullVar[j] += e.StdErr * e.StdErr * probes / 200
		}
	}
	for j, b := range blocks {
		gain := fullVar[j] * n / (strat[j] * float64(st.Size()))
		t.Logf("block %s: variance × samples per product %.1f× smaller with the strata", b.Name, gain)
		if gain < 3 {
			t.Errorf("block %s: the strata gain only %.2f× in variance × samples", b.Name, gain)
		}
	}
}

// Bad strata are refused before any product; an operator that is not
// Sampled is refused; one whole stratum is the full-data estimate.
func TestStrataSettings(t *testing.T) {
	per, scores := concentrated(12, 10, 4)
	blocks := []Block{{"a", 0, 10}}
	op := newSampledDense(per, blocks)
	ctx := context.Background()
	for _, bad := range []*Strata{
		{Samples: [][]int{{0, 1, 2}}, Take: []int{3}},                                      // does not cover
		{Samples: [][]int{{0, 1, 2, 3, 4, 5}, {5, 6, 7, 8, 9, 10, 11}}, Take: []int{6, 2}}, // overlaps
		{Samples: [][]int{{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 11}}, Take: []int{6, 0}},    // draws none
		{Samples: [][]int{{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}, Take: []int{12}},        // out of order
	} {
		if _, err := Hutchinson(ctx, op, &Settings{MinProbes: 4, MaxProbes: 4, Strata: bad}); err == nil || op.calls != 0 {
			t.Errorf("strata %v: %v after %d subsets", bad.Samples, err, op.calls)
		}
		if _, err := Auto(ctx, op, &Settings{MinProbes: 4, MaxProbes: 40, Strata: bad}); err == nil {
			t.Errorf("Auto: strata %v accepted", bad.Samples)
		}
	}
	one := NewStrata(scores, 0, 4)
	if _, err := Hutchinson(ctx, op.full, &Settings{MinProbes: 4, MaxProbes: 4, Strata: one}); err == nil {
		t.Error("strata on an operator that is not Sampled were accepted")
	}
	got, err := Hutchinson(ctx, op, &Settings{Seed: 2, MinProbes: 6, MaxProbes: 6, Strata: one, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Hutchinson(ctx, op.full, &Settings{Seed: 2, MinProbes: 6, MaxProbes: 6, Workers: 1, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.Blocks[0].Trace-want.Blocks[0].Trace) > 1e-9*math.Abs(want.Blocks[0].Trace) {
		t.Errorf("one whole stratum: %v, full data %v", got.Blocks[0], want.Blocks[0])
	}
}

// Hutchinson computes stratified probes in batches whose whole strata
// share one batched product (one subset per batch, not per probe): the
// same rows as one stratified product per probe (Strata.operator), for
// any batch size and number of workers.
func TestStrataBatchedProducts(t *testing.T) {
	const d, n, probes = 12, 36, 11
	per, scores := concentrated(n, d, 5)
	blocks := []Block{{"a", 0, 5}, {"b", 5, 7}}
	op := newSampledDense(per, blocks)
	st := NewStrata(scores, 3, 4)
	ctx := context.Background()
	const seed = 7
	want := make([][]float64, probes)
	for i := range want {
		v, hv := make([]float64, d), make([]float64, d)
		fillProbe(v, Rademacher, seed, streamHutchinson, i)
		p, err := st.operator(op, seed, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.HVP(ctx, hv, v); err != nil {
			t.Fatal(err)
		}
		want[i] = probeSamples(v, hv, blocks)
	}
	for _, c := range []struct{ batch, workers int }{{1, 1}, {3, 1}, {0, 1}, {0, 2}, {4, 3}} {
		op.calls = 0
		res, err := Hutchinson(ctx, op, &Settings{Seed: seed, MinProbes: probes, MaxProbes: probes, Strata: st, BatchSize: c.batch, Workers: c.workers})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Samples) != probes {
			t.Fatalf("batch %d: %d probes, want %d", c.batch, len(res.Samples), probes)
		}
		for i, row := range res.Samples {
			for b, x := range row {
				if math.Abs(x-want[i][b]) > 1e-12*(1+math.Abs(want[i][b])) {
					t.Errorf("batch %d workers %d: probe %d block %d: %v, one product per probe %v", c.batch, c.workers, i, b, x, want[i][b])
				}
			}
		}
		b := c.batch
		if b == 0 {
			b = strataBatch
		}
		if subsets := probes + (probes+b-1)/b; c.workers == 1 && op.calls != subsets {
			t.Errorf("batch %d workers %d: %d subsets, want %d (the whole stratum once per batch)", c.batch, c.workers, op.calls, subsets)
		}
	}
}

// Auto's stratified pilot and residual pilot run batched (whole strata
// shared) unless a time budget is set, and its sketch's stratified
// product is batched too (weightedSum.HVPBatch): the same estimate as
// one product per probe.
func TestStrataAutoBatched(t *testing.T) {
	const d, n = 16, 48
	per, scores := concentrated(n, d, 6)
	blocks := []Block{{"a", 0, 6}, {"b", 6, 10}}
	op := newSampledDense(per, blocks)
	st := NewStrata(scores, 4, 4)
	ctx := context.Background()
	p, err := st.operator(op, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	vs, got := make([][]float64, 3), make([][]float64, 3)
	for j := range vs {
		vs[j], got[j] = make([]float64, d), make([]float64, d)
		fillProbe(vs[j], Rademacher, 3, streamHutchinson, j)
	}
	if err := p.(BatchOperator).HVPBatch(ctx, got, vs); err != nil {
		t.Fatal(err)
	}
	for j, v := range vs {
		want := make([]float64, d)
		if err := p.HVP(ctx, want, v); err != nil {
			t.Fatal(err)
		}
		for q := range want {
			if math.Abs(got[j][q]-want[q]) > 1e-12*(1+math.Abs(want[q])) {
				t.Fatalf("stratified HVPBatch vector %d [%d] = %v, HVP %v", j, q, got[j][q], want[q])
			}
		}
	}
	for _, force := range []string{"", "a-hutch++"} {
		set := Settings{Seed: 4, Tol: 0.01, MinProbes: 10, MaxProbes: 60, Strata: st, Workers: 1}
		batched, err := auto(ctx, op, &set, force)
		if err != nil {
			t.Fatal(err)
		}
		set.TimeBudget = time.Hour // one product per pilot probe
		single, err := auto(ctx, op, &set, force)
		if err != nil {
			t.Fatal(err)
		}
		if batched.Method != single.Method || batched.Probes != single.Probes || batched.Pilot.Choice != single.Pilot.Choice {
			t.Fatalf("force %q: batched %s, %d probes, choice %s; one by one %s, %d, %s", force, batched.Method, batched.Probes, batched.Pilot.Choice, single.Method, single.Probes, single.Pilot.Choice)
		}
		for b := range blocks {
			if x, y := batched.Blocks[b].Trace, single.Blocks[b].Trace; math.Abs(x-y) > 1e-12*math.Abs(y) {
				t.Errorf("force %q block %d: batched %v, one product per probe %v", force, b, x, y)
			}
		}
	}
}
