package op

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
	shapeOp("ConstantOfShape", inferConstantOfShape, Case{Name: "2x3", Inputs: []CaseInput{{Shape: []int{2}, Ints: []int64{2, 3}}}, Want: []int{2, 3}})
	Register(&Def{Type: "Expand", Infer: inferExpand, Cases: []Case{{Name: "to 2x3", Inputs: []CaseInput{{Shape: []int{3}}, {Shape: []int{2}, Ints: []int64{2, 1}}}, Want: []int{2, 3}}}})
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
