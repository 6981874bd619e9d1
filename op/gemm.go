package op

import (
	"fmt"
)

// gemm is Gemm, Y = α·A'·B' + β·C with A' = transA ? Aᵀ : A (M×K) and
// B' = transB ? Bᵀ : B (K×N), C broadcast to M×N; MatMul with a 2-D right
// operand is the case α = 1, no C, with A's leading dimensions flattened
// into M. Bilinear in (A, B):
//
//	R{Y} = α(R{A'} B' + A' R{B'}) + β R{C}
//	Ā' += α Ȳ B'ᵀ,   B̄' += α A'ᵀ Ȳ,   C̄ += β Σ_broadcast Ȳ
//	R{Ā'} += α(R{Ȳ} B'ᵀ + Ȳ R{B'}ᵀ),   R{B̄'} += α(A'ᵀ R{Ȳ} + R{A'}ᵀ Ȳ)
//	R{C̄} += β Σ_broadcast R{Ȳ}
//
// (transposed back to A's and B's storage when transA/transB are set).
//
// Class Custom (bilinear, hand-written): each product is one BLAS call on
// the operands' storage with the transpose flags, which the generic
// bilinear rule would have to materialise.
type gemm[T Real] struct {
	a, b, c, y  int
	ta, tb      bool
	m, k, n     int
	alpha, beta float64
	bc          bcast
}

func init() {
	Register(&Def{Type: "Gemm", Infer: func(n *Node, s *Shapes) error { return inferGemm(s, n) }, Exec: Both(newGemm[float64], newGemm[float32]), Class: Custom,
		Unit: unitGemm, Channels: FlowGemm, Cases: []Case{
			{Name: "transB bias", Inputs: []CaseInput{{Shape: []int{2, 3}}, {Shape: []int{4, 3}}, {Shape: []int{4}}},
				Attrs: []*Attr{{Name: "transB", Type: AttrInt, Int: 1}, {Name: "alpha", Type: AttrFloat, Float: 0.5}, {Name: "beta", Type: AttrFloat, Float: 2}}, Want: []int{2, 4}},
			{Name: "transA broadcast C", Inputs: []CaseInput{{Shape: []int{3, 2}}, {Shape: []int{3, 4}}, {Shape: []int{1, 4}}},
				Attrs: []*Attr{{Name: "transA", Type: AttrInt, Int: 1}}, Want: []int{2, 4}},
		}})
	Register(&Def{Type: "MatMul", Infer: inferMatMul, Exec: Both(newMatMul[float64], newMatMul[float32]), Class: Custom,
		Unit: unitMatMul, Channels: FlowMatMul, Cases: []Case{
			{Name: "3-D × 2-D", Inputs: []CaseInput{{Shape: []int{2, 2, 3}}, {Shape: []int{3, 2}}}, Want: []int{2, 2, 2}},
			{Name: "batched activations", Inputs: []CaseInput{{Shape: []int{1, 2, 3, 2}}, {Shape: []int{1, 2, 2, 3}}}, Want: []int{1, 2, 3, 3}},
			{Name: "broadcast batch", Inputs: []CaseInput{{Shape: []int{2, 1, 2, 3}}, {Shape: []int{3, 3, 2}}}, Want: []int{2, 3, 2, 2}},
			{Name: "2-D × 3-D", Inputs: []CaseInput{{Shape: []int{2, 3}}, {Shape: []int{2, 3, 2}}}, Want: []int{2, 2, 2}},
		}})
}

func newGemm[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	if len(in) < 2 || in[0] < 0 || in[1] < 0 {
		return nil, fmt.Errorf("want inputs A and B")
	}
	as, bs := b.Shape(in[0]), b.Shape(in[1])
	m, k, nn, err := GemmDims(n, as, bs)
	if err != nil {
		return nil, err
	}
	g := &gemm[T]{a: in[0], b: in[1], c: -1, y: out[0], m: m, k: k, n: nn}
	ta, _ := n.AttrInt("transA", 0)
	tb, _ := n.AttrInt("transB", 0)
	g.ta, g.tb = ta != 0, tb != 0
	if g.alpha, err = n.AttrFloat("alpha", 1); err != nil {
		return nil, err
	}
	if g.beta, err = n.AttrFloat("beta", 1); err != nil {
		return nil, err
	}
	if len(in) > 2 && in[2] >= 0 {
		g.c = in[2]
		g.bc = newBcast(b.Shape(in[2]), []int{m, nn})
	}
	return g, nil
}

func newMatMul[T Real](b *Build) (Kernel[T], error) {
	in, out := b.In, b.Out
	if len(in) != 2 || in[0] < 0 || in[1] < 0 {
		return nil, fmt.Errorf("want inputs A and B")
	}
	as, bs := b.Shape(in[0]), b.Shape(in[1])
	if len(bs) > 2 {
		return newBatchMatMul[T](b, as, bs)
	}
	if len(bs) != 2 || len(as) < 2 {
		return nil, fmt.Errorf("shapes %v × %v: only a ≥2-D left operand times a 2-D right operand is supported", as, bs)
	}
	if as[len(as)-1] != bs[0] {
		return nil, fmt.Errorf("shapes %v × %v do not match", as, bs)
	}
	return &gemm[T]{a: in[0], b: in[1], c: -1, y: out[0], m: Numel(as[:len(as)-1]), k: bs[0], n: bs[1], alpha: 1, beta: 1}, nil
}

func (g *gemm[T]) lda() int {
	if g.ta {
		return g.m
	}
	return g.k
}

func (g *gemm[T]) ldb() int {
	if g.tb {
		return g.k
	}
	return g.n
}

// prod computes y = α op(a) op(b) + beta·y.
func (g *gemm[T]) prod(a, b, y []T, beta T) {
	Gemm(g.ta, g.tb, g.m, g.n, g.k, T(g.alpha), a, g.lda(), b, g.ldb(), beta, y, g.n)
}

// gradA adds α·G·op(b)ᵀ into da (in A's storage layout).
func (g *gemm[T]) gradA(da, gy, b []T) {
	if g.ta { // da (K×M) += α op(b) Gᵀ
		Gemm(g.tb, true, g.k, g.m, g.n, T(g.alpha), b, g.ldb(), gy, g.n, 1, da, g.m)
	} else { // da (M×K) += α G op(b)ᵀ
		Gemm(false, !g.tb, g.m, g.k, g.n, T(g.alpha), gy, g.n, b, g.ldb(), 1, da, g.k)
	}
}

// gradB adds α·op(a)ᵀ·G into db (in B's storage layout).
func (g *gemm[T]) gradB(db, a, gy []T) {
	if g.tb { // db (N×K) += α Gᵀ op(a)
		Gemm(true, g.ta, g.n, g.k, g.m, T(g.alpha), gy, g.n, a, g.lda(), 1, db, g.k)
	} else { // db (K×N) += α op(a)ᵀ G
		Gemm(!g.ta, false, g.k, g.n, g.m, T(g.alpha), a, g.lda(), gy, g.n, 1, db, g.n)
	}
}

func (g *gemm[T]) addC(y, c []T, scale T) {
	if c == nil || scale == 0 {
		return
	}
	for i := range y {
		y[i] += scale * c[g.bc.at(i)]
	}
}

func (g *gemm[T]) gradC(dc, gy []T) {
	if dc == nil || g.beta == 0 {
		return
	}
	for i, v := range gy {
		dc[g.bc.at(i)] += T(g.beta) * v
	}
}

func (g *gemm[T]) Forward(w *Work[T]) {
	y := w.Val[g.y]
	g.prod(w.Val[g.a], w.Val[g.b], y, 0)
	if g.c >= 0 {
		g.addC(y, w.Val[g.c], T(g.beta))
	}
}

func (g *gemm[T]) RForward(w *Work[T]) {
	ry := w.RV[g.y]
	if ry == nil {
		return
	}
	var beta T
	if ra := w.RV[g.a]; ra != nil {
		g.prod(ra, w.Val[g.b], ry, 0)
		beta = 1
	}
	if rb := w.RV[g.b]; rb != nil {
		g.prod(w.Val[g.a], rb, ry, beta)
		beta = 1
	}
	if beta == 0 {
		clear(ry)
	}
	if g.c >= 0 {
		g.addC(ry, w.RV[g.c], T(g.beta))
	}
}

func (g *gemm[T]) Backward(w *Work[T]) {
	gy := w.Adj[g.y]
	if gy == nil {
		return
	}
	if da := w.Adj[g.a]; da != nil {
		g.gradA(da, gy, w.Val[g.b])
	}
	if db := w.Adj[g.b]; db != nil {
		g.gradB(db, w.Val[g.a], gy)
	}
	if g.c >= 0 {
		g.gradC(w.Adj[g.c], gy)
	}
}

func (g *gemm[T]) RBackward(w *Work[T]) {
	rgy, gy := w.RAdj[g.y], w.Adj[g.y]
	if rgy == nil {
		return
	}
	if rda := w.RAdj[g.a]; rda != nil {
		g.gradA(rda, rgy, w.Val[g.b])
		if rb := w.RV[g.b]; rb != nil {
			g.gradA(rda, gy, rb)
		}
	}
	if rdb := w.RAdj[g.b]; rdb != nil {
		g.gradB(rdb, w.Val[g.a], rgy)
		if ra := w.RV[g.a]; ra != nil {
			g.gradB(rdb, ra, gy)
		}
	}
	if g.c >= 0 {
		g.gradC(w.RAdj[g.c], rgy)
	}
}

// Retains: see retainsBilinear.
func (g *gemm[T]) Retains() Retains { return retainsBilinear }
