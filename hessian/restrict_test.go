package hessian

import (
	"context"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestRestrict: the restriction is the principal submatrix on the blocks
// (checked entry by entry through unit vectors), its blocks are renumbered
// contiguously, batched and single products agree, its total trace is the
// blocks' sum, and Subset restricts the subset operator.
func TestRestrict(t *testing.T) {
	ctx := context.Background()
	m := testMatrices()[0].m
	blocks := testBlocks() // a gap [80, 90) outside every block
	op, err := Restrict(Dense(m, blocks), blocks)
	if err != nil {
		t.Fatal(err)
	}
	if op.Dim() != 110 {
		t.Fatalf("Dim %d, want 110", op.Dim())
	}
	want := []Block{{"a", 0, 30}, {"b", 30, 50}, {"c", 80, 30}}
	for j, b := range op.Blocks() {
		if b != want[j] {
			t.Fatalf("block %d: %+v, want %+v", j, b, want[j])
		}
	}
	// index maps a coordinate of op to one of m.
	index := func(i int) int {
		if i >= 80 {
			return i + 10
		}
		return i
	}
	bop := op.(BatchOperator)
	for i := 0; i < op.Dim(); i += 7 {
		e := make([]float64, op.Dim())
		e[i] = 1
		got := make([]float64, op.Dim())
		if err := op.HVP(ctx, got, e); err != nil {
			t.Fatal(err)
		}
		batch := [][]float64{make([]float64, op.Dim()), make([]float64, op.Dim())}
		if err := bop.HVPBatch(ctx, batch, [][]float64{e, e}); err != nil {
			t.Fatal(err)
		}
		for k := range got {
			if w := m.At(index(k), index(i)); got[k] != w || batch[1][k] != w {
				t.Fatalf("H_WW[%d][%d] = %g (batched %g), want %g", k, i, got[k], batch[1][k], w)
			}
		}
	}
	ex, err := Exact(ctx, op, 1)
	if err != nil {
		t.Fatal(err)
	}
	var sumBlocks float64
	for j, b := range blocks {
		tr := blockTrace(m, b)
		sumBlocks += tr
		if math.Abs(ex.Blocks[j].Trace-tr) > 1e-9 {
			t.Errorf("block %s: trace %g, want %g", b.Name, ex.Blocks[j].Trace, tr)
		}
	}
	if math.Abs(ex.Total.Trace-sumBlocks) > 1e-9 {
		t.Errorf("total %g, want the blocks' %g", ex.Total.Trace, sumBlocks)
	}
	if _, ok := op.(Sampled); ok {
		t.Error("restriction of a dense operator claims to be Sampled")
	}

	// Sampled: Subset of the restriction is the restriction of the subset.
	per := perSampleMatrices(6, 30, 0.3, 2)
	sblocks := []Block{{"x", 0, 10}, {"y", 20, 10}}
	sop, err := Restrict(newSampledDense(per, sblocks), sblocks)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := sop.(Sampled)
	if !ok || s.Samples() != 6 {
		t.Fatalf("restriction of a Sampled operator: %T", sop)
	}
	sub, err := s.Subset([]int{1, 4})
	if err != nil {
		t.Fatal(err)
	}
	mean := meanOf(per, []int{1, 4})
	e := make([]float64, 20)
	e[12] = 1 // coordinate 22 of the samples' matrices
	got := make([]float64, 20)
	if err := sub.HVP(ctx, got, e); err != nil {
		t.Fatal(err)
	}
	if w := mean.At(3, 22); math.Abs(got[3]-w) > 1e-12 {
		t.Errorf("subset product %g, want %g", got[3], w)
	}
	if _, err := s.Subset([]int{4, 1}); err == nil {
		t.Error("a bad subset was accepted")
	}

	for _, bad := range [][]Block{nil, {{"z", 100, 30}}, {{"p", 0, 10}, {"q", 5, 10}}} {
		if _, err := Restrict(Dense(m, blocks), bad); err == nil || !strings.Contains(err.Error(), "Restrict") {
			t.Errorf("blocks %v: error %v", bad, err)
		}
	}
}

// TestRestrictVariance: probes zero off the blocks remove the cross terms
// with the coordinates outside them from every block's Hutchinson sample.
// For Rademacher probes on the coordinates S, x_b = Σ_{i∈b} Σ_{j∈S} v_i v_j
// H_ij has variance Σ_{i∈b} Σ_{j∈S, j≠i} H_ij²·(1 + [j∈b]) (the products
// v_i v_j of distinct pairs are uncorrelated; a pair inside b appears
// twice): S is every coordinate for the operator, the blocks for its
// restriction.
func TestRestrictVariance(t *testing.T) {
	const d = 40
	rng := newTestRand(5)
	// Blocks [0, 15) and [20, 40); coordinates 15..19 (the "biases")
	// couple strongly to everything.
	m := mat.NewSymDense(d, nil)
	for i := range d {
		for j := i; j < d; j++ {
			v := 0.1 * rng.NormFloat64()
			if (i >= 15 && i < 20) || (j >= 15 && j < 20) {
				v *= 10
			}
			m.SetSym(i, j, v)
		}
	}
	blocks := []Block{{"w1", 0, 15}, {"w2", 20, 20}}
	closed := func(b Block, in func(int) bool) float64 {
		var v float64
		for i := b.Offset; i < b.End(); i++ {
			for j := range d {
				if j == i || !in(j) {
					continue
				}
				h := m.At(i, j)
				if j >= b.Offset && j < b.End() {
					v += 2 * h * h // the pair (i, j) counted twice within b
				} else {
					v += h * h
				}
			}
		}
		return v
	}
	all := func(int) bool { return true }
	inBlocks := func(j int) bool { return j < 15 || j >= 20 }
	ctx := context.Background()
	const probes = 4000
	full, err := Hutchinson(ctx, Dense(m, blocks), &Settings{Seed: 1, MinProbes: probes, MaxProbes: probes})
	if err != nil {
		t.Fatal(err)
	}
	rop, err := Restrict(Dense(m, blocks), blocks)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Hutchinson(ctx, rop, &Settings{Seed: 1, MinProbes: probes, MaxProbes: probes})
	if err != nil {
		t.Fatal(err)
	}
	for j, b := range blocks {
		vf := closed(b, all)
		vr := closed(b, inBlocks)
		gotF := full.Blocks[j].StdErr * full.Blocks[j].StdErr * probes
		gotR := res.Blocks[j].StdErr * res.Blocks[j].StdErr * probes
		t.Logf("block %s: per-probe variance %.4g (closed form %.4g) with all coordinates probed, %.4g (%.4g) restricted", b.Name, gotF, vf, gotR, vr)
		// The sample variance of 4,000 probes is within about ±10 %.
		if math.Abs(gotF/vf-1) > 0.15 || math.Abs(gotR/vr-1) > 0.15 {
			t.Errorf("block %s: variances %.4g and %.4g, closed forms %.4g and %.4g", b.Name, gotF, gotR, vf, vr)
		}
		if vr > vf/2 {
			t.Errorf("block %s: restriction leaves %.4g of %.4g", b.Name, vr, vf)
		}
	}
}
