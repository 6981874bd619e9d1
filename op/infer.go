package op

import (
	"fmt"
	"slices"
)

// Shape-inference rules shared by several operators. Each has the
// signature of Def.Infer.

// first returns the shape (and whether it is known) and type of input 0 and
// the name of output 0.
func first(n *Node, s *Shapes) ([]int, bool, DataType, string) {
	d, ok := s.dims(n.Input(0))
	out := ""
	if len(n.Outputs) > 0 {
		out = n.Outputs[0]
	}
	return d, ok, s.Types[n.Input(0)], out
}

// InferSame gives output 0 the shape and type of input 0 (elementwise
// unary operators, normalisations, softmax).
func InferSame(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if ok {
		s.Set(out, in, t)
	}
	return nil
}

// InferSameBool gives output 0 the shape of input 0 and type BOOL.
func InferSameBool(n *Node, s *Shapes) error {
	in, ok, _, out := first(n, s)
	if ok {
		s.Set(out, in, Bool)
	}
	return nil
}

// inferSameInts is InferSame that also passes integer values through
// (Identity).
func inferSameInts(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	s.Set(out, in, t)
	if v, ok := s.Ints[n.Input(0)]; ok {
		s.Ints[out] = v
	}
	return nil
}

// broadcastOf returns the broadcast shape of all inputs, or ok = false when
// one is unknown.
func broadcastOf(n *Node, s *Shapes) ([]int, bool, error) {
	var shapes [][]int
	for _, in := range n.Inputs {
		d, ok := s.dims(in)
		if !ok {
			return nil, false, nil
		}
		shapes = append(shapes, d)
	}
	o, err := BroadcastShapes(shapes...)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %v", n.Label(), err)
	}
	return o, true, nil
}

// InferBroadcast gives output 0 the multidirectional broadcast of the input
// shapes and input 0's type, folding integer Add/Sub/Mul/Div.
func InferBroadcast(n *Node, s *Shapes) error {
	o, ok, err := broadcastOf(n, s)
	if !ok {
		return err
	}
	s.Set(n.Outputs[0], o, s.Types[n.Input(0)])
	inferFoldArith(s, n, o)
	return nil
}

// InferBroadcastBool is InferBroadcast with a BOOL output (comparisons,
// logical operators).
func InferBroadcastBool(n *Node, s *Shapes) error {
	o, ok, err := broadcastOf(n, s)
	if ok {
		s.Set(n.Outputs[0], o, Bool)
	}
	return err
}

// inferWhere broadcasts condition, X and Y; the type is X's.
func inferWhere(n *Node, s *Shapes) error {
	o, ok, err := broadcastOf(n, s)
	if ok {
		s.Set(n.Outputs[0], o, s.Types[n.Input(1)])
	}
	return err
}

func inferConstant(n *Node, s *Shapes) error {
	t, err := constantValue(n)
	if err != nil {
		return err
	}
	out := n.Outputs[0]
	s.Set(out, t.Shape, t.Type)
	if !t.Type.IsFloat() {
		s.Ints[out] = t.Int
	}
	return nil
}

// inferPool is the output shape of MaxPool, AveragePool and LpPool.
func inferPool(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if len(in) < 3 {
		return fmt.Errorf("%s: input has shape %v, want N×C×spatial", n.Label(), in)
	}
	w, err := n.Window(in[2:], nil)
	if err != nil {
		return err
	}
	s.Set(out, append([]int{in[0], in[1]}, w.Out...), t)
	return nil
}

// inferGlobalPool sets every spatial dimension to 1.
func inferGlobalPool(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if len(in) < 3 {
		return fmt.Errorf("%s: input has shape %v, want N×C×spatial", n.Label(), in)
	}
	o := slices.Clone(in)
	for i := 2; i < len(o); i++ {
		o[i] = 1
	}
	s.Set(out, o, t)
	return nil
}

func inferMatMul(n *Node, s *Shapes) error {
	a, okA, t, out := first(n, s)
	b, okB := s.dims(n.Input(1))
	if !okA || !okB {
		return nil
	}
	o, _, err := MatMulShape(a, b)
	if err != nil {
		return fmt.Errorf("%s: %v", n.Label(), err)
	}
	s.Set(out, o, t)
	return nil
}

func inferFlatten(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	a, err := n.AttrInt("axis", 1)
	if err != nil {
		return err
	}
	axis, err := NormAxis(n, "axis", a, len(in), true)
	if err != nil {
		return err
	}
	s.Set(out, []int{Numel(in[:axis]), Numel(in[axis:])}, t)
	if v, ok := s.Ints[n.Input(0)]; ok {
		s.Ints[out] = v
	}
	return nil
}

func inferReshapeNode(n *Node, s *Shapes) error {
	in, ok, t, _ := first(n, s)
	return inferReshape(s, n, in, ok, t)
}

func inferShape(n *Node, s *Shapes) error {
	in, ok, _, out := first(n, s)
	if !ok {
		return nil
	}
	start, err := n.AttrInt("start", 0)
	if err != nil {
		return err
	}
	end, err := n.AttrInt("end", int64(len(in)))
	if err != nil {
		return err
	}
	r := int64(len(in))
	start, end = ClampIndex(start, r), ClampIndex(end, r)
	v := []int64{}
	for i := start; i < end; i++ {
		v = append(v, int64(in[i]))
	}
	s.SetInts(out, v, []int{len(v)})
	return nil
}

func inferSize(n *Node, s *Shapes) error {
	if in, ok, _, out := first(n, s); ok {
		s.SetInts(out, []int64{int64(Numel(in))}, []int{})
	}
	return nil
}

func inferGatherNode(n *Node, s *Shapes) error {
	in, ok, t, _ := first(n, s)
	return inferGather(s, n, in, ok, t)
}

func inferSqueezeNode(n *Node, s *Shapes) error {
	in, ok, t, _ := first(n, s)
	return inferSqueeze(s, n, in, ok, t)
}

func inferConcatNode(n *Node, s *Shapes) error {
	return inferConcat(s, n, s.Types[n.Input(0)])
}

func inferSliceNode(n *Node, s *Shapes) error {
	in, ok, t, _ := first(n, s)
	return inferSlice(s, n, in, ok, t)
}

func inferTranspose(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	perm, err := n.AttrInts("perm", nil)
	if err != nil {
		return err
	}
	if perm != nil && !isPerm(perm, len(in)) {
		return AttrError(n, "perm", "%v is not a permutation of %d axes", perm, len(in))
	}
	o := make([]int, len(in))
	for i := range o {
		p := len(in) - 1 - i
		if perm != nil {
			p = int(perm[i])
		}
		o[i] = in[p]
	}
	s.Set(out, o, t)
	return nil
}

// isPerm reports whether p is a permutation of 0..r-1.
func isPerm(p []int64, r int) bool {
	if len(p) != r {
		return false
	}
	seen := make([]bool, r)
	for _, v := range p {
		if v < 0 || v >= int64(r) || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func inferCast(n *Node, s *Shapes) error {
	in, ok, _, out := first(n, s)
	if !ok {
		return nil
	}
	to, err := n.AttrInt("to", 0)
	if err != nil {
		return err
	}
	dt := DataType(to)
	s.Set(out, in, dt)
	if v, ok := s.Ints[n.Input(0)]; ok && dt.IsInt() {
		s.Ints[out] = v
	}
	return nil
}

func inferConstantOfShape(n *Node, s *Shapes) error {
	sh, ok := s.Ints[n.Input(0)]
	if !ok {
		return nil
	}
	d, err := ToDims(n, sh)
	if err != nil {
		return err
	}
	t := &Tensor{Type: Float, Float: []float64{0}}
	if a, ok := n.Attrs["value"]; ok && a.Tensor != nil {
		t = a.Tensor
	}
	if t.Len() != 1 {
		return AttrError(n, "value", "has %d elements, want 1", t.Len())
	}
	out := n.Outputs[0]
	s.Set(out, d, t.Type)
	if !t.Type.IsFloat() && Numel(d) <= 1<<16 {
		v := make([]int64, Numel(d))
		for i := range v {
			v[i] = t.Int[0]
		}
		s.Ints[out] = v
	}
	return nil
}

func inferExpand(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	sh, okS := s.Ints[n.Input(1)]
	if !okS || !ok {
		return nil
	}
	d, err := ToDims(n, sh)
	if err != nil {
		return err
	}
	o, err := BroadcastShapes(in, d)
	if err != nil {
		return fmt.Errorf("%s: %v", n.Label(), err)
	}
	s.Set(out, o, t)
	return nil
}
