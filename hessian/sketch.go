package hessian

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// SketchSettings configures the fixed-budget, variance-reduced estimators
// HutchPP, NAHutchPP and XTrace. The zero value (or nil) means all defaults.
type SketchSettings struct {
	// Matvecs is the total budget of Hessian-vector products (default 60,
	// at least 6). Fewer are used when the budget exceeds what Dim needs.
	Matvecs int
	// Seed selects the random test vectors (reproducible for any Workers).
	Seed uint64
	// Probe is the test-vector distribution (default Rademacher).
	Probe Distribution
	// Confidence is the level of the reported intervals (default 0.95).
	Confidence float64
	// Workers is the number of goroutines computing products (default
	// GOMAXPROCS).
	Workers int
	// BatchSize is the number of vectors per HVPBatch call when the
	// operator is a BatchOperator (default 8).
	BatchSize int
}

const (
	defaultSketchMatvecs = 60
	minSketchMatvecs     = 6
	// rankTol is the relative singular-value threshold below which a sketch
	// is treated as rank deficient (the operator's range is then captured
	// to about this relative accuracy).
	rankTol = 1e-10
)

func (s *SketchSettings) withDefaults() (SketchSettings, error) {
	var c SketchSettings
	if s != nil {
		c = *s
	}
	if c.Matvecs == 0 {
		c.Matvecs = defaultSketchMatvecs
	}
	if c.Confidence == 0 {
		c.Confidence = defaultConfidence
	}
	switch {
	case c.Matvecs < minSketchMatvecs:
		return c, fmt.Errorf("hessian: SketchSettings.Matvecs = %d, want at least %d", c.Matvecs, minSketchMatvecs)
	case !(c.Confidence > 0 && c.Confidence < 1):
		return c, fmt.Errorf("hessian: SketchSettings.Confidence = %v, want a value in (0, 1)", c.Confidence)
	case c.BatchSize < 0:
		return c, fmt.Errorf("hessian: SketchSettings.BatchSize = %d, want >= 0", c.BatchSize)
	}
	return c, c.Probe.valid()
}

// sketchRun holds what the sketch estimators share.
type sketchRun struct {
	ctx     context.Context
	op      Operator
	set     SketchSettings
	d       int
	blocks  []Block
	matvecs int
}

func newSketchRun(ctx context.Context, op Operator, s *SketchSettings) (*sketchRun, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	set, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	return &sketchRun{ctx: ctx, op: op, set: set, d: op.Dim(), blocks: op.Blocks()}, nil
}

// probes returns n test vectors with indices first, first+1, ….
func (r *sketchRun) probes(first, n int) [][]float64 {
	v := make([][]float64, n)
	for j := range v {
		v[j] = make([]float64, r.d)
		fillProbe(v[j], r.set.Probe, r.set.Seed, streamSketch, first+j)
	}
	return v
}

// mul returns op·v for every column in v.
func (r *sketchRun) mul(v [][]float64) ([][]float64, error) {
	out, err := applyMany(r.ctx, r.op, r.set.Workers, r.set.BatchSize, v)
	if err != nil {
		return nil, err
	}
	r.matvecs += len(v)
	return out, nil
}

// result assembles a TraceResult whose samples are exact[row] summed per
// block plus the per-probe residual samples resid[j][row] summed per block.
// Rows are coordinates 0..d−1; exact may be nil.
func (r *sketchRun) result(method string, exact []float64, exactTotal float64, resid [][]float64) (*TraceResult, error) {
	res := &TraceResult{Method: method, Confidence: r.set.Confidence, Probes: len(resid), Matvecs: r.matvecs, Converged: true}
	eb := make([]float64, len(r.blocks))
	if exact != nil {
		for j, b := range r.blocks {
			eb[j] = sum(exact[b.Offset:b.End()])
		}
	}
	for _, rho := range resid {
		row := make([]float64, len(r.blocks))
		for j, b := range r.blocks {
			row[j] = eb[j] + sum(rho[b.Offset:b.End()])
		}
		res.Samples = append(res.Samples, row)
		res.TotalSamples = append(res.TotalSamples, exactTotal+sum(rho))
	}
	if err := res.summarize(r.blocks, r.d); err != nil {
		return nil, err
	}
	return res, nil
}

func sum(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s
}

// HutchPP estimates the trace of op and of its blocks with Hutch++ (Meyer,
// Musco, Musco and Woodruff, "Hutch++: Optimal Stochastic Trace
// Estimation", SOSA 2021, Algorithm 1). With k = m/3 sketch vectors S and
// g = m − 2k Hutchinson probes G:
//
//	Q = orth(H·S),  P = QQᵀ,  P⊥ = I − P
//	tr(H) ≈ tr(QᵀHQ) + (1/g)·tr(Gᵀ P⊥ H P⊥ G)
//
// Block variant (no extra products). With D_b the 0/1 diagonal selecting
// block b's coordinates, tr(D_b H) = tr(D_b (HP + PH − PHP)) +
// tr(D_b P⊥HP⊥). With W = HQ and C = QᵀW the first term is exact:
//
//	tr(D_b(HP + PH − PHP)) = 2⟨Q_b, W_b⟩_F − ⟨Q_b C, Q_b⟩_F
//
// (X_b is the rows of X in block b), and the second is estimated by
// Hutchinson with the same probes, (1/g)·Σ_j ⟨(G_j)_b, (P⊥HP⊥G_j)_b⟩.
// Summed over all coordinates this is exactly the Hutch++ estimate. The
// reported standard error is that of the residual term, conditional on Q.
//
// When it helps: if a few eigenvalues dominate, P captures them and the
// residual has a small Frobenius norm, so the error falls like 1/m instead
// of 1/√m. When it does not: with a flat spectrum (e.g. a Hessian whose
// positive and negative eigenvalues cancel in the trace) the projection
// removes little variance and only a third of the budget probes the
// residual, so plain Hutchinson is better at equal cost.
func HutchPP(ctx context.Context, op Operator, s *SketchSettings) (*TraceResult, error) {
	r, err := newSketchRun(ctx, op, s)
	if err != nil {
		return nil, err
	}
	m := r.set.Matvecs
	k := min(m/3, r.d)
	g := m - 2*(m/3)
	y, err := r.mul(r.probes(0, k))
	if err != nil {
		return nil, fmt.Errorf("hessian: HutchPP sketch: %w", err)
	}
	q, _ := orth(y)
	qcols := denseToCols(q)
	gs := r.probes(k, g)
	gp := make([][]float64, g) // P⊥G
	for j := range gs {
		gp[j] = projectOut(q, gs[j])
	}
	prod, err := r.mul(append(append([][]float64{}, qcols...), gp...))
	if err != nil {
		return nil, fmt.Errorf("hessian: HutchPP products: %w", err)
	}
	w := colsToDense(prod[:k])
	exact, total := lowRankDiag(q, w)
	resid := make([][]float64, g)
	for j := range gs {
		zp := projectOut(q, prod[k+j]) // P⊥HP⊥G_j
		resid[j] = hadamard(gs[j], zp)
	}
	return r.result("hutch++", exact, total, resid)
}

// NAHutchPP estimates the trace of op and of its blocks with NA-Hutch++, the
// non-adaptive variant of Hutch++ (Meyer et al. 2021, Algorithm 2) whose m
// products can all run at once. With S, R, G holding c₁m, c₂m, c₃m test
// vectors (c₁ = 1/6, c₂ = c₃ = 5/12, the split used in the paper's
// experiments), Z = HR and W = HS:
//
//	Ĥ = Z (SᵀZ)⁺ Wᵀ,   tr(H) ≈ tr(Ĥ) + (1/|G|)·tr(Gᵀ(H − Ĥ)G)
//
// Block variant: tr(D_b Ĥ) = ⟨(Z(SᵀZ)⁺)_b, W_b⟩_F exactly, plus the
// Hutchinson estimate (1/|G|)·Σ_j ⟨(G_j)_b, (HG_j − ĤG_j)_b⟩ from the same
// products. The standard error is that of the residual term, conditional on
// S and R. See HutchPP for when the variance reduction pays.
func NAHutchPP(ctx context.Context, op Operator, s *SketchSettings) (*TraceResult, error) {
	r, err := newSketchRun(ctx, op, s)
	if err != nil {
		return nil, err
	}
	m := r.set.Matvecs
	ns := max(1, m/6)
	nr := max(ns+1, 5*m/12)
	ng := m - ns - nr
	ns, nr = min(ns, r.d), min(nr, r.d)
	sv := r.probes(0, ns)
	rv := r.probes(ns, nr)
	gv := r.probes(ns+nr, ng)
	all := append(append(append([][]float64{}, sv...), rv...), gv...)
	prod, err := r.mul(all)
	if err != nil {
		return nil, fmt.Errorf("hessian: NAHutchPP products: %w", err)
	}
	S, W := colsToDense(sv), colsToDense(prod[:ns])
	Z := colsToDense(prod[ns : ns+nr])
	var stz mat.Dense
	stz.Mul(S.T(), Z) // ns×nr
	x := pinv(&stz)   // nr×ns
	var zx mat.Dense
	zx.Mul(Z, x) // d×ns
	exact := make([]float64, r.d)
	for i := range exact {
		exact[i] = dot(zx.RawRowView(i), W.RawRowView(i))
	}
	total := sum(exact)
	resid := make([][]float64, ng)
	for j, gj := range gv {
		// ĤG_j = ZX(WᵀG_j).
		wg := mulTVec(W, gj)
		hg := mulVec(&zx, wg)
		rho := make([]float64, r.d)
		for i := range rho {
			rho[i] = gj[i] * (prod[ns+nr+j][i] - hg[i])
		}
		resid[j] = rho
	}
	return r.result("na-hutch++", exact, total, resid)
}

// XTrace estimates the trace of op and of its blocks with XTrace (Epperly,
// Tropp and Webber, "XTrace: Making the most of every sample in stochastic
// trace estimation", SIMAX 2024), the exchangeable estimator that uses every
// test vector both for the low-rank sketch and for the residual. With k =
// m/2 test vectors Ω, Y = HΩ = QR and Z = HQ, estimate i uses the sketch of
// the other k−1 vectors, P_i = proj(range(Y_{−i})), and probes the residual
// with ω_i:
//
//	t_i = tr(H P_i) + ω_iᵀ (I − P_i) H (I − P_i) ω_i,   tr(H) ≈ (1/k) Σ_i t_i
//
// Each t_i is unbiased because ω_i is independent of P_i. All P_i are
// rank-one downdates of P = QQᵀ: P_i = P − q̃q̃ᵀ with q̃ = Qs_i and s_i the
// normalised i-th column of R⁻ᵀ, so HP_i and the residual products come from
// Y and Z with no extra products. The block variant replaces tr(HP_i) with
// tr(D_b(HP_i + P_iH − P_iHP_i)) and the residual with
// ⟨(ω_i)_b, (P_i⊥ H P_i⊥ ω_i)_b⟩, exactly as in HutchPP. The standard error
// is the paper's estimate, the standard deviation of the t_i over √k.
//
// If Y is numerically rank deficient (rank(H) < k), H's range is already
// captured and every t_i uses the full projector onto range(Y); the
// residual then vanishes up to rounding.
//
// XNysTrace, the cheaper variant of the same paper, assumes H is positive
// semidefinite and is biased for indefinite Hessians, so it is
// deliberately not offered.
func XTrace(ctx context.Context, op Operator, s *SketchSettings) (*TraceResult, error) {
	r, err := newSketchRun(ctx, op, s)
	if err != nil {
		return nil, err
	}
	k := min(r.set.Matvecs/2, r.d)
	om := r.probes(0, k)
	ycols, err := r.mul(om)
	if err != nil {
		return nil, fmt.Errorf("hessian: XTrace sketch: %w", err)
	}
	q, rr := orth(ycols)
	zcols, err := r.mul(denseToCols(q))
	if err != nil {
		return nil, fmt.Errorf("hessian: XTrace products: %w", err)
	}
	z := colsToDense(zcols)
	var h mat.Dense
	h.Mul(q.T(), z)
	symmetrize(&h)

	var svd mat.SVD
	if !svd.Factorize(rr, mat.SVDThin) {
		return nil, fmt.Errorf("hessian: XTrace: SVD of the sketch's R factor failed")
	}
	sv := svd.Values(nil)
	if sv[len(sv)-1] <= rankTol*sv[0] || sv[0] == 0 {
		return xtraceDeficient(r, q, z, &svd, sv, om, ycols)
	}
	// S = R⁻ᵀ: solve Rᵀ S = I.
	var sInv mat.Dense
	if err := sInv.Solve(rr.T(), eye(k)); err != nil {
		return nil, fmt.Errorf("hessian: XTrace: R factor singular: %w", err)
	}
	e0, _ := lowRankDiag(q, z)
	rows := make([][]float64, k)
	for i := range k {
		sCol := mat.Col(nil, i, &sInv)
		nrm := math.Sqrt(dot(sCol, sCol))
		for j := range sCol {
			sCol[j] /= nrm
		}
		qt := mulVec(q, sCol)  // q̃ = Qs
		zt := mulVec(z, sCol)  // z̃ = Zs = Hq̃
		hs := mulVec(&h, sCol) // QᵀHq̃
		pt := mulVec(q, hs)    // p̃ = PHq̃
		c := dot(sCol, hs)     // q̃ᵀHq̃
		w := mulTVec(q, om[i]) // Qᵀω
		sw := dot(sCol, w)     // q̃ᵀω
		zw := mulVec(z, w)     // HPω
		// H(I − P_i)ω, from Y = HΩ and Z = HQ.
		au := make([]float64, r.d)
		for j := range au {
			au[j] = ycols[i][j] - zw[j] + zt[j]*sw
		}
		qau := mulVec(q, mulTVec(q, au))
		tau := dot(qt, au)
		row := make([]float64, r.d)
		for j := range row {
			pr := au[j] - qau[j] + qt[j]*tau // (P_i⊥ H P_i⊥ ω)_j
			// Diagonal of HP_i + P_iH − P_iHP_i, then the residual probe.
			row[j] = e0[j] - 2*zt[j]*qt[j] + 2*pt[j]*qt[j] - c*qt[j]*qt[j] + om[i][j]*pr
		}
		rows[i] = row
	}
	return r.result("xtrace", nil, 0, rows)
}

// xtraceDeficient finishes XTrace when the sketch Y is numerically rank
// deficient: every estimate uses the projector onto range(Y).
func xtraceDeficient(r *sketchRun, q, z *mat.Dense, svd *mat.SVD, sv []float64, om, ycols [][]float64) (*TraceResult, error) {
	rho := 0
	for _, s := range sv {
		if s > rankTol*sv[0] {
			rho++
		}
	}
	if rho == 0 {
		// HΩ = 0: no low-rank part; the residual probes are ωᵀHω = 0·ω.
		resid := make([][]float64, len(om))
		for i, w := range om {
			resid[i] = hadamard(w, ycols[i])
		}
		return r.result("xtrace", nil, 0, resid)
	}
	var u mat.Dense
	svd.UTo(&u)
	ur := u.Slice(0, u.RawMatrix().Rows, 0, rho)
	var b, hb mat.Dense
	b.Mul(q, ur)
	hb.Mul(z, ur)
	exact, total := lowRankDiag(&b, &hb)
	resid := make([][]float64, len(om))
	for i, w := range om {
		bw := mulTVec(&b, w)
		au := mulVec(&hb, bw)
		for j := range au {
			au[j] = ycols[i][j] - au[j]
		}
		pr := projectOut(&b, au)
		resid[i] = hadamard(w, pr)
	}
	return r.result("xtrace", exact, total, resid)
}

// lowRankDiag returns, for an orthonormal Q and W = HQ, the diagonal of
// HP + PH − PHP with P = QQᵀ (row i: 2⟨Q_i, W_i⟩ − ⟨(QC)_i, Q_i⟩, C = QᵀW)
// and its trace tr(C).
func lowRankDiag(q, w *mat.Dense) ([]float64, float64) {
	var c, qc mat.Dense
	c.Mul(q.T(), w)
	symmetrize(&c)
	qc.Mul(q, &c)
	d, _ := q.Dims()
	out := make([]float64, d)
	for i := range out {
		qi := q.RawRowView(i)
		out[i] = 2*dot(qi, w.RawRowView(i)) - dot(qc.RawRowView(i), qi)
	}
	return out, mat.Trace(&c)
}

// orth returns the thin QR factorisation Y = QR of the columns cols (k ≤ d)
// using LAPACK's Householder QR (Geqrf, Orgqr).
func orth(cols [][]float64) (q, r *mat.Dense) {
	a := colsToDense(cols)
	raw := a.RawMatrix()
	k := raw.Cols
	tau := make([]float64, k)
	work := make([]float64, 1)
	lapack64.Geqrf(raw, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Geqrf(raw, tau, work, len(work))
	r = mat.NewDense(k, k, nil)
	for i := range k {
		for j := i; j < k; j++ {
			r.Set(i, j, raw.Data[i*raw.Stride+j])
		}
	}
	work = make([]float64, 1)
	lapack64.Orgqr(raw, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Orgqr(raw, tau, work, len(work))
	return a, r
}

// pinv returns the Moore–Penrose pseudo-inverse of a, dropping singular
// values below rankTol·σ_max.
func pinv(a *mat.Dense) *mat.Dense {
	r, c := a.Dims()
	var svd mat.SVD
	out := mat.NewDense(c, r, nil)
	if !svd.Factorize(a, mat.SVDThin) {
		return out
	}
	sv := svd.Values(nil)
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	for l, s := range sv {
		if s <= rankTol*sv[0] || s == 0 {
			continue
		}
		for i := range c {
			vi := v.At(i, l) / s
			for j := range r {
				out.Set(i, j, out.At(i, j)+vi*u.At(j, l))
			}
		}
	}
	return out
}

func colsToDense(cols [][]float64) *mat.Dense {
	d, k := len(cols[0]), len(cols)
	m := mat.NewDense(d, k, nil)
	for j, c := range cols {
		m.SetCol(j, c)
	}
	return m
}

func denseToCols(m *mat.Dense) [][]float64 {
	_, k := m.Dims()
	out := make([][]float64, k)
	for j := range out {
		out[j] = mat.Col(nil, j, m)
	}
	return out
}

// mulVec returns A·x.
func mulVec(a *mat.Dense, x []float64) []float64 {
	r, _ := a.Dims()
	y := make([]float64, r)
	blas64.Gemv(blasNoTrans, 1, a.RawMatrix(), blas64.Vector{N: len(x), Inc: 1, Data: x}, 0, blas64.Vector{N: r, Inc: 1, Data: y})
	return y
}

// mulTVec returns Aᵀ·x.
func mulTVec(a *mat.Dense, x []float64) []float64 {
	_, c := a.Dims()
	y := make([]float64, c)
	blas64.Gemv(blasTrans, 1, a.RawMatrix(), blas64.Vector{N: len(x), Inc: 1, Data: x}, 0, blas64.Vector{N: c, Inc: 1, Data: y})
	return y
}

// projectOut returns (I − QQᵀ)x for Q with orthonormal columns.
func projectOut(q *mat.Dense, x []float64) []float64 {
	p := mulVec(q, mulTVec(q, x))
	out := make([]float64, len(x))
	for i := range out {
		out[i] = x[i] - p[i]
	}
	return out
}

// hadamard returns the elementwise product a∘b.
func hadamard(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range out {
		out[i] = a[i] * b[i]
	}
	return out
}

// symmetrize replaces square a by (a + aᵀ)/2.
func symmetrize(a *mat.Dense) {
	n, _ := a.Dims()
	for i := range n {
		for j := i + 1; j < n; j++ {
			v := (a.At(i, j) + a.At(j, i)) / 2
			a.Set(i, j, v)
			a.Set(j, i, v)
		}
	}
}

func eye(n int) *mat.Dense {
	m := mat.NewDense(n, n, nil)
	for i := range n {
		m.Set(i, i, 1)
	}
	return m
}
