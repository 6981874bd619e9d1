package op

import (
	"fmt"
	"math"
	"math/big"
	"slices"
)

// constant produces a Constant node's float value; it has no inputs, so the
// plan evaluates it once and it never runs.
type constant[T Real] struct {
	y int
	v []T
}

func init() {
	Register(&Def{Type: "Constant", Infer: inferConstant, Exec: Both(newConstant[float64], newConstant[float32]),
		Cases: []Case{{Name: "value_floats", Attrs: []*Attr{{Name: "value_floats", Type: AttrFloats, Floats: []float64{1, 2, 3}}}, Want: []int{3}}}})
	// Shape arithmetic: run only on values Infer folds before execution.
	shapeOp := func(typ string, infer func(*Node, *Shapes) error, c ...Case) {
		Register(&Def{Type: typ, Infer: infer, Fold: true, Cases: c})
	}
	shapeOp("Shape", inferShape, Case{Name: "rank 3", Inputs: []CaseInput{{Shape: []int{2, 3, 4}}}, Want: []int{3}})
	shapeOp("Size", inferSize, Case{Name: "rank 2", Inputs: []CaseInput{{Shape: []int{2, 3}}}, Want: []int{}})
	Register(&Def{Type: "ConstantOfShape", Infer: inferConstantOfShape, Fold: true, Eval: evalConstantOfShape,
		Cases: []Case{{Name: "2x3", Inputs: []CaseInput{{Shape: []int{2}, Ints: []int64{2, 3}}}, Want: []int{2, 3}}}})
	// Expand and Tile pick elements of their input (class Linear, see
	// pick in slice.go).
	Register(&Def{Type: "Expand", Infer: inferExpand, Exec: Both(newExpand[float64], newExpand[float32]), Class: Linear,
		Cases: []Case{{Name: "to 2x3", Inputs: []CaseInput{{Shape: []int{3}}, {Shape: []int{2}, Ints: []int64{2, 1}}}, Want: []int{2, 3}}}})
	Register(&Def{Type: "Tile", Infer: inferTile, Exec: Both(newTile[float64], newTile[float32]), Class: Linear,
		Cases: []Case{{Name: "2x3 by 2x1", Inputs: []CaseInput{{Shape: []int{2, 3}}, {Shape: []int{2}, Ints: []int64{2, 1}}}, Want: []int{4, 3}}}})
	Register(&Def{Type: "Range", Since: 11, Infer: inferRange, Fold: true, Eval: evalRange,
		Cases: []Case{{Name: "0..7 by 3", Inputs: []CaseInput{{Shape: []int{}, Ints: []int64{0}}, {Shape: []int{}, Ints: []int64{7}},
			{Shape: []int{}, Ints: []int64{3}}}, Want: []int{3}}, {Name: "float", Inputs: []CaseInput{{Shape: []int{}, Const: []float64{1}},
			{Shape: []int{}, Const: []float64{2}}, {Shape: []int{}, Const: []float64{0.25}}}, Want: []int{4}}}})
}

// evalConstantOfShape fills the output with the value attribute (default
// a FLOAT 0).
func evalConstantOfShape(n *Node, ins, outs []*Tensor) error {
	v := &Tensor{Type: Float, Shape: []int{1}, Float: []float64{0}}
	if a, ok := n.Attrs["value"]; ok && a.Tensor != nil {
		v = a.Tensor
	}
	return pickInto(outs[0], v, make([]int, outs[0].Len()))
}

// newExpand broadcasts input 0 to the output shape.
func newExpand[T Real](b *Build) (Kernel[T], error) {
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	in, out := b.Shape(b.In[0]), b.Shape(b.Out[0])
	m := internIndex(indexKey("broadcast", in, out), func() *indexMap { return &indexMap{idx: broadcastIndex[int32](in, out)} })
	return LinearKernel[T](&pick[T]{idx: m.idx, m: m}, b.In[:1], b.Out[0]), nil
}

func int32s(v []int) []int32 {
	o := make([]int32, len(v))
	for i, x := range v {
		o[i] = int32(x)
	}
	return o
}

func inferTile(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	reps, okR := s.Ints[n.Input(1)]
	if !ok || !okR {
		return nil
	}
	if len(reps) != len(in) {
		return fmt.Errorf("%s: %d repeats for rank %d", n.Label(), len(reps), len(in))
	}
	o := slices.Clone(in)
	for i, r := range reps {
		if r < 0 || r > MaxDim || (in[i] > 0 && r > MaxDim/int64(in[i])) {
			return fmt.Errorf("%s: repeats %v: %d on axis %d of input %v, want 0..%d in all", n.Label(), reps, r, i, in, MaxDim)
		}
		o[i] *= int(r)
	}
	s.Set(out, o, t)
	return nil
}

// newTile repeats input 0: output coordinate c reads input coordinate
// c mod the input's shape.
func newTile[T Real](b *Build) (Kernel[T], error) {
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	xs, ys := b.Shape(b.In[0]), b.Shape(b.Out[0])
	if len(xs) != len(ys) {
		return nil, fmt.Errorf("input %v and output %v differ in rank", xs, ys)
	}
	st := strides(xs)
	k := &pick[T]{idx: make([]int32, Numel(ys))}
	coord := make([]int, len(ys))
	for o := range k.idx {
		q := 0
		for d, c := range coord {
			q += (c % xs[d]) * st[d]
		}
		k.idx[o] = int32(q)
		for d := len(ys) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < ys[d] {
				break
			}
			coord[d] = 0
		}
	}
	return LinearKernel[T](k, b.In[:1], b.Out[0]), nil
}

// rangeArgs returns Range's start, limit and delta and the element count
// max(⌈(limit − start)/delta⌉, 0). A delta of 0, a start, limit or delta
// that is NaN or infinite, and a count beyond MaxElems are errors naming
// the node and the three values; integer inputs count exactly (in int64
// the float quotient can be off by one beyond 2^53).
func rangeArgs(n *Node, start, limit, delta *Tensor) (s, d float64, cnt int, err error) {
	var v [3]float64
	for i, t := range []*Tensor{start, limit, delta} {
		if t.Len() != 1 {
			return 0, 0, 0, fmt.Errorf("%s: input %d has shape %v, want a scalar", n.Label(), i, t.Shape)
		}
		v[i] = at(t, 0)
	}
	bad := func(why string) error {
		return fmt.Errorf("%s: range from start %g to limit %g by delta %g: %s", n.Label(), v[0], v[1], v[2], why)
	}
	switch {
	case v[2] == 0:
		return 0, 0, 0, bad("delta is 0")
	case math.IsNaN(v[0]) || math.IsNaN(v[1]) || math.IsNaN(v[2]):
		return 0, 0, 0, bad("NaN operand")
	case math.IsInf(v[0], 0) || math.IsInf(v[1], 0) || math.IsInf(v[2], 0):
		return 0, 0, 0, bad("infinite operand")
	}
	c := math.Ceil((v[1] - v[0]) / v[2])
	if !start.Type.IsFloat() && !limit.Type.IsFloat() && !delta.Type.IsFloat() {
		// ⌈(l − s)/d⌉ in exact integers: l − s may overflow int64.
		q, r := new(big.Int).QuoRem(new(big.Int).Sub(big.NewInt(limit.Int[0]), big.NewInt(start.Int[0])), big.NewInt(delta.Int[0]), new(big.Int))
		if r.Sign() != 0 && r.Sign() == big.NewInt(delta.Int[0]).Sign() {
			q.Add(q, big.NewInt(1)) // Quo truncates toward zero
		}
		c = float64(q.Int64())
		if !q.IsInt64() {
			c = math.Inf(q.Sign())
		}
	}
	if math.IsNaN(c) || c > MaxElems {
		return 0, 0, 0, bad(fmt.Sprintf("%g elements, more than %d", c, MaxElems))
	}
	return v[0], v[2], int(max(c, 0)), nil
}

// inferRange needs the values of its three scalar inputs.
func inferRange(n *Node, s *Shapes) error {
	var ts [3]*Tensor
	for i := range ts {
		if ts[i] = s.Values[n.Input(i)]; ts[i] == nil {
			return nil
		}
	}
	_, _, cnt, err := rangeArgs(n, ts[0], ts[1], ts[2])
	if err != nil {
		return err
	}
	s.Set(n.Outputs[0], []int{cnt}, ts[0].Type)
	return nil
}

// evalRange is start + i·delta for i < ⌈(limit − start)/delta⌉.
func evalRange(n *Node, ins, outs []*Tensor) error {
	start, delta, cnt, err := rangeArgs(n, ins[0], ins[1], ins[2])
	if err != nil {
		return err
	}
	y := outs[0]
	if !y.Type.IsFloat() && (ins[0].Type.IsFloat() || ins[2].Type.IsFloat()) {
		return fmt.Errorf("inputs of types %v and %v", ins[0].Type, ins[2].Type)
	}
	for i := 0; i < cnt; i++ {
		if y.Type.IsFloat() {
			y.Float[i] = start + float64(i)*delta
		} else {
			y.Int[i] = ins[0].Int[0] + int64(i)*ins[2].Int[0]
		}
	}
	if y.Type == Float {
		StoreAs(y, y.Float)
	}
	return nil
}

func newConstant[T Real](b *Build) (Kernel[T], error) {
	t, err := ConstantValue(b.Node)
	if err != nil {
		return nil, err
	}
	return &constant[T]{y: b.Out[0], v: Convert[T](t.Values())}, nil
}

func (k *constant[T]) Forward(w *Work[T])   { copy(w.Val[k.y], k.v) }
func (k *constant[T]) RForward(w *Work[T])  {}
func (k *constant[T]) Backward(w *Work[T])  {}
func (k *constant[T]) RBackward(w *Work[T]) {}

// Retains: a constant has no derivative.
func (k *constant[T]) Retains() Retains { return Retains{} }
