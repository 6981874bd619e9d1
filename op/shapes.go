package op

import (
	"fmt"
	"slices"
)

// Shapes is the result of static shape inference for given input shapes.
type Shapes struct {
	// Dims holds each tensor's shape; a missing entry means unknown.
	Dims map[string][]int
	// Types holds each tensor's element type where known.
	Types map[string]DataType
	// Values holds every tensor computable without the input data at these
	// input shapes: the initializers and everything package model's Fold
	// derives from them and from the shapes, of any element type.
	Values map[string]*Tensor
	// Ints holds the values of integer tensors that are computable without
	// the input data: integer initializers and constants, and the shape
	// arithmetic of exports (Shape, Gather, Unsqueeze, Concat, Slice, ...).
	Ints map[string][]int64
	// Batch is the batch size the shapes were inferred at (the first
	// dimension of the graph inputs; 0 when not recorded, taken as 1).
	Batch int
}

// Known reports whether every tensor in names has a known shape.
func (s *Shapes) Known(names ...string) bool {
	for _, n := range names {
		if _, ok := s.Dims[n]; !ok {
			return false
		}
	}
	return true
}

// dims returns the shape of tensor name and whether it is known.
func (s *Shapes) dims(name string) ([]int, bool) {
	d, ok := s.Dims[name]
	return d, ok
}

// Set records the shape and (unless Undefined) the element type of tensor
// name; an empty name (an omitted output) is ignored.
func (s *Shapes) Set(name string, dims []int, t DataType) {
	if name == "" {
		return
	}
	s.Dims[name] = dims
	if t != Undefined {
		s.Types[name] = t
	}
}

// SetInts records an INT64 tensor with known values.
func (s *Shapes) SetInts(name string, v []int64, dims []int) {
	s.Set(name, dims, Int64)
	s.Ints[name] = v
}

// BroadcastShapes returns the multidirectional (numpy) broadcast of the given
// shapes, or an error when they are incompatible.
func BroadcastShapes(shapes ...[]int) ([]int, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make([]int, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d == *o || d == 1:
			case *o == 1:
				*o = d
			default:
				return nil, fmt.Errorf("shapes %v are not broadcastable (dimension %d: %d vs %d)", shapes, off+i-r, *o, d)
			}
		}
	}
	return out, nil
}

// NormAxis maps a possibly negative axis into [0, rank) (or [0, rank] when
// inclusive).
func NormAxis(n *Node, attr string, axis int64, rank int, inclusive bool) (int, error) {
	hi := int64(rank)
	if inclusive {
		hi++
	}
	if axis < 0 {
		axis += hi
	}
	if axis < 0 || axis >= hi {
		return 0, AttrError(n, attr, "axis %d is out of range for rank %d", axis, rank)
	}
	return int(axis), nil
}

// ClampIndex maps a possibly negative index into [0, r], clamping.
func ClampIndex(i, r int64) int64 {
	if i < 0 {
		i += r
	}
	return min(max(i, 0), r)
}

// ToDims converts shape values to dimensions, bounding each and the total.
func ToDims(n *Node, v []int64) ([]int, error) {
	d := make([]int, len(v))
	total := 1
	for i, x := range v {
		if x < 0 || x > MaxDim {
			return nil, fmt.Errorf("%s: shape value %d is %d, want 0..%d", n.Label(), i, x, MaxDim)
		}
		d[i] = int(x)
		if x != 0 && total > MaxElems/int(x) {
			return nil, fmt.Errorf("%s: shape %v has more than %d elements", n.Label(), v, MaxElems)
		}
		total *= int(x)
	}
	return d, nil
}

// constantValue decodes the value of a Constant node.
func constantValue(n *Node) (*Tensor, error) {
	for name, a := range n.Attrs {
		switch name {
		case "value":
			if a.Tensor == nil {
				return nil, AttrError(n, name, "is %v, want tensor", a.Type)
			}
			return a.Tensor, nil
		case "value_float":
			return &Tensor{Type: Float, Shape: []int{}, Float: []float64{a.Float}}, nil
		case "value_floats":
			return &Tensor{Type: Float, Shape: []int{len(a.Floats)}, Float: a.Floats}, nil
		case "value_int":
			return &Tensor{Type: Int64, Shape: []int{}, Int: []int64{a.Int}}, nil
		case "value_ints":
			return &Tensor{Type: Int64, Shape: []int{len(a.Ints)}, Int: a.Ints}, nil
		}
	}
	return nil, fmt.Errorf("%s: no value attribute (want value, value_float(s) or value_int(s))", n.Label())
}

// ConstantValue returns the tensor a Constant node produces.
func ConstantValue(n *Node) (*Tensor, error) { return constantValue(n) }

// foldArith folds integer Add/Sub/Mul/Div when all inputs are known.
func inferFoldArith(s *Shapes, n *Node, o []int) {
	switch n.Op {
	case "Add", "Sub", "Mul", "Div":
	default:
		return
	}
	if len(n.Inputs) != 2 || Numel(o) > 1<<16 {
		return
	}
	a, okA := s.Ints[n.Input(0)]
	b, okB := s.Ints[n.Input(1)]
	if !okA || !okB {
		return
	}
	sa, sb := s.Dims[n.Input(0)], s.Dims[n.Input(1)]
	v := make([]int64, Numel(o))
	ia, ib := newBcast(sa, o), newBcast(sb, o)
	for i := range v {
		x, y := a[ia.at(i)], b[ib.at(i)]
		switch n.Op {
		case "Add":
			v[i] = x + y
		case "Sub":
			v[i] = x - y
		case "Mul":
			v[i] = x * y
		case "Div":
			if y == 0 {
				return
			}
			v[i] = x / y
		}
	}
	s.Ints[n.Outputs[0]] = v
}

func inferConv(s *Shapes, n *Node) error {
	x, okX := s.dims(n.Input(0))
	w, okW := s.dims(n.Input(1))
	if !okX || !okW {
		return nil
	}
	if len(x) < 3 || len(w) != len(x) {
		return fmt.Errorf("%s: input shape %v and weight shape %v, want N×C×spatial and M×C/group×kernel of the same rank", n.Label(), x, w)
	}
	g, err := n.AttrInt("group", 1)
	if err != nil {
		return err
	}
	if g < 1 || x[1]%int(g) != 0 || w[0]%int(g) != 0 {
		return AttrError(n, "group", "is %d, want ≥ 1 dividing the %d input and %d output channels", g, x[1], w[0])
	}
	if w[1]*int(g) != x[1] {
		return fmt.Errorf("%s: input has %d channels but weight %v with group %d expects %d", n.Label(), x[1], w, g, w[1]*int(g))
	}
	if b := n.Input(2); b != "" {
		bd, ok := s.dims(b)
		if ok && (len(bd) != 1 || bd[0] != w[0]) {
			return fmt.Errorf("%s: bias %q has shape %v, want [%d]", n.Label(), b, bd, w[0])
		}
	}
	win, err := n.Window(x[2:], w[2:])
	if err != nil {
		return err
	}
	s.Set(n.Outputs[0], append([]int{x[0], w[0]}, win.Out...), s.Types[n.Input(0)])
	return nil
}

// GemmDims returns M, K, N of Gemm node n for the shapes of A and B:
// A' = transA ? Aᵀ : A is M×K and B' = transB ? Bᵀ : B is K×N.
func GemmDims(n *Node, a, b []int) (m, k, nn int, err error) {
	ta, err := n.AttrInt("transA", 0)
	if err != nil {
		return
	}
	tb, err := n.AttrInt("transB", 0)
	if err != nil {
		return
	}
	if len(a) != 2 || len(b) != 2 {
		err = fmt.Errorf("%s: A has shape %v and B %v, want matrices", n.Label(), a, b)
		return
	}
	m, k = a[0], a[1]
	if ta != 0 {
		m, k = k, m
	}
	kb, nn := b[0], b[1]
	if tb != 0 {
		kb, nn = nn, kb
	}
	if k != kb {
		err = fmt.Errorf("%s: A %v (transA=%d) and B %v (transB=%d) have inner dimensions %d and %d", n.Label(), a, ta, b, tb, k, kb)
	}
	return
}

func inferGemm(s *Shapes, n *Node) error {
	a, okA := s.dims(n.Input(0))
	b, okB := s.dims(n.Input(1))
	if !okA || !okB {
		return nil
	}
	m, _, nn, err := GemmDims(n, a, b)
	if err != nil {
		return err
	}
	if c := n.Input(2); c != "" {
		if cd, ok := s.dims(c); ok {
			if _, err := BroadcastShapes([]int{m, nn}, cd); err != nil || len(cd) > 2 {
				return fmt.Errorf("%s: C %q has shape %v, not broadcastable to [%d %d]", n.Label(), c, cd, m, nn)
			}
		}
	}
	s.Set(n.Outputs[0], []int{m, nn}, s.Types[n.Input(0)])
	return nil
}

// MatMulShape returns the output shape of numpy-style matmul of shapes a and
// b and the contraction length K.
func MatMulShape(a, b []int) ([]int, int, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, 0, fmt.Errorf("matmul of scalars %v and %v", a, b)
	}
	aa, bb := slices.Clone(a), slices.Clone(b)
	if len(aa) == 1 {
		aa = []int{1, aa[0]}
	}
	if len(bb) == 1 {
		bb = []int{bb[0], 1}
	}
	k := aa[len(aa)-1]
	if bb[len(bb)-2] != k {
		return nil, 0, fmt.Errorf("matmul shapes %v and %v: inner dimensions %d and %d differ", a, b, k, bb[len(bb)-2])
	}
	batch, err := BroadcastShapes(aa[:len(aa)-2], bb[:len(bb)-2])
	if err != nil {
		return nil, 0, err
	}
	out := batch
	if len(a) > 1 {
		out = append(out, aa[len(aa)-2])
	}
	if len(b) > 1 {
		out = append(out, bb[len(bb)-1])
	}
	return out, k, nil
}

func inferReshape(s *Shapes, n *Node, in []int, ok bool, t DataType) error {
	var target []int64
	if len(n.Inputs) >= 2 {
		v, okS := s.Ints[n.Input(1)]
		if !okS {
			return nil
		}
		target = v
	} else {
		v, err := n.AttrInts("shape", nil)
		if err != nil {
			return err
		}
		target = v
	}
	if !ok {
		return nil
	}
	allowZero, err := n.AttrInt("allowzero", 0)
	if err != nil {
		return err
	}
	o, err := ReshapeDims(in, target, allowZero != 0)
	if err != nil {
		return fmt.Errorf("%s: %v", n.Label(), err)
	}
	s.Set(n.Outputs[0], o, t)
	if v, ok := s.Ints[n.Input(0)]; ok {
		s.Ints[n.Outputs[0]] = v
	}
	return nil
}

// ReshapeDims resolves an ONNX Reshape target (0 copies the input dimension
// unless allowZero, -1 is inferred) for an input of shape in.
func ReshapeDims(in []int, target []int64, allowZero bool) ([]int, error) {
	o := make([]int, len(target))
	infer := -1
	known := 1
	for i, t := range target {
		switch {
		case t == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("reshape target %v has more than one -1", target)
			}
			infer = i
			continue
		case t == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("reshape target %v copies dimension %d of input %v", target, i, in)
			}
			o[i] = in[i]
		case t < 0 || t > MaxDim:
			return nil, fmt.Errorf("reshape target %v has invalid dimension %d", target, t)
		default:
			o[i] = int(t)
		}
		known *= o[i]
		if known > MaxElems {
			return nil, fmt.Errorf("reshape target %v is too large", target)
		}
	}
	total := Numel(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, total, target)
		}
		o[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v (%d elements)", in, total, target, known)
	}
	return o, nil
}

func inferGather(s *Shapes, n *Node, data []int, ok bool, t DataType) error {
	idx, okI := s.dims(n.Input(1))
	if !ok || !okI {
		return nil
	}
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return fmt.Errorf("%s: cannot gather from a scalar", n.Label())
	}
	axis, err := NormAxis(n, "axis", a, len(data), false)
	if err != nil {
		return err
	}
	o := append(append(slices.Clone(data[:axis]), idx...), data[axis+1:]...)
	s.Set(n.Outputs[0], o, t)
	dv, okD := s.Ints[n.Input(0)]
	iv, okV := s.Ints[n.Input(1)]
	if okD && okV && len(data) == 1 {
		v := make([]int64, len(iv))
		for i, j := range iv {
			if j < 0 {
				j += int64(data[0])
			}
			if j < 0 || j >= int64(data[0]) {
				return fmt.Errorf("%s: index %d out of range for %d elements", n.Label(), iv[i], data[0])
			}
			v[i] = dv[j]
		}
		s.Ints[n.Outputs[0]] = v
	}
	return nil
}

func inferAxesOf(s *Shapes, n *Node) ([]int64, bool, error) {
	if len(n.Inputs) >= 2 && n.Input(1) != "" {
		v, ok := s.Ints[n.Input(1)]
		return v, ok, nil
	}
	v, err := n.AttrInts("axes", nil)
	return v, true, err
}

func inferSqueeze(s *Shapes, n *Node, in []int, ok bool, t DataType) error {
	axes, okA, err := inferAxesOf(s, n)
	if err != nil || !okA || !ok {
		return err
	}
	var o []int
	if n.Op == "Unsqueeze" {
		o, err = UnsqueezeDims(n, in, axes)
	} else {
		o, err = SqueezeDims(n, in, axes)
	}
	if err != nil {
		return err
	}
	s.Set(n.Outputs[0], o, t)
	if v, ok := s.Ints[n.Input(0)]; ok {
		s.Ints[n.Outputs[0]] = v
	}
	return nil
}

func inferConcat(s *Shapes, n *Node, t DataType) error {
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return err
	}
	var o []int
	var vals []int64
	allInts := true
	for i, in := range n.Inputs {
		d, ok := s.dims(in)
		if !ok {
			return nil
		}
		if i == 0 {
			o = slices.Clone(d)
			if len(o) == 0 {
				return fmt.Errorf("%s: cannot concatenate scalars", n.Label())
			}
			if _, err := NormAxis(n, "axis", a, len(o), false); err != nil {
				return err
			}
		} else {
			ax, _ := NormAxis(n, "axis", a, len(o), false)
			if len(d) != len(o) {
				return fmt.Errorf("%s: input %d has shape %v, want rank %d", n.Label(), i, d, len(o))
			}
			for j := range d {
				if j != ax && d[j] != o[j] {
					return fmt.Errorf("%s: input %d has shape %v, incompatible with %v on axis %d", n.Label(), i, d, o, a)
				}
			}
			o[ax] += d[ax]
		}
		v, ok := s.Ints[in]
		allInts = allInts && ok
		vals = append(vals, v...)
	}
	s.Set(n.Outputs[0], o, t)
	if allInts && len(o) == 1 {
		s.Ints[n.Outputs[0]] = vals
	}
	return nil
}

func inferSlice(s *Shapes, n *Node, in []int, ok bool, t DataType) error {
	var starts, ends, axes, steps []int64
	if len(n.Inputs) >= 3 {
		var okS, okE bool
		starts, okS = s.Ints[n.Input(1)]
		ends, okE = s.Ints[n.Input(2)]
		if !okS || !okE {
			return nil
		}
		if a := n.Input(3); a != "" {
			v, ok := s.Ints[a]
			if !ok {
				return nil
			}
			axes = v
		}
		if st := n.Input(4); st != "" {
			v, ok := s.Ints[st]
			if !ok {
				return nil
			}
			steps = v
		}
	} else {
		var err error
		if starts, err = n.AttrInts("starts", nil); err != nil {
			return err
		}
		if ends, err = n.AttrInts("ends", nil); err != nil {
			return err
		}
		if axes, err = n.AttrInts("axes", nil); err != nil {
			return err
		}
	}
	if !ok {
		return nil
	}
	first, step, o, err := SliceRange(n, in, starts, ends, axes, steps)
	if err != nil {
		return err
	}
	s.Set(n.Outputs[0], o, t)
	if v, okV := s.Ints[n.Input(0)]; okV && len(in) == 1 {
		r := make([]int64, o[0])
		for i := range r {
			r[i] = v[first[0]+i*step[0]]
		}
		s.Ints[n.Outputs[0]] = r
	}
	return nil
}

// UnsqueezeDims inserts size-1 axes at axes (of the output rank).
func UnsqueezeDims(n *Node, in []int, axes []int64) ([]int, error) {
	r := len(in) + len(axes)
	ins := make([]bool, r)
	for _, a := range axes {
		ax, err := NormAxis(n, "axes", a, r, false)
		if err != nil {
			return nil, err
		}
		if ins[ax] {
			return nil, AttrError(n, "axes", "%v repeats axis %d", axes, a)
		}
		ins[ax] = true
	}
	o := make([]int, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			o = append(o, 1)
		} else {
			o = append(o, in[j])
			j++
		}
	}
	return o, nil
}

// SqueezeDims removes the size-1 axes listed (every size-1 axis when axes
// is nil).
func SqueezeDims(n *Node, in []int, axes []int64) ([]int, error) {
	drop := make([]bool, len(in))
	for _, a := range axes {
		ax, err := NormAxis(n, "axes", a, len(in), false)
		if err != nil {
			return nil, err
		}
		if in[ax] != 1 {
			return nil, fmt.Errorf("%s: cannot squeeze axis %d of shape %v", n.Label(), a, in)
		}
		drop[ax] = true
	}
	o := []int{}
	for i, d := range in {
		if (axes == nil && d == 1) || drop[i] {
			continue
		}
		o = append(o, d)
	}
	return o, nil
}

// SliceRange resolves ONNX Slice arguments for an input of shape in: per
// axis the first index, the step and the output length.
func SliceRange(n *Node, in []int, starts, ends, axes, steps []int64) (first, step, out []int, err error) {
	if len(starts) != len(ends) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, nil, nil, fmt.Errorf("%s: starts %v, ends %v, axes %v, steps %v differ in length", n.Label(), starts, ends, axes, steps)
	}
	out = slices.Clone(in)
	first = make([]int, len(in))
	step = make([]int, len(in))
	for i := range step {
		step[i] = 1
	}
	for i := range starts {
		ax := int64(i)
		if axes != nil {
			ax = axes[i]
		}
		a, err := NormAxis(n, "axes", ax, len(in), false)
		if err != nil {
			return nil, nil, nil, err
		}
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return nil, nil, nil, fmt.Errorf("%s: slice step is 0", n.Label())
		}
		d := int64(in[a])
		// A step longer than the axis takes at most one element; clamped
		// to ±(d+1) it still does, and e − s + st − 1 cannot overflow.
		st = min(max(st, -(d+1)), d+1)
		s, e := starts[i], ends[i]
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		if st > 0 {
			s, e = min(max(s, 0), d), min(max(e, 0), d)
			out[a] = int(max(0, (e-s+st-1)/st))
		} else {
			s, e = min(max(s, 0), d-1), min(max(e, -1), d-1)
			out[a] = int(max(0, (s-e-st-1)/(-st)))
		}
		first[a], step[a] = int(s), int(st)
	}
	return first, step, out, nil
}
