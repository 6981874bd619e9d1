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
	node := func(op string, out string, in ...string) *Node {
		return &Node{Op: op, Inputs: in, Outputs: []string{out}, Attrs: map[string]*Attr{}}
	}
	scaled := "$out"
	if b.Input(2) >= 0 {
		scaled = "scaled"
	}
	nodes := append(standardize("$0", "normed", axes, eps, false), node("Mul", scaled, "normed", "$1"))
	if b.Input(2) >= 0 {
		nodes = append(nodes, node("Add", "$out", "scaled", "$2"))
	}
	return &Expansion{Nodes: nodes}, nil
}

// standardize returns the sub-nodes of an expansion that write
//
//	(x − μ) / √(σ² + ε)   (epsStd: (x − μ) / (√σ² + ε))
//
// of its tensor x into out, with μ and σ² the mean and the biased variance
// over axes (ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div). It is the
// normalization LayerNormalization, GroupNormalization,
// InstanceNormalization and MeanVarianceNormalization (epsStd, the ONNX
// function's ε = 1e-9 added to the deviation) share; their intermediate
// names are prefixed with out.
func standardize(x, out string, axes []int64, eps float64, epsStd bool) []*Node {
	p := func(s string) string { return out + "/" + s }
	mean := func(in, o string) *Node {
		return &Node{Op: "ReduceMean", Inputs: []string{in}, Outputs: []string{o},
			Attrs: map[string]*Attr{"axes": {Name: "axes", Type: AttrInts, Ints: slices.Clone(axes)}}}
	}
	node := func(op string, o string, in ...string) *Node {
		return &Node{Op: op, Inputs: in, Outputs: []string{o}, Attrs: map[string]*Attr{}}
	}
	sqrt, add := node("Sqrt", p("std"), p("var+eps")), node("Add", p("var+eps"), p("var"), p("eps"))
	denom := p("std")
	if epsStd {
		sqrt, add = node("Sqrt", p("std"), p("var")), node("Add", p("std+eps"), p("std"), p("eps"))
		denom = p("std+eps")
	}
	nodes := []*Node{
		{Op: "Constant", Outputs: []string{p("eps")}, Attrs: map[string]*Attr{"value_float": {Name: "value_float", Type: AttrFloat, Float: eps}}},
		mean(x, p("mean")),
		node("Sub", p("centred"), x, p("mean")),
		node("Mul", p("squares"), p("centred"), p("centred")),
		mean(p("squares"), p("var")),
	}
	if epsStd {
		nodes = append(nodes, sqrt, add)
	} else {
		nodes = append(nodes, add, sqrt)
	}
	return append(nodes, node("Div", out, p("centred"), denom))
}
