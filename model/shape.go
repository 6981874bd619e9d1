package model

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
	// input shapes: the initializers and everything Fold derives from them
	// and from the shapes (Shape, Gather, Unsqueeze, Concat, Slice, Range,
	// Equal, Where, Expand, ConstantOfShape, ...), of any element type.
	Values map[string]*Tensor
	// Ints holds the integer members of Values (their elements).
	Ints map[string][]int64
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

// InferShapes runs shape inference for the given shapes of the graph inputs
// (all of them must be given, with non-negative dimensions). Operators that
// inference does not know get the shape recorded in the graph's value_info,
// if any, else an unknown shape; inconsistent shapes of known operators are
// errors naming the node.
func (m *Model) InferShapes(inputs map[string][]int) (*Shapes, error) {
	for _, in := range m.Inputs {
		s, ok := inputs[in.Name]
		if !ok {
			return nil, fmt.Errorf("model: shape of graph input %q not given", in.Name)
		}
		for d, v := range s {
			if v < 0 {
				return nil, fmt.Errorf("model: graph input %q: dimension %d is %d, want ≥ 0", in.Name, d, v)
			}
		}
		if in.Shape != nil && len(in.Shape) != len(s) {
			return nil, fmt.Errorf("model: graph input %q has rank %d, the model declares %v", in.Name, len(s), in.Shape)
		}
		for d, v := range in.Shape {
			if d > 0 && v >= 0 && s[d] != v {
				return nil, fmt.Errorf("model: graph input %q: dimension %d is %d, the model declares %d (shape %v)", in.Name, d, s[d], v, in.Shape)
			}
		}
	}
	return m.infer(inputs, false)
}

type inferer struct {
	m     *Model
	s     *Shapes
	batch int
}

func (m *Model) infer(inputs map[string][]int, _ bool) (*Shapes, error) {
	s := &Shapes{Dims: make(map[string][]int), Types: make(map[string]DataType), Ints: make(map[string][]int64),
		Values: make(map[string]*Tensor)}
	batch := 1
	for _, in := range m.Inputs {
		if sh, ok := inputs[in.Name]; ok {
			s.Dims[in.Name] = sh
			if len(sh) > 0 {
				batch = sh[0]
			}
		}
		s.Types[in.Name] = in.Type
	}
	for name, t := range m.Initializers {
		s.Dims[name] = t.Shape
		s.Types[name] = t.Type
		s.Values[name] = t
		if !t.Type.IsFloat() {
			s.Ints[name] = t.Int
		}
	}
	inf := &inferer{m: m, s: s, batch: batch}
	for _, n := range m.Nodes {
		done, err := inf.fold(n)
		if err != nil {
			return nil, err
		}
		if !done {
			if err := inf.node(n); err != nil {
				return nil, err
			}
		}
		for _, o := range n.Outputs {
			if _, ok := s.Dims[o]; ok || o == "" {
				continue
			}
			if vi, ok := m.ValueInfo[o]; ok && vi.Shape != nil {
				sh := slices.Clone(vi.Shape)
				if len(sh) > 0 && sh[0] < 0 {
					sh[0] = batch
				}
				if !slices.Contains(sh, -1) {
					s.Dims[o] = sh
				}
				if _, ok := s.Types[o]; !ok && vi.Type != Undefined {
					s.Types[o] = vi.Type
				}
			}
		}
	}
	return s, nil
}

// unaryOps keep their first input's shape (and type).
var unaryOps = map[string]bool{
	"Relu": true, "Clip": true, "Sigmoid": true, "Tanh": true, "LeakyRelu": true, "Elu": true, "Selu": true,
	"HardSigmoid": true, "HardSwish": true, "Softplus": true, "Softsign": true, "Gelu": true, "Mish": true,
	"Erf": true, "Exp": true, "Log": true, "Neg": true, "Abs": true, "Sqrt": true, "Reciprocal": true,
	"Floor": true, "Ceil": true, "Round": true, "Sign": true, "Sin": true, "Cos": true, "Not": true,
	"Softmax": true, "LogSoftmax": true, "Identity": true, "Dropout": true, "BatchNormalization": true,
	"InstanceNormalization": true, "LRN": true, "PRelu": true, "ThresholdedRelu": true, "Celu": true,
	"LayerNormalization": true, "Hardmax": true, "IsNaN": true, "IsInf": true,
}

// broadcastOps combine inputs by multidirectional (numpy) broadcasting.
var broadcastOps = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Max": true, "Min": true, "Sum": true,
	"Mean": true, "Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true,
	"And": true, "Or": true, "Xor": true, "Where": true, "Mod": true,
}

// boolOps produce BOOL outputs.
var boolOps = map[string]bool{
	"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true,
	"And": true, "Or": true, "Xor": true, "Not": true, "IsNaN": true, "IsInf": true,
}

// fold evaluates n when its inputs are known values (Shape and Size: when
// its input's shape is known) and records its outputs.
func (f *inferer) fold(n *Node) (bool, error) {
	if !foldable[n.Op] {
		return false, nil
	}
	ins := make([]*Tensor, len(n.Inputs))
	for i, in := range n.Inputs {
		if in == "" {
			continue
		}
		ins[i] = f.s.Values[in]
		if ins[i] == nil && !(i == 0 && (n.Op == "Shape" || n.Op == "Size")) {
			return false, nil
		}
	}
	shape0, _ := f.dims(n.Input(0))
	outs, ok, err := Fold(n, f.m.Opset, ins, shape0)
	if err != nil || !ok {
		return false, err
	}
	for i, o := range n.Outputs {
		if o == "" || i >= len(outs) {
			continue
		}
		t := outs[i]
		f.set(o, t.Shape, t.Type)
		f.s.Values[o] = t
		if !t.Type.IsFloat() {
			f.s.Ints[o] = t.Int
		}
	}
	return true, nil
}

func (f *inferer) dims(name string) ([]int, bool) {
	d, ok := f.s.Dims[name]
	return d, ok
}

func (f *inferer) set(name string, dims []int, t DataType) {
	if name == "" {
		return
	}
	f.s.Dims[name] = dims
	if t != Undefined {
		f.s.Types[name] = t
	}
}

func (f *inferer) setInts(name string, v []int64, dims []int) {
	f.set(name, dims, Int64)
	f.s.Ints[name] = v
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

// normAxis maps a possibly negative axis into [0, rank) (or [0, rank] when
// inclusive).
func normAxis(n *Node, attr string, axis int64, rank int, inclusive bool) (int, error) {
	hi := int64(rank)
	if inclusive {
		hi++
	}
	if axis < 0 {
		axis += hi
	}
	if axis < 0 || axis >= hi {
		return 0, attrErr(n, attr, "axis %d is out of range for rank %d", axis, rank)
	}
	return int(axis), nil
}

func (f *inferer) node(n *Node) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil
	}
	in0, ok0 := f.dims(n.Input(0))
	t0 := f.s.Types[n.Input(0)]
	out := ""
	if len(n.Outputs) > 0 {
		out = n.Outputs[0]
	}
	switch {
	case n.Op == "Constant":
		// Always folded by fold; reaching here means a bad value.
		_, err := constantValue(n)
		return err
	case unaryOps[n.Op]:
		if !ok0 {
			return nil
		}
		t := t0
		if boolOps[n.Op] {
			t = Bool
		}
		f.set(out, in0, t)
		return nil
	case broadcastOps[n.Op]:
		var shapes [][]int
		for _, in := range n.Inputs {
			d, ok := f.dims(in)
			if !ok {
				return nil
			}
			shapes = append(shapes, d)
		}
		o, err := BroadcastShapes(shapes...)
		if err != nil {
			return fmt.Errorf("%s: %v", n.Label(), err)
		}
		t := t0
		if n.Op == "Where" {
			t = f.s.Types[n.Input(1)]
		}
		if boolOps[n.Op] {
			t = Bool
		}
		f.set(out, o, t)
		return nil
	}
	if done, err := f.moreShapes(n); done {
		return err
	}
	switch n.Op {
	case "Conv":
		return f.conv(n)
	case "MaxPool", "AveragePool", "LpPool":
		if !ok0 {
			return nil
		}
		if len(in0) < 3 {
			return fmt.Errorf("%s: input has shape %v, want N×C×spatial", n.Label(), in0)
		}
		w, err := n.Window(in0[2:], nil)
		if err != nil {
			return err
		}
		f.set(out, append([]int{in0[0], in0[1]}, w.Out...), t0)
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		if !ok0 {
			return nil
		}
		if len(in0) < 3 {
			return fmt.Errorf("%s: input has shape %v, want N×C×spatial", n.Label(), in0)
		}
		o := slices.Clone(in0)
		for i := 2; i < len(o); i++ {
			o[i] = 1
		}
		f.set(out, o, t0)
	case "Gemm":
		return f.gemm(n)
	case "MatMul":
		b, ok1 := f.dims(n.Input(1))
		if !ok0 || !ok1 {
			return nil
		}
		o, _, err := MatMulShape(in0, b)
		if err != nil {
			return fmt.Errorf("%s: %v", n.Label(), err)
		}
		f.set(out, o, t0)
	case "Flatten":
		if !ok0 {
			return nil
		}
		a, err := n.AttrInt("axis", 1)
		if err != nil {
			return err
		}
		axis, err := normAxis(n, "axis", a, len(in0), true)
		if err != nil {
			return err
		}
		f.set(out, []int{numElems(in0[:axis]), numElems(in0[axis:])}, t0)
	case "Reshape":
		return f.reshape(n, in0, ok0, t0)
	case "Gather":
		return f.gather(n, in0, ok0, t0)
	case "Unsqueeze", "Squeeze":
		return f.squeeze(n, in0, ok0, t0)
	case "Concat":
		return f.concat(n, t0)
	case "Slice":
		return f.slice(n, in0, ok0, t0)
	case "Transpose":
		if !ok0 {
			return nil
		}
		perm, err := n.AttrInts("perm", nil)
		if err != nil {
			return err
		}
		o := make([]int, len(in0))
		for i := range o {
			p := len(in0) - 1 - i
			if perm != nil {
				if len(perm) != len(in0) || perm[i] < 0 || perm[i] >= int64(len(in0)) {
					return attrErr(n, "perm", "%v is not a permutation of %d axes", perm, len(in0))
				}
				p = int(perm[i])
			}
			o[i] = in0[p]
		}
		f.set(out, o, t0)
	case "Cast":
		if !ok0 {
			return nil
		}
		to, err := n.AttrInt("to", 0)
		if err != nil {
			return err
		}
		f.set(out, in0, DataType(to))
	case "ConstantOfShape":
		sh, ok := f.s.Ints[n.Input(0)]
		if !ok {
			return nil
		}
		d, err := toDims(n, sh)
		if err != nil {
			return err
		}
		t := &Tensor{Type: Float, Float: []float64{0}}
		if a, ok := n.Attrs["value"]; ok && a.Tensor != nil {
			t = a.Tensor
		}
		if t.Len() != 1 {
			return attrErr(n, "value", "has %d elements, want 1", t.Len())
		}
		f.set(out, d, t.Type)
	case "Expand":
		sh, ok := f.s.Ints[n.Input(1)]
		if !ok || !ok0 {
			return nil
		}
		d, err := toDims(n, sh)
		if err != nil {
			return err
		}
		o, err := BroadcastShapes(in0, d)
		if err != nil {
			return fmt.Errorf("%s: %v", n.Label(), err)
		}
		f.set(out, o, t0)
	}
	return nil
}

func clampIndex(i, r int64) int64 {
	if i < 0 {
		i += r
	}
	return min(max(i, 0), r)
}

func toDims(n *Node, v []int64) ([]int, error) {
	d := make([]int, len(v))
	total := 1
	for i, x := range v {
		if x < 0 || x > maxDim {
			return nil, fmt.Errorf("%s: shape value %d is %d, want 0..%d", n.Label(), i, x, maxDim)
		}
		d[i] = int(x)
		if x != 0 && total > maxElems/int(x) {
			return nil, fmt.Errorf("%s: shape %v has more than %d elements", n.Label(), v, maxElems)
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
				return nil, attrErr(n, name, "is %v, want tensor", a.Type)
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

// broadcastIndex maps each element of shape out to the element of shape in
// that broadcasting reads.
func broadcastIndex(in, out []int) []int {
	idx := make([]int, numElems(out))
	off := len(out) - len(in)
	stride := make([]int, len(out))
	s := 1
	for i := len(in) - 1; i >= 0; i-- {
		if in[i] != 1 {
			stride[off+i] = s
		}
		s *= in[i]
	}
	coord := make([]int, len(out))
	for k := range idx {
		p := 0
		for d, c := range coord {
			p += c * stride[d]
		}
		idx[k] = p
		for d := len(out) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < out[d] {
				break
			}
			coord[d] = 0
		}
	}
	return idx
}

func (f *inferer) conv(n *Node) error {
	x, okX := f.dims(n.Input(0))
	w, okW := f.dims(n.Input(1))
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
		return attrErr(n, "group", "is %d, want ≥ 1 dividing the %d input and %d output channels", g, x[1], w[0])
	}
	if w[1]*int(g) != x[1] {
		return fmt.Errorf("%s: input has %d channels but weight %v with group %d expects %d", n.Label(), x[1], w, g, w[1]*int(g))
	}
	if b := n.Input(2); b != "" {
		bd, ok := f.dims(b)
		if ok && (len(bd) != 1 || bd[0] != w[0]) {
			return fmt.Errorf("%s: bias %q has shape %v, want [%d]", n.Label(), b, bd, w[0])
		}
	}
	win, err := n.Window(x[2:], w[2:])
	if err != nil {
		return err
	}
	f.set(n.Outputs[0], append([]int{x[0], w[0]}, win.Out...), f.s.Types[n.Input(0)])
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

func (f *inferer) gemm(n *Node) error {
	a, okA := f.dims(n.Input(0))
	b, okB := f.dims(n.Input(1))
	if !okA || !okB {
		return nil
	}
	m, _, nn, err := GemmDims(n, a, b)
	if err != nil {
		return err
	}
	if c := n.Input(2); c != "" {
		if cd, ok := f.dims(c); ok {
			if _, err := BroadcastShapes([]int{m, nn}, cd); err != nil || len(cd) > 2 {
				return fmt.Errorf("%s: C %q has shape %v, not broadcastable to [%d %d]", n.Label(), c, cd, m, nn)
			}
		}
	}
	f.set(n.Outputs[0], []int{m, nn}, f.s.Types[n.Input(0)])
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

func (f *inferer) reshape(n *Node, in []int, ok bool, t DataType) error {
	var target []int64
	if len(n.Inputs) >= 2 {
		v, okS := f.s.Ints[n.Input(1)]
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
	f.set(n.Outputs[0], o, t)
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
		case t < 0 || t > maxDim:
			return nil, fmt.Errorf("reshape target %v has invalid dimension %d", target, t)
		default:
			o[i] = int(t)
		}
		known *= o[i]
		if known > maxElems {
			return nil, fmt.Errorf("reshape target %v is too large", target)
		}
	}
	total := numElems(in)
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

func (f *inferer) gather(n *Node, data []int, ok bool, t DataType) error {
	idx, okI := f.dims(n.Input(1))
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
	axis, err := normAxis(n, "axis", a, len(data), false)
	if err != nil {
		return err
	}
	o := append(append(slices.Clone(data[:axis]), idx...), data[axis+1:]...)
	f.set(n.Outputs[0], o, t)
	return nil
}

func (f *inferer) axesOf(n *Node) ([]int64, bool, error) {
	if len(n.Inputs) >= 2 && n.Input(1) != "" {
		v, ok := f.s.Ints[n.Input(1)]
		return v, ok, nil
	}
	v, err := n.AttrInts("axes", nil)
	return v, true, err
}

func (f *inferer) squeeze(n *Node, in []int, ok bool, t DataType) error {
	axes, okA, err := f.axesOf(n)
	if err != nil || !okA || !ok {
		return err
	}
	var o []int
	if n.Op == "Unsqueeze" {
		o, err = unsqueezeDims(n, in, axes)
	} else {
		o, err = squeezeDims(n, in, axes)
	}
	if err != nil {
		return err
	}
	f.set(n.Outputs[0], o, t)
	return nil
}

func (f *inferer) concat(n *Node, t DataType) error {
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return err
	}
	var o []int
	for i, in := range n.Inputs {
		d, ok := f.dims(in)
		if !ok {
			return nil
		}
		if i == 0 {
			o = slices.Clone(d)
			if len(o) == 0 {
				return fmt.Errorf("%s: cannot concatenate scalars", n.Label())
			}
			if _, err := normAxis(n, "axis", a, len(o), false); err != nil {
				return err
			}
			continue
		}
		ax, _ := normAxis(n, "axis", a, len(o), false)
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
	f.set(n.Outputs[0], o, t)
	return nil
}

func (f *inferer) slice(n *Node, in []int, ok bool, t DataType) error {
	var starts, ends, axes, steps []int64
	if len(n.Inputs) >= 3 {
		var okS, okE bool
		starts, okS = f.s.Ints[n.Input(1)]
		ends, okE = f.s.Ints[n.Input(2)]
		if !okS || !okE {
			return nil
		}
		if a := n.Input(3); a != "" {
			v, ok := f.s.Ints[a]
			if !ok {
				return nil
			}
			axes = v
		}
		if s := n.Input(4); s != "" {
			v, ok := f.s.Ints[s]
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
	_, _, o, err := SliceRange(n, in, starts, ends, axes, steps)
	if err != nil {
		return err
	}
	f.set(n.Outputs[0], o, t)
	return nil
}
