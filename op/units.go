package op

import "fmt"

// UnitGraph is what a Def.Unit function may ask about the graph.
type UnitGraph interface {
	// FloatConst returns the floating-point initializer called name, or
	// nil when name is not one.
	FloatConst(name string) *Tensor
	// Dims returns the inferred shape of tensor name at batch size
	// Batch(), or nil when unknown.
	Dims(name string) []int
	// Batch returns the batch size of the shapes Dims gives (1, unless
	// the graph's shape arithmetic fixes another): a node's counts over
	// the whole pass divided by it are per sample, whatever the layout
	// (sequence-first activations, heads folded into the first axis).
	Batch() int
}

// UnitSpec describes a node that owns a quantizable weight.
type UnitSpec struct {
	// Suffix is appended to the node name to name the unit when a node
	// owns several (Def.Units); "" for one.
	Suffix string
	// WeightInput is the input index of the weight initializer.
	WeightInput int
	// DataInput is the input index of the activation the weight
	// multiplies (an input quantizer quantizes it), or -1 when that
	// activation is not a node input (LSTM's R multiplies the hidden
	// state, computed inside the node).
	DataInput int
	// BiasInput is the input index of a floating-point initializer bias,
	// or -1.
	BiasInput int
	// BiasFromAdd: a 1-D constant operand of an Add that is the node's only
	// consumer is the bias (PyTorch's Linear on non-matrix inputs).
	BiasFromAdd bool
	// FoldsBatchNorm: a BatchNormalization that is the only consumer of the
	// output can be folded into the weight per output channel.
	FoldsBatchNorm bool
	// OutChannels is the number of output channels; Group the group count
	// (1 but for grouped Conv); TransB Gemm's transB.
	OutChannels, Group int
	// ChannelAxis is the weight's axis of output channels, along which a
	// per-channel quantizer keeps one scale per slice (and a QDQ model's
	// DequantizeLinear its axis): 0 for Conv (M×C/g×k…), Gemm with transB
	// (N×K) and an embedding table; the last axis of a K×N weight (Gemm,
	// MatMul on the right, square or not); 1 for ConvTranspose
	// (C×M/g×k…: the output channel within a group) and for the W and R
	// of LSTM, GRU and RNN (D×gates·H×…: one scale per gate row, shared by
	// the directions). It can differ from the axis OutChannels counts
	// (pruning's channels).
	ChannelAxis int
	TransB      bool
	// MACs, InElems and OutElems are per sample; ShapeKnown is false when
	// the shapes were not inferred (they are then 0).
	MACs, InElems, OutElems int64
	ShapeKnown              bool
}

// ErrUnit is the error class of a malformed unit; model wraps it into its
// format error.
type ErrUnit struct{ Msg string }

func (e *ErrUnit) Error() string { return e.Msg }

func unitErr(format string, args ...any) error { return &ErrUnit{Msg: fmt.Sprintf(format, args...)} }

func unitConv(n *Node, g UnitGraph) (*UnitSpec, error) {
	w := g.FloatConst(n.Input(1))
	if w == nil {
		return nil, nil
	}
	if len(w.Shape) < 3 {
		return nil, unitErr("%s: weight %q has shape %v, want M×C/group×kernel", n.Label(), w.Name, w.Shape)
	}
	grp, err := n.AttrInt("group", 1)
	if err != nil {
		return nil, err
	}
	if grp < 1 || w.Shape[0]%int(grp) != 0 {
		return nil, AttrError(n, "group", "is %d, want ≥ 1 dividing the %d output channels", grp, w.Shape[0])
	}
	u := &UnitSpec{WeightInput: 1, DataInput: 0, BiasInput: -1, OutChannels: w.Shape[0], Group: int(grp), FoldsBatchNorm: true}
	if b := n.Input(2); b != "" {
		bt := g.FloatConst(b)
		if bt == nil {
			return nil, fmt.Errorf("%s: bias %q is not a floating-point initializer (only constant biases are supported)", n.Label(), b)
		}
		if bt.Len() != w.Shape[0] {
			return nil, unitErr("%s: bias %q has %d elements, want %d", n.Label(), b, bt.Len(), w.Shape[0])
		}
		u.BiasInput = 2
	}
	if x, y := g.Dims(n.Input(0)), g.Dims(n.Outputs[0]); x != nil && y != nil {
		u.ShapeKnown = true
		u.InElems, u.OutElems = int64(Numel(x[1:])), int64(Numel(y[1:]))
		u.MACs = u.OutElems * int64(Numel(w.Shape[1:]))
	}
	return u, nil
}

// weightOperand returns the input index and tensor of a Gemm's or MatMul's
// constant operand, the right one when both are constants.
func weightOperand(n *Node, g UnitGraph) (int, *Tensor) {
	if w := g.FloatConst(n.Input(1)); w != nil {
		return 1, w
	}
	return 0, g.FloatConst(n.Input(0))
}

// perSample divides the counts of a unit over the whole pass by the
// batch size of the shapes.
func (u *UnitSpec) perSample(batch int) {
	if batch > 1 {
		b := int64(batch)
		u.MACs /= b
		u.InElems /= b
		u.OutElems /= b
	}
}

func unitGemm(n *Node, g UnitGraph) (*UnitSpec, error) {
	wi, w := weightOperand(n, g)
	if w == nil {
		return nil, nil
	}
	if len(w.Shape) != 2 {
		return nil, unitErr("%s: weight %q has shape %v, want a matrix", n.Label(), w.Name, w.Shape)
	}
	tb, err := n.AttrInt("transB", 0)
	if err != nil {
		return nil, err
	}
	ta, err := n.AttrInt("transA", 0)
	if err != nil {
		return nil, err
	}
	u := &UnitSpec{WeightInput: wi, DataInput: 1 - wi, BiasInput: -1, TransB: tb != 0, Group: 1}
	switch {
	case wi == 1 && tb != 0:
		u.OutChannels = w.Shape[0]
	case wi == 1:
		u.OutChannels, u.ChannelAxis = w.Shape[1], 1
	case ta != 0: // constant A: output rows are A's columns
		u.OutChannels, u.ChannelAxis = w.Shape[1], 1
	default:
		u.OutChannels = w.Shape[0]
	}
	if c := n.Input(2); c != "" && g.FloatConst(c) != nil {
		u.BiasInput = 2
	}
	x, y := g.Dims(n.Input(1-wi)), g.Dims(n.Outputs[0])
	if x != nil && y != nil {
		if _, k, _, err := GemmDims(n, g.Dims(n.Input(0)), g.Dims(n.Input(1))); err == nil {
			u.ShapeKnown = true
			u.MACs = int64(Numel(y)) * int64(k)
			u.InElems, u.OutElems = int64(Numel(x)), int64(Numel(y))
			u.perSample(g.Batch())
		}
	}
	return u, nil
}

func unitMatMul(n *Node, g UnitGraph) (*UnitSpec, error) {
	wi, w := weightOperand(n, g)
	if w == nil {
		return nil, nil
	}
	if len(w.Shape) < 1 {
		return nil, unitErr("%s: weight %q is a scalar", n.Label(), w.Name)
	}
	u := &UnitSpec{WeightInput: wi, DataInput: 1 - wi, BiasInput: -1, Group: 1, BiasFromAdd: wi == 1}
	if wi == 1 {
		u.OutChannels, u.ChannelAxis = w.Shape[len(w.Shape)-1], len(w.Shape)-1
	} else {
		u.OutChannels = w.Shape[0]
		if len(w.Shape) >= 2 {
			u.OutChannels, u.ChannelAxis = w.Shape[len(w.Shape)-2], len(w.Shape)-2
		}
	}
	x, y := g.Dims(n.Input(1-wi)), g.Dims(n.Outputs[0])
	if x != nil && y != nil {
		if _, k, err := MatMulShape(g.Dims(n.Input(0)), g.Dims(n.Input(1))); err == nil {
			u.ShapeKnown = true
			u.MACs = int64(Numel(y)) * int64(k)
			u.InElems, u.OutElems = int64(Numel(x)), int64(Numel(y))
			u.perSample(g.Batch())
		}
	}
	return u, nil
}
