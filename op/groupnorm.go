package op

import (
	"fmt"
	"slices"
)

// The normalizations over groups of channels and over chosen axes, each a
// composite (class Composite) over standardize's primitives (layernorm.go:
// ReduceMean, Sub, Mul, Add, Sqrt, Div), so their gradient and
// Hessian-vector rules are their primitives':
//
//   - GroupNormalization (opset 18; torch.nn.GroupNorm): x of shape
//     N×C×… is viewed as N×G×(C/G·…) (G = num_groups), standardized over
//     the last axis, y = (x − μ_g)/√(σ_g² + ε)·scale + bias. At opsets 18
//     to 20 scale and bias have one element per group, applied in the
//     grouped view; from opset 21 one per channel (the opset-18 form was
//     deprecated because no framework defines it), applied after the view
//     is undone. stash_type (21: the precision of the statistics) is not
//     read: the engine computes in its own precision.
//   - InstanceNormalization: standardization of every (sample, channel)
//     over the spatial axes, y = (x − μ)/√(σ² + ε)·scale[c] + B[c] (torch
//     1.13 exports GroupNorm through it at opsets ≤ 17, with a Reshape to
//     N×G×… before and the per-channel affine map after).
//   - MeanVarianceNormalization: y = (x − μ)/(√σ² + 10⁻⁹) over the axes
//     attribute (default [0, 2, 3]), the ONNX function's ε on the deviation.
//     Axes including the batch axis 0 (the default) are refused: they
//     couple the samples of a batch, and the engine's results may not
//     depend on how the samples are batched.
//
// Channel flow: GroupNormalization blocks (it ties the channels of a
// group), as MeanVarianceNormalization does (it may normalize over the
// channel axis); InstanceNormalization standardizes each channel alone
// and scales it by its own entries of scale and bias, so a pruned channel
// takes those entries with it (FlowNorm, as BatchNormalization).
func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	fl := func(name string, v float64) *Attr { return &Attr{Name: name, Type: AttrFloat, Float: v} }
	groups := func(g int64) *Attr { return &Attr{Name: "num_groups", Type: AttrInt, Int: g} }
	axes := func(v ...int64) *Attr { return &Attr{Name: "axes", Type: AttrInts, Ints: v} }
	Register(&Def{Type: "GroupNormalization", Since: 18, Infer: inferGroupNorm, Exec: Compose(groupNorm), Class: Composite,
		Cases: []Case{
			{Name: "per-group scale (18)", Opset: 18, Attrs: []*Attr{groups(2)}, Inputs: []CaseInput{x(2, 4, 3), x(2), x(2)}, Want: []int{2, 4, 3}},
			{Name: "per-group scale, 2-D, epsilon (20)", Opset: 20, Attrs: []*Attr{groups(3), fl("epsilon", 0.1)}, Inputs: []CaseInput{x(1, 6, 2, 2), x(3), x(3)}, Want: []int{1, 6, 2, 2}},
			{Name: "per-channel scale (21)", Opset: 21, Attrs: []*Attr{groups(2)}, Inputs: []CaseInput{x(2, 4, 2, 2), x(4), x(4)}, Want: []int{2, 4, 2, 2}},
			{Name: "one group, rank 2 (21)", Opset: 21, Attrs: []*Attr{groups(1)}, Inputs: []CaseInput{x(3, 4), x(4), x(4)}, Want: []int{3, 4}},
		}})
	Register(&Def{Type: "InstanceNormalization", Infer: inferInstanceNorm, Exec: Compose(instanceNorm), Class: Composite, Channels: FlowNorm,
		Cases: []Case{
			{Name: "1-D", Opset: 11, Inputs: []CaseInput{x(2, 3, 4), x(3), x(3)}, Want: []int{2, 3, 4}},
			{Name: "2-D, epsilon", Opset: 17, Attrs: []*Attr{fl("epsilon", 0.01)}, Inputs: []CaseInput{x(1, 2, 3, 2), x(2), x(2)}, Want: []int{1, 2, 3, 2}},
		}})
	Register(&Def{Type: "MeanVarianceNormalization", Infer: inferMVN, Exec: Compose(mvn), Class: Composite,
		Cases: []Case{
			{Name: "spatial axes", Opset: 13, Attrs: []*Attr{axes(2, 3)}, Inputs: []CaseInput{x(2, 3, 2, 3)}, Want: []int{2, 3, 2, 3}},
			{Name: "channel and last axis", Opset: 11, Attrs: []*Attr{axes(1, -1)}, Inputs: []CaseInput{x(2, 3, 4)}, Want: []int{2, 3, 4}},
		}})
}

// groupNormParams checks GroupNormalization's input x of shape xs and
// returns num_groups and the scale and bias length at the opset.
func groupNormParams(n *Node, xs []int, opset int64) (g, per int, err error) {
	if len(xs) < 2 {
		return 0, 0, fmt.Errorf("%s: input has shape %v, want N×C×…", n.Label(), xs)
	}
	if _, ok := n.Attrs["num_groups"]; !ok {
		return 0, 0, AttrError(n, "num_groups", "is required")
	}
	v, err := n.AttrInt("num_groups", 0)
	if err != nil {
		return 0, 0, err
	}
	c := xs[1]
	if v < 1 || v > int64(c) || int64(c)%v != 0 {
		return 0, 0, AttrError(n, "num_groups", "is %d, want a divisor of the %d channels", v, c)
	}
	g = int(v)
	if opset >= 21 {
		return g, c, nil
	}
	return g, g, nil
}

// checkVectors checks that inputs 1 and 2 of n (scale and bias) are
// vectors of length want.
func checkVectors(n *Node, s *Shapes, want int, what string) error {
	for j, name := range []string{"scale", "bias"} {
		if n.Input(j+1) == "" {
			return fmt.Errorf("%s: the %s input is missing", n.Label(), name)
		}
		if d, ok := s.dims(n.Input(j + 1)); ok && !slices.Equal(d, []int{want}) {
			return fmt.Errorf("%s: %s has shape %v, want [%d] (one per %s)", n.Label(), name, d, want, what)
		}
	}
	return nil
}

func inferGroupNorm(n *Node, s *Shapes) error {
	xs, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	// Infer does not see the opset: either length is accepted here and
	// the kernel checks the one of its opset.
	g, _, err := groupNormParams(n, xs, 0)
	if err != nil {
		return err
	}
	if err := checkVectors(n, s, g, "group"); err != nil {
		if err2 := checkVectors(n, s, xs[1], "channel"); err2 != nil {
			return fmt.Errorf("%w (or [%d], one per channel, from opset 21)", err, xs[1])
		}
	}
	s.Set(out, xs, t)
	return nil
}

func inferInstanceNorm(n *Node, s *Shapes) error {
	xs, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if len(xs) < 3 {
		return fmt.Errorf("%s: input has shape %v, want N×C×spatial", n.Label(), xs)
	}
	if err := checkVectors(n, s, xs[1], "channel"); err != nil {
		return err
	}
	s.Set(out, xs, t)
	return nil
}

// mvnAxes returns MeanVarianceNormalization's axes, normalised for rank r;
// the batch axis is refused.
func mvnAxes(n *Node, r int) ([]int64, error) {
	v, err := n.AttrInts("axes", []int64{0, 2, 3})
	if err != nil {
		return nil, err
	}
	var axes []int64
	for _, a := range v {
		ax, err := NormAxis(n, "axes", a, r, false)
		if err != nil {
			return nil, err
		}
		if ax == 0 {
			return nil, AttrError(n, "axes", "%v includes the batch axis 0 (the default [0, 2, 3]): the normalization would couple the samples of a batch, which the engine does not model", v)
		}
		if slices.Contains(axes, int64(ax)) {
			return nil, AttrError(n, "axes", "%v repeats axis %d", v, ax)
		}
		axes = append(axes, int64(ax))
	}
	if len(axes) == 0 {
		return nil, AttrError(n, "axes", "is empty")
	}
	return axes, nil
}

func inferMVN(n *Node, s *Shapes) error {
	xs, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if _, err := mvnAxes(n, len(xs)); err != nil {
		return err
	}
	s.Set(out, xs, t)
	return nil
}

// expansion helpers: a node, a Constant of integers, and a Reshape of in
// to dims.
func xnode(op, out string, in ...string) *Node {
	return &Node{Op: op, Inputs: in, Outputs: []string{out}, Attrs: map[string]*Attr{}}
}

func reshapeTo(in, out string, dims []int) []*Node {
	v := make([]int64, len(dims))
	for i, d := range dims {
		v[i] = int64(d)
	}
	return []*Node{
		{Op: "Constant", Outputs: []string{out + "/shape"}, Attrs: map[string]*Attr{"value_ints": {Name: "value_ints", Type: AttrInts, Ints: v}}},
		xnode("Reshape", out, in, out+"/shape"),
	}
}

// perChannel returns the dims [c, 1, …, 1] that broadcast a vector of
// length c along axis 1 of a rank-r tensor.
func perChannel(c, r int) []int {
	d := make([]int, r-1)
	for i := range d {
		d[i] = 1
	}
	d[0] = c
	return d
}

// checkVector checks that input j of b is a vector of length want.
func checkVector(b *Build, j, want int, what string) error {
	if b.Input(j) < 0 {
		return errMissing(j)
	}
	if d := b.Shape(b.In[j]); !slices.Equal(d, []int{want}) {
		return fmt.Errorf("input %d has shape %v, want [%d] (one per %s)", j, d, want, what)
	}
	return nil
}

func groupNorm(b *Build) (*Expansion, error) {
	n := b.Node
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	xs := b.Shape(b.In[0])
	g, per, err := groupNormParams(n, xs, b.Opset)
	if err != nil {
		return nil, err
	}
	what := "group (opsets 18 to 20)"
	if per != g {
		what = "channel (opset 21)"
	}
	for j := 1; j <= 2; j++ {
		if err := checkVector(b, j, per, what); err != nil {
			return nil, err
		}
	}
	eps, err := n.AttrFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	grouped := []int{xs[0], g, Numel(xs[1:]) / g}
	nodes := reshapeTo("$0", "grouped", grouped)
	nodes = append(nodes, standardize("grouped", "normed", []int64{2}, eps, false)...)
	if per == g {
		// Opsets 18 to 20: scale and bias per group, in the grouped view.
		nodes = append(nodes, reshapeTo("$1", "scale", []int{g, 1})...)
		nodes = append(nodes, reshapeTo("$2", "bias", []int{g, 1})...)
		nodes = append(nodes, xnode("Mul", "scaled", "normed", "scale"), xnode("Add", "shifted", "scaled", "bias"))
		nodes = append(nodes, reshapeTo("shifted", "$out", xs)...)
		return &Expansion{Nodes: nodes}, nil
	}
	nodes = append(nodes, reshapeTo("normed", "ungrouped", xs)...)
	nodes = append(nodes, reshapeTo("$1", "scale", perChannel(per, len(xs)))...)
	nodes = append(nodes, reshapeTo("$2", "bias", perChannel(per, len(xs)))...)
	nodes = append(nodes, xnode("Mul", "scaled", "ungrouped", "scale"), xnode("Add", "$out", "scaled", "bias"))
	return &Expansion{Nodes: nodes}, nil
}

func instanceNorm(b *Build) (*Expansion, error) {
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	xs := b.Shape(b.In[0])
	if len(xs) < 3 {
		return nil, fmt.Errorf("input has shape %v, want N×C×spatial", xs)
	}
	for j := 1; j <= 2; j++ {
		if err := checkVector(b, j, xs[1], "channel"); err != nil {
			return nil, err
		}
	}
	eps, err := b.Node.AttrFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	var axes []int64
	for i := 2; i < len(xs); i++ {
		axes = append(axes, int64(i))
	}
	nodes := standardize("$0", "normed", axes, eps, false)
	nodes = append(nodes, reshapeTo("$1", "scale", perChannel(xs[1], len(xs)))...)
	nodes = append(nodes, reshapeTo("$2", "bias", perChannel(xs[1], len(xs)))...)
	nodes = append(nodes, xnode("Mul", "scaled", "normed", "scale"), xnode("Add", "$out", "scaled", "bias"))
	return &Expansion{Nodes: nodes}, nil
}

// mvnEpsilon is the ε the ONNX function of MeanVarianceNormalization adds
// to the standard deviation.
const mvnEpsilon = 1e-9

func mvn(b *Build) (*Expansion, error) {
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	axes, err := mvnAxes(b.Node, len(b.Shape(b.In[0])))
	if err != nil {
		return nil, err
	}
	return &Expansion{Nodes: standardize("$0", "$out", axes, mvnEpsilon, true)}, nil
}
