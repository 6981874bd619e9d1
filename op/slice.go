package op

import (
	"fmt"
	"math"
	"slices"
)

// Slice, Gather with constant indices, Split and constant Pad of computed
// data pick elements of their input by positions known when the kernel is
// built: each is a map y[o] = x[idx[o]] (or the pad value when idx[o] < 0),
// class Linear (Affine for a non-zero pad value):
//
//	R{y}[o] = R{x}[idx[o]],  x̄[idx[o]] += ȳ[o],  R{x̄}[idx[o]] += R{ȳ}[o].
//
// On shape values (integer tensors known before execution) Slice and Gather
// are folded by Infer instead.

// pick is the map y[o] = x[idx[o]], or value where idx[o] < 0.
type pick[T Real] struct {
	idx   []int32
	value T
	// m keeps an interned idx alive.
	m *indexMap
}

// Apply sets dst[o] = src[0][idx[o]] (0 where idx[o] < 0).
func (k *pick[T]) Apply(dst []T, src [][]T) {
	x := src[0]
	for o, q := range k.idx {
		if x == nil || q < 0 {
			dst[o] = 0
		} else {
			dst[o] = x[q]
		}
	}
}

// Transpose adds src[o] into dst[0][idx[o]].
func (k *pick[T]) Transpose(dst [][]T, src []T) {
	x := dst[0]
	if x == nil {
		return
	}
	for o, q := range k.idx {
		if q >= 0 {
			x[q] += src[o]
		}
	}
}

// padded is a pick whose padding holds a non-zero constant (affine).
type padded[T Real] struct{ *pick[T] }

// Offset sets the padded positions of y to the pad value.
func (k padded[T]) Offset(y []T) {
	for o, q := range k.idx {
		if q < 0 {
			y[o] += k.value
		}
	}
}

// strides returns the row-major strides of shape s.
func strides(s []int) []int {
	st := make([]int, len(s))
	p := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = p
		p *= s[i]
	}
	return st
}

// pickBox builds the pick of output shape ys from input shape xs where
// output coordinate c on axis d reads input coordinate first[d]+c*step[d]
// (out of range: padding).
func pickBox[T Real](xs, ys []int, first, step []int) *pick[T] {
	m := internIndex(indexKey("box", xs, ys, first, step), func() *indexMap {
		st := strides(xs)
		m := &indexMap{idx: make([]int32, Numel(ys))}
		coord := make([]int, len(ys))
		for o := range m.idx {
			q := 0
			for d, c := range coord {
				i := first[d] + c*step[d]
				if i < 0 || i >= xs[d] {
					q = -1
					break
				}
				q += i * st[d]
			}
			m.idx[o] = int32(q)
			for d := len(ys) - 1; d >= 0; d-- {
				coord[d]++
				if coord[d] < ys[d] {
					break
				}
				coord[d] = 0
			}
		}
		return m
	})
	return &pick[T]{idx: m.idx, m: m}
}

// constInts returns the integer values of the constant input j of b, or
// nil when the input is absent; an input that is not a constant is an error.
func constInts(b *Build, j int, what string) ([]int64, error) {
	s := b.Input(j)
	if s < 0 {
		return nil, nil
	}
	v, ok := b.Const(s)
	if !ok {
		return nil, fmt.Errorf("%s (input %d) must be a constant, not computed data", what, j)
	}
	out := make([]int64, len(v))
	for i, f := range v {
		out[i] = FloatToInt(f) // saturating: INT64_MAX ends are 2⁶³ in float64
	}
	return out, nil
}

func newSlice[T Real](b *Build) (Kernel[T], error) {
	n, in := b.Node, b.In
	if len(in) < 1 || in[0] < 0 {
		return nil, errMissing(0)
	}
	var starts, ends, axes, steps []int64
	var err error
	if len(in) >= 3 {
		for j, p := range []*[]int64{&starts, &ends, &axes, &steps} {
			if *p, err = constInts(b, j+1, [...]string{"starts", "ends", "axes", "steps"}[j]); err != nil {
				return nil, err
			}
		}
	} else {
		if starts, err = n.AttrInts("starts", nil); err != nil {
			return nil, err
		}
		if ends, err = n.AttrInts("ends", nil); err != nil {
			return nil, err
		}
		if axes, err = n.AttrInts("axes", nil); err != nil {
			return nil, err
		}
	}
	xs := b.Shape(in[0])
	first, step, ys, err := SliceRange(n, xs, starts, ends, axes, steps)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(ys, b.Shape(b.Out[0])) {
		return nil, fmt.Errorf("slice of %v has shape %v, the graph says %v", xs, ys, b.Shape(b.Out[0]))
	}
	return LinearKernel[T](pickBox[T](xs, ys, first, step), in[:1], b.Out[0]), nil
}

func newGather[T Real](b *Build) (Kernel[T], error) {
	n, in := b.Node, b.In
	if len(in) < 2 || in[0] < 0 || in[1] < 0 {
		return nil, fmt.Errorf("needs data and indices")
	}
	xs := b.Shape(in[0])
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	axis, err := NormAxis(n, "axis", a, len(xs), false)
	if err != nil {
		return nil, err
	}
	if _, ok := b.Const(in[1]); !ok {
		return newGatherComputed[T](b, axis) // token ids: gather.go
	}
	idx, err := constInts(b, 1, "indices")
	if err != nil {
		return nil, err
	}
	d, inner := xs[axis], Numel(xs[axis+1:])
	outer := Numel(xs[:axis])
	k := &pick[T]{idx: make([]int32, 0, outer*len(idx)*inner)}
	for ob := 0; ob < outer; ob++ {
		for _, j := range idx {
			if j < 0 {
				j += int64(d)
			}
			if j < 0 || j >= int64(d) {
				return nil, fmt.Errorf("index %d out of range for axis %d of %v", j, axis, xs)
			}
			for i := 0; i < inner; i++ {
				k.idx = append(k.idx, int32((ob*d+int(j))*inner+i))
			}
		}
	}
	if len(k.idx) != b.Size(b.Out[0]) {
		return nil, fmt.Errorf("gather gives %d elements, output %v has %d", len(k.idx), b.Shape(b.Out[0]), b.Size(b.Out[0]))
	}
	return LinearKernel[T](k, in[:1], b.Out[0]), nil
}

// splitSizes returns the sizes of Split's outputs along the axis of length
// d: from the split input (opset 13+) when haveSplit, else the split
// attribute (earlier opsets), else equal parts (the last one smaller when
// num_outputs is set, opset 18+).
func splitSizes(n *Node, d int, split []int64, haveSplit bool) ([]int, error) {
	sz := split
	if !haveSplit {
		var err error
		if sz, err = n.AttrInts("split", nil); err != nil {
			return nil, err
		}
		haveSplit = sz != nil
	}
	nout := len(n.Outputs)
	out := make([]int, nout)
	if haveSplit {
		if len(sz) != nout {
			return nil, fmt.Errorf("%s: %d split sizes %v for %d outputs", n.Label(), len(sz), sz, nout)
		}
		t := 0
		for i, v := range sz {
			if v < 0 {
				return nil, fmt.Errorf("%s: negative split size in %v", n.Label(), sz)
			}
			out[i] = int(v)
			t += int(v)
		}
		if t != d {
			return nil, fmt.Errorf("%s: split sizes %v sum to %d, axis has %d", n.Label(), sz, t, d)
		}
		return out, nil
	}
	part := (d + nout - 1) / nout
	if _, uneven := n.Attrs["num_outputs"]; !uneven && d%nout != 0 {
		return nil, fmt.Errorf("%s: axis of %d does not split into %d equal parts", n.Label(), d, nout)
	}
	for i := range out {
		out[i] = min(part, max(0, d-i*part))
	}
	return out, nil
}

func splitAxis(n *Node, rank int) (int, error) {
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return 0, err
	}
	return NormAxis(n, "axis", a, rank, false)
}

func inferSplit(n *Node, s *Shapes) error {
	in, ok, t, _ := first(n, s)
	if !ok {
		return nil
	}
	axis, err := splitAxis(n, len(in))
	if err != nil {
		return err
	}
	var split []int64
	have := false
	if len(n.Inputs) > 1 && n.Input(1) != "" {
		if split, have = s.Ints[n.Input(1)]; !have {
			return nil
		}
	}
	sz, err := splitSizes(n, in[axis], split, have)
	if err != nil {
		return err
	}
	for i, o := range n.Outputs {
		d := slices.Clone(in)
		d[axis] = sz[i]
		s.Set(o, d, t)
	}
	return nil
}

// kernels runs several kernels as one (Split: one pick per output).
type kernels[T Real] []Kernel[T]

func (ks kernels[T]) Forward(w *Work[T]) {
	for _, k := range ks {
		k.Forward(w)
	}
}

func (ks kernels[T]) RForward(w *Work[T]) {
	for _, k := range ks {
		k.RForward(w)
	}
}

func (ks kernels[T]) Backward(w *Work[T]) {
	for _, k := range ks {
		k.Backward(w)
	}
}

func (ks kernels[T]) RBackward(w *Work[T]) {
	for _, k := range ks {
		k.RBackward(w)
	}
}

// Retains is the union of the kernels' declarations.
func (ks kernels[T]) Retains() Retains {
	var r Retains
	for _, k := range ks {
		kr, _ := RetainsOf(k)
		r = r.Or(kr)
	}
	return r
}

func newSplit[T Real](b *Build) (Kernel[T], error) {
	n, in := b.Node, b.In
	if len(in) < 1 || in[0] < 0 {
		return nil, errMissing(0)
	}
	xs := b.Shape(in[0])
	axis, err := splitAxis(n, len(xs))
	if err != nil {
		return nil, err
	}
	split, err := constInts(b, 1, "split")
	if err != nil {
		return nil, err
	}
	sz, err := splitSizes(n, xs[axis], split, b.Input(1) >= 0)
	if err != nil {
		return nil, err
	}
	var ks kernels[T]
	off := 0
	for i, y := range b.Out {
		first := make([]int, len(xs))
		step := make([]int, len(xs))
		for d := range step {
			step[d] = 1
		}
		first[axis] = off
		off += sz[i]
		if y < 0 {
			continue
		}
		ys := slices.Clone(xs)
		ys[axis] = sz[i]
		ks = append(ks, LinearKernel[T](pickBox[T](xs, ys, first, step), in[:1], y))
	}
	return ks, nil
}

// padSpec returns Pad's begin and end amounts per axis of a rank-r input
// and its constant value, from inputs (opset 11+, when the node has them)
// or attributes.
func padSpec(n *Node, r int, pads, axes []int64, value []float64) (begin, end []int64, v float64, err error) {
	mode, err := n.AttrString("mode", "constant")
	if err != nil {
		return nil, nil, 0, err
	}
	if mode != "constant" {
		return nil, nil, 0, AttrError(n, "mode", "%q is not supported (only constant)", mode)
	}
	if len(n.Inputs) < 2 {
		if pads, err = n.AttrInts("pads", nil); err != nil {
			return nil, nil, 0, err
		}
		f, err := n.AttrFloat("value", 0)
		if err != nil {
			return nil, nil, 0, err
		}
		v = f
	} else if len(value) > 0 {
		v = value[0]
	}
	if axes == nil {
		for i := 0; i < r; i++ {
			axes = append(axes, int64(i))
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, nil, 0, fmt.Errorf("%s: %d pads %v for %d axes", n.Label(), len(pads), pads, len(axes))
	}
	begin, end = make([]int64, r), make([]int64, r)
	for i, a := range axes {
		ax, err := NormAxis(n, "axes", a, r, false)
		if err != nil {
			return nil, nil, 0, err
		}
		begin[ax], end[ax] = pads[i], pads[i+len(axes)]
	}
	return begin, end, v, nil
}

func padShape(n *Node, in []int, begin, end []int64) ([]int, error) {
	o := slices.Clone(in)
	for i := range o {
		if max(begin[i], end[i]) > MaxDim || min(begin[i], end[i]) < -MaxDim {
			return nil, fmt.Errorf("%s: pads %v, %v on axis %d exceed ±%d", n.Label(), begin, end, i, MaxDim)
		}
		o[i] += int(begin[i] + end[i])
		if o[i] < 0 {
			return nil, fmt.Errorf("%s: pads %v, %v make axis %d of %v negative", n.Label(), begin, end, i, in)
		}
	}
	return o, nil
}

func inferPad(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	var pads, axes []int64
	if len(n.Inputs) >= 2 {
		var okP bool
		if pads, okP = s.Ints[n.Input(1)]; !okP {
			return nil
		}
		if a := n.Input(3); a != "" {
			var okA bool
			if axes, okA = s.Ints[a]; !okA {
				return nil
			}
		}
	}
	begin, end, _, err := padSpec(n, len(in), pads, axes, nil)
	if err != nil {
		return err
	}
	o, err := padShape(n, in, begin, end)
	if err != nil {
		return err
	}
	s.Set(out, o, t)
	return nil
}

func newPad[T Real](b *Build) (Kernel[T], error) {
	n, in := b.Node, b.In
	if len(in) < 1 || in[0] < 0 {
		return nil, errMissing(0)
	}
	var pads, axes []int64
	var value []float64
	if len(in) >= 2 {
		var err error
		if pads, err = constInts(b, 1, "pads"); err != nil {
			return nil, err
		}
		if axes, err = constInts(b, 3, "axes"); err != nil {
			return nil, err
		}
		if s := b.Input(2); s >= 0 {
			v, ok := b.Const(s)
			if !ok {
				return nil, fmt.Errorf("constant_value (input 2) must be a constant, not computed data")
			}
			value = v
		}
	}
	xs := b.Shape(in[0])
	begin, end, v, err := padSpec(n, len(xs), pads, axes, value)
	if err != nil {
		return nil, err
	}
	ys, err := padShape(n, xs, begin, end)
	if err != nil {
		return nil, err
	}
	step := make([]int, len(xs))
	first := make([]int, len(xs))
	for i := range step {
		step[i], first[i] = 1, -int(begin[i])
	}
	k := pickBox[T](xs, ys, first, step)
	if v != 0 {
		k.value = T(v)
		return LinearKernel[T](padded[T]{k}, in[:1], b.Out[0]), nil
	}
	return LinearKernel[T](k, in[:1], b.Out[0]), nil
}

func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	ints := func(v ...int64) CaseInput { return CaseInput{Shape: []int{len(v)}, Ints: v} }
	attrInts := func(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
	axis := func(a int64) *Attr { return &Attr{Name: "axis", Type: AttrInt, Int: a} }
	Register(&Def{Type: "Slice", Infer: inferSliceNode, Exec: Both(newSlice[float64], newSlice[float32]), Class: Linear, Cases: []Case{
		{Name: "inputs", Opset: 13, Inputs: []CaseInput{x(4, 3), ints(1), ints(3), ints(0)}, Want: []int{2, 3}},
		{Name: "negative indices and step", Opset: 13, Inputs: []CaseInput{x(2, 5, 3), ints(-1, 0), ints(-5, 2), ints(1, -1), ints(-2, 1)}, Want: []int{2, 2, 2}},
		{Name: "no axes, clamped end", Opset: 11, Inputs: []CaseInput{x(3, 4), ints(1, 1), ints(100, 3)}, Want: []int{2, 2}},
		{Name: "shape values", Opset: 13, Inputs: []CaseInput{ints(4, 5, 6), ints(1), ints(3)}, Want: []int{2}},
		// x[:, 1:] as torch exports it: the end is INT64_MAX.
		{Name: "INT64_MAX end", Opset: 13, Inputs: []CaseInput{x(2, 4), ints(1), ints(math.MaxInt64), ints(1)}, Want: []int{2, 3}},
		{Name: "attributes", Opset: 9, Attrs: []*Attr{attrInts("starts", 0), attrInts("ends", -1), attrInts("axes", 1)},
			Inputs: []CaseInput{x(2, 3)}, Want: []int{2, 2}},
	}})
	Register(&Def{Type: "Gather", Infer: inferGatherNode, Exec: Both(newGather[float64], newGather[float32]), Class: Linear, Unit: unitGather, Cases: []Case{
		{Name: "embedding lookup, computed ids", Inputs: []CaseInput{x(5, 3), {Shape: []int{2, 3}, Ints: []int64{4, 0, -1, 2, 2, 1}, Data: true}}, Want: []int{2, 3, 3}},
		{Name: "computed indices on axis 1", Attrs: []*Attr{axis(1)}, Inputs: []CaseInput{x(2, 4, 3), {Shape: []int{3}, Ints: []int64{3, 3, 0}, Data: true}}, Want: []int{2, 3, 3}},
		{Name: "shape values", Inputs: []CaseInput{ints(4, 5, 6), ints(0, 2)}, Want: []int{2}},
		{Name: "class token x[:, 0]", Attrs: []*Attr{axis(1)}, Inputs: []CaseInput{x(2, 3, 4), {Shape: []int{}, Ints: []int64{0}}}, Want: []int{2, 4}},
		{Name: "repeated and negative indices", Attrs: []*Attr{axis(-1)}, Inputs: []CaseInput{x(2, 3), {Shape: []int{2, 2}, Ints: []int64{-1, 0, 2, 2}}}, Want: []int{2, 2, 2}},
	}})
	Register(&Def{Type: "Split", Infer: inferSplit, Exec: Both(newSplit[float64], newSplit[float32]), Class: Linear, Cases: []Case{
		{Name: "split input", Opset: 13, Outputs: 2, Attrs: []*Attr{axis(1)}, Inputs: []CaseInput{x(2, 5), ints(2, 3)}, Want: []int{2, 2}},
		{Name: "split attribute", Opset: 11, Outputs: 3, Attrs: []*Attr{axis(0), attrInts("split", 1, 2, 1)}, Inputs: []CaseInput{x(4, 2)}, Want: []int{1, 2}},
		{Name: "equal parts", Opset: 13, Outputs: 2, Attrs: []*Attr{axis(-1)}, Inputs: []CaseInput{x(2, 2, 4)}, Want: []int{2, 2, 2}},
		{Name: "num_outputs uneven", Opset: 18, Outputs: 2, Attrs: []*Attr{axis(0), {Name: "num_outputs", Type: AttrInt, Int: 2}}, Inputs: []CaseInput{x(5, 2)}, Want: []int{3, 2}},
	}})
	Register(&Def{Type: "Pad", Infer: inferPad, Exec: Both(newPad[float64], newPad[float32]), Class: Linear, Cases: []Case{
		{Name: "zero pads input", Opset: 13, Inputs: []CaseInput{x(1, 2, 2, 3), ints(0, 0, 1, 0, 0, 0, 1, 2)}, Want: []int{1, 2, 4, 5}},
		{Name: "negative pad crops", Opset: 11, Inputs: []CaseInput{x(3, 4), ints(1, -1, 0, -2)}, Want: []int{4, 1}},
		{Name: "constant value", Opset: 13, Inputs: []CaseInput{x(2, 2), ints(1, 0, 0, 1), {Shape: []int{}, Const: []float64{0.5}}}, Want: []int{3, 3}},
		{Name: "axes input", Opset: 18, Inputs: []CaseInput{x(2, 3), ints(1, 2), {Absent: true}, ints(-1)}, Want: []int{2, 6}},
		{Name: "attributes", Opset: 9, Attrs: []*Attr{attrInts("pads", 1, 1, 0, 0)}, Inputs: []CaseInput{x(2, 2)}, Want: []int{3, 3}},
	}})
}
