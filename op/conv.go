package op

import (
	"fmt"
)

func init() {
	ints := func(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
	Register(&Def{Type: "Conv", Infer: func(n *Node, s *Shapes) error { return inferConv(s, n) }, Exec: Both(newConv[float64], newConv[float32]), Class: Custom,
		Unit: unitConv, Channels: FlowConv, Cases: []Case{
			{Name: "3x3 pad stride", Inputs: []CaseInput{{Shape: []int{2, 2, 4, 4}}, {Shape: []int{3, 2, 3, 3}}, {Shape: []int{3}}},
				Attrs: []*Attr{ints("pads", 1, 1, 1, 1), ints("strides", 2, 2)}, Want: []int{2, 3, 2, 2}},
			{Name: "grouped dilated no bias", Inputs: []CaseInput{{Shape: []int{1, 4, 5, 5}}, {Shape: []int{2, 2, 2, 2}}},
				Attrs: []*Attr{{Name: "group", Type: AttrInt, Int: 2}, ints("dilations", 2, 2)}, Want: []int{1, 2, 3, 3}},
			{Name: "1x1 as GEMM", Inputs: []CaseInput{{Shape: []int{2, 3, 2, 2}}, {Shape: []int{4, 3, 1, 1}}, {Shape: []int{4}}}, Want: []int{2, 4, 2, 2}},
			{Name: "1x1 strided (im2col)", Inputs: []CaseInput{{Shape: []int{1, 2, 3, 3}}, {Shape: []int{2, 2, 1, 1}}},
				Attrs: []*Attr{ints("strides", 2, 2)}, Want: []int{1, 2, 2, 2}},
			{Name: "1-D constant weight", Inputs: []CaseInput{{Shape: []int{1, 2, 5}}, {Shape: []int{2, 2, 3}, Const: []float64{0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, 0.8, -0.9, 1, 0.2, -0.3}}},
				Want: []int{1, 2, 3}},
		}})
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
//
// Class Custom (bilinear, hand-written): the derived bilinear rule would
// build col(x) and col(R{x}) afresh in each of the four passes; here one
// im2col per pass is shared by the weight and input products, and every
// product is one BLAS call per group.
type conv[T Real] struct {
	x, w, b, y             int
	n, c, h, wd            int
	m, g, cg, mg           int
	kh, kw, oh, ow         int
	sh, sw, dh, dw, ph, pw int
	ckg, np, p             int
}

func newConv[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	if len(in) < 2 || in[0] < 0 || in[1] < 0 {
		return nil, fmt.Errorf("want inputs X and W")
	}
	xs, ws := b.Shape(in[0]), b.Shape(in[1])
	k := &conv[T]{x: in[0], w: in[1], b: -1, y: out[0]}
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
	if k.kh == 1 && k.kw == 1 && k.sh == 1 && k.sw == 1 && k.ph == 0 && k.pw == 0 && k.g == 1 && k.oh == k.h && k.ow == k.wd {
		return &pointwise[T]{k}, nil
	}
	return k, nil
}

// pointwise is a 1×1 convolution with unit stride, no padding and one
// group: per sample s a plain product Y_s = W X_s (M×C times C×P) on the
// tensors' own storage, with no im2col and no scratch:
//
//	R{Y_s} = W R{X_s} + R{W} X_s,  W̄ += Σ_s Ȳ_s X_sᵀ,  X̄_s += Wᵀ Ȳ_s,
//	R{W̄} += Σ_s R{Ȳ_s} X_sᵀ + Ȳ_s R{X_s}ᵀ,  R{X̄_s} += Wᵀ R{Ȳ_s} + R{W}ᵀ Ȳ_s.
type pointwise[T Real] struct{ *conv[T] }

// ScratchSizes is empty: the products run on the tensors' storage.
func (k *pointwise[T]) ScratchSizes() []int { return nil }

// mul sets (beta 0) or adds (beta 1) y_s = a · x_s for every sample.
func (k *pointwise[T]) mul(a, x, y []T, beta T) {
	c, m, p := k.c, k.m, k.p
	for s := 0; s < k.n; s++ {
		Gemm(false, false, m, p, c, 1, a, c, x[s*c*p:], p, beta, y[s*m*p:], p)
	}
}

// addBias adds b_m to every element of channel m.
func (k *pointwise[T]) addBias(y, b []T) {
	if b == nil {
		return
	}
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.m; m++ {
			row := y[(s*k.m+m)*k.p : (s*k.m+m+1)*k.p]
			for i := range row {
				row[i] += b[m]
			}
		}
	}
}

// wgrad adds Σ_s g_s x_sᵀ into dw; xgrad adds aᵀ g_s into dx_s.
func (k *pointwise[T]) wgrad(g, x, dw []T) {
	c, m, p := k.c, k.m, k.p
	for s := 0; s < k.n; s++ {
		Gemm(false, true, m, c, p, 1, g[s*m*p:], p, x[s*c*p:], p, 1, dw, c)
	}
}

func (k *pointwise[T]) xgrad(a, g, dx []T) {
	c, m, p := k.c, k.m, k.p
	for s := 0; s < k.n; s++ {
		Gemm(true, false, c, p, m, 1, a, c, g[s*m*p:], p, 1, dx[s*c*p:], p)
	}
}

// bgrad adds the channel sums of g into db.
func (k *pointwise[T]) bgrad(g, db []T) {
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.m; m++ {
			var t T
			for _, v := range g[(s*k.m+m)*k.p : (s*k.m+m+1)*k.p] {
				t += v
			}
			db[m] += t
		}
	}
}

func (k *pointwise[T]) bias(b [][]T) []T {
	if k.b < 0 {
		return nil
	}
	return b[k.b]
}

func (k *pointwise[T]) Forward(w *Work[T]) {
	k.mul(w.Val[k.w], w.Val[k.x], w.Val[k.y], 0)
	k.addBias(w.Val[k.y], k.bias(w.Val))
}

func (k *pointwise[T]) RForward(w *Work[T]) {
	ry := w.RV[k.y]
	if ry == nil {
		return
	}
	rx, rw := w.RV[k.x], w.RV[k.w]
	var beta T
	if rx != nil {
		k.mul(w.Val[k.w], rx, ry, 0)
		beta = 1
	}
	if rw != nil {
		k.mul(rw, w.Val[k.x], ry, beta)
		beta = 1
	}
	if beta == 0 {
		clear(ry)
	}
	k.addBias(ry, k.bias(w.RV))
}

func (k *pointwise[T]) Backward(w *Work[T]) {
	g := w.Adj[k.y]
	if g == nil {
		return
	}
	if dw := w.Adj[k.w]; dw != nil {
		k.wgrad(g, w.Val[k.x], dw)
	}
	if db := k.bias(w.Adj); db != nil {
		k.bgrad(g, db)
	}
	if dx := w.Adj[k.x]; dx != nil {
		k.xgrad(w.Val[k.w], g, dx)
	}
}

func (k *pointwise[T]) RBackward(w *Work[T]) {
	rg, g := w.RAdj[k.y], w.Adj[k.y]
	if rg == nil {
		return
	}
	rx, rw := w.RV[k.x], w.RV[k.w]
	if rdw := w.RAdj[k.w]; rdw != nil {
		k.wgrad(rg, w.Val[k.x], rdw)
		if rx != nil {
			k.wgrad(g, rx, rdw)
		}
	}
	if rdb := k.bias(w.RAdj); rdb != nil {
		k.bgrad(rg, rdb)
	}
	if rdx := w.RAdj[k.x]; rdx != nil {
		k.xgrad(w.Val[k.w], rg, rdx)
		if rw != nil {
			k.xgrad(rw, g, rdx)
		}
	}
}

// Scratch buffers of a convolution, shared by every convolution of a Work:
// the im2col matrices are rebuilt in each pass that needs them instead of
// being kept from the forward pass, so memory holds one convolution's
// scratch, not one per layer.
const (
	scCol  = iota // col(x), G·CKg × N·P
	scYB          // M × N·P: products, Ȳ or R{Ȳ} in matrix layout
	scRCol        // col(R{x}), or the column adjoint
	scGB          // M × N·P: Ȳ in R-backward
)

func (k *conv[T]) colSize() int { return k.g * k.ckg * k.np }

// ScratchSizes returns the lengths of the shared scratch buffers.
func (k *conv[T]) ScratchSizes() []int {
	return []int{scCol: k.colSize(), scYB: k.m * k.np, scRCol: k.colSize(), scGB: k.m * k.np}
}

// im2col fills col (G·CKg rows × N·P columns) from image x.
func (k *conv[T]) im2col(x, col []T) {
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
func (k *conv[T]) col2im(col, dx []T) {
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
func (k *conv[T]) matY(wt, col, yb []T, beta T) {
	for g := 0; g < k.g; g++ {
		Gemm(false, false, k.mg, k.np, k.ckg, 1, wt[g*k.mg*k.ckg:], k.ckg, col[g*k.ckg*k.np:], k.np, beta, yb[g*k.mg*k.np:], k.np)
	}
}

// scatter writes yb (M × N·P) into y (N×M×P) plus the bias.
func (k *conv[T]) scatter(yb, y, bias []T) {
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
func (k *conv[T]) gather(y, gb []T) {
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.m; m++ {
			copy(gb[m*k.np+s*k.p:m*k.np+(s+1)*k.p], y[(s*k.m+m)*k.p:(s*k.m+m+1)*k.p])
		}
	}
}

func (k *conv[T]) Forward(w *Work[T]) {
	col, yb := w.Scratch(scCol, k.colSize()), w.Scratch(scYB, k.m*k.np)
	k.im2col(w.Val[k.x], col)
	k.matY(w.Val[k.w], col, yb, 0)
	var bias []T
	if k.b >= 0 {
		bias = w.Val[k.b]
	}
	k.scatter(yb, w.Val[k.y], bias)
}

func (k *conv[T]) RForward(w *Work[T]) {
	ry := w.RV[k.y]
	if ry == nil {
		return
	}
	yb := w.Scratch(scYB, k.m*k.np)
	rx, rw := w.RV[k.x], w.RV[k.w]
	var beta T
	if rx != nil {
		rcol := w.Scratch(scRCol, k.colSize())
		k.im2col(rx, rcol)
		k.matY(w.Val[k.w], rcol, yb, 0)
		beta = 1
	}
	if rw != nil {
		col := w.Scratch(scCol, k.colSize())
		k.im2col(w.Val[k.x], col)
		k.matY(rw, col, yb, beta)
		beta = 1
	}
	if beta == 0 {
		clear(yb)
	}
	var rb []T
	if k.b >= 0 {
		rb = w.RV[k.b]
	}
	k.scatter(yb, ry, rb)
}

// wgrad adds G·colᵀ per group into dw.
func (k *conv[T]) wgrad(gb, col, dw []T) {
	for g := 0; g < k.g; g++ {
		Gemm(false, true, k.mg, k.ckg, k.np, 1, gb[g*k.mg*k.np:], k.np, col[g*k.ckg*k.np:], k.np, 1, dw[g*k.mg*k.ckg:], k.ckg)
	}
}

// xcol computes dcol = Wᵀ·G per group (overwrite when beta == 0).
func (k *conv[T]) xcol(wt, gb, dcol []T, beta T) {
	for g := 0; g < k.g; g++ {
		Gemm(true, false, k.ckg, k.np, k.mg, 1, wt[g*k.mg*k.ckg:], k.ckg, gb[g*k.mg*k.np:], k.np, beta, dcol[g*k.ckg*k.np:], k.np)
	}
}

func (k *conv[T]) bgrad(gb, db []T) {
	for m := 0; m < k.m; m++ {
		var s T
		for _, v := range gb[m*k.np : (m+1)*k.np] {
			s += v
		}
		db[m] += s
	}
}

func (k *conv[T]) Backward(w *Work[T]) {
	dy := w.Adj[k.y]
	if dy == nil {
		return
	}
	gb := w.Scratch(scYB, k.m*k.np)
	k.gather(dy, gb)
	if dw := w.Adj[k.w]; dw != nil {
		col := w.Scratch(scCol, k.colSize())
		k.im2col(w.Val[k.x], col)
		k.wgrad(gb, col, dw)
	}
	if k.b >= 0 && w.Adj[k.b] != nil {
		k.bgrad(gb, w.Adj[k.b])
	}
	if dx := w.Adj[k.x]; dx != nil {
		dcol := w.Scratch(scRCol, k.colSize())
		k.xcol(w.Val[k.w], gb, dcol, 0)
		k.col2im(dcol, dx)
	}
}

func (k *conv[T]) RBackward(w *Work[T]) {
	rdy := w.RAdj[k.y]
	if rdy == nil {
		return
	}
	rgb := w.Scratch(scYB, k.m*k.np)
	k.gather(rdy, rgb)
	rx, rw := w.RV[k.x], w.RV[k.w]
	var gb []T
	if rx != nil || rw != nil {
		gb = w.Scratch(scGB, k.m*k.np)
		k.gather(w.Adj[k.y], gb)
	}
	if rdw := w.RAdj[k.w]; rdw != nil {
		col := w.Scratch(scCol, k.colSize())
		k.im2col(w.Val[k.x], col)
		k.wgrad(rgb, col, rdw)
		if rx != nil {
			rcol := w.Scratch(scRCol, k.colSize())
			k.im2col(rx, rcol)
			k.wgrad(gb, rcol, rdw)
		}
	}
	if k.b >= 0 && w.RAdj[k.b] != nil {
		k.bgrad(rgb, w.RAdj[k.b])
	}
	if rdx := w.RAdj[k.x]; rdx != nil {
		dcol := w.Scratch(scRCol, k.colSize())
		k.xcol(w.Val[k.w], rgb, dcol, 0)
		if rw != nil {
			k.xcol(rw, gb, dcol, 1)
		}
		k.col2im(dcol, rdx)
	}
}

// Retains: see retainsBilinear.
func (k *conv[T]) Retains() Retains { return retainsBilinear }

// Retains: see retainsBilinear.
func (k *pointwise[T]) Retains() Retains { return retainsBilinear }
