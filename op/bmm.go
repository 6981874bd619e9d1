package op

import "fmt"

// batchMatMul is MatMul of two operands of rank ≥ 3 (or one of rank ≥ 3 and
// one 2-D left operand), as in attention scores Q·Kᵀ and weights·V: one
// (M×K)·(K×N) product per batch element, the leading axes broadcast by
// numpy rules. Bilinear with the rules of gemm applied per batch element;
// a broadcast operand's gradient accumulates over the batch elements that
// read it.
type batchMatMul[T Real] struct {
	g      gemm[T]
	ao, bo []int // per output batch element: offset of its A and B matrix
}

func newBatchMatMul[T Real](b *Build, as, bs []int) (Kernel[T], error) {
	if len(as) < 2 || len(bs) < 2 {
		return nil, fmt.Errorf("shapes %v × %v: 1-D operands of a batched MatMul are not supported", as, bs)
	}
	ys, k, err := MatMulShape(as, bs)
	if err != nil {
		return nil, err
	}
	m, n := as[len(as)-2], bs[len(bs)-1]
	batch := ys[:len(ys)-2]
	ai := BroadcastIndex(as[:len(as)-2], batch)
	bi := BroadcastIndex(bs[:len(bs)-2], batch)
	bm := &batchMatMul[T]{g: gemm[T]{a: b.In[0], b: b.In[1], c: -1, y: b.Out[0], m: m, k: k, n: n, alpha: 1, beta: 1},
		ao: make([]int, len(ai)), bo: make([]int, len(bi))}
	for i := range ai {
		bm.ao[i], bm.bo[i] = ai[i]*m*k, bi[i]*k*n
	}
	return bm, nil
}

// each calls f with the A, B and Y matrices of every batch element of the
// three buffers (nil buffers stay nil).
func (bm *batchMatMul[T]) each(a, b, y []T, f func(a, b, y []T)) {
	mn := bm.g.m * bm.g.n
	for i := range bm.ao {
		f(sub(a, bm.ao[i]), sub(b, bm.bo[i]), sub(y, i*mn))
	}
}

func sub[T Real](x []T, off int) []T {
	if x == nil {
		return nil
	}
	return x[off:]
}

func (bm *batchMatMul[T]) Forward(w *Work[T]) {
	g := &bm.g
	bm.each(w.Val[g.a], w.Val[g.b], w.Val[g.y], func(a, b, y []T) { g.prod(a, b, y, 0) })
}

func (bm *batchMatMul[T]) RForward(w *Work[T]) {
	g := &bm.g
	ry := w.RV[g.y]
	if ry == nil {
		return
	}
	ra, rb := w.RV[g.a], w.RV[g.b]
	if ra == nil && rb == nil {
		clear(ry)
		return
	}
	if ra != nil {
		bm.each(ra, w.Val[g.b], ry, func(a, b, y []T) { g.prod(a, b, y, 0) })
	}
	if rb != nil {
		var beta T
		if ra != nil {
			beta = 1
		}
		bm.each(w.Val[g.a], rb, ry, func(a, b, y []T) { g.prod(a, b, y, beta) })
	}
}

func (bm *batchMatMul[T]) Backward(w *Work[T]) {
	g := &bm.g
	gy := w.Adj[g.y]
	if gy == nil {
		return
	}
	if da := w.Adj[g.a]; da != nil {
		bm.each(da, w.Val[g.b], gy, func(da, b, gy []T) { g.gradA(da, gy, b) })
	}
	if db := w.Adj[g.b]; db != nil {
		bm.each(w.Val[g.a], db, gy, func(a, db, gy []T) { g.gradB(db, a, gy) })
	}
}

func (bm *batchMatMul[T]) RBackward(w *Work[T]) {
	g := &bm.g
	rgy, gy := w.RAdj[g.y], w.Adj[g.y]
	if rgy == nil {
		return
	}
	if rda := w.RAdj[g.a]; rda != nil {
		bm.each(rda, w.Val[g.b], rgy, func(da, b, gy []T) { g.gradA(da, gy, b) })
		if rb := w.RV[g.b]; rb != nil {
			bm.each(rda, rb, gy, func(da, b, gy []T) { g.gradA(da, gy, b) })
		}
	}
	if rdb := w.RAdj[g.b]; rdb != nil {
		bm.each(w.Val[g.a], rdb, rgy, func(a, db, gy []T) { g.gradB(db, a, gy) })
		if ra := w.RV[g.a]; ra != nil {
			bm.each(ra, rdb, gy, func(a, db, gy []T) { g.gradB(db, a, gy) })
		}
	}
}

// Retains: see retainsBilinear.
func (bm *batchMatMul[T]) Retains() Retains { return retainsBilinear }
