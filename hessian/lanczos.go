package hessian

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/gonum"
)

// breakdownTol is the relative size of a Lanczos residual β_j, compared with
// the largest |α|+β seen, below which the Krylov space is taken to be
// invariant (exact breakdown up to rounding).
const breakdownTol = 1e-10

// krylov is the state of a Lanczos run with full reorthogonalisation.
type krylov struct {
	alpha, beta []float64   // T's diagonal and sub-diagonal (β_j couples j, j+1)
	v           [][]float64 // orthonormal Lanczos vectors
	last        float64     // β after the final step (residual scale)
	scale       float64     // running max |α_j| + β_j
	matvecs     int
	exhausted   bool // the whole space R^d has been spanned
}

// step extends the Lanczos basis by one vector: w = H v_j, orthogonalised
// twice against every previous vector (classical Gram–Schmidt twice, which
// keeps V orthonormal to working precision; Parlett, "The Symmetric
// Eigenvalue Problem", §13). It returns false if the new residual is below
// breakdownTol; then k.last holds its norm and no vector is added.
func (k *krylov) step(ctx context.Context, op Operator) (bool, error) {
	j := len(k.v) - 1
	w := make([]float64, len(k.v[j]))
	if err := apply(ctx, op, w, k.v[j]); err != nil {
		return false, fmt.Errorf("hessian: Lanczos step %d: %w", j, err)
	}
	k.matvecs++
	h := make([]float64, j+1)
	for range 2 {
		c := k.orthogonalise(w)
		for i := range h {
			h[i] += c[i]
		}
	}
	a := h[j]
	b := math.Sqrt(dot(w, w))
	k.alpha = append(k.alpha, a)
	k.scale = max(k.scale, math.Abs(a)+b)
	k.last = b
	if b <= breakdownTol*k.scale {
		return false, nil
	}
	for i := range w {
		w[i] /= b
	}
	k.beta = append(k.beta, b)
	k.v = append(k.v, w)
	return true, nil
}

// orthogonalise subtracts from w its projection on every Lanczos vector and
// returns the coefficients.
func (k *krylov) orthogonalise(w []float64) []float64 {
	n, d := len(k.v), len(w)
	// The vectors are rows of an n×d matrix only conceptually; apply one
	// dot and axpy per vector with BLAS level 1.
	c := make([]float64, n)
	wv := blas64.Vector{N: d, Inc: 1, Data: w}
	for i, vi := range k.v {
		c[i] = blas64.Dot(blas64.Vector{N: d, Inc: 1, Data: vi}, wv)
	}
	for i, vi := range k.v {
		blas64.Axpy(-c[i], blas64.Vector{N: d, Inc: 1, Data: vi}, wv)
	}
	return c
}

// restart appends a new start vector orthogonal to the current basis after
// a breakdown, with a zero coupling β. It reports false when the basis
// already spans R^d.
func (k *krylov) restart(fresh []float64) bool {
	for range 2 {
		k.orthogonalise(fresh)
	}
	n := math.Sqrt(dot(fresh, fresh))
	if n <= 1e-8*math.Sqrt(float64(len(fresh))) {
		k.exhausted = true
		return false
	}
	for i := range fresh {
		fresh[i] /= n
	}
	k.beta = append(k.beta, 0)
	k.v = append(k.v, fresh)
	return true
}

// tridiagEig returns the eigenvalues (ascending) and the row-major
// eigenvector matrix z (column i is eigenvector i) of the symmetric
// tridiagonal matrix with diagonal a and sub-diagonal b, using LAPACK's
// implicit QL/QR (Dsteqr).
func tridiagEig(a, b []float64) ([]float64, []float64, error) {
	n := len(a)
	d := slices.Clone(a)
	e := make([]float64, max(n-1, 1))
	copy(e, b[:n-1])
	z := make([]float64, n*n)
	work := make([]float64, max(1, 2*n-2))
	if !(gonum.Implementation{}).Dsteqr(lapack.EVTridiag, n, d, e, z, n, work) {
		return nil, nil, fmt.Errorf("hessian: tridiagonal eigensolver did not converge (order %d)", n)
	}
	return d, z, nil
}

// Which selects the end of the spectrum Lanczos targets.
type Which int

const (
	// LargestAlgebraic selects the most positive eigenvalues (the top
	// curvature directions PyHessian reports).
	LargestAlgebraic Which = iota
	// SmallestAlgebraic selects the most negative eigenvalues.
	SmallestAlgebraic
	// LargestMagnitude selects the eigenvalues of largest |λ|.
	LargestMagnitude
)

// LanczosSettings configures Lanczos. The zero value (or nil) means all
// defaults.
type LanczosSettings struct {
	// K is the number of eigenvalues wanted (default 1).
	K int
	// Which is the end of the spectrum (default LargestAlgebraic).
	Which Which
	// MaxSteps caps the Lanczos steps, i.e. products (default
	// max(3K+40, 60), at most Dim).
	MaxSteps int
	// Tol is the convergence tolerance: a Ritz pair (θ, x) is accepted when
	// ‖Hx − θx‖ ≤ Tol·max|θ| over all Ritz values (default 1e-8).
	Tol float64
	// Seed selects the random start vector.
	Seed uint64
	// Vectors asks for the Ritz vectors.
	Vectors bool
}

// EigenResult is the outcome of Lanczos.
type EigenResult struct {
	// Values are the K selected Ritz values, most extreme first.
	Values []float64
	// Residuals[i] = ‖Hx_i − θ_i x_i‖ for unit Ritz vector x_i; some
	// eigenvalue of H lies within it of Values[i].
	Residuals []float64
	// Vectors are the unit Ritz vectors (only if asked for).
	Vectors [][]float64
	// Steps is the Krylov dimension reached; Matvecs the products used.
	Steps, Matvecs int
	// Converged reports whether every residual met the tolerance.
	Converged bool
}

// Lanczos computes extreme eigenvalues of op by the Lanczos method with full
// reorthogonalisation (Lanczos 1950; Golub and Van Loan, "Matrix
// Computations", §10.1). After j steps, H V_j = V_j T_j + β_j v_{j+1}e_jᵀ
// with T_j tridiagonal; the eigenpairs (θ, y) of T_j give Ritz pairs
// (θ, V_j y) whose residual is exactly β_j·|e_jᵀy|. Full
// reorthogonalisation avoids the spurious copies of converged eigenvalues
// ("ghosts") of the plain three-term recurrence, at O(d·j) memory. On an
// exact breakdown (an invariant subspace) it restarts with a fresh random
// vector orthogonal to the basis, so multiple eigenvalues are found too.
// Compared with PyHessian's power iteration with deflation it needs far
// fewer products for the same accuracy and returns all K values from one
// run.
//
// Like every Krylov method it cannot see eigenvectors orthogonal to the
// start vector; the random start makes that an event of probability zero,
// but a tiny overlap can delay convergence.
func Lanczos(ctx context.Context, op Operator, s *LanczosSettings) (*EigenResult, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	var set LanczosSettings
	if s != nil {
		set = *s
	}
	d := op.Dim()
	if set.K == 0 {
		set.K = 1
	}
	if set.MaxSteps == 0 {
		set.MaxSteps = max(3*set.K+40, 60)
	}
	if set.Tol == 0 {
		set.Tol = 1e-8
	}
	switch {
	case set.K < 0 || set.K > d:
		return nil, fmt.Errorf("hessian: LanczosSettings.K = %d, want 1..Dim (%d)", set.K, d)
	case set.MaxSteps < set.K:
		return nil, fmt.Errorf("hessian: LanczosSettings.MaxSteps = %d is below K = %d", set.MaxSteps, set.K)
	case !(set.Tol > 0) || math.IsInf(set.Tol, 0):
		return nil, fmt.Errorf("hessian: LanczosSettings.Tol = %v, want a positive finite value", set.Tol)
	case set.Which < LargestAlgebraic || set.Which > LargestMagnitude:
		return nil, fmt.Errorf("hessian: LanczosSettings.Which = %d, want LargestAlgebraic, SmallestAlgebraic or LargestMagnitude", set.Which)
	}
	maxSteps := min(set.MaxSteps, d)

	start := make([]float64, d)
	fillProbe(start, Rademacher, set.Seed, streamLanczos, 0)
	scaleVec(start, 1/math.Sqrt(float64(d)))
	k := &krylov{v: [][]float64{start}}
	restarts := 0
	var res *EigenResult
	for {
		ok, err := k.step(ctx, op)
		if err != nil {
			return nil, err
		}
		steps := len(k.alpha)
		if !ok && steps < maxSteps {
			restarts++
			fresh := make([]float64, d)
			fillProbe(fresh, Rademacher, set.Seed, streamLanczos, restarts)
			if k.restart(fresh) {
				continue
			}
		}
		done := !ok || steps >= maxSteps
		if done || (steps >= set.K && steps%5 == 0) {
			res, err = ritz(k, set)
			if err != nil {
				return nil, err
			}
			if done || res.Converged {
				break
			}
		}
	}
	if k.exhausted {
		// V spans R^d: T is similar to H and the Ritz values are exact.
		res.Converged = true
	}
	return res, nil
}

// ritz extracts the selected Ritz pairs from the current Lanczos state.
func ritz(k *krylov, set LanczosSettings) (*EigenResult, error) {
	n := len(k.alpha)
	theta, z, err := tridiagEig(k.alpha, k.beta)
	if err != nil {
		return nil, err
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	switch set.Which {
	case LargestAlgebraic:
		slices.Reverse(idx)
	case LargestMagnitude:
		sort.SliceStable(idx, func(a, b int) bool { return math.Abs(theta[idx[a]]) > math.Abs(theta[idx[b]]) })
	}
	var spread float64
	for _, t := range theta {
		spread = max(spread, math.Abs(t))
	}
	kk := min(set.K, n)
	res := &EigenResult{Steps: n, Matvecs: k.matvecs, Converged: kk == set.K}
	for _, i := range idx[:kk] {
		r := math.Abs(k.last * z[(n-1)*n+i])
		res.Values = append(res.Values, theta[i])
		res.Residuals = append(res.Residuals, r)
		if r > set.Tol*spread {
			res.Converged = false
		}
		if set.Vectors {
			x := make([]float64, len(k.v[0]))
			for j := range n {
				blas64.Axpy(z[j*n+i], blas64.Vector{N: len(x), Inc: 1, Data: k.v[j]}, blas64.Vector{N: len(x), Inc: 1, Data: x})
			}
			res.Vectors = append(res.Vectors, x)
		}
	}
	return res, nil
}

func scaleVec(x []float64, s float64) {
	for i := range x {
		x[i] *= s
	}
}

// DensitySettings configures Density. The zero value (or nil) means all
// defaults.
type DensitySettings struct {
	// Runs is the number of random start vectors averaged (default 10).
	Runs int
	// Steps is the number of Lanczos steps per run (default 80, at most
	// Dim). Each run costs Steps products.
	Steps int
	// Seed selects the start vectors; run r's depends only on Seed and r.
	Seed uint64
	// Workers is the number of runs computed concurrently (default
	// GOMAXPROCS).
	Workers int
	// Sigma is the standard deviation of the Gaussian smoothing kernel.
	// The default is the span of all nodes divided by Steps, about the
	// mean spacing of one run's nodes, so even one run gives a smooth
	// curve (1e-3 if the span is 0). Resolving finer detail needs a smaller
	// Sigma together with more Steps and Runs.
	Sigma float64
	// GridPoints is the number of grid points (default 1000, at least 2).
	GridPoints int
	// Min and Max bound the grid; when both are 0 the grid spans the nodes
	// extended by 3·Sigma on each side.
	Min, Max float64
}

// DensityResult is a spectral density estimated by stochastic Lanczos
// quadrature.
type DensityResult struct {
	// Nodes[r] and Weights[r] are run r's Gauss quadrature rule: the
	// eigenvalues θ_j of T (ascending) and τ_j = (e₁ᵀy_j)², which sum to 1.
	Nodes, Weights [][]float64
	// Grid and Density sample the smoothed density
	// φ(t) = (1/R) Σ_r Σ_j τ_rj·N(t; θ_rj, Sigma²), which integrates to 1
	// (multiply by Dim for an eigenvalue count per unit).
	Grid, Density []float64
	// Sigma is the kernel width used.
	Sigma float64
	// Dim is the operator's dimension; Matvecs the products used.
	Dim, Matvecs int
}

// At evaluates the smoothed density at t with kernel width sigma (use
// r.Sigma for the one on the grid).
func (r *DensityResult) At(t, sigma float64) float64 {
	var s float64
	for i, nodes := range r.Nodes {
		for j, th := range nodes {
			z := (t - th) / sigma
			s += r.Weights[i][j] * math.Exp(-z*z/2)
		}
	}
	return s / (float64(len(r.Nodes)) * sigma * math.Sqrt(2*math.Pi))
}

// TraceOf returns the stochastic Lanczos quadrature estimate of tr(f(H)),
// Dim·(1/R)·Σ_r Σ_j τ_rj f(θ_rj) (Ubaru, Chen and Saad 2017). For f(x) = x
// it equals Hutchinson's estimate with the same (normalised Rademacher)
// start vectors.
func (r *DensityResult) TraceOf(f func(float64) float64) float64 {
	var s float64
	for i, nodes := range r.Nodes {
		for j, th := range nodes {
			s += r.Weights[i][j] * f(th)
		}
	}
	return float64(r.Dim) * s / float64(len(r.Nodes))
}

// Density estimates the spectral density of op by stochastic Lanczos
// quadrature (Lin, Saad and Yang, "Approximating spectral densities of large
// matrices", SIAM Review 2016; Ghorbani, Krishnan and Xiao, "An
// investigation into neural net optimization via Hessian eigenvalue
// density", ICML 2019, as in PyHessian). For a unit random start vector v,
// m Lanczos steps give T_m = YΘYᵀ and the m-node Gauss rule
//
//	vᵀ f(H) v ≈ Σ_j τ_j f(θ_j),   τ_j = (e₁ᵀ y_j)²,
//
// exact for polynomials of degree up to 2m−1. Averaging over R start
// vectors and replacing f by a Gaussian kernel gives the smoothed density
// φ(t) ≈ (1/d) Σ_i N(t; λ_i, σ²). Each run uses full reorthogonalisation;
// on an exact breakdown the rule is already exact and the run stops early.
func Density(ctx context.Context, op Operator, s *DensitySettings) (*DensityResult, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	var set DensitySettings
	if s != nil {
		set = *s
	}
	d := op.Dim()
	if set.Runs == 0 {
		set.Runs = 10
	}
	if set.Steps == 0 {
		set.Steps = 80
	}
	if set.GridPoints == 0 {
		set.GridPoints = 1000
	}
	switch {
	case set.Runs < 1:
		return nil, fmt.Errorf("hessian: DensitySettings.Runs = %d, want >= 1", set.Runs)
	case set.Steps < 1:
		return nil, fmt.Errorf("hessian: DensitySettings.Steps = %d, want >= 1", set.Steps)
	case set.GridPoints < 2:
		return nil, fmt.Errorf("hessian: DensitySettings.GridPoints = %d, want >= 2", set.GridPoints)
	case set.Sigma < 0 || math.IsNaN(set.Sigma) || math.IsInf(set.Sigma, 0):
		return nil, fmt.Errorf("hessian: DensitySettings.Sigma = %v, want a finite value >= 0", set.Sigma)
	case set.Min > set.Max || math.IsNaN(set.Min) || math.IsNaN(set.Max) || math.IsInf(set.Min, 0) || math.IsInf(set.Max, 0):
		return nil, fmt.Errorf("hessian: DensitySettings grid [%v, %v] is not a finite interval", set.Min, set.Max)
	case set.Min == set.Max && set.Min != 0:
		return nil, fmt.Errorf("hessian: DensitySettings grid [%v, %v] is empty", set.Min, set.Max)
	}
	steps := min(set.Steps, d)

	res := &DensityResult{Dim: d, Nodes: make([][]float64, set.Runs), Weights: make([][]float64, set.Runs)}
	matvecs := make([]int, set.Runs)
	errs := make([]error, set.Runs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workerCount(set.Workers, set.Runs) {
		wg.Go(func() {
			for r := range jobs {
				nodes, weights, mv, err := slqRun(ctx, op, set.Seed, r, steps)
				res.Nodes[r], res.Weights[r], matvecs[r], errs[r] = nodes, weights, mv, err
				if err != nil {
					cancel()
				}
			}
		})
	}
	for r := range set.Runs {
		jobs <- r
	}
	close(jobs)
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("hessian: Density run %d: %w", r, err)
		}
		res.Matvecs += matvecs[r]
	}

	lo, hi := math.Inf(1), math.Inf(-1)
	for _, nodes := range res.Nodes {
		lo, hi = min(lo, nodes[0]), max(hi, nodes[len(nodes)-1])
	}
	res.Sigma = set.Sigma
	if res.Sigma == 0 {
		res.Sigma = (hi - lo) / float64(steps)
		if res.Sigma == 0 {
			res.Sigma = 1e-3
		}
	}
	if set.Min == 0 && set.Max == 0 {
		set.Min, set.Max = lo-3*res.Sigma, hi+3*res.Sigma
	}
	res.Grid = make([]float64, set.GridPoints)
	res.Density = make([]float64, set.GridPoints)
	for i := range res.Grid {
		t := set.Min + (set.Max-set.Min)*float64(i)/float64(set.GridPoints-1)
		res.Grid[i] = t
		res.Density[i] = res.At(t, res.Sigma)
	}
	return res, nil
}

// slqRun performs one Lanczos run from start vector r and returns its
// quadrature nodes and weights.
func slqRun(ctx context.Context, op Operator, seed uint64, r, steps int) ([]float64, []float64, int, error) {
	d := op.Dim()
	start := make([]float64, d)
	fillProbe(start, Rademacher, seed, streamLanczos, 1<<24+r)
	scaleVec(start, 1/math.Sqrt(float64(d)))
	k := &krylov{v: [][]float64{start}}
	for len(k.alpha) < steps {
		ok, err := k.step(ctx, op)
		if err != nil {
			return nil, nil, k.matvecs, err
		}
		if !ok {
			break
		}
	}
	theta, z, err := tridiagEig(k.alpha, k.beta)
	if err != nil {
		return nil, nil, k.matvecs, err
	}
	n := len(theta)
	w := make([]float64, n)
	for j := range w {
		w[j] = z[j] * z[j] // first row of the eigenvector matrix
	}
	return theta, w, k.matvecs, nil
}
