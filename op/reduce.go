package op

import "fmt"

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
		Register(&Def{Type: typ, Infer: inferReduce, Exec: Both(newReduce[float64], newReduce[float32]), Class: Linear, Cases: []Case{
			{Name: "last axis attribute", Opset: 13, Inputs: []CaseInput{x(2, 3, 4)}, Attrs: []*Attr{attr("axes", -1)}, Want: []int{2, 3, 1}},
			{Name: "spatial axes input, no keepdims", Opset: 18, Inputs: []CaseInput{x(2, 3, 2, 2), ints(2, 3)}, Attrs: []*Attr{keep0}, Want: []int{2, 3}},
			{Name: "all axes", Opset: 18, Inputs: []CaseInput{x(2, 3)}, Want: []int{1, 1}},
		}})
	}
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
			v = append(v, int64(a))
		}
	}
	red, _, err := reduceAxes(b.Node, len(xs), v, fromInput)
	if err != nil {
		return nil, err
	}
	// Output strides over the kept axes (reduced ones contribute 0).
	stride := make([]int, len(xs))
	s, count := 1, 1
	for i := len(xs) - 1; i >= 0; i-- {
		if red[i] {
			count *= xs[i]
			continue
		}
		stride[i] = s
		s *= xs[i]
	}
	if s != b.Size(b.Out[0]) {
		return nil, fmt.Errorf("output has %d elements, the reduction %d", b.Size(b.Out[0]), s)
	}
	k := &reduce[T]{idx: make([]int32, Numel(xs)), c: 1}
	if b.Node.Op == "ReduceMean" && count > 0 {
		k.c = 1 / T(count)
	}
	coord := make([]int, len(xs))
	for e := range k.idx {
		q := 0
		for d, c := range coord {
			q += c * stride[d]
		}
		k.idx[e] = int32(q)
		for d := len(xs) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < xs[d] {
				break
			}
			coord[d] = 0
		}
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
