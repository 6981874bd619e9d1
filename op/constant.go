package op

// constant produces a Constant node's float value; it has no inputs, so the
// plan evaluates it once and it never runs.
type constant struct {
	y int
	v []float64
}

func init() {
	Register(&Def{Type: "Constant", Infer: inferConstant, Exec: newConstant,
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

func newConstant(b *Build) (Kernel, error) {
	t, err := ConstantValue(b.Node)
	if err != nil {
		return nil, err
	}
	return &constant{y: b.Out[0], v: t.Values()}, nil
}

func (k *constant) Forward(w *Work)   { copy(w.Val[k.y], k.v) }
func (k *constant) RForward(w *Work)  {}
func (k *constant) Backward(w *Work)  {}
func (k *constant) RBackward(w *Work) {}
