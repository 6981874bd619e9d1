package op

import "fmt"

// The view operators change a tensor's shape or type but not its row-major
// data: Identity, Dropout (inference), Flatten, Reshape, Squeeze,
// Unsqueeze, Cast to a floating-point type (any Cast of a constant, which
// Fold stores in the output's type). Each is the identity map
// (class Linear): R{y} = R{x}, x̄ += ȳ, R{x̄} += R{ȳ}.

type identity[T Real] struct{}

func (identity[T]) Apply(dst []T, src [][]T) {
	if src[0] == nil {
		clear(dst)
		return
	}
	copy(dst, src[0])
}

func (identity[T]) Transpose(dst [][]T, src []T) {
	if dst[0] != nil {
		AddTo(dst[0], src)
	}
}

func newView[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	if len(in) < 1 || in[0] < 0 {
		return nil, errMissing(0)
	}
	switch n.Op {
	case "Dropout":
		if len(in) > 2 && in[2] >= 0 {
			v, ok := b.Const(in[2])
			if !ok || (len(v) == 1 && v[0] != 0) {
				return nil, fmt.Errorf("training mode is not supported (inference only)")
			}
		}
	case "Cast":
		var to int64
		v, err := n.AttrInt("to", 0)
		if err != nil {
			return nil, err
		}
		to = v
		// A constant is cast by storing it in the output's type (Fold);
		// computed data stays floating-point.
		if _, isConst := b.Const(in[0]); !DataType(to).IsFloat() && !isConst {
			return nil, fmt.Errorf("casting a computed tensor to %v is not supported", DataType(to))
		}
	}
	if b.Size(in[0]) != b.Size(out[0]) {
		return nil, fmt.Errorf("input %v and output %v differ in size", b.Shape(in[0]), b.Shape(out[0]))
	}
	k := LinearKernel[T](identity[T]{}, in[:1], out[0])
	if n.Op == "Dropout" && len(out) > 1 && out[1] >= 0 {
		return &withMask[T]{Kernel: k, mask: out[1]}, nil
	}
	return k, nil
}

// withMask is inference Dropout with its mask output: all ones (true).
type withMask[T Real] struct {
	Kernel[T]
	mask int
}

func (k *withMask[T]) Forward(w *Work[T]) {
	k.Kernel.Forward(w)
	for i := range w.Val[k.mask] {
		w.Val[k.mask][i] = 1
	}
}

func inferDropout(n *Node, s *Shapes) error {
	if err := inferSameInts(n, s); err != nil {
		return err
	}
	if in, ok := s.dims(n.Input(0)); ok && len(n.Outputs) > 1 {
		s.Set(n.Outputs[1], in, Bool)
	}
	return nil
}

// CastLike's target type is input 1's, which a kernel does not see: it is
// evaluated on constants only.
func evalCastLike(n *Node, ins, outs []*Tensor) error {
	StoreAs(outs[0], ins[0].Values())
	return nil
}

// inferCastLike gives output 0 input 0's shape and input 1's type.
func inferCastLike(n *Node, s *Shapes) error {
	in, ok, _, out := first(n, s)
	if !ok {
		return nil
	}
	dt := s.Types[n.Input(1)]
	s.Set(out, in, dt)
	if v, ok := s.Ints[n.Input(0)]; ok && dt.IsInt() {
		s.Ints[out] = v
	}
	return nil
}

func init() {
	ints := func(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	shape := func(v ...int64) CaseInput { return CaseInput{Shape: []int{len(v)}, Ints: v} }
	views := []struct {
		typ   string
		infer func(*Node, *Shapes) error
		flow  Flow
		cases []Case
	}{
		{"Identity", inferSameInts, FlowPass, []Case{{Name: "2x3", Inputs: []CaseInput{x(2, 3)}, Want: []int{2, 3}}}},
		{"Dropout", inferDropout, FlowPass, []Case{{Name: "2x3", Inputs: []CaseInput{x(2, 3)}, Want: []int{2, 3}}}},
		{"Cast", inferCast, FlowPass, []Case{{Name: "to float", Inputs: []CaseInput{x(2, 3)},
			Attrs: []*Attr{{Name: "to", Type: AttrInt, Int: int64(Float)}}, Want: []int{2, 3}}}},
		{"Flatten", inferFlatten, FlowFlatten, []Case{{Name: "axis 1", Inputs: []CaseInput{x(2, 3, 2)}, Want: []int{2, 6}}}},
		{"Reshape", inferReshapeNode, FlowBlocks, []Case{{Name: "-1", Inputs: []CaseInput{x(2, 3, 2), shape(0, -1)}, Want: []int{2, 6}}}},
		{"Squeeze", inferSqueezeNode, FlowBlocks, []Case{{Name: "axes input", Opset: 13, Inputs: []CaseInput{x(2, 1, 3), shape(1)}, Want: []int{2, 3}},
			{Name: "axes attribute", Opset: 11, Inputs: []CaseInput{x(2, 1, 3)}, Attrs: []*Attr{ints("axes", 1)}, Want: []int{2, 3}}}},
		{"Unsqueeze", inferSqueezeNode, FlowBlocks, []Case{{Name: "axes input", Opset: 13, Inputs: []CaseInput{x(2, 3), shape(0)}, Want: []int{1, 2, 3}}}},
	}
	Register(&Def{Type: "CastLike", Since: 15, Infer: inferCastLike, Fold: true, Eval: evalCastLike,
		Cases: []Case{{Name: "like float", Opset: 15, Inputs: []CaseInput{x(2, 3), {Shape: []int{1}, Const: []float64{0}}}, Want: []int{2, 3}}}})
	for _, v := range views {
		Register(&Def{Type: v.typ, Infer: v.infer, Exec: Both(newView[float64], newView[float32]), Class: Linear, View: true, Channels: v.flow, Cases: v.cases})
	}
}
