package hessian

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat"
)

// mixedRows is an estimate with the row structure of the activation
// traces (eval.ActivationTerm): a pilot of 4 rows over all N samples,
// continued by HutchinsonRowsFrom with Horvitz–Thompson rows of a Poisson
// design, every row with its own probe noise. x[s][k] are the per-sample
// values of the blocks (fixed), sd the probe noise of a row.
func mixedRows(t *testing.T, seed uint64, x [][]float64, d Poisson, sd float64, probes int) *TraceResult {
	t.Helper()
	n := float64(len(x))
	nb := len(x[0])
	blocks := make([]Block, nb)
	for k := range blocks {
		blocks[k] = Block{Name: string(rune('a' + k)), Offset: k, Size: 1}
	}
	noise := func(i int, row []float64) []float64 {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		for k := range row {
			row[k] += sd * r.NormFloat64()
		}
		return row
	}
	full := func(_ context.Context, i int) ([]float64, error) {
		row := make([]float64, nb)
		for _, xs := range x {
			for k, v := range xs {
				row[k] += v / n
			}
		}
		return noise(i, row), nil
	}
	d.Seed = seed // each estimate its own batches
	ht := func(_ context.Context, i int) ([]float64, error) {
		row := make([]float64, nb)
		idx, w := d.Draw(i)
		for j, s := range idx {
			for k, v := range x[s] {
				row[k] += w[j] * v / n
			}
		}
		return noise(i, row), nil
	}
	set := &Settings{Seed: seed, MinProbes: 4, MaxProbes: 4}
	pilot, extra, err := HutchinsonRows(context.Background(), blocks, set, full)
	if err != nil {
		t.Fatal(err)
	}
	set.MinProbes, set.MaxProbes = probes, probes
	res, _, err := HutchinsonRowsFrom(context.Background(), blocks, set, pilot, extra, ht)
	if err != nil {
		t.Fatal(err)
	}
	if res.Probes != probes {
		t.Fatalf("%d probes, want %d", res.Probes, probes)
	}
	return res
}

// mixedDesign returns per-sample values of two blocks (heavy-tailed, a few
// samples carrying most of the trace, as activation curvature does) and
// a Poisson design over them (its Seed set per estimate) with inclusion probabilities growing with
// the values, some 1.
func mixedDesign() ([][]float64, Poisson) {
	r := rand.New(rand.NewPCG(5, 5))
	const n = 64
	x := make([][]float64, n)
	d := Poisson{Pi: make([]float64, n)}
	for s := range x {
		a := math.Exp(1.2 * r.NormFloat64())
		x[s] = []float64{a, a*0.5 + math.Exp(r.NormFloat64())}
		d.Pi[s] = min(1, 0.08+0.15*a)
	}
	return x, d
}

// TestResampleMixedRows: the bootstrap replicates of an estimate whose
// rows mix full-data pilot rows with Horvitz–Thompson rows (independent,
// common mean, different variances) have the right mean and variance.
//
// Over one estimate's rows, a replicate's block mean has mean x̄ and
// variance V = (1/n²) Σ_i (x_i − x̄)² exactly; 4,000 replicates check both
// at 4.5 standard errors of the Monte-Carlo estimate (the variance's from
// the rows' kurtosis). Over 300 independent estimates (seeds), V averages
// (n−1)/n · Var(x̄), with Var(x̄) = (4σ_p² + (n−4)σ_HT²)/n² from the
// design (σ_p² the probe noise, σ_HT² = σ_p² + (1/N²) Σ_s x_s²(1/π_s − 1),
// hessian.Poisson): checked at 4.5 standard errors of the 300 values'
// mean (whose standard error is 1.7 % of it here, so a variance 8 % off
// fails, one computed as if every row had the pilot's variance is 4×
// off). Each of the 3 checks per block fails with probability about
// 7·10⁻⁶ when the bootstrap is right (normal approximation), about 4·10⁻⁵
// for the test.
func TestResampleMixedRows(t *testing.T) {
	x, d := mixedDesign()
	const sd, probes = 0.08, 40
	nf := float64(probes)
	// One estimate: replicates against their exact moments.
	res := mixedRows(t, 1, x, d, sd, probes)
	rng := newTestRand(3)
	const reps = 4000
	means := make([][]float64, len(res.Blocks))
	for range reps {
		rep, err := res.Resample(rng)
		if err != nil {
			t.Fatal(err)
		}
		for k, e := range rep.Blocks {
			means[k] = append(means[k], e.Trace)
		}
	}
	for k, e := range res.Blocks {
		var m2, m4 float64
		for _, row := range res.Samples {
			dv := row[k] - e.Trace
			m2 += dv * dv / nf
			m4 += dv * dv * dv * dv / nf
		}
		v := m2 / nf                 // the replicate mean's variance
		kurt := m4/(m2*m2)/nf - 3/nf // its excess kurtosis, κ_row/n
		mean, sdv := stat.MeanStdDev(means[k], nil)
		if z := (mean - e.Trace) / math.Sqrt(v/reps); math.Abs(z) > 4.5 {
			t.Errorf("block %s: replicates' mean %.6g, estimate %.6g (z = %.2f)", e.Name, mean, e.Trace, z)
		}
		seVar := v * math.Sqrt(2/float64(reps-1)+kurt/reps)
		if z := (sdv*sdv - v) / seVar; math.Abs(z) > 4.5 {
			t.Errorf("block %s: replicates' variance %.6g, (1/n²)Σ(x−x̄)² = %.6g (z = %.2f)", e.Name, sdv*sdv, v, z)
		}
	}
	// ResampleRows and ColumnMeans make Resample's replicate.
	r1, r2 := newTestRand(4), newTestRand(4)
	rep, _ := res.Resample(r1)
	if m := ColumnMeans(res.Samples, ResampleRows(r2, len(res.Samples))); math.Abs(m[0]-rep.Blocks[0].Trace) > 1e-12*math.Abs(m[0]) || math.Abs(m[1]-rep.Blocks[1].Trace) > 1e-12*math.Abs(m[1]) {
		t.Errorf("ColumnMeans of ResampleRows %v, Resample's blocks %v, %v", m, rep.Blocks[0].Trace, rep.Blocks[1].Trace)
	}
	// Many estimates: the bootstrap variance against the design's.
	const runs, per = 300, 100
	nx := float64(len(x))
	vs := make([][]float64, len(res.Blocks))
	for r := range runs {
		est := mixedRows(t, uint64(100+r), x, d, sd, probes)
		rr := newTestRand(uint64(1000 + r))
		ms := make([][]float64, len(res.Blocks))
		for range per {
			for k, m := range ColumnMeans(est.Samples, ResampleRows(rr, probes)) {
				ms[k] = append(ms[k], m)
			}
		}
		for k := range vs {
			vs[k] = append(vs[k], stat.Variance(ms[k], nil))
		}
	}
	for k := range res.Blocks {
		varHT := sd * sd
		for s, xs := range x {
			varHT += xs[k] * xs[k] * (1/d.Pi[s] - 1) / (nx * nx)
		}
		// The design must make the rows differ, or the test would not
		// see a resampler that ignores the difference.
		if varHT < 4*sd*sd {
			t.Fatalf("block %d: HT rows' variance %.3g is not well above the pilot's %.3g", k, varHT, sd*sd)
		}
		want := (nf - 1) / nf * (4*sd*sd + (nf-4)*varHT) / (nf * nf)
		mean, sdv := stat.MeanStdDev(vs[k], nil)
		if z := (mean - want) / (sdv / math.Sqrt(runs)); math.Abs(z) > 4.5 {
			t.Errorf("block %d: bootstrap variance %.5g averaged over %d estimates, design's (n−1)/n·Var(x̄) %.5g (z = %.2f)", k, mean, runs, want, z)
		}
	}
}
