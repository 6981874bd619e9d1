package op

import (
	"fmt"
	"math"
)

// The reductions over a set of axes (attribute axes; from opset 18 — for
// ReduceSum from 13 — a constant axes input; none: every axis, or none at
// all with noop_with_empty_axes 1). Each output element o reduces the
// slice S_o of the input elements that map to it:
//
//	ReduceMean       y = Σ x / |S|        ReduceSum        y = Σ x
//	ReduceMax        y = max x            ReduceMin        y = min x
//	ReduceProd       y = Π x              ReduceL1         y = Σ |x|
//	ReduceL2         y = √(Σ x²)          ReduceSumSquare  y = Σ x²
//	ReduceLogSum     y = log Σ x          ReduceLogSumExp  y = log Σ eˣ
//
// With noop_with_empty_axes 1 and no axes every slice is one element, so
// the reductions that transform their elements stay elementwise
// (ReduceSumSquare gives x², ReduceL1 and ReduceL2 |x|, ReduceLogSum
// log x): the ONNX specification as corrected in 2025 (onnx PR 7394 and
// ONNX Runtime's since), where the text before said "the input".
//
// Derivative rules, by class:
//
//   - ReduceMean and ReduceSum are linear (class Linear):
//     y[o] = c Σ_{k ↦ o} x[k], x̄[k] += c ȳ[o(k)], c = 1 or 1/|S|.
//   - ReduceMax and ReduceMin route each output to the one element of its
//     slice that attains the extreme, recorded by the forward pass (as
//     MaxPool records its argmax): y_o = x_{p_o}, R{y_o} = R{x}_{p_o},
//     x̄_{p_o} += ȳ_o, R{x̄}_{p_o} += R{ȳ_o}. For fixed picks the map is
//     linear (class Linear, like MaxPool); its second derivative is zero.
//     Ties: the first element of the slice in the input's row-major order
//     takes the derivative, for both, as MaxPool, ArgMax and ArgMin (with
//     select_last_index 0) and torch.max(dim) choose; torch.amax and
//     torch.amin split it equally among the tied elements instead. (The
//     variadic Max gives it to the last tied input, because its rule is
//     the left fold of the two-input Max(a, b) that routes to b on a tie,
//     so that Max(x, 0) has Relu's derivative; a reduction has no such
//     operand order to keep.) A NaN in the slice makes the output NaN and
//     takes the derivative.
//   - The other six are smooth (almost everywhere) functions of their
//     slice, with hand-written passes (class Custom: a composite over
//     primitives would hold an intermediate tensor per step, divide by x
//     for ReduceProd and give NaN for ReduceL2 at zero). With d_k =
//     ∂y/∂x_k and H the slice's Hessian,
//
//     R{y} = Σ d_k R{x_k},  x̄_k += d_k ȳ,  R{x̄_k} += d_k R{ȳ} + ȳ (H R{x})_k,
//
//     ReduceProd       d_k = Π_{j≠k} x_j, (H r)_k = Σ_{j≠k} r_j Π_{i≠j,k} x_i, both by
//     prefix and suffix products (no division, exact with zeros in the slice)
//     ReduceL1         d_k = sign x_k (0 at 0), H = 0
//     ReduceL2         d_k = x_k / y, (H r)_k = (r_k − d_k ⟨d, r⟩) / y; at an all-zero
//     slice d = 0 and H = 0 (PyTorch's subgradient of the norm), never NaN
//     ReduceSumSquare  d_k = 2 x_k, (H r)_k = 2 r_k
//     ReduceLogSum     d_k = 1/s, (H r)_k = −Σ r / s²  (s = Σ x)
//     ReduceLogSumExp  d_k = p_k = e^{x_k − y}, (H r)_k = p_k (r_k − ⟨p, r⟩); the forward
//     pass subtracts the slice's maximum m, y = m + log Σ e^{x − m}, so no
//     exponential overflows
//     Lp (p ≥ 3)       d_k = sign x_k (|x_k|/y)^(p−1),
//     (H r)_k = (p − 1) (|x_k|^(p−2) r_k / y^(p−1) − d_k ⟨d, r⟩ / y);
//     ReduceL2 at p = 2; at an all-zero slice d = 0 and H = 0 (GlobalLpPool's
//     kernel, below)
//
// GlobalMaxPool and GlobalLpPool (pool.go) are these kernels over the axes
// after the channels with keepdims 1: ReduceMax, and ReduceL1, ReduceL2 or
// the Lp rule for p = 1, 2, ≥ 3 (newGlobalReduction).

func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	ints := func(v ...int64) CaseInput { return CaseInput{Shape: []int{len(v)}, Ints: v} }
	attr := func(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
	keep0 := &Attr{Name: "keepdims", Type: AttrInt, Int: 0}
	for _, typ := range []string{"ReduceMean", "ReduceSum"} {
		Register(&Def{Type: typ, Infer: inferReduce, Exec: Both(newReduce[float64], newReduce[float32]), Class: Linear, Channels: FlowReduce, Cases: []Case{
			{Name: "last axis attribute", Opset: 13, Inputs: []CaseInput{x(2, 3, 4)}, Attrs: []*Attr{attr("axes", -1)}, Want: []int{2, 3, 1}},
			{Name: "spatial axes input, no keepdims", Opset: 18, Inputs: []CaseInput{x(2, 3, 2, 2), ints(2, 3)}, Attrs: []*Attr{keep0}, Want: []int{2, 3}},
			{Name: "all axes", Opset: 18, Inputs: []CaseInput{x(2, 3)}, Want: []int{1, 1}},
		}})
	}
	for _, r := range []struct {
		typ    string
		lo, hi float64
	}{
		{"ReduceMax", -1, 1}, {"ReduceMin", -1, 1}, {"ReduceProd", -1.5, 1.5}, {"ReduceL1", -1, 1},
		{"ReduceL2", -1, 1}, {"ReduceSumSquare", -1, 1}, {"ReduceLogSum", 0.5, 2}, {"ReduceLogSumExp", -3, 3},
	} {
		class := Custom
		if r.typ == "ReduceMax" || r.typ == "ReduceMin" {
			class = Linear
		}
		Register(&Def{Type: r.typ, Infer: inferReduce, Exec: Both(newReduction[float64], newReduction[float32]), Class: class,
			Channels: FlowReduce, Cases: reductionCases(r.lo, r.hi)})
	}
	for _, typ := range []string{"ArgMax", "ArgMin"} {
		Register(&Def{Type: typ, Infer: inferArg, Fold: true, Eval: evalArg, Cases: []Case{
			{Name: "axis 1", Inputs: []CaseInput{x(2, 3, 4)}, Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: 1}}, Want: []int{2, 1, 4}},
			{Name: "last axis, no keepdims", Inputs: []CaseInput{x(2, 3)}, Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: -1}, keep0}, Want: []int{2}},
		}})
	}
}

// reductionCases are the conformance cases of the reductions other than
// ReduceMean and ReduceSum, with random inputs in [lo, hi]: axes as an
// attribute at opsets 11, 13 and 17 (one axis, a negative one, the spatial
// axes without keepdims, none: every axis) and as an input at 18, 20 and
// 21 (two axes without keepdims, the channel axis, no input with and
// without noop_with_empty_axes).
func reductionCases(lo, hi float64) []Case {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s, Lo: lo, Hi: hi} }
	ints := func(v ...int64) CaseInput { return CaseInput{Shape: []int{len(v)}, Ints: v} }
	axes := func(v ...int64) *Attr { return &Attr{Name: "axes", Type: AttrInts, Ints: v} }
	keep0 := &Attr{Name: "keepdims", Type: AttrInt, Int: 0}
	noop := &Attr{Name: "noop_with_empty_axes", Type: AttrInt, Int: 1}
	return []Case{
		{Name: "axis 1 attribute", Opset: 11, Inputs: []CaseInput{x(2, 3, 4)}, Attrs: []*Attr{axes(1)}, Want: []int{2, 1, 4}},
		{Name: "last axis attribute", Opset: 13, Inputs: []CaseInput{x(2, 3, 4)}, Attrs: []*Attr{axes(-1)}, Want: []int{2, 3, 1}},
		{Name: "spatial axes attribute, no keepdims", Opset: 17, Inputs: []CaseInput{x(2, 3, 2, 2)}, Attrs: []*Attr{axes(2, 3), keep0}, Want: []int{2, 3}},
		{Name: "all axes, no attribute", Opset: 13, Inputs: []CaseInput{x(2, 3)}, Want: []int{1, 1}},
		{Name: "axes input, no keepdims", Opset: 18, Inputs: []CaseInput{x(2, 3, 2), ints(0, 2)}, Attrs: []*Attr{keep0}, Want: []int{3}},
		{Name: "channel axis input", Opset: 20, Inputs: []CaseInput{x(2, 3, 2, 2), ints(1)}, Want: []int{2, 1, 2, 2}},
		{Name: "no axes input: all axes, no keepdims", Opset: 21, Inputs: []CaseInput{x(3, 2)}, Attrs: []*Attr{keep0}, Want: []int{}},
		{Name: "no axes input, noop_with_empty_axes", Opset: 21, Inputs: []CaseInput{x(2, 3)}, Attrs: []*Attr{noop}, Want: []int{2, 3}},
	}
}

// reduceIndex maps each element of input shape xs to its output element
// for the reduced axes red.
func reduceIndex(xs []int, red []bool) []int {
	stride := make([]int, len(xs))
	s := 1
	for i := len(xs) - 1; i >= 0; i-- {
		if !red[i] {
			stride[i] = s
			s *= xs[i]
		}
	}
	idx := make([]int, Numel(xs))
	coord := make([]int, len(xs))
	for e := range idx {
		q := 0
		for d, c := range coord {
			q += c * stride[d]
		}
		idx[e] = q
		for d := len(xs) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < xs[d] {
				break
			}
			coord[d] = 0
		}
	}
	return idx
}

// reduceSlices returns, for input shape xs and reduced axes red, the
// offset base[o] of output element o's first input element and the
// offsets off[j] of the slice's elements relative to it, both in
// row-major order: element j of slice o is base[o] + off[j], and j
// ascends with the input's order.
func reduceSlices(xs []int, red []bool) (base, off []int) {
	stride := make([]int, len(xs))
	s := 1
	for i := len(xs) - 1; i >= 0; i-- {
		stride[i] = s
		s *= xs[i]
	}
	// offsets enumerates Σ c_i stride_i over the coordinates of the axes
	// where keep(i), row-major.
	offsets := func(keep func(i int) bool) []int {
		out := []int{0}
		for i, d := range xs {
			if !keep(i) {
				continue
			}
			next := make([]int, 0, len(out)*d)
			for _, o := range out {
				for c := 0; c < d; c++ {
					next = append(next, o+c*stride[i])
				}
			}
			out = next
		}
		return out
	}
	return offsets(func(i int) bool { return !red[i] }), offsets(func(i int) bool { return red[i] })
}

// argAxis returns ArgMax/ArgMin's axis (normalised for rank r) and
// keepdims.
func argAxis(n *Node, r int) (int, bool, error) {
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return 0, false, err
	}
	ax, err := NormAxis(n, "axis", a, r, false)
	if err != nil {
		return 0, false, err
	}
	keep, err := n.AttrInt("keepdims", 1)
	return ax, keep != 0, err
}

func inferArg(n *Node, s *Shapes) error {
	in, ok, _, out := first(n, s)
	if !ok {
		return nil
	}
	ax, keep, err := argAxis(n, len(in))
	if err != nil {
		return err
	}
	red := make([]bool, len(in))
	red[ax] = true
	s.Set(out, reducedShape(in, red, keep), Int64)
	return nil
}

// evalArg is ArgMax/ArgMin: the index of the first (or, with
// select_last_index, the last) extreme element along the axis.
func evalArg(n *Node, ins, outs []*Tensor) error {
	x, y := ins[0], outs[0]
	ax, _, err := argAxis(n, len(x.Shape))
	if err != nil {
		return err
	}
	last, err := n.AttrInt("select_last_index", 0)
	if err != nil {
		return err
	}
	red := make([]bool, len(x.Shape))
	red[ax] = true
	inner := Numel(x.Shape[ax+1:])
	best := make([]float64, y.Len())
	seen := make([]bool, y.Len())
	for e, q := range reduceIndex(x.Shape, red) {
		v, i := at(x, e), int64(e/inner%x.Shape[ax])
		better := v > best[q]
		if n.Op == "ArgMin" {
			better = v < best[q]
		}
		if !seen[q] || better || (last != 0 && v == best[q]) {
			best[q], y.Int[q], seen[q] = v, i, true
		}
	}
	return nil
}

// ReduceAxes returns which axes of a rank-r input reduction n reduces and
// whether it keeps them (keepdims): axes are the values v of its input 1
// when fromInput (ReduceSum from opset 13, the others from 18), else its
// axes attribute; an empty set reduces every axis, or none with
// noop_with_empty_axes 1.
func ReduceAxes(n *Node, r int, v []int64, fromInput bool) (reduced []bool, keepdims bool, err error) {
	return reduceAxes(n, r, v, fromInput)
}

// reduceAxes returns which axes of a rank-r input n reduces and whether it
// keeps them; axes come from input 1 (values v, when given) or the axes
// attribute. An empty set reduces every axis, or none with
// noop_with_empty_axes.
func reduceAxes(n *Node, r int, v []int64, fromInput bool) ([]bool, bool, error) {
	axes := v
	if !fromInput {
		var err error
		if axes, err = n.AttrInts("axes", nil); err != nil {
			return nil, false, err
		}
	}
	keep, err := n.AttrInt("keepdims", 1)
	if err != nil {
		return nil, false, err
	}
	noop, err := n.AttrInt("noop_with_empty_axes", 0)
	if err != nil {
		return nil, false, err
	}
	red := make([]bool, r)
	if len(axes) == 0 && noop == 0 {
		for i := range red {
			red[i] = true
		}
	}
	for _, a := range axes {
		ax, err := NormAxis(n, "axes", a, r, false)
		if err != nil {
			return nil, false, err
		}
		red[ax] = true
	}
	return red, keep != 0, nil
}

func reducedShape(in []int, red []bool, keep bool) []int {
	o := []int{}
	for i, d := range in {
		switch {
		case !red[i]:
			o = append(o, d)
		case keep:
			o = append(o, 1)
		}
	}
	return o
}

func inferReduce(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	var v []int64
	fromInput := n.Input(1) != ""
	if fromInput {
		var okV bool
		if v, okV = s.Ints[n.Input(1)]; !okV {
			return nil
		}
	}
	if !ok {
		return nil
	}
	red, keep, err := reduceAxes(n, len(in), v, fromInput)
	if err != nil {
		return err
	}
	s.Set(out, reducedShape(in, red, keep), t)
	return nil
}

// buildAxes returns the input shape and reduced axes of the reduction b
// builds, checking that the output has as many elements as the reduction
// gives; count is the number of elements per output.
func buildAxes(b *Build) (xs []int, red []bool, count int, err error) {
	if b.Input(0) < 0 {
		return nil, nil, 0, errMissing(0)
	}
	xs = b.Shape(b.In[0])
	var v []int64
	fromInput := b.Input(1) >= 0
	if fromInput {
		f, ok := b.Const(b.In[1])
		if !ok {
			return nil, nil, 0, fmt.Errorf("the axes input must be a constant")
		}
		for _, a := range f {
			v = append(v, FloatToInt(a))
		}
	}
	red, _, err = reduceAxes(b.Node, len(xs), v, fromInput)
	if err != nil {
		return nil, nil, 0, err
	}
	s, count := 1, 1
	for i, d := range xs {
		if red[i] {
			count *= d
		} else {
			s *= d
		}
	}
	if s != b.Size(b.Out[0]) {
		return nil, nil, 0, fmt.Errorf("output has %d elements, the reduction %d", b.Size(b.Out[0]), s)
	}
	return xs, red, count, nil
}

// reduce maps input element k to output element idx[k], scaled by c.
type reduce[T Real] struct {
	idx []int32
	c   T
	// m keeps the interned idx alive.
	m *indexMap
}

func newReduce[T Real](b *Build) (Kernel[T], error) {
	xs, red, count, err := buildAxes(b)
	if err != nil {
		return nil, err
	}
	m := internIndex(indexKey("reduce", xs, red), func() *indexMap { return &indexMap{idx: int32s(reduceIndex(xs, red))} })
	k := &reduce[T]{idx: m.idx, c: 1, m: m}
	if b.Node.Op == "ReduceMean" && count > 0 {
		k.c = 1 / T(count)
	}
	return LinearKernel[T](k, b.In[:1], b.Out[0]), nil
}

func (k *reduce[T]) Apply(dst []T, src [][]T) {
	clear(dst)
	if src[0] == nil {
		return
	}
	for e, q := range k.idx {
		dst[q] += k.c * src[0][e]
	}
}

func (k *reduce[T]) Transpose(dst [][]T, src []T) {
	if dst[0] == nil {
		return
	}
	for e, q := range k.idx {
		dst[0][e] += k.c * src[q]
	}
}

// reduceKind names a reduction of newReduction.
type reduceKind int

const (
	reduceMax reduceKind = iota
	reduceMin
	reduceProd
	reduceL1
	reduceL2
	reduceSumSquare
	reduceLogSum
	reduceLogSumExp
	// reduceLp is GlobalLpPool's (Σ |x|^p)^(1/p) for p ≥ 3 (p = 1 and 2
	// are reduceL1 and reduceL2).
	reduceLp
)

var reduceKinds = map[string]reduceKind{
	"ReduceMax": reduceMax, "ReduceMin": reduceMin, "ReduceProd": reduceProd, "ReduceL1": reduceL1,
	"ReduceL2": reduceL2, "ReduceSumSquare": reduceSumSquare, "ReduceLogSum": reduceLogSum, "ReduceLogSumExp": reduceLogSumExp,
}

// newReduction builds the kernel of a ReduceMax, ReduceMin, ReduceProd,
// ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum or ReduceLogSumExp
// node.
func newReduction[T Real](b *Build) (Kernel[T], error) {
	kind, ok := reduceKinds[b.Node.Op]
	if !ok {
		return nil, fmt.Errorf("operator %s is not a reduction", b.Node.Op)
	}
	xs, red, _, err := buildAxes(b)
	if err != nil {
		return nil, err
	}
	return reductionKernel[T](b, kind, 0, xs, red), nil
}

// newGlobalReduction builds the kernel of GlobalMaxPool and GlobalLpPool:
// the reduction over every axis after the channels, keepdims 1 —
// ReduceMax for GlobalMaxPool; for GlobalLpPool (attribute p, default 2)
// ReduceL1 at p = 1, ReduceL2 at p = 2, (Σ |x|^p)^(1/p) for p ≥ 3.
func newGlobalReduction[T Real](b *Build) (Kernel[T], error) {
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	xs := b.Shape(b.In[0])
	if len(xs) < 3 {
		return nil, fmt.Errorf("input shape %v, want N×C×spatial", xs)
	}
	if s := xs[0] * xs[1]; s != b.Size(b.Out[0]) {
		return nil, fmt.Errorf("output has %d elements, the pooling %d", b.Size(b.Out[0]), s)
	}
	red := make([]bool, len(xs))
	for i := 2; i < len(xs); i++ {
		red[i] = true
	}
	kind, p := reduceMax, int64(0)
	if b.Node.Op == "GlobalLpPool" {
		var err error
		if p, err = b.Node.AttrInt("p", 2); err != nil {
			return nil, err
		}
		switch {
		case p == 1:
			kind = reduceL1
		case p == 2:
			kind = reduceL2
		case p >= 3 && p <= maxLpP:
			kind = reduceLp
		default:
			return nil, AttrError(b.Node, "p", "is %d, want 1..%d", p, maxLpP)
		}
	}
	return reductionKernel[T](b, kind, p, xs, red), nil
}

// maxLpP bounds GlobalLpPool's p: |x|^p of an O(1) activation stays finite
// in float32 up to about p = 38 for |x| ≤ 10, and no model uses more.
const maxLpP = 32

// reductionKernel is the kernel of reduction kind over the axes red of an
// input of shape xs (p: the exponent of reduceLp).
func reductionKernel[T Real](b *Build, kind reduceKind, p int64, xs []int, red []bool) Kernel[T] {
	base, off := reduceSlices(xs, red)
	s := reduceSlicesOf{base: base, off: off, x: b.In[0], y: b.Out[0]}
	if kind == reduceMax || kind == reduceMin {
		return &reducePick[T]{reduceSlicesOf: s, min: kind == reduceMin, state: b.State}
	}
	return &reduceSmooth[T]{reduceSlicesOf: s, kind: kind, p: float64(p)}
}

// reduceSlicesOf is the layout of a reduction: element j of output o's
// slice is input element base[o] + off[j] (see reduceSlices).
type reduceSlicesOf struct {
	base, off []int
	x, y      int
}

// reducePick is the kernel of ReduceMax and ReduceMin: the forward pass
// records, for each output, the input element it takes (the first extreme
// one, see the tie rule above); the derivative passes route through it.
type reducePick[T Real] struct {
	reduceSlicesOf
	min bool
	// state is the index of the picks in Work.State.
	state int
}

// NewState returns the picks of one Work: an input element per output
// (−1 for an empty slice).
func (k *reducePick[T]) NewState() any { return make([]int32, len(k.base)) }

// StateBytes is the size of the picks.
func (k *reducePick[T]) StateBytes() int64 { return 4 * int64(len(k.base)) }

func (k *reducePick[T]) picks(w *Work[T]) []int32 { return w.State[k.state].([]int32) }

func (k *reducePick[T]) Forward(w *Work[T]) {
	x, y, p := w.Val[k.x], w.Val[k.y], k.picks(w)
	for o, b := range k.base {
		if len(k.off) == 0 {
			y[o], p[o] = T(math.Inf(1)), -1
			if !k.min {
				y[o] = T(math.Inf(-1))
			}
			continue
		}
		e := b + k.off[0]
		best, pick := x[e], e
		for _, d := range k.off[1:] {
			v := x[b+d]
			// Strictly better only: the first extreme element is kept. A
			// NaN is taken and then kept (no comparison with it holds).
			if (k.min && v < best) || (!k.min && v > best) || (v != v && best == best) {
				best, pick = v, b+d
			}
		}
		y[o], p[o] = best, int32(pick)
	}
}

func (k *reducePick[T]) RForward(w *Work[T]) {
	rx, ry := w.RV[k.x], w.RV[k.y]
	if ry == nil {
		return
	}
	for o, e := range k.picks(w) {
		if rx == nil || e < 0 {
			ry[o] = 0
		} else {
			ry[o] = rx[e]
		}
	}
}

// route adds src[o] into dst at output o's pick.
func (k *reducePick[T]) route(dst, src []T, p []int32) {
	if dst == nil || src == nil {
		return
	}
	for o, e := range p {
		if e >= 0 {
			dst[e] += src[o]
		}
	}
}

func (k *reducePick[T]) Backward(w *Work[T]) { k.route(w.Adj[k.x], w.Adj[k.y], k.picks(w)) }

func (k *reducePick[T]) RBackward(w *Work[T]) { k.route(w.RAdj[k.x], w.RAdj[k.y], k.picks(w)) }

// Retains: the passes route through the picks kept in the kernel's state,
// reading no values (as MaxPool's argmax).
func (k *reducePick[T]) Retains() Retains { return Retains{} }

// reduceSmooth is the kernel of ReduceProd, ReduceL1, ReduceL2,
// ReduceSumSquare, ReduceLogSum and ReduceLogSumExp: each pass walks the
// slices, with the rules of the comment at the top of this file.
type reduceSmooth[T Real] struct {
	reduceSlicesOf
	kind reduceKind
	// p is reduceLp's exponent.
	p float64
}

// ScratchSizes: ReduceProd keeps a slice's prefix products and their
// R-values in scratch buffer 0.
func (k *reduceSmooth[T]) ScratchSizes() []int {
	if k.kind == reduceProd {
		return []int{2 * len(k.off)}
	}
	return nil
}

// Retains: every rule reads x; ReduceL2's and ReduceLogSumExp's also y
// (d = x/y, p = e^{x−y}); the second-order terms R{x} and ȳ (none for
// ReduceL1, whose H is zero).
func (k *reduceSmooth[T]) Retains() Retains {
	r := Retains{InVal: true, InRV: true, OutAdj: true}
	switch k.kind {
	case reduceL1:
		r = Retains{InVal: true}
	case reduceL2, reduceLogSumExp, reduceLp:
		r.OutVal = true
	}
	return r
}

func sign[T Real](v T) T {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func (k *reduceSmooth[T]) Forward(w *Work[T]) {
	x, y := w.Val[k.x], w.Val[k.y]
	for o, b := range k.base {
		var a T
		switch k.kind {
		case reduceProd:
			a = 1
			for _, d := range k.off {
				a *= x[b+d]
			}
		case reduceL1:
			for _, d := range k.off {
				a += T(math.Abs(float64(x[b+d])))
			}
		case reduceL2, reduceSumSquare:
			for _, d := range k.off {
				a += x[b+d] * x[b+d]
			}
			if k.kind == reduceL2 {
				a = T(math.Sqrt(float64(a)))
			}
		case reduceLogSum:
			for _, d := range k.off {
				a += x[b+d]
			}
			a = T(math.Log(float64(a)))
		case reduceLogSumExp:
			a = k.logSumExp(x, b)
		case reduceLp:
			s := 0.0
			for _, d := range k.off {
				s += math.Pow(math.Abs(float64(x[b+d])), k.p)
			}
			a = T(math.Pow(s, 1/k.p))
		}
		y[o] = a
	}
}

// logSumExp returns log Σ eˣ over slice b, as m + log Σ e^{x−m} with m
// the slice's maximum (±∞ when m is: an empty slice or one of only −∞
// gives −∞).
func (k *reduceSmooth[T]) logSumExp(x []T, b int) T {
	m := math.Inf(-1)
	for _, d := range k.off {
		if v := float64(x[b+d]); v > m || v != v {
			m = v
		}
	}
	if math.IsInf(m, 0) {
		return T(m)
	}
	s := 0.0
	for _, d := range k.off {
		s += math.Exp(float64(x[b+d]) - m)
	}
	return T(m + math.Log(s))
}

// grad returns d_k = ∂y_o/∂x_k for element e = b + off[j] of slice o,
// for the kinds whose d_k needs no other element than x_e, y_o and the
// slice sum s (ReduceLogSum's); ReduceProd has its own loops.
func (k *reduceSmooth[T]) grad(xe, yo, s T) T {
	switch k.kind {
	case reduceL1:
		return sign(xe)
	case reduceL2:
		if yo == 0 {
			return 0
		}
		return xe / yo
	case reduceSumSquare:
		return 2 * xe
	case reduceLogSum:
		return 1 / s
	case reduceLogSumExp:
		return T(math.Exp(float64(xe - yo)))
	case reduceLp:
		if yo == 0 {
			return 0
		}
		return sign(xe) * T(math.Pow(math.Abs(float64(xe))/float64(yo), k.p-1))
	}
	panic("op: reduceSmooth.grad of " + fmt.Sprint(k.kind))
}

// sum returns Σ x over slice b (ReduceLogSum's s; 0 for the others,
// which do not read it).
func (k *reduceSmooth[T]) sum(x []T, b int) T {
	var s T
	if k.kind == reduceLogSum {
		for _, d := range k.off {
			s += x[b+d]
		}
	}
	return s
}

func (k *reduceSmooth[T]) RForward(w *Work[T]) {
	rx, ry := w.RV[k.x], w.RV[k.y]
	if ry == nil {
		return
	}
	if rx == nil {
		clear(ry)
		return
	}
	x, y := w.Val[k.x], w.Val[k.y]
	for o, b := range k.base {
		var r T
		if k.kind == reduceProd {
			// The R-value of the running product: (v, R{v}) ← (v x, R{v} x + v R{x}).
			v := T(1)
			for _, d := range k.off {
				r = r*x[b+d] + v*rx[b+d]
				v *= x[b+d]
			}
		} else {
			yo, s := k.val(y, o), k.sum(x, b)
			for _, d := range k.off {
				r += k.grad(x[b+d], yo, s) * rx[b+d]
			}
		}
		ry[o] = r
	}
}

// val returns y[o], or 0 where the kind does not read y (y may then be a
// recycled buffer).
func (k *reduceSmooth[T]) val(y []T, o int) T {
	if k.kind == reduceL2 || k.kind == reduceLogSumExp || k.kind == reduceLp {
		return y[o]
	}
	return 0
}

func (k *reduceSmooth[T]) Backward(w *Work[T]) {
	if dx, dy := w.Adj[k.x], w.Adj[k.y]; dx != nil && dy != nil {
		k.transpose(w, dx, dy)
	}
}

// transpose adds Jᵀ g into dx: the backward pass for the output adjoint g.
func (k *reduceSmooth[T]) transpose(w *Work[T], dx, g []T) {
	x, y := w.Val[k.x], w.Val[k.y]
	if k.kind == reduceProd {
		pre := w.Scratch(0, len(k.off))
		for o, b := range k.base {
			// x̄_k += ȳ P_k S_k with prefix P_k = Π_{j<k} x_j and suffix
			// S_k = Π_{j>k} x_j.
			p := T(1)
			for j, d := range k.off {
				pre[j] = p
				p *= x[b+d]
			}
			s := g[o]
			for j := len(k.off) - 1; j >= 0; j-- {
				e := b + k.off[j]
				dx[e] += pre[j] * s
				s *= x[e]
			}
		}
		return
	}
	for o, b := range k.base {
		gy, yo, s := g[o], k.val(y, o), k.sum(x, b)
		for _, d := range k.off {
			dx[b+d] += k.grad(x[b+d], yo, s) * gy
		}
	}
}

func (k *reduceSmooth[T]) RBackward(w *Work[T]) {
	rdx, rdy := w.RAdj[k.x], w.RAdj[k.y]
	if rdx == nil || rdy == nil {
		return
	}
	x, y := w.Val[k.x], w.Val[k.y]
	rx, dy := w.RV[k.x], w.Adj[k.y]
	if k.kind == reduceL1 || rx == nil || dy == nil {
		// No second-order term (ReduceL1's H is zero, R{x} or ȳ is zero):
		// R{x̄} += Jᵀ R{ȳ}, the backward pass on R{ȳ}.
		k.transpose(w, rdx, rdy)
		return
	}
	if k.kind == reduceProd {
		k.rBackwardProd(w, rdx, rdy, x, rx, dy)
		return
	}
	for o, b := range k.base {
		rg, g, yo, s := rdy[o], dy[o], k.val(y, o), k.sum(x, b)
		switch k.kind {
		case reduceSumSquare:
			for _, d := range k.off {
				e := b + d
				rdx[e] += 2*x[e]*rg + 2*g*rx[e]
			}
		case reduceL2:
			if yo == 0 {
				continue // the subgradient 0 and its derivative 0
			}
			var dr T // ⟨d, R{x}⟩
			for _, d := range k.off {
				dr += x[b+d] * rx[b+d]
			}
			dr /= yo
			for _, d := range k.off {
				e := b + d
				de := x[e] / yo
				rdx[e] += de*rg + g*(rx[e]-de*dr)/yo
			}
		case reduceLogSum:
			var sr T // Σ R{x}
			for _, d := range k.off {
				sr += rx[b+d]
			}
			for _, d := range k.off {
				rdx[b+d] += rg/s - g*sr/(s*s)
			}
		case reduceLp:
			if yo == 0 {
				continue // as ReduceL2's: d = 0, H = 0
			}
			var dr T // ⟨d, R{x}⟩
			for _, d := range k.off {
				dr += k.grad(x[b+d], yo, 0) * rx[b+d]
			}
			for _, d := range k.off {
				e := b + d
				de := k.grad(x[e], yo, 0)
				c := T(math.Pow(math.Abs(float64(x[e]))/float64(yo), k.p-2)) / yo // |x_k|^(p−2) / y^(p−1)
				rdx[e] += de*rg + g*T(k.p-1)*(c*rx[e]-de*dr/yo)
			}
		case reduceLogSumExp:
			var pr T // ⟨p, R{x}⟩
			for _, d := range k.off {
				pr += T(math.Exp(float64(x[b+d]-yo))) * rx[b+d]
			}
			for _, d := range k.off {
				e := b + d
				p := T(math.Exp(float64(x[e] - yo)))
				rdx[e] += p*rg + g*p*(rx[e]-pr)
			}
		}
	}
}

// rBackwardProd is ReduceProd's R-backward: with prefix and suffix
// products P_k, S_k and their R-values (the running products' dual parts),
// R{x̄_k} += R{ȳ} P_k S_k + ȳ (R{P_k} S_k + P_k R{S_k}).
func (k *reduceSmooth[T]) rBackwardProd(w *Work[T], rdx, rdy, x, rx, dy []T) {
	pre := w.Scratch(0, 2*len(k.off))
	for o, b := range k.base {
		p, rp := T(1), T(0)
		for j, d := range k.off {
			pre[2*j], pre[2*j+1] = p, rp
			rp = rp*x[b+d] + p*rx[b+d]
			p *= x[b+d]
		}
		s, rs := T(1), T(0)
		rg, g := rdy[o], dy[o]
		for j := len(k.off) - 1; j >= 0; j-- {
			e := b + k.off[j]
			p, rp := pre[2*j], pre[2*j+1]
			rdx[e] += rg*p*s + g*(rp*s+p*rs)
			rs = rs*x[e] + s*rx[e]
			s *= x[e]
		}
	}
}
