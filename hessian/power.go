package hessian

import (
	"context"
	"fmt"
	"math"
)

// PowerSettings configures PowerIteration. The zero value (or nil) means
// all defaults.
type PowerSettings struct {
	// K is the number of eigenvalues wanted (default 1).
	K int
	// MaxIter caps the iterations per eigenvalue (default 100, PyHessian's
	// default).
	MaxIter int
	// Tol: an eigenpair is accepted when ‖Hv − λv‖ ≤ Tol·max(|λ|, |λ₁|),
	// λ₁ being the first (largest) eigenvalue found (default 1e-4), the
	// same scale Lanczos uses. PyHessian instead stops on the relative change of λ, which
	// does not bound the error.
	Tol float64
	// Seed selects the start vectors.
	Seed uint64
}

// PowerIteration computes the K eigenvalues of largest magnitude of op by
// power iteration with deflation (each iterate is orthogonalised against
// the eigenvectors already found), the method PyHessian uses for the top
// Hessian eigenvalue (Yao, Gholami, Keutzer and Mahoney, "PyHessian", 2020).
// It is offered as a baseline: Lanczos reaches the same accuracy with far
// fewer products, especially when the top eigenvalues are close, and its
// later eigenpairs are only as accurate as the earlier ones they are
// deflated against (residuals stall near the earlier residuals). Values are
// ordered as found (normally by decreasing magnitude); Converged is false
// if some pair missed Tol within MaxIter.
func PowerIteration(ctx context.Context, op Operator, s *PowerSettings) (*EigenResult, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	var set PowerSettings
	if s != nil {
		set = *s
	}
	d := op.Dim()
	if set.K == 0 {
		set.K = 1
	}
	if set.MaxIter == 0 {
		set.MaxIter = 100
	}
	if set.Tol == 0 {
		set.Tol = 1e-4
	}
	switch {
	case set.K < 0 || set.K > d:
		return nil, fmt.Errorf("hessian: PowerSettings.K = %d, want 1..Dim (%d)", set.K, d)
	case set.MaxIter < 1:
		return nil, fmt.Errorf("hessian: PowerSettings.MaxIter = %d, want >= 1", set.MaxIter)
	case !(set.Tol > 0) || math.IsInf(set.Tol, 0):
		return nil, fmt.Errorf("hessian: PowerSettings.Tol = %v, want a positive finite value", set.Tol)
	}
	k := &krylov{} // reuse its orthogonalisation over found vectors
	res := &EigenResult{Converged: true}
	hv := make([]float64, d)
	for e := range set.K {
		v := make([]float64, d)
		fillProbe(v, Rademacher, set.Seed, streamLanczos, 1<<25+e)
		var lambda, r float64
		ok := false
		for it := 0; it < set.MaxIter; it++ {
			k.orthogonalise(v)
			k.orthogonalise(v)
			n := math.Sqrt(dot(v, v))
			if n == 0 {
				break // v lies in the span of the found vectors
			}
			scaleVec(v, 1/n)
			if err := apply(ctx, op, hv, v); err != nil {
				return nil, fmt.Errorf("hessian: PowerIteration eigenvalue %d: %w", e, err)
			}
			res.Matvecs++
			lambda = dot(v, hv)
			var rr float64
			for i := range hv {
				x := hv[i] - lambda*v[i]
				rr += x * x
			}
			r = math.Sqrt(rr)
			scale := math.Abs(lambda)
			if len(res.Values) > 0 {
				scale = max(scale, math.Abs(res.Values[0]))
			}
			if r <= set.Tol*scale || rr == 0 {
				ok = true
				break
			}
			if it == set.MaxIter-1 {
				break // keep the unit iterate v that λ and r describe
			}
			copy(v, hv)
		}
		if !ok {
			res.Converged = false
		}
		res.Values = append(res.Values, lambda)
		res.Residuals = append(res.Residuals, r)
		res.Vectors = append(res.Vectors, v)
		k.v = append(k.v, v)
		res.Steps = res.Matvecs
	}
	return res, nil
}
