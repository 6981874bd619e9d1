package op

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Constant folding: a node whose inputs are all known before execution
// (initializers, Constant nodes, shape arithmetic over the batch size) is
// evaluated once, by its own record:
//
//  1. Def.Infer gives the outputs' shapes and element types, and for the
//     shape arithmetic of exports their integer values (Shape, Size, Gather
//     of shapes, integer Add/Sub/Mul/Div, ...), exactly in int64;
//  2. otherwise Def.Eval, for an operator the engine does not execute
//     (comparisons, Not, Mod, Where, Range, ConstantOfShape, CastLike,
//     ArgMax/ArgMin);
//  3. otherwise the operator's own kernel (Def.Exec) runs its forward pass
//     once in float64 on the constant inputs (Max, Min, Sum and Mean of any
//     number of inputs included: one kernel serves every count; the
//     reductions, ReduceProd of an integer shape too).
//
// Each result is stored in its output's element type: FLOAT rounds to
// float32, integer types truncate toward zero (saturating at the int64
// range, so an INT64_MAX slice end passes through a kernel unchanged),
// BOOL is 0 or 1. Integers reaching a kernel are exact below 2⁵³ in
// magnitude.

// MaxFold bounds the elements of an output that Fold materialises; larger
// results are left to the engine.
const MaxFold = 1 << 20

// NotFoldable is the error Fold returns for a node it does not evaluate: an
// operator without a record, or whose record has neither an evaluation nor
// a kernel, an input whose value is unknown, a node its kernel refuses to
// run, or a result larger than MaxFold. It is not a fault of the graph;
// the node is left for shape inference and the engine, which name it.
type NotFoldable struct {
	// Node is the node's label, Op its operator type.
	Node, Op string
	// Reason says why, e.g. "no kernel or constant evaluation in its record".
	Reason string
}

// Error returns "<node>: not folded: <reason>".
func (e *NotFoldable) Error() string {
	return fmt.Sprintf("%s: not folded: %s", e.Node, e.Reason)
}

// IsNotFoldable reports whether err is (or wraps) a *NotFoldable.
func IsNotFoldable(err error) bool {
	var nf *NotFoldable
	return errors.As(err, &nf)
}

// CanFold reports whether record d can evaluate a node on constant inputs
// (it has shape inference and a kernel, an Eval, or integer-valued
// inference: Fold).
func (d *Def) CanFold() bool { return d.Infer != nil && (d.Eval != nil || d.Exec != nil || d.Fold) }

// Fold evaluates node n at the given opset on constant inputs: ins[i] is
// the value of input i, nil for an omitted optional input or one whose
// value is unknown. shape0, when non-nil, is the shape of input 0 even
// when its value is unknown (all Shape and Size need). It returns one
// tensor per output (nil for an omitted output), a *NotFoldable when n is
// not evaluated (see IsNotFoldable), or an error naming the node for
// inputs inconsistent with the operator's definition.
func Fold(n *Node, opset int64, ins []*Tensor, shape0 []int) ([]*Tensor, error) {
	no := func(format string, args ...any) error {
		return &NotFoldable{Node: n.Label(), Op: n.Op, Reason: fmt.Sprintf(format, args...)}
	}
	if !IsDefault(n.Domain) {
		return nil, no("operator domain %q", n.Domain)
	}
	d := Lookup(n.Op, opset)
	if d == nil {
		return nil, no("operator %s has no record at opset %d", n.Op, opset)
	}
	if d.Infer == nil {
		return nil, no("the record of %s has no shape inference", n.Op)
	}
	s := &Shapes{Dims: map[string][]int{}, Types: map[string]DataType{}, Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
	in := func(i int) *Tensor {
		if i < len(ins) {
			return ins[i]
		}
		return nil
	}
	for i, name := range n.Inputs {
		t := in(i)
		switch {
		case name == "":
			continue
		case t == nil && i == 0 && shape0 != nil:
			s.Dims[name] = shape0
			continue
		case t == nil:
			continue
		}
		s.Dims[name] = t.Shape
		s.Types[name] = t.Type
		s.Values[name] = t
		if !t.Type.IsFloat() {
			s.Ints[name] = t.Int
		}
	}
	if err := d.Infer(n, s); err != nil {
		return nil, err
	}
	// unknown is the first input whose value is unknown (-1: none); an
	// output Infer gives no values for then ends the fold before any
	// buffer is allocated.
	unknown := -1
	for i, name := range n.Inputs {
		if name != "" && in(i) == nil {
			unknown = i
			break
		}
	}
	outs := make([]*Tensor, len(n.Outputs))
	fromInfer := true
	for j, o := range n.Outputs {
		if o == "" {
			continue
		}
		dims, ok := s.Dims[o]
		if !ok {
			if j > 0 {
				continue // an optional output inference leaves unset (Dropout's mask)
			}
			for i, name := range n.Inputs {
				if name != "" && in(i) == nil && !(i == 0 && shape0 != nil) {
					return nil, no("the value of input %d (%q) is unknown", i, name)
				}
			}
			return nil, no("the shape of output %q is not inferred", o)
		}
		if err := CheckDims(dims); err != nil {
			return nil, fmt.Errorf("%s: output %q has shape %v: %v", n.Label(), o, dims, err)
		}
		if Numel(dims) > MaxFold {
			return nil, no("output %q of shape %v has more than %d elements", o, dims, MaxFold)
		}
		typ := s.Types[o]
		if typ == Undefined {
			typ = Float
		}
		t := &Tensor{Type: typ, Shape: slices.Clone(dims)}
		if v, ok := s.Ints[o]; ok && !typ.IsFloat() && len(v) == Numel(dims) {
			t.Int = slices.Clone(v)
			if typ == Bool {
				for k, x := range t.Int {
					t.Int[k] = b2i(x != 0)
				}
			}
		} else {
			if unknown >= 0 {
				return nil, no("the value of input %d (%q) is unknown", unknown, n.Inputs[unknown])
			}
			fromInfer = false
			if typ.IsFloat() {
				t.Float = make([]float64, Numel(dims))
			} else {
				t.Int = make([]int64, Numel(dims))
			}
		}
		outs[j] = t
	}
	if fromInfer {
		return outs, nil
	}
	var err error
	switch {
	case d.Eval != nil:
		err = d.Eval(n, ins, outs)
	case d.Exec != nil:
		err = foldKernel(d, n, opset, ins, outs)
	default:
		return nil, no("the record of %s has no kernel or constant evaluation", n.Op)
	}
	if err != nil {
		if IsNotFoldable(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", n.Label(), err)
	}
	return outs, nil
}

// foldSlots is the plan of one folded node: inputs (constants) first, then
// outputs.
type foldSlots struct {
	shapes [][]int
	consts [][]float64
	names  []string
}

func (s *foldSlots) Shape(i int) []int { return s.shapes[i] }
func (s *foldSlots) Const(i int) ([]float64, bool) {
	return s.consts[i], s.consts[i] != nil
}
func (s *foldSlots) Name(i int) string { return s.names[i] }

// foldKernel runs d's float64 kernel forward on the constant inputs and
// stores its outputs in outs (allocated with their shapes and types).
func foldKernel(d *Def, n *Node, opset int64, ins []*Tensor, outs []*Tensor) error {
	sl := &foldSlots{}
	b := &Build{Node: n, Opset: opset, Slots: sl}
	for i, name := range n.Inputs {
		if name == "" || i >= len(ins) || ins[i] == nil {
			b.In = append(b.In, -1)
			continue
		}
		b.In = append(b.In, len(sl.shapes))
		sl.shapes = append(sl.shapes, ins[i].Shape)
		v := ins[i].Values()
		if v == nil {
			v = []float64{}
		}
		sl.consts = append(sl.consts, v)
		sl.names = append(sl.names, name)
	}
	for j, t := range outs {
		if t == nil {
			b.Out = append(b.Out, -1)
			continue
		}
		b.Out = append(b.Out, len(sl.shapes))
		sl.shapes = append(sl.shapes, t.Shape)
		sl.consts = append(sl.consts, nil)
		sl.names = append(sl.names, n.Outputs[j])
	}
	k, err := NewKernel[float64](d.Exec, b)
	if err != nil {
		// The kernel does not run this node (a training-mode Dropout):
		// left for the engine, which names it.
		return &NotFoldable{Node: n.Label(), Op: n.Op, Reason: "its kernel does not run it: " + err.Error()}
	}
	ns := len(sl.shapes)
	w := &Work[float64]{Val: make([][]float64, ns), RV: make([][]float64, ns), Adj: make([][]float64, ns),
		RAdj: make([][]float64, ns), State: make([]any, 1)}
	for i := range sl.shapes {
		if sl.consts[i] != nil {
			w.Val[i] = slices.Clone(sl.consts[i])
		} else {
			w.Val[i] = make([]float64, Numel(sl.shapes[i]))
		}
	}
	if st, ok := k.(Stateful); ok {
		w.State[0] = st.NewState()
	}
	k.Forward(w)
	for j, t := range outs {
		if t != nil {
			StoreAs(t, w.Val[b.Out[j]])
		}
	}
	return nil
}

// StoreAs writes the values v into t in t's element type: FLOAT rounds to
// float32, DOUBLE and FLOAT16 keep float64, integer types truncate toward
// zero saturating at the int64 range (NaN gives 0), BOOL is v ≠ 0.
func StoreAs(t *Tensor, v []float64) {
	if t.Type.IsFloat() {
		t.Float = slices.Clone(v)
		if t.Type == Float {
			for i, x := range t.Float {
				t.Float[i] = float64(float32(x))
			}
		}
		t.Int = nil
		return
	}
	t.Float = nil
	t.Int = make([]int64, len(v))
	for i, x := range v {
		if t.Type == Bool {
			t.Int[i] = b2i(x != 0)
		} else {
			t.Int[i] = FloatToInt(x)
		}
	}
}

// FloatToInt truncates x toward zero, saturating at the int64 range (the
// float64 nearest INT64_MAX is 2⁶³, beyond it); NaN gives 0.
func FloatToInt(x float64) int64 {
	switch {
	case math.IsNaN(x):
		return 0
	case x >= math.MaxInt64:
		return math.MaxInt64
	case x <= math.MinInt64:
		return math.MinInt64
	}
	return int64(x)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// at returns element i of t as float64.
func at(t *Tensor, i int) float64 {
	if t.Type.IsFloat() {
		return t.Float[i]
	}
	return float64(t.Int[i])
}

// pickInto sets out's element k to x's element idx[k], exactly in either
// element type (out has x's type class).
func pickInto(out, x *Tensor, idx []int) error {
	if x.Type.IsFloat() != out.Type.IsFloat() {
		return fmt.Errorf("input of type %v, output of type %v", x.Type, out.Type)
	}
	for k, j := range idx {
		if out.Type.IsFloat() {
			out.Float[k] = x.Float[j]
		} else {
			out.Int[k] = x.Int[j]
		}
	}
	return nil
}

// evalBroadcast is the Eval of a broadcasting elementwise operator
// y = f(a, b, ...) (comparisons, logical operators): inputs are read as
// float64, the result stored in the output's type.
func evalBroadcast(f func(a, b float64) float64) func(n *Node, ins, outs []*Tensor) error {
	return func(n *Node, ins, outs []*Tensor) error {
		if len(ins) != 2 {
			return errInputs(2, len(ins))
		}
		y := outs[0]
		ia, ib := BroadcastIndex(ins[0].Shape, y.Shape), BroadcastIndex(ins[1].Shape, y.Shape)
		v := make([]float64, len(ia))
		for k := range v {
			v[k] = f(at(ins[0], ia[k]), at(ins[1], ib[k]))
		}
		StoreAs(y, v)
		return nil
	}
}
