package hessian_test

import (
	"context"
	"fmt"
	"math"

	"github.com/bitplan/bitplan/hessian"
	"gonum.org/v1/gonum/mat"
)

// tridiag returns the n×n matrix with diag[i] on the diagonal and off on
// the first off-diagonals.
func tridiag(diag []float64, off float64) *mat.SymDense {
	n := len(diag)
	m := mat.NewSymDense(n, nil)
	for i, v := range diag {
		m.SetSym(i, i, v)
		if i > 0 {
			m.SetSym(i-1, i, off)
		}
	}
	return m
}

// Hutchinson estimates every layer's trace from the same probes and stops
// when each block's standard error is below 1 % of its trace.
func ExampleHutchinson() {
	diag := make([]float64, 300)
	for i := range diag {
		diag[i] = 1 + float64(i/100) // layers with curvature 1, 2, 3
	}
	op := hessian.Dense(tridiag(diag, 0.3), []hessian.Block{
		{Name: "conv1", Offset: 0, Size: 100},
		{Name: "conv2", Offset: 100, Size: 100},
		{Name: "fc", Offset: 200, Size: 100},
	})
	res, err := hessian.Hutchinson(context.Background(), op, &hessian.Settings{Seed: 1, Tol: 0.01})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("converged:", res.Converged, "probes:", res.Probes)
	for _, b := range res.Blocks {
		// True traces are 100, 200 and 300; a 95 % interval misses the
		// truth about one time in twenty.
		fmt.Printf("%-5s trace %5.1f ± %.1f, 95%% interval [%.1f, %.1f]\n", b.Name, b.Trace, b.StdErr, b.Lo, b.Hi)
	}
	// Output:
	// converged: true probes: 39
	// conv1 trace 100.2 ± 1.0, 95% interval [98.3, 102.4]
	// conv2 trace 198.2 ± 0.8, 95% interval [196.6, 200.1]
	// fc    trace 298.4 ± 0.9, 95% interval [296.7, 300.4]
}

// Hutch++ recovers the trace of a matrix dominated by a few eigenvalues
// from few products: here the matrix has rank 3, below the sketch size, so
// the answer is exact.
func ExampleHutchPP() {
	n := 200
	u := mat.NewDense(n, 3, nil)
	for i := range n {
		x := float64(i) / float64(n)
		u.Set(i, 0, math.Sin(math.Pi*x))
		u.Set(i, 1, math.Cos(3*x))
		u.Set(i, 2, x*x-0.5)
	}
	var a mat.Dense
	a.Mul(u, u.T())
	sym := mat.NewSymDense(n, a.RawMatrix().Data)
	op := hessian.Dense(sym, nil)
	res, err := hessian.HutchPP(context.Background(), op, &hessian.SketchSettings{Matvecs: 30, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("estimate %.6f, exact %.6f, matvecs %d\n", res.Total.Trace, mat.Trace(sym), res.Matvecs)
	// Output:
	// estimate 218.687548, exact 218.687548, matvecs 30
}

// Lanczos finds the largest eigenvalues from a few dozen products.
func ExampleLanczos() {
	n := 500
	diag := make([]float64, n)
	for i := range diag {
		diag[i] = float64(i%50) / 10 // eigenvalues 0 … 4.9
	}
	diag[17], diag[300] = 12, 9
	op := hessian.Dense(tridiag(diag, 0), nil)
	res, err := hessian.Lanczos(context.Background(), op, &hessian.LanczosSettings{K: 2, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("top eigenvalues %.6f %.6f, converged %v\n", res.Values[0], res.Values[1], res.Converged)
	// Output:
	// top eigenvalues 12.000000 9.000000, converged true
}

// Density estimates the eigenvalue density by stochastic Lanczos
// quadrature; the smoothed density integrates to one and its first
// moment gives the trace.
func ExampleDensity() {
	n := 400
	diag := make([]float64, n)
	for i := range diag {
		diag[i] = -1 + 3*float64(i)/float64(n-1) // uniform on [−1, 2]
	}
	op := hessian.Dense(tridiag(diag, 0), nil)
	res, err := hessian.Density(context.Background(), op, &hessian.DensitySettings{Runs: 5, Steps: 30, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := res.Grid[1] - res.Grid[0]
	var mass float64
	for _, p := range res.Density {
		mass += p * h
	}
	trace := res.TraceOf(func(x float64) float64 { return x })
	fmt.Printf("mass %.2f, density at 0.5: %.2f (exact 1/3), trace within 5%%: %v\n",
		mass, res.At(0.5, res.Sigma), math.Abs(trace-200) < 10)
	// Output:
	// mass 1.00, density at 0.5: 0.33 (exact 1/3), trace within 5%: true
}

// Exact computes every block's trace from unit vectors, one product per
// parameter: the ground truth for small layers.
func ExampleExact() {
	op := hessian.Dense(tridiag([]float64{1, 2, 3, 4, 5, 6}, 0.5), []hessian.Block{
		{Name: "w", Offset: 0, Size: 4},
		{Name: "b", Offset: 4, Size: 2},
	})
	res, err := hessian.Exact(context.Background(), op, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range res.Blocks {
		fmt.Printf("%s: %g\n", b.Name, b.Trace)
	}
	fmt.Println("total:", res.Total.Trace, "matvecs:", res.Matvecs)
	// Output:
	// w: 10
	// b: 11
	// total: 21 matvecs: 6
}
