package nn

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/bitplan/bitplan/model"
)

var impl = blas64.Implementation()

// dgemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices, with
// op(a) m×k and op(b) k×n.
func dgemm(ta, tb bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if beta != 1 {
			for i := 0; i < m; i++ {
				row := c[i*ldc : i*ldc+n]
				for j := range row {
					row[j] *= beta
				}
			}
		}
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	impl.Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// conv is a 2-D convolution (1-D inputs are run as height-1 images) with
// groups, strides, dilations and padding, computed by im2col and one
// matrix product per group (Chellapilla, Puri & Simard 2006): with the
// column matrix col(x) of shape (C/G·kh·kw) × (N·OH·OW) per group g,
//
//	Y_g = W_g · col_g(x) + b,   W_g the (M/G) × (C/G·kh·kw) weight rows.
//
// It is bilinear in (x, W), hence
//
//	R{Y_g} = W_g col_g(R{x}) + R{W_g} col_g(x) + R{b}
//	W̄_g += Ȳ_g col_g(x)ᵀ,  b̄ += Σ Ȳ,  x̄ += col2im(W_gᵀ Ȳ_g)
//	R{W̄_g} += R{Ȳ_g} col_g(x)ᵀ + Ȳ_g col_g(R{x})ᵀ,  R{b̄} += Σ R{Ȳ}
//	R{x̄} += col2im(W_gᵀ R{Ȳ_g} + R{W_g}ᵀ Ȳ_g)
//
// where col2im adds each column entry back to the input pixel it was copied
// from (the adjoint of im2col).
type conv struct {
	x, w, b, y             int
	n, c, h, wd            int
	m, g, cg, mg           int
	kh, kw, oh, ow         int
	sh, sw, dh, dw, ph, pw int
	ckg, np, p             int
	sidx                   int
}

type convState struct {
	col, rcol, yb, gb, rgb, dcol []float64
}

func newConv(p *plan, n *model.Node, in, out []int) (kernel, error) {
	if len(in) < 2 || in[0] < 0 || in[1] < 0 {
		return nil, fmt.Errorf("want inputs X and W")
	}
	xs, ws := p.slots[in[0]].shape, p.slots[in[1]].shape
	k := &conv{x: in[0], w: in[1], b: -1, y: out[0], sidx: len(p.steps)}
	if len(in) > 2 {
		k.b = in[2]
	}
	var spatial, kern []int
	switch len(xs) {
	case 4:
		spatial, kern = xs[2:], ws[2:]
	case 3:
		spatial, kern = xs[2:], ws[2:]
	default:
		return nil, fmt.Errorf("input shape %v: only 1-D and 2-D convolutions are supported", xs)
	}
	win, err := n.Window(spatial, kern)
	if err != nil {
		return nil, err
	}
	g, err := n.AttrInt("group", 1)
	if err != nil {
		return nil, err
	}
	k.n, k.c, k.m, k.g = xs[0], xs[1], ws[0], int(g)
	k.cg, k.mg = k.c/k.g, k.m/k.g
	if len(xs) == 4 {
		k.h, k.wd = xs[2], xs[3]
		k.kh, k.kw = kern[0], kern[1]
		k.oh, k.ow = win.Out[0], win.Out[1]
		k.sh, k.sw, k.dh, k.dw = win.Strides[0], win.Strides[1], win.Dilations[0], win.Dilations[1]
		k.ph, k.pw = win.PadBegin[0], win.PadBegin[1]
	} else {
		k.h, k.wd = 1, xs[2]
		k.kh, k.kw = 1, kern[0]
		k.oh, k.ow = 1, win.Out[0]
		k.sh, k.sw, k.dh, k.dw = 1, win.Strides[0], 1, win.Dilations[0]
		k.ph, k.pw = 0, win.PadBegin[0]
	}
	k.ckg = k.cg * k.kh * k.kw
	k.p = k.oh * k.ow
	k.np = k.n * k.p
	return k, nil
}

func (k *conv) newState() any {
	rows := k.g * k.ckg
	return &convState{
		col: make([]float64, rows*k.np), dcol: make([]float64, rows*k.np),
		yb: make([]float64, k.m*k.np), gb: make([]float64, k.m*k.np), rgb: make([]float64, k.m*k.np),
	}
}

// im2col fills col (G·CKg rows × N·P columns) from image x.
func (k *conv) im2col(x, col []float64) {
	np := k.np
	for ci := 0; ci < k.c; ci++ {
		for ki := 0; ki < k.kh; ki++ {
			for kj := 0; kj < k.kw; kj++ {
				g, cl := ci/k.cg, ci%k.cg
				row := g*k.ckg + (cl*k.kh+ki)*k.kw + kj
				dst := col[row*np : (row+1)*np]
				for s := 0; s < k.n; s++ {
					img := x[(s*k.c+ci)*k.h*k.wd:]
					d := dst[s*k.p:]
					for oh := 0; oh < k.oh; oh++ {
						ih := oh*k.sh - k.ph + ki*k.dh
						drow := d[oh*k.ow : (oh+1)*k.ow]
						if ih < 0 || ih >= k.h {
							clear(drow)
							continue
						}
						src := img[ih*k.wd : (ih+1)*k.wd]
						iw := -k.pw + kj*k.dw
						for ow := range drow {
							if iw >= 0 && iw < k.wd {
								drow[ow] = src[iw]
							} else {
								drow[ow] = 0
							}
							iw += k.sw
						}
					}
				}
			}
		}
	}
}

// col2im adds the columns back into image dx (the adjoint of im2col).
func (k *conv) col2im(col, dx []float64) {
	np := k.np
	for ci := 0; ci < k.c; ci++ {
		for ki := 0; ki < k.kh; ki++ {
			for kj := 0; kj < k.kw; kj++ {
				g, cl := ci/k.cg, ci%k.cg
				row := g*k.ckg + (cl*k.kh+ki)*k.kw + kj
				src := col[row*np : (row+1)*np]
				for s := 0; s < k.n; s++ {
					img := dx[(s*k.c+ci)*k.h*k.wd:]
					d := src[s*k.p:]
					for oh := 0; oh < k.oh; oh++ {
						ih := oh*k.sh - k.ph + ki*k.dh
						if ih < 0 || ih >= k.h {
							continue
						}
						dst := img[ih*k.wd : (ih+1)*k.wd]
						srow := d[oh*k.ow : (oh+1)*k.ow]
						iw := -k.pw + kj*k.dw
						for _, v := range srow {
							if iw >= 0 && iw < k.wd {
								dst[iw] += v
							}
							iw += k.sw
						}
					}
				}
			}
		}
	}
}

// matY computes yb = W·col per group (overwrite when beta == 0, add when 1).
func (k *conv) matY(wt, col, yb []float64, beta float64) {
	for g := 0; g < k.g; g++ {
		dgemm(false, false, k.mg, k.np, k.ckg, 1, wt[g*k.mg*k.ckg:], k.ckg, col[g*k.ckg*k.np:], k.np, beta, yb[g*k.mg*k.np:], k.np)
	}
}

// scatter writes yb (M × N·P) into y (N×M×P) plus the bias.
func (k *conv) scatter(yb, y, bias []float64) {
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.m; m++ {
			src := yb[m*k.np+s*k.p : m*k.np+(s+1)*k.p]
			dst := y[(s*k.m+m)*k.p : (s*k.m+m+1)*k.p]
			if bias == nil {
				copy(dst, src)
				continue
			}
			b := bias[m]
			for i, v := range src {
				dst[i] = v + b
			}
		}
	}
}

// gather reads y (N×M×P) into gb (M × N·P).
func (k *conv) gather(y, gb []float64) {
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.m; m++ {
			copy(gb[m*k.np+s*k.p:m*k.np+(s+1)*k.p], y[(s*k.m+m)*k.p:(s*k.m+m+1)*k.p])
		}
	}
}

func (k *conv) forward(w *work) {
	st := w.state[k.sidx].(*convState)
	k.im2col(w.val[k.x], st.col)
	k.matY(w.val[k.w], st.col, st.yb, 0)
	var bias []float64
	if k.b >= 0 {
		bias = w.val[k.b]
	}
	k.scatter(st.yb, w.val[k.y], bias)
}

func (k *conv) rforward(w *work) {
	ry := w.rv[k.y]
	if ry == nil {
		return
	}
	st := w.state[k.sidx].(*convState)
	rx, rw := w.rv[k.x], w.rv[k.w]
	beta := 0.0
	if rx != nil {
		if st.rcol == nil {
			st.rcol = make([]float64, len(st.col))
		}
		k.im2col(rx, st.rcol)
		k.matY(w.val[k.w], st.rcol, st.yb, 0)
		beta = 1
	}
	if rw != nil {
		k.matY(rw, st.col, st.yb, beta)
		beta = 1
	}
	if beta == 0 {
		clear(st.yb)
	}
	var rb []float64
	if k.b >= 0 {
		rb = w.rv[k.b]
	}
	k.scatter(st.yb, ry, rb)
}

// wgrad adds G·colᵀ per group into dw.
func (k *conv) wgrad(gb, col, dw []float64) {
	for g := 0; g < k.g; g++ {
		dgemm(false, true, k.mg, k.ckg, k.np, 1, gb[g*k.mg*k.np:], k.np, col[g*k.ckg*k.np:], k.np, 1, dw[g*k.mg*k.ckg:], k.ckg)
	}
}

// xcol computes dcol = Wᵀ·G per group (overwrite when beta == 0).
func (k *conv) xcol(wt, gb, dcol []float64, beta float64) {
	for g := 0; g < k.g; g++ {
		dgemm(true, false, k.ckg, k.np, k.mg, 1, wt[g*k.mg*k.ckg:], k.ckg, gb[g*k.mg*k.np:], k.np, beta, dcol[g*k.ckg*k.np:], k.np)
	}
}

func (k *conv) bgrad(gb, db []float64) {
	for m := 0; m < k.m; m++ {
		s := 0.0
		for _, v := range gb[m*k.np : (m+1)*k.np] {
			s += v
		}
		db[m] += s
	}
}

func (k *conv) backward(w *work) {
	dy := w.adj[k.y]
	if dy == nil {
		return
	}
	st := w.state[k.sidx].(*convState)
	k.gather(dy, st.gb)
	if dw := w.adj[k.w]; dw != nil {
		k.wgrad(st.gb, st.col, dw)
	}
	if k.b >= 0 && w.adj[k.b] != nil {
		k.bgrad(st.gb, w.adj[k.b])
	}
	if dx := w.adj[k.x]; dx != nil {
		k.xcol(w.val[k.w], st.gb, st.dcol, 0)
		k.col2im(st.dcol, dx)
	}
}

func (k *conv) rbackward(w *work) {
	rdy := w.radj[k.y]
	if rdy == nil {
		return
	}
	st := w.state[k.sidx].(*convState)
	k.gather(rdy, st.rgb)
	rx, rw := w.rv[k.x], w.rv[k.w]
	if rdw := w.radj[k.w]; rdw != nil {
		k.wgrad(st.rgb, st.col, rdw)
		if rx != nil {
			k.wgrad(st.gb, st.rcol, rdw)
		}
	}
	if k.b >= 0 && w.radj[k.b] != nil {
		k.bgrad(st.rgb, w.radj[k.b])
	}
	if rdx := w.radj[k.x]; rdx != nil {
		k.xcol(w.val[k.w], st.rgb, st.dcol, 0)
		if rw != nil {
			k.xcol(rw, st.gb, st.dcol, 1)
		}
		k.col2im(st.dcol, rdx)
	}
}
