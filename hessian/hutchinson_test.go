package hessian

import (
	"context"
	"math"
	"reflect"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// hideBatch hides an operator's HVPBatch method.
func hideBatch(op Operator) Operator {
	return &Func{N: op.Dim(), Parts: op.Blocks(), Multiply: op.HVP}
}

// TestReproducible: results, including the adaptive stopping point, do not
// depend on the worker count, for batch and plain operators.
func TestReproducible(t *testing.T) {
	tm := testMatrices()[0]
	for _, op := range []Operator{Dense(tm.m, testBlocks()), hideBatch(Dense(tm.m, testBlocks()))} {
		var ref *TraceResult
		for _, w := range []int{1, 2, 5} {
			res, err := Hutchinson(context.Background(), op, &Settings{Seed: 4, Tol: 0.05, MaxProbes: 400, Workers: w})
			if err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = res
				if !res.Converged || res.Probes <= 10 || res.Probes >= 400 {
					t.Fatalf("adaptive run: converged=%v probes=%d; pick a tolerance that stops mid-way", res.Converged, res.Probes)
				}
				continue
			}
			if res.Probes != ref.Probes || !reflect.DeepEqual(res.Samples, ref.Samples) || !reflect.DeepEqual(res.Blocks, ref.Blocks) {
				t.Errorf("workers=%d: %d probes, blocks %v; workers=1: %d probes, blocks %v", w, res.Probes, res.Blocks, ref.Probes, ref.Blocks)
			}
			if res.Matvecs < res.Probes {
				t.Errorf("matvecs %d below probes %d", res.Matvecs, res.Probes)
			}
		}
	}
	for _, f := range []func(context.Context, Operator, *SketchSettings) (*TraceResult, error){HutchPP, NAHutchPP, XTrace} {
		a, err1 := f(context.Background(), Dense(tm.m, testBlocks()), &SketchSettings{Seed: 3, Workers: 1})
		b, err2 := f(context.Background(), Dense(tm.m, testBlocks()), &SketchSettings{Seed: 3, Workers: 4})
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: result depends on workers", a.Method)
		}
	}
}

// TestAdaptiveRule checks the stopping rule on its own terms: when it
// stops, every block meets SE ≤ Tol·max(|t|, s_b); Progress sees probes 1..n
// in order; and a block with exactly zero trace (cancelling eigenvalues)
// still converges thanks to the near-zero rule.
func TestAdaptiveRule(t *testing.T) {
	rng := newTestRand(21)
	d := 60
	m := diagDominant(d, rng)
	// Block "zero" gets diagonal ±2 alternating: trace 0, indefinite.
	for i := 40; i < 60; i++ {
		m.SetSym(i, i, 2*float64(1-2*(i%2)))
	}
	blocks := []Block{{"pos", 0, 40}, {"zero", 40, 20}}
	var seen []int
	var last Progress
	const tol = 0.01
	res, err := Hutchinson(context.Background(), Dense(m, blocks), &Settings{Tol: tol, MaxProbes: 5000, Seed: 1,
		Progress: func(p Progress) { seen = append(seen, p.Probes); last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged || res.Probes == 5000 {
		t.Fatalf("did not converge: %d probes", res.Probes)
	}
	for i, n := range seen {
		if n != i+1 {
			t.Fatalf("progress sequence %v", seen[:i+1])
		}
	}
	if len(seen) != res.Probes || last.WorstRelErr > tol {
		t.Errorf("progress calls %d for %d probes; last worst %.4g", len(seen), res.Probes, last.WorstRelErr)
	}
	var sumAbs float64
	for _, e := range res.Blocks {
		sumAbs += math.Abs(e.Trace)
	}
	for _, e := range res.Blocks {
		floor := 0.1 * float64(e.Size) * sumAbs / float64(d)
		if e.StdErr > tol*max(math.Abs(e.Trace), floor)*(1+1e-12) {
			t.Errorf("block %s: SE %.4g exceeds %.4g", e.Name, e.StdErr, tol*max(math.Abs(e.Trace), floor))
		}
	}
	// AbsTol alone can also satisfy the rule.
	res2, err := Hutchinson(context.Background(), Dense(m, blocks), &Settings{Tol: 1e-9, AbsTol: 1, MaxProbes: 5000})
	if err != nil || !res2.Converged {
		t.Fatalf("AbsTol run: %v, converged %v", err, res2 != nil && res2.Converged)
	}
	for _, e := range res2.Blocks {
		if e.StdErr > 1 {
			t.Errorf("AbsTol: block %s SE %.4g > 1", e.Name, e.StdErr)
		}
	}
	// Hitting MaxProbes is not an error, just not converged.
	res4, err := Hutchinson(context.Background(), Dense(m, blocks), &Settings{Tol: 1e-9, MinProbes: 3, MaxProbes: 5})
	if err != nil || res4.Converged || res4.Probes != 5 || len(res4.Samples) != 5 {
		t.Fatalf("MaxProbes run: %v %+v", err, res4)
	}
	// Without blocks the whole trace is tracked.
	res3, err := Hutchinson(context.Background(), Dense(m, nil), &Settings{Tol: 0.01})
	if err != nil || !res3.Converged || res3.Total.StdErr > 0.01*math.Abs(res3.Total.Trace) || len(res3.Blocks) != 0 {
		t.Fatalf("no blocks: %v %+v", err, res3)
	}
}

// TestZeroMatrix: every method returns zero traces and eigenvalues for
// H = 0 without NaNs.
func TestZeroMatrix(t *testing.T) {
	z := Dense(mat.NewSymDense(12, nil), []Block{{"a", 0, 6}})
	ctx := context.Background()
	for _, est := range estimators() {
		res, err := est.run(ctx, z, 1, 12)
		if err != nil || res.Total.Trace != 0 || res.Blocks[0].Trace != 0 || res.Total.StdErr != 0 {
			t.Errorf("%s: %v %+v", est.name, err, res)
		}
	}
	eig, err := Lanczos(ctx, z, &LanczosSettings{K: 2})
	if err != nil || eig.Values[0] != 0 || !eig.Converged {
		t.Errorf("Lanczos: %v %+v", err, eig)
	}
	den, err := Density(ctx, z, nil)
	if err != nil || math.IsNaN(den.Density[0]) {
		t.Errorf("Density: %v", err)
	}
}

// TestProbeDistributions: Gaussian and sphere probes are unbiased too, and
// sphere probes have norm √d.
func TestProbeDistributions(t *testing.T) {
	tm := testMatrices()[2]
	want := blockTrace(tm.m, wholeBlock(tm.m))
	for _, p := range []Distribution{Gaussian, Sphere} {
		res, err := Hutchinson(context.Background(), Dense(tm.m, nil), &Settings{Probe: p, MinProbes: 400, MaxProbes: 400})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res.Total.Trace-want) > 4*res.Total.StdErr {
			t.Errorf("%v: %.6g ± %.3g, want %.6g", p, res.Total.Trace, res.Total.StdErr, want)
		}
	}
	v := make([]float64, 50)
	fillProbe(v, Sphere, 1, streamHutchinson, 3)
	if n := math.Sqrt(dot(v, v)); math.Abs(n-math.Sqrt(50)) > 1e-12 {
		t.Errorf("sphere probe norm %g", n)
	}
	if Distribution(9).String() != "Distribution(9)" || Sphere.String() != "sphere" {
		t.Error("Distribution.String")
	}
}

// TestBatchMatchesSingle: the Dense batch product agrees with single
// products, and Counter counts both paths.
func TestBatchMatchesSingle(t *testing.T) {
	tm := testMatrices()[1]
	op := Dense(tm.m, nil)
	c := Count(hideBatch(op))
	v := make([][]float64, 3)
	a, b := make([][]float64, 3), make([][]float64, 3)
	for j := range v {
		v[j] = make([]float64, testDim)
		fillProbe(v[j], Gaussian, 1, streamHutchinson, j)
		a[j], b[j] = make([]float64, testDim), make([]float64, testDim)
	}
	ctx := context.Background()
	if err := op.HVPBatch(ctx, a, v); err != nil {
		t.Fatal(err)
	}
	if err := c.HVPBatch(ctx, b, v); err != nil {
		t.Fatal(err)
	}
	for j := range v {
		for i := range a[j] {
			if math.Abs(a[j][i]-b[j][i]) > 1e-10 {
				t.Fatalf("batch[%d][%d] = %g, single %g", j, i, a[j][i], b[j][i])
			}
		}
	}
	if c.Matvecs() != 3 {
		t.Errorf("counted %d, want 3", c.Matvecs())
	}
}

// TestResample: the bootstrap standard deviation of the block means agrees
// with the analytic standard error, and replicates keep the shape.
func TestResample(t *testing.T) {
	tm := testMatrices()[0]
	res, err := Hutchinson(context.Background(), Dense(tm.m, testBlocks()), &Settings{MinProbes: 200, MaxProbes: 200, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	rng := newTestRand(12)
	const reps = 400
	means := make([][]float64, len(res.Blocks))
	for range reps {
		rep, err := res.Resample(rng)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Blocks) != len(res.Blocks) || rep.Blocks[1].Name != "b" || rep.Total.Size != testDim {
			t.Fatalf("replicate shape %+v", rep)
		}
		for j, e := range rep.Blocks {
			means[j] = append(means[j], e.Trace)
		}
	}
	for j, e := range res.Blocks {
		_, sd := stat.MeanStdDev(means[j], nil)
		// Bootstrap SD uses the 1/n variance: ratio √((n−1)/n) ≈ 1, and its
		// Monte-Carlo error with 400 replicates is about 4 %.
		if r := sd / e.StdErr; r < 0.85 || r > 1.15 {
			t.Errorf("block %s: bootstrap SD %.4g vs SE %.4g", e.Name, sd, e.StdErr)
		}
	}
	ex, _ := Exact(context.Background(), Dense(tm.m, nil), 1)
	if _, err := ex.Resample(rng); err == nil {
		t.Error("Resample of an exact result: no error")
	}
}
