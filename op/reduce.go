package op

import (
	"fmt"
	"math"
)

// ReduceMean and ReduceSum over a set of axes (attribute axes, or from
// opset 13 / 18 a constant axes input; none: every axis unless
// noop_with_empty_axes). Both are linear (class Linear):
//
//	y[o] = c Σ_{k ↦ o} x[k],  x̄[k] += c ȳ[o(k)],  c = 1 (sum) or 1/|reduced| (mean).

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
	// The other reductions are evaluated only on constants (Eval).
	for _, r := range reductions {
		Register(&Def{Type: r.typ, Infer: inferReduce, Fold: true, Eval: evalReduce(r.acc), Channels: FlowReduce, Cases: []Case{
			{Name: "last axis attribute", Opset: 13, Inputs: []CaseInput{{Shape: []int{2, 3, 4}, Lo: 0.5, Hi: 2}}, Attrs: []*Attr{attr("axes", -1)}, Want: []int{2, 3, 1}},
			{Name: "axes input, no keepdims", Opset: 18, Inputs: []CaseInput{{Shape: []int{2, 3, 2}, Lo: 0.5, Hi: 2}, ints(0, 2)}, Attrs: []*Attr{keep0}, Want: []int{3}},
		}})
	}
	for _, typ := range []string{"ArgMax", "ArgMin"} {
		Register(&Def{Type: typ, Infer: inferArg, Fold: true, Eval: evalArg, Cases: []Case{
			{Name: "axis 1", Inputs: []CaseInput{x(2, 3, 4)}, Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: 1}}, Want: []int{2, 1, 4}},
			{Name: "last axis, no keepdims", Inputs: []CaseInput{x(2, 3)}, Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: -1}, keep0}, Want: []int{2}},
		}})
	}
}

// A reduction folds the elements mapped to one output: acc(state, x, first)
// accumulates, fin turns the state into the output value.
type reduction struct {
	typ string
	acc reducer
}

type reducer struct {
	init float64
	add  func(a, x float64) float64
	fin  func(a float64) float64
}

func ident(a float64) float64 { return a }

var reductions = []reduction{
	{"ReduceMax", reducer{math.Inf(-1), math.Max, ident}},
	{"ReduceMin", reducer{math.Inf(1), math.Min, ident}},
	{"ReduceProd", reducer{1, func(a, x float64) float64 { return a * x }, ident}},
	{"ReduceL1", reducer{0, func(a, x float64) float64 { return a + math.Abs(x) }, ident}},
	{"ReduceL2", reducer{0, func(a, x float64) float64 { return a + x*x }, math.Sqrt}},
	{"ReduceSumSquare", reducer{0, func(a, x float64) float64 { return a + x*x }, ident}},
	{"ReduceLogSum", reducer{0, func(a, x float64) float64 { return a + x }, math.Log}},
	// Σ exp(x) overflows beyond x ≈ 709; constant folding sees shape-sized
	// values only.
	{"ReduceLogSumExp", reducer{0, func(a, x float64) float64 { return a + math.Exp(x) }, math.Log}},
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

// evalReduce is the Eval of a reduction with accumulator r; integer inputs
// are accumulated in float64 (exact below 2⁵³).
func evalReduce(r reducer) func(n *Node, ins, outs []*Tensor) error {
	return func(n *Node, ins, outs []*Tensor) error {
		x, y := ins[0], outs[0]
		var v []int64
		fromInput := len(ins) > 1 && ins[1] != nil
		if fromInput {
			v = ins[1].Int
		}
		red, _, err := reduceAxes(n, len(x.Shape), v, fromInput)
		if err != nil {
			return err
		}
		acc := make([]float64, y.Len())
		for i := range acc {
			acc[i] = r.init
		}
		for e, q := range reduceIndex(x.Shape, red) {
			acc[q] = r.add(acc[q], at(x, e))
		}
		for i, a := range acc {
			acc[i] = r.fin(a)
		}
		StoreAs(y, acc)
		return nil
	}
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

// reduce maps input element k to output element idx[k], scaled by c.
type reduce[T Real] struct {
	idx []int32
	c   T
	// m keeps the interned idx alive.
	m *indexMap
}

func newReduce[T Real](b *Build) (Kernel[T], error) {
	xs := b.Shape(b.In[0])
	var v []int64
	fromInput := b.Input(1) >= 0
	if fromInput {
		f, ok := b.Const(b.In[1])
		if !ok {
			return nil, fmt.Errorf("the axes input must be a constant")
		}
		for _, a := range f {
			v = append(v, FloatToInt(a))
		}
	}
	red, _, err := reduceAxes(b.Node, len(xs), v, fromInput)
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("output has %d elements, the reduction %d", b.Size(b.Out[0]), s)
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
