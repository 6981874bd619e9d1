package op

import (
	"fmt"
	"slices"
)

// LayerNormalization (opset 17) is a composite over ReduceMean, Sub, Mul,
// Add, Sqrt and Div: with the axes from axis to the last,
//
//	μ = mean(x),  σ² = mean((x − μ)²),  y = (x − μ) / √(σ² + ε) · scale + B,
//
// so its gradient and Hessian-vector rules are those of its primitives
// (class Composite).
func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	Register(&Def{Type: "LayerNormalization", Since: 17, Infer: InferSame, Exec: Compose(layerNorm), Class: Composite,
		Cases: []Case{
			{Name: "last axis with bias", Inputs: []CaseInput{x(2, 3, 4), x(4), x(4)}, Want: []int{2, 3, 4}},
			{Name: "axis 1 without bias", Inputs: []CaseInput{x(2, 3, 2), x(3, 2)},
				Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: 1}, {Name: "epsilon", Type: AttrFloat, Float: 0.1}}, Want: []int{2, 3, 2}},
		}})
}

func layerNorm(b *Build) (*Expansion, error) {
	n := b.Node
	for i, o := range b.Out {
		if i > 0 && o >= 0 {
			return nil, fmt.Errorf("the Mean and InvStdDev outputs are not supported")
		}
	}
	if b.Input(1) < 0 {
		return nil, errMissing(1)
	}
	r := len(b.Shape(b.In[0]))
	a, err := n.AttrInt("axis", -1)
	if err != nil {
		return nil, err
	}
	ax, err := NormAxis(n, "axis", a, r, false)
	if err != nil {
		return nil, err
	}
	eps, err := n.AttrFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	var axes []int64
	for i := ax; i < r; i++ {
		axes = append(axes, int64(i))
	}
	mean := func(in, out string) *Node {
		return &Node{Op: "ReduceMean", Inputs: []string{in}, Outputs: []string{out},
			Attrs: map[string]*Attr{"axes": {Name: "axes", Type: AttrInts, Ints: slices.Clone(axes)}}}
	}
	node := func(op string, out string, in ...string) *Node {
		return &Node{Op: op, Inputs: in, Outputs: []string{out}, Attrs: map[string]*Attr{}}
	}
	scaled := "$out"
	if b.Input(2) >= 0 {
		scaled = "scaled"
	}
	nodes := []*Node{
		{Op: "Constant", Outputs: []string{"eps"}, Attrs: map[string]*Attr{"value_float": {Name: "value_float", Type: AttrFloat, Float: eps}}},
		mean("$0", "mean"),
		node("Sub", "centred", "$0", "mean"),
		node("Mul", "squares", "centred", "centred"),
		mean("squares", "var"),
		node("Add", "var+eps", "var", "eps"),
		node("Sqrt", "std", "var+eps"),
		node("Div", "normed", "centred", "std"),
		node("Mul", scaled, "normed", "$1"),
	}
	if b.Input(2) >= 0 {
		nodes = append(nodes, node("Add", "$out", "scaled", "$2"))
	}
	return &Expansion{Nodes: nodes}, nil
}
