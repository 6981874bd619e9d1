package hessian

import (
	"context"
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// denseEigen returns the eigenvalues of m ascending (gonum's EigenSym).
func denseEigen(t *testing.T, m mat.Symmetric) []float64 {
	t.Helper()
	var es mat.EigenSym
	if !es.Factorize(m, false) {
		t.Fatal("EigenSym failed")
	}
	v := es.Values(nil)
	slices.Sort(v)
	return v
}

func TestLanczosTopK(t *testing.T) {
	ctx := context.Background()
	for _, tm := range testMatrices() {
		want := denseEigen(t, tm.m)
		n := len(want)
		for _, which := range []Which{LargestAlgebraic, SmallestAlgebraic, LargestMagnitude} {
			res, err := Lanczos(ctx, Dense(tm.m, nil), &LanczosSettings{K: 4, Which: which, MaxSteps: testDim, Seed: 5, Vectors: true})
			if err != nil {
				t.Fatal(err)
			}
			var exp []float64
			switch which {
			case LargestAlgebraic:
				exp = []float64{want[n-1], want[n-2], want[n-3], want[n-4]}
			case SmallestAlgebraic:
				exp = want[:4]
			case LargestMagnitude:
				byMag := slices.Clone(want)
				slices.SortFunc(byMag, func(a, b float64) int { return -cmpf(math.Abs(a), math.Abs(b)) })
				exp = byMag[:4]
			}
			if !res.Converged {
				t.Errorf("%s which=%d: not converged after %d steps", tm.name, which, res.Steps)
			}
			for i, v := range res.Values {
				if math.Abs(v-exp[i]) > 1e-8*math.Abs(want[n-1]) {
					t.Errorf("%s which=%d: value %d = %.12g, want %.12g", tm.name, which, i, v, exp[i])
				}
				// The residual is a true bound: check ‖Hx − θx‖ directly.
				x := mat.NewVecDense(testDim, res.Vectors[i])
				var hx mat.VecDense
				hx.MulVec(tm.m, x)
				hx.AddScaledVec(&hx, -v, x)
				if r := mat.Norm(&hx, 2); math.Abs(r-res.Residuals[i]) > 1e-8*(1+math.Abs(v)) {
					t.Errorf("%s: residual %g, reported %g", tm.name, r, res.Residuals[i])
				}
			}
		}
	}
}

func cmpf(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestLanczosEarlyStop: on the low-rank matrix the top eigenvalues
// converge in far fewer steps than Dim.
func TestLanczosEarlyStop(t *testing.T) {
	tm := testMatrices()[1]
	want := denseEigen(t, tm.m)
	c := Count(Dense(tm.m, nil))
	res, err := Lanczos(context.Background(), c, &LanczosSettings{K: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged || res.Matvecs >= testDim || int64(res.Matvecs) != c.Matvecs() {
		t.Fatalf("converged=%v matvecs=%d counted=%d", res.Converged, res.Matvecs, c.Matvecs())
	}
	for i := range 3 {
		if math.Abs(res.Values[i]-want[testDim-1-i]) > 1e-7 {
			t.Errorf("value %d = %.12g, want %.12g", i, res.Values[i], want[testDim-1-i])
		}
	}
	t.Logf("top-3 converged in %d matvecs", res.Matvecs)
}

// TestLanczosMultiple: a matrix with a repeated eigenvalue and low rank
// forces breakdowns and restarts; all eigenvalues still come out.
func TestLanczosMultiple(t *testing.T) {
	d := 30
	lam := make([]float64, d)
	for i := range 6 {
		lam[i] = 2 // multiplicity 6
	}
	lam[6], lam[7] = -1, 5
	m := fromSpectrum(lam, newTestRand(3))
	res, err := Lanczos(context.Background(), Dense(m, nil), &LanczosSettings{K: 8, MaxSteps: d})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{5, 2, 2, 2, 2, 2, 2, 0}
	for i, w := range want {
		if math.Abs(res.Values[i]-w) > 1e-9 {
			t.Errorf("value %d = %.12g, want %g (all %v)", i, res.Values[i], w, res.Values)
		}
	}
}

// TestDensityQuadratureExact: each run's Gauss rule reproduces vᵀHᵖv for
// p ≤ 2m−1 (checked against explicit powers), and TraceOf(x) equals
// Hutchinson's estimate from the same vectors.
func TestDensityQuadratureExact(t *testing.T) {
	tm := testMatrices()[0]
	const steps = 8
	res, err := Density(context.Background(), Dense(tm.m, nil), &DensitySettings{Runs: 3, Steps: steps, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	for r := range 3 {
		v := make([]float64, testDim)
		fillProbe(v, Rademacher, 2, streamLanczos, 1<<24+r)
		scaleVec(v, 1/math.Sqrt(testDim))
		x := mat.NewVecDense(testDim, v)
		pw := mat.VecDenseCopyOf(x)
		for p := 1; p <= 2*steps-1; p++ {
			pw.MulVec(tm.m, pw)
			want := mat.Dot(x, pw)
			var got float64
			for j, th := range res.Nodes[r] {
				got += res.Weights[r][j] * math.Pow(th, float64(p))
			}
			if math.Abs(got-want) > 1e-9*(1+math.Abs(want))*math.Pow(2, float64(p)) {
				t.Errorf("run %d moment %d: quadrature %.12g, want %.12g", r, p, got, want)
			}
		}
	}
	// TraceOf(x) = (1/R)Σ d·vᵀHv = Hutchinson with the same vectors.
	var hutch float64
	for r := range 3 {
		v := make([]float64, testDim)
		fillProbe(v, Rademacher, 2, streamLanczos, 1<<24+r)
		x := mat.NewVecDense(testDim, v)
		var hx mat.VecDense
		hx.MulVec(tm.m, x)
		hutch += mat.Dot(x, &hx) / 3
	}
	if got := res.TraceOf(func(x float64) float64 { return x }); math.Abs(got-hutch) > 1e-9*math.Abs(hutch) {
		t.Errorf("TraceOf(x) = %.12g, Hutchinson %.12g", got, hutch)
	}
}

// TestDensityAgainstDense compares the SLQ density with the same Gaussian
// smoothing of the exact eigenvalues: the L1 distance over the grid must be
// small, and the density must integrate to about 1.
func TestDensityAgainstDense(t *testing.T) {
	for _, tm := range testMatrices() {
		lam := denseEigen(t, tm.m)
		res, err := Density(context.Background(), Dense(tm.m, nil), &DensitySettings{Runs: 20, Steps: 40, Seed: 9, GridPoints: 400})
		if err != nil {
			t.Fatal(err)
		}
		if res.Matvecs != 20*40 {
			t.Errorf("matvecs %d, want 800", res.Matvecs)
		}
		h := res.Grid[1] - res.Grid[0]
		var l1, mass float64
		for i, x := range res.Grid {
			var exact float64
			for _, l := range lam {
				z := (x - l) / res.Sigma
				exact += math.Exp(-z*z/2) / (res.Sigma * math.Sqrt(2*math.Pi))
			}
			exact /= float64(len(lam))
			l1 += math.Abs(res.Density[i]-exact) * h
			mass += res.Density[i] * h
		}
		t.Logf("%s: sigma %.3g, L1 distance %.3f, mass %.4f", tm.name, res.Sigma, l1, mass)
		if l1 > 0.25 || math.Abs(mass-1) > 0.01 {
			t.Errorf("%s: L1 distance %.3f (want < 0.25), mass %.4f (want 1)", tm.name, l1, mass)
		}
	}
}

func TestExact(t *testing.T) {
	for _, tm := range testMatrices() {
		c := Count(Dense(tm.m, testBlocks()))
		for _, w := range []int{1, 3} {
			c.Reset()
			res, err := Exact(context.Background(), c, w)
			if err != nil {
				t.Fatal(err)
			}
			if c.Matvecs() != testDim || res.Matvecs != testDim {
				t.Errorf("matvecs %d/%d, want %d", c.Matvecs(), res.Matvecs, testDim)
			}
			for j, b := range testBlocks() {
				if want := blockTrace(tm.m, b); math.Abs(res.Blocks[j].Trace-want) > 1e-12*(1+math.Abs(want)) {
					t.Errorf("%s block %s: %.15g, want %.15g", tm.name, b.Name, res.Blocks[j].Trace, want)
				}
			}
			if want := blockTrace(tm.m, wholeBlock(tm.m)); math.Abs(res.Total.Trace-want) > 1e-12*(1+math.Abs(want)) {
				t.Errorf("%s total %.15g, want %.15g", tm.name, res.Total.Trace, want)
			}
		}
		diag, err := ExactDiagonal(context.Background(), Dense(tm.m, nil), Block{"b", 7, 5}, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range diag {
			if v != tm.m.At(7+i, 7+i) {
				t.Errorf("diag[%d] = %g, want %g", i, v, tm.m.At(7+i, 7+i))
			}
		}
	}
}

func TestSub(t *testing.T) {
	tm := testMatrices()[0]
	op := Dense(tm.m, []Block{{"a", 0, 10}, {"b1", 10, 5}, {"b2", 15, 5}, {"c", 20, 100}})
	sub, err := Sub(op, Block{"b", 10, 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.Blocks(); len(got) != 2 || got[0] != (Block{"b1", 0, 5}) || got[1] != (Block{"b2", 5, 5}) {
		t.Fatalf("sub blocks %v", got)
	}
	res, err := Exact(context.Background(), sub, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := blockTrace(tm.m, Block{"", 10, 10}); math.Abs(res.Total.Trace-want) > 1e-12 {
		t.Errorf("sub trace %.15g, want %.15g", res.Total.Trace, want)
	}
	// Eigenvalues of the sub-block against the dense sub-matrix.
	sm := mat.NewSymDense(10, nil)
	for i := range 10 {
		for j := i; j < 10; j++ {
			sm.SetSym(i, j, tm.m.At(10+i, 10+j))
		}
	}
	want := denseEigen(t, sm)
	eig, err := Lanczos(context.Background(), sub, &LanczosSettings{K: 1})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(eig.Values[0]-want[9]) > 1e-9 {
		t.Errorf("sub top eigenvalue %.12g, want %.12g", eig.Values[0], want[9])
	}
}

// TestPowerIteration: on the low-rank matrix, power iteration with
// deflation finds the top 3 eigenvalues, with more products than Lanczos
// needs for a tighter tolerance.
func TestPowerIteration(t *testing.T) {
	tm := testMatrices()[1]
	want := denseEigen(t, tm.m)
	op := Dense(tm.m, nil)
	pw, err := PowerIteration(context.Background(), op, &PowerSettings{K: 3, MaxIter: 500, Tol: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	lz, err := Lanczos(context.Background(), op, &LanczosSettings{K: 3, Tol: 1e-10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if math.Abs(pw.Values[i]-want[testDim-1-i]) > 1e-8*want[testDim-1] {
			t.Errorf("power value %d = %.10g, want %.10g", i, pw.Values[i], want[testDim-1-i])
		}
	}
	t.Logf("top-3: power iteration %d matvecs (tol 1e-5), Lanczos %d (tol 1e-10)", pw.Matvecs, lz.Matvecs)
	if !pw.Converged || pw.Matvecs <= lz.Matvecs {
		t.Errorf("power converged=%v matvecs=%d, Lanczos %d", pw.Converged, pw.Matvecs, lz.Matvecs)
	}
	// A tolerance below what deflation allows: no convergence, but the
	// third value is still a distinct eigenvalue (deflation uses unit
	// vectors even when an earlier pair did not converge).
	pw, err = PowerIteration(context.Background(), op, &PowerSettings{K: 3, MaxIter: 200, Tol: 1e-16})
	if err != nil || pw.Converged || math.Abs(pw.Values[2]-want[testDim-3]) > 1e-6*want[testDim-1] {
		t.Errorf("tight tolerance: err %v converged %v values %v", err, pw.Converged, pw.Values)
	}
	if _, err := PowerIteration(context.Background(), op, &PowerSettings{K: 500}); err == nil {
		t.Error("K > Dim: no error")
	}
}
