package op

import (
	"fmt"
	"math"
)

// pool2d holds the geometry of a 2-D pooling window (1-D inputs run as
// height-1 images).
type pool2d struct {
	x, y                   int
	planes                 int // N·C
	h, wd, oh, ow          int
	kh, kw, sh, sw, dh, dw int
	ph, pw, peh, pew       int
	sidx                   int
}

func newPool2d(b *Build) (pool2d, error) {
	n, in, out := b.Node, b.In, b.Out
	xs := b.Shape(in[0])
	k := pool2d{x: in[0], y: out[0], sidx: b.State}
	if len(xs) != 3 && len(xs) != 4 {
		return k, fmt.Errorf("input shape %v: only 1-D and 2-D pooling is supported", xs)
	}
	if so, _ := n.AttrInt("storage_order", 0); so != 0 {
		return k, fmt.Errorf("storage_order=1 is not supported")
	}
	for j, o := range out {
		if j > 0 && o >= 0 {
			return k, fmt.Errorf("the Indices output is not supported")
		}
	}
	win, err := n.Window(xs[2:], nil)
	if err != nil {
		return k, err
	}
	k.planes = xs[0] * xs[1]
	if len(xs) == 4 {
		k.h, k.wd, k.oh, k.ow = xs[2], xs[3], win.Out[0], win.Out[1]
		k.kh, k.kw, k.sh, k.sw = win.Kernel[0], win.Kernel[1], win.Strides[0], win.Strides[1]
		k.dh, k.dw = win.Dilations[0], win.Dilations[1]
		k.ph, k.pw, k.peh, k.pew = win.PadBegin[0], win.PadBegin[1], win.PadEnd[0], win.PadEnd[1]
	} else {
		k.h, k.wd, k.oh, k.ow = 1, xs[2], 1, win.Out[0]
		k.kh, k.kw, k.sh, k.sw, k.dh, k.dw = 1, win.Kernel[0], 1, win.Strides[0], 1, win.Dilations[0]
		k.pw, k.pew = win.PadBegin[0], win.PadEnd[0]
	}
	return k, nil
}

func init() {
	x := func(s ...int) []CaseInput { return []CaseInput{{Shape: s}} }
	ints := func(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
	Register(&Def{Type: "MaxPool", Infer: inferPool, Exec: Both(newMaxPool[float64], newMaxPool[float32]), Class: Linear, Channels: FlowPool,
		Cases: []Case{{Name: "2x2 stride 1 pad", Inputs: x(1, 2, 3, 3), Attrs: []*Attr{ints("kernel_shape", 2, 2), ints("pads", 1, 0, 0, 1)}, Want: []int{1, 2, 3, 3}},
			{Name: "1-D", Inputs: x(1, 2, 5), Attrs: []*Attr{ints("kernel_shape", 3), ints("strides", 2)}, Want: []int{1, 2, 2}}}})
	Register(&Def{Type: "AveragePool", Infer: inferPool, Exec: Both(newAvgPool[float64], newAvgPool[float32]), Class: Linear, Channels: FlowPool,
		Cases: []Case{{Name: "3x3 pad", Inputs: x(1, 2, 4, 4), Attrs: []*Attr{ints("kernel_shape", 3, 3), ints("strides", 2, 2), ints("pads", 1, 1, 1, 1)}, Want: []int{1, 2, 2, 2}},
			{Name: "count_include_pad", Inputs: x(1, 1, 3, 3), Attrs: []*Attr{ints("kernel_shape", 2, 2), ints("pads", 1, 1, 0, 0), {Name: "count_include_pad", Type: AttrInt, Int: 1}}, Want: []int{1, 1, 3, 3}}}})
	Register(&Def{Type: "GlobalAveragePool", Infer: inferGlobalPool, Exec: Both(newGlobalAvgPool[float64], newGlobalAvgPool[float32]), Class: Linear, Channels: FlowPool,
		Cases: []Case{{Name: "N×C×H×W", Inputs: x(2, 3, 2, 2), Want: []int{2, 3, 1, 1}}}})
	// GlobalMaxPool and GlobalLpPool are the reduction kernels of
	// reduce.go over the spatial axes (newGlobalReduction): ReduceMax's
	// picks (class Linear for fixed picks, like MaxPool), ReduceL1's,
	// ReduceL2's or the Lp rule (class Custom).
	g := func(name string, lo, hi float64, s ...int) Case {
		o := append([]int{s[0], s[1]}, make([]int, len(s)-2)...)
		for i := 2; i < len(o); i++ {
			o[i] = 1
		}
		return Case{Name: name, Inputs: []CaseInput{{Shape: s, Lo: lo, Hi: hi}}, Want: o}
	}
	withP := func(c Case, p int64) Case {
		c.Attrs = []*Attr{{Name: "p", Type: AttrInt, Int: p}}
		return c
	}
	Register(&Def{Type: "GlobalMaxPool", Infer: inferGlobalPool, Exec: Both(newGlobalReduction[float64], newGlobalReduction[float32]),
		Class: Linear, Channels: FlowPool, Cases: []Case{g("N×C×H×W", -1, 1, 2, 3, 2, 2), g("1-D", -1, 1, 2, 3, 5), g("3-D", -1, 1, 1, 2, 2, 2, 3),
			g("one element per plane", -1, 1, 2, 2, 1, 1)}})
	Register(&Def{Type: "GlobalLpPool", Infer: inferGlobalPool, Exec: Both(newGlobalReduction[float64], newGlobalReduction[float32]),
		Class: Custom, Channels: FlowPool, Cases: []Case{g("N×C×H×W, p 2 by default", -1, 1, 2, 3, 2, 2),
			withP(g("p 1", -1, 1, 2, 3, 2, 2), 1), withP(g("p 3, 1-D", -1, 1, 2, 3, 5), 3), withP(g("p 4, 3-D", -1, 1, 1, 2, 2, 2, 3), 4)}})
	Register(&Def{Type: "LpPool", Infer: inferPool, Channels: FlowPool,
		Cases: []Case{{Name: "2x2", Inputs: x(1, 1, 3, 3), Attrs: []*Attr{ints("kernel_shape", 2, 2)}, Want: []int{1, 1, 2, 2}}}})
}

// maxPool routes each output to the largest input of its window (the first
// one on ties, padding never wins). It is piecewise linear:
//
//	R{y_o} = R{x}[a_o],  x̄[a_o] += ȳ_o,  R{x̄}[a_o] += R{ȳ_o}
//
// with a_o the argmax recorded in the forward pass. Class Linear (for fixed
// a_o), written by hand because the map depends on the forward pass.
type maxPool[T Real] struct {
	pool2d
}

func newMaxPool[T Real](b *Build) (Kernel[T], error) {
	g, err := newPool2d(b)
	if err != nil {
		return nil, err
	}
	return &maxPool[T]{g}, nil
}

func (k *maxPool[T]) NewState() any { return make([]int32, k.planes*k.oh*k.ow) }

func (k *maxPool[T]) StateBytes() int64 { return 4 * int64(k.planes*k.oh*k.ow) }

func (k *maxPool[T]) Forward(w *Work[T]) {
	x, y := w.Val[k.x], w.Val[k.y]
	arg := w.State[k.sidx].([]int32)
	hw, ohw := k.h*k.wd, k.oh*k.ow
	for pl := 0; pl < k.planes; pl++ {
		src := x[pl*hw : (pl+1)*hw]
		for oh := 0; oh < k.oh; oh++ {
			for ow := 0; ow < k.ow; ow++ {
				best, bi := T(math.Inf(-1)), -1
				i0, i1 := taps(oh*k.sh-k.ph, k.dh, k.kh, k.h)
				j0, j1 := taps(ow*k.sw-k.pw, k.dw, k.kw, k.wd)
				for i := i0; i < i1; i++ {
					ih := oh*k.sh - k.ph + i*k.dh
					for j := j0; j < j1; j++ {
						iw := ow*k.sw - k.pw + j*k.dw
						if v := src[ih*k.wd+iw]; v > best || bi < 0 {
							best, bi = v, ih*k.wd+iw
						}
					}
				}
				o := pl*ohw + oh*k.ow + ow
				if bi < 0 {
					y[o], arg[o] = 0, -1
					continue
				}
				y[o], arg[o] = best, int32(pl*hw+bi)
			}
		}
	}
}

// taps returns the range [i0, i1) of the k window taps at start+i·d that
// fall inside [0, n): the loop visits no padding, so a huge window over a
// small input costs the input, not the window.
func taps(start, d, k, n int) (i0, i1 int) {
	if start < 0 {
		i0 = (-start + d - 1) / d
	}
	if last := n - 1 - start; last >= 0 {
		i1 = min(last/d+1, k)
	}
	return i0, max(i0, i1)
}

func (k *maxPool[T]) RForward(w *Work[T]) {
	rx, ry := w.RV[k.x], w.RV[k.y]
	if ry == nil {
		return
	}
	arg := w.State[k.sidx].([]int32)
	for o, a := range arg {
		if rx == nil || a < 0 {
			ry[o] = 0
		} else {
			ry[o] = rx[a]
		}
	}
}

func (k *maxPool[T]) scatter(dx, dy []T, arg []int32) {
	if dx == nil || dy == nil {
		return
	}
	for o, a := range arg {
		if a >= 0 {
			dx[a] += dy[o]
		}
	}
}

func (k *maxPool[T]) Backward(w *Work[T]) {
	k.scatter(w.Adj[k.x], w.Adj[k.y], w.State[k.sidx].([]int32))
}

func (k *maxPool[T]) RBackward(w *Work[T]) {
	k.scatter(w.RAdj[k.x], w.RAdj[k.y], w.State[k.sidx].([]int32))
}

// avgPool averages each window; the divisor follows PyTorch's avg_pool2d:
// with count_include_pad the window clipped to the padded input, else the
// number of input elements it covers. It is linear, y = A x:
//
//	R{y} = A R{x},  x̄ += Aᵀ ȳ,  R{x̄} += Aᵀ R{ȳ}
type avgPool[T Real] struct {
	pool2d
	includePad bool
}

func newAvgPool[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	g, err := newPool2d(b)
	if err != nil {
		return nil, err
	}
	if g.dh != 1 || g.dw != 1 {
		return nil, fmt.Errorf("dilated average pooling is not supported")
	}
	inc, err := n.AttrInt("count_include_pad", 0)
	if err != nil {
		return nil, err
	}
	return LinearKernel[T](&avgPool[T]{pool2d: g, includePad: inc != 0}, in[:1], out[0]), nil
}

// apply computes dst = A src (transpose: dst += Aᵀ src).
func (k *avgPool[T]) apply(dst, src []T, transpose bool) {
	if dst == nil || src == nil {
		return
	}
	hw, ohw := k.h*k.wd, k.oh*k.ow
	for pl := 0; pl < k.planes; pl++ {
		for oh := 0; oh < k.oh; oh++ {
			h0 := oh*k.sh - k.ph
			h1 := min(h0+k.kh, k.h+k.peh)
			for ow := 0; ow < k.ow; ow++ {
				w0 := ow*k.sw - k.pw
				w1 := min(w0+k.kw, k.wd+k.pew)
				cnt := (h1 - h0) * (w1 - w0)
				a0, a1, b0, b1 := max(h0, 0), min(h1, k.h), max(w0, 0), min(w1, k.wd)
				if !k.includePad {
					cnt = (a1 - a0) * (b1 - b0)
				}
				o := pl*ohw + oh*k.ow + ow
				if cnt <= 0 {
					if !transpose {
						dst[o] = 0
					}
					continue
				}
				inv := 1 / T(cnt)
				if transpose {
					g := src[o] * inv
					for i := a0; i < a1; i++ {
						row := dst[pl*hw+i*k.wd:]
						for j := b0; j < b1; j++ {
							row[j] += g
						}
					}
					continue
				}
				var s T
				for i := a0; i < a1; i++ {
					row := src[pl*hw+i*k.wd:]
					for j := b0; j < b1; j++ {
						s += row[j]
					}
				}
				dst[o] = s * inv
			}
		}
	}
}

// Apply and Transpose make avgPool a LinearMap (class Linear).
func (k *avgPool[T]) Apply(dst []T, src [][]T) {
	if src[0] == nil {
		clear(dst)
		return
	}
	k.apply(dst, src[0], false)
}

func (k *avgPool[T]) Transpose(dst [][]T, src []T) { k.apply(dst[0], src, true) }

// globalAvgPool averages each channel plane: y[n,c] = mean(x[n,c,…]); linear
// with R{y} = mean R{x}, x̄ += ȳ/HW, R{x̄} += R{ȳ}/HW.
type globalAvgPool[T Real] struct {
	planes, size int
}

func newGlobalAvgPool[T Real](b *Build) (Kernel[T], error) {
	in, out := b.In, b.Out
	xs := b.Shape(in[0])
	if len(xs) < 3 {
		return nil, fmt.Errorf("input shape %v, want N×C×spatial", xs)
	}
	return LinearKernel[T](&globalAvgPool[T]{planes: xs[0] * xs[1], size: Numel(xs[2:])}, in[:1], out[0]), nil
}

func (k *globalAvgPool[T]) mean(dst, src []T) {
	if dst == nil {
		return
	}
	if src == nil {
		clear(dst)
		return
	}
	inv := 1 / T(k.size)
	for pl := 0; pl < k.planes; pl++ {
		var s T
		for _, v := range src[pl*k.size : (pl+1)*k.size] {
			s += v
		}
		dst[pl] = s * inv
	}
}

func (k *globalAvgPool[T]) spread(dst, src []T) {
	if dst == nil || src == nil {
		return
	}
	inv := 1 / T(k.size)
	for pl := 0; pl < k.planes; pl++ {
		g := src[pl] * inv
		seg := dst[pl*k.size : (pl+1)*k.size]
		for i := range seg {
			seg[i] += g
		}
	}
}

// Apply and Transpose make globalAvgPool a LinearMap (class Linear).
func (k *globalAvgPool[T]) Apply(dst []T, src [][]T) { k.mean(dst, src[0]) }

func (k *globalAvgPool[T]) Transpose(dst [][]T, src []T) { k.spread(dst[0], src) }

// Retains: the passes route through the argmax kept in the kernel's
// state, reading no values.
func (k *maxPool[T]) Retains() Retains { return Retains{} }
