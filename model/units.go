package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/bitplan/bitplan/op"
)

// Unit is a quantizable layer: a Conv, ConvTranspose, Gemm or MatMul node
// whose weight is a floating-point initializer, one weight matrix (W or
// R, named node/W and node/R) of an LSTM, GRU or RNN node, or an embedding
// table read by Gather (a weight-only unit: DataInput −1, its input is
// token ids; 0 MACs).
type Unit struct {
	// Name is the node name, else the weight initializer's name.
	Name string
	// Op is the node's operator ("Conv", "Gemm", "MatMul", "LSTM", …).
	Op string
	// Node is the index of the node in Model.Nodes.
	Node int
	// Nodes lists every node that reads the weight, Node first. It has more
	// than one entry when the weight is shared (tied weights, a layer
	// applied twice): the nodes are one unit with one set of parameters
	// and one bit width, and MACs, InElems and OutElems are summed over
	// them.
	Nodes []int
	// Weight and Bias are initializer names; Bias is "" when the layer has
	// none. For MatMul the bias is the constant 1-D operand of an Add that is
	// the MatMul's only consumer (the PyTorch export of nn.Linear on
	// non-matrix inputs).
	Weight, Bias string
	// BiasNode is the index of the Add node holding a MatMul's bias, or -1.
	BiasNode int
	// WeightShape is the weight initializer's shape, e.g. M×C/group×kh×kw.
	WeightShape []int
	// OutChannels is the number of output channels (Conv M, Gemm/MatMul N);
	// the weight is split into this many per-channel slices.
	OutChannels int
	// ChannelAxis is the weight's axis of output channels, the axis of a
	// per-channel quantizer's scales (op.UnitSpec.ChannelAxis: 1 for a K×N
	// weight, a ConvTranspose and a recurrent W or R, 0 for Conv).
	ChannelAxis int
	// Params is the number of weight plus bias elements.
	Params int64
	// MACs is the number of multiply-accumulates at batch size 1.
	MACs int64
	// InElems and OutElems are the activation elements read and written per
	// sample (the data input and the output of the layer).
	InElems, OutElems int64
	// ShapeKnown is false when shape inference could not determine the
	// layer's input shape (MACs, InElems and OutElems are then 0).
	ShapeKnown bool
	// Group is the Conv group count (1 otherwise).
	Group int
	// TransB is Gemm's transB attribute (weight stored N×K when set).
	TransB bool
	// WeightInput is the node input index holding the weight (1 for Conv
	// and usually for Gemm and MatMul; 0 when the constant is the left
	// operand).
	WeightInput int
	// DataInput is the node input index of the activation the weight
	// multiplies, or -1 when it is not a node input (the hidden state that
	// an LSTM's R multiplies).
	DataInput int
	// BatchNorm is the index of the BatchNormalization node that is the
	// only consumer of a Conv's output (its constants can be folded into the
	// weights, see FoldedWeights), or -1.
	BatchNorm int
}

// FoldedWeights returns the unit's weight and bias with a following
// BatchNormalization folded in (inference form, per output channel c):
//
//	s_c = γ_c / sqrt(σ²_c + ε),  W'_c = s_c W_c,  b'_c = s_c (b_c − μ_c) + β_c
//
// the weights HAWQ-V3 quantizes. Without a BatchNorm it returns copies of
// the weight and bias (nil when there is none).
func (m *Model) FoldedWeights(u Unit) (w, b []float64, err error) {
	wt := m.Initializers[u.Weight]
	if wt == nil {
		return nil, nil, fmt.Errorf("model: unit %q: weight %q not found", u.Name, u.Weight)
	}
	w = append([]float64(nil), wt.Float...)
	if u.Bias != "" {
		b = append([]float64(nil), m.Initializers[u.Bias].Float...)
	}
	if u.BatchNorm < 0 {
		return w, b, nil
	}
	bn := m.Nodes[u.BatchNorm]
	eps, err := bn.AttrFloat("epsilon", 1e-5)
	if err != nil {
		return nil, nil, err
	}
	var prm [4][]float64
	for i := range prm {
		t := m.floatInit(bn.Input(i + 1))
		if t == nil || t.Len() != u.OutChannels {
			return nil, nil, fmt.Errorf("model: %s: input %d (%q) is not a constant with %d values", bn.Label(), i+1, bn.Input(i+1), u.OutChannels)
		}
		prm[i] = t.Float
	}
	if b == nil {
		b = make([]float64, u.OutChannels)
	}
	per := len(w) / u.OutChannels
	for c := 0; c < u.OutChannels; c++ {
		s := prm[0][c] / math.Sqrt(prm[3][c]+eps)
		for j := c * per; j < (c+1)*per; j++ {
			w[j] *= s
		}
		b[c] = s*(b[c]-prm[2][c]) + prm[1][c]
	}
	return w, b, nil
}

func (m *Model) floatInit(name string) *Tensor {
	if name == "" {
		return nil
	}
	t := m.Initializers[name]
	if t == nil || !t.Type.IsFloat() {
		return nil
	}
	return t
}

// canTie reports whether unit u can join unit t, which reads the same
// weight: the same op, bias and weight position, or an embedding table
// tied to an output projection that reads it in the same row layout
// (Gemm with transB; tied embeddings, Press & Wolf 2017), whose bias then
// belongs to the unit. The tied unit keeps its first node's data input
// (none when the lookup comes first: the projection's input is then not
// quantized).
func canTie(t, u Unit) bool {
	if t.Op == u.Op {
		return t.Bias == u.Bias && t.WeightInput == u.WeightInput
	}
	emb, proj := t, u
	if u.Op == "Gather" {
		emb, proj = u, t
	}
	return emb.Op == "Gather" && emb.Bias == "" && proj.Op == "Gemm" && proj.WeightInput == 1 && proj.TransB
}

// nodeUnits asks d for the units of n: Def.Units, else Def.Unit.
func nodeUnits(d *op.Def, n *Node, g unitGraph) ([]*op.UnitSpec, error) {
	if d.Units != nil {
		return d.Units(n, g)
	}
	spec, err := d.Unit(n, g)
	if spec == nil || err != nil {
		return nil, err
	}
	return []*op.UnitSpec{spec}, nil
}

// unitGraph answers the registry's Unit rules.
type unitGraph struct{ m *Model }

func (g unitGraph) FloatConst(name string) *Tensor { return g.m.floatInit(name) }
func (g unitGraph) Dims(name string) []int         { return g.m.Shapes.Dims[name] }
func (g unitGraph) Batch() int                     { return max(1, g.m.Shapes.Batch) }

// findUnits asks every node's registry record whether it owns a
// quantizable weight.
func (m *Model) findUnits() ([]Unit, error) {
	var units []Unit
	byWeight := make(map[string]int) // weight initializer → unit index
	cons := m.Consumers()
	for _, n := range m.Nodes {
		if !op.IsDefault(n.Domain) {
			continue
		}
		d := op.Lookup(n.Op, m.Opset)
		if d == nil || (d.Unit == nil && d.Units == nil) {
			continue
		}
		specs, err := nodeUnits(d, n, unitGraph{m})
		var ue *op.ErrUnit
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%w: %s", ErrFormat, ue.Msg)
		}
		if err != nil {
			return nil, err
		}
		for _, spec := range specs {
			u := Unit{Op: n.Op, Node: n.Index, Weight: n.Input(spec.WeightInput), WeightInput: spec.WeightInput, DataInput: spec.DataInput,
				OutChannels: spec.OutChannels, ChannelAxis: spec.ChannelAxis, Group: spec.Group, TransB: spec.TransB, BiasNode: -1, BatchNorm: -1,
				MACs: spec.MACs, InElems: spec.InElems, OutElems: spec.OutElems, ShapeKnown: spec.ShapeKnown}
			if spec.BiasInput >= 0 {
				u.Bias = n.Input(spec.BiasInput)
			}
			c := cons[n.Outputs[0]]
			if spec.FoldsBatchNorm && len(c) == 1 && c[0].Op == "BatchNormalization" && c[0].Input(0) == n.Outputs[0] {
				u.BatchNorm = c[0].Index
			}
			if spec.BiasFromAdd && len(c) == 1 && c[0].Op == "Add" && len(c[0].Inputs) == 2 {
				other := c[0].Inputs[0]
				if other == n.Outputs[0] {
					other = c[0].Inputs[1]
				}
				if bt := m.floatInit(other); bt != nil && len(bt.Shape) == 1 && bt.Shape[0] == u.OutChannels {
					u.Bias, u.BiasNode = other, c[0].Index
				}
			}
			if j, tied := byWeight[u.Weight]; tied {
				t := &units[j]
				if !canTie(*t, u) {
					return nil, fmt.Errorf("%s: weight %q is shared with unit %q, but as a %s with bias %q (want the same op and bias to tie them, or an embedding table and a Gemm with transB reading it as the output projection)",
						n.Label(), u.Weight, t.Name, t.Op, t.Bias)
				}
				if t.Bias == "" && u.Bias != "" {
					t.Bias, t.BiasNode = u.Bias, u.BiasNode
					t.Params += int64(m.Initializers[u.Bias].Len())
				}
				t.Nodes = append(t.Nodes, n.Index)
				t.MACs += u.MACs
				t.InElems += u.InElems
				t.OutElems += u.OutElems
				t.ShapeKnown = t.ShapeKnown && u.ShapeKnown
				continue
			}
			byWeight[u.Weight] = len(units)
			u.Nodes = []int{n.Index}
			u.Name = n.Name + spec.Suffix
			if n.Name == "" {
				u.Name = u.Weight
			}
			w := m.Initializers[u.Weight]
			u.WeightShape = append([]int(nil), w.Shape...)
			u.Params = int64(w.Len())
			if u.Bias != "" {
				u.Params += int64(m.Initializers[u.Bias].Len())
			}
			units = append(units, u)
		}
	}
	seen := make(map[string]int)
	for i := range units {
		if j, dup := seen[units[i].Name]; dup {
			return nil, fmt.Errorf("%w: units #%d and #%d are both named %q", ErrFormat, j, i, units[i].Name)
		}
		seen[units[i].Name] = i
	}
	return units, nil
}
