package hessian

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// diagCase is a 40×40 indefinite matrix in two blocks with three
// weightings (random non-negative weights, like ΔW², over part of a block,
// a whole block and a single coordinate).
func diagCase() (*DenseOperator, []Weighting, []float64) {
	rng := rand.New(rand.NewPCG(7, 7))
	h := fromSpectrum(indefiniteSpectrum(40, rng), rng)
	op := Dense(h, []Block{{Name: "a", Offset: 0, Size: 25}, {Name: "b", Offset: 25, Size: 15}})
	w1 := make([]float64, 20)
	for i := range w1 {
		w1[i] = rng.Float64() * rng.Float64()
	}
	w2 := make([]float64, 15)
	for i := range w2 {
		w2[i] = 1
	}
	ws := []Weighting{{Name: "part of a", Offset: 3, W: w1}, {Name: "trace of b", Offset: 25, W: w2}, {Name: "H_11", Offset: 11, W: []float64{1}}}
	exact := make([]float64, len(ws))
	for k, w := range ws {
		for j, c := range w.W {
			exact[k] += c * h.At(w.Offset+j, w.Offset+j)
		}
	}
	return op, ws, exact
}

// The weighted diagonal sums from the probes are unbiased: over many
// seeds, the 95 % intervals cover the exact values at about 95 % (the
// binomial band for 3 × 300 intervals is about ±1.5 points).
func TestHutchinsonDiagonalCoverage(t *testing.T) {
	op, ws, exact := diagCase()
	covered, total := 0, 0
	for seed := uint64(1); seed <= 300; seed++ {
		r, err := HutchinsonDiagonal(context.Background(), op, &Settings{Seed: seed, MinProbes: 30, MaxProbes: 30, Workers: 1}, ws)
		if err != nil {
			t.Fatal(err)
		}
		for k, e := range r.Weighted {
			total++
			if e.Lo <= exact[k] && exact[k] <= e.Hi {
				covered++
			}
		}
	}
	rate := float64(covered) / float64(total)
	if rate < 0.92 || rate > 0.98 {
		t.Fatalf("95%% intervals covered the exact weighted diagonal %d of %d times (%.3f), want within [0.92, 0.98]", covered, total, rate)
	}
}

// The standard error falls like 1/√n and the estimate converges to the
// exact diagonal; the traces are Hutchinson's, probe for probe.
func TestHutchinsonDiagonalMatchesHutchinson(t *testing.T) {
	op, ws, exact := diagCase()
	s := &Settings{Seed: 3, MinProbes: 4000, MaxProbes: 4000, Workers: 2}
	r, err := HutchinsonDiagonal(context.Background(), op, s, ws)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Hutchinson(context.Background(), op, s)
	if err != nil {
		t.Fatal(err)
	}
	for b := range h.Blocks {
		if h.Blocks[b] != r.Traces.Blocks[b] {
			t.Errorf("block %d: HutchinsonDiagonal's trace %+v differs from Hutchinson's %+v", b, r.Traces.Blocks[b], h.Blocks[b])
		}
	}
	if len(r.Samples) != 4000 {
		t.Fatalf("%d sample rows, want 4000", len(r.Samples))
	}
	for k, e := range r.Weighted {
		if math.Abs(e.Trace-exact[k]) > 4*e.StdErr {
			t.Errorf("%s: estimate %.5g ± %.2g, exact %.5g: off by more than 4 standard errors", ws[k].Name, e.Trace, e.StdErr, exact[k])
		}
	}
	// The trace of block b via the ones weighting equals the block's trace
	// samples exactly (same probes, same products).
	col := make([]float64, len(r.Samples))
	for i, row := range r.Samples {
		col[i] = row[1]
	}
	tb := make([]float64, len(r.Traces.Samples))
	for i, row := range r.Traces.Samples {
		tb[i] = row[1]
	}
	for i := range col {
		if math.Abs(col[i]-tb[i]) > 1e-12*(1+math.Abs(tb[i])) {
			t.Fatalf("probe %d: the ones weighting over block b gives %v, the trace sample is %v", i, col[i], tb[i])
		}
	}
	// 1/√n: 400 probes have about √10 times the standard error of 4000.
	r4, err := HutchinsonDiagonal(context.Background(), op, &Settings{Seed: 3, MinProbes: 400, MaxProbes: 400, Workers: 1}, ws)
	if err != nil {
		t.Fatal(err)
	}
	for k := range ws {
		if k == 1 {
			continue
		}
		ratio := r4.Weighted[k].StdErr / r.Weighted[k].StdErr
		if ratio < 2.5 || ratio > 4 {
			t.Errorf("%s: standard error ratio 400 vs 4000 probes %.2f, want about √10 = 3.16", ws[k].Name, ratio)
		}
	}
}

func TestHutchinsonDiagonalErrors(t *testing.T) {
	op, ws, _ := diagCase()
	bad := slices.Clone(ws)
	bad[0].Offset = 35
	if _, err := HutchinsonDiagonal(context.Background(), op, nil, bad); err == nil {
		t.Error("a weighting past the end was accepted")
	}
	bad = slices.Clone(ws)
	bad[2] = Weighting{Name: "nan", Offset: 0, W: []float64{math.NaN()}}
	if _, err := HutchinsonDiagonal(context.Background(), op, nil, bad); err == nil {
		t.Error("a NaN weight was accepted")
	}
}
