package qdq

import (
	"fmt"
	"math"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/sensitivity"
)

// FloatBits is the width UnitModel takes as "float": a weight or an input
// of 32 bits or more stays float32.
const FloatBits = 32

// UnitModel returns a model of one unit alone, for timing it: the unit's
// node (attributes, weight and bias as in m) reading an input X of the
// unit's inferred input shape with batch dimension batch, its weight
// stored at wBits (symmetric per-channel codes behind a DequantizeLinear,
// float32 at FloatBits or more) and, when aBits < FloatBits, its input and
// output passed through aBits QuantizeLinear → DequantizeLinear pairs (the
// QDQ pattern runtimes fuse into integer kernels). Scales of the input and
// output grids are fixed guesses (input [0, 1], output [−8, 8]): the
// latency of a kernel does not depend on them.
func UnitModel(m *model.Model, unit string, wBits, aBits, batch int) ([]byte, error) {
	u := m.Unit(unit)
	if u == nil {
		return nil, fmt.Errorf("qdq: no unit %q in the model", unit)
	}
	nd := m.Nodes[u.Node]
	slot := dataInput(u)
	if slot < 0 {
		return nil, fmt.Errorf("qdq: unit %q multiplies an activation computed inside its %s node: no single-unit model", unit, nd.Label())
	}
	in := nd.Inputs[slot]
	shape := m.Shapes.Dims[in]
	if len(shape) == 0 {
		return nil, fmt.Errorf("qdq: unit %q: the shape of its input %q is unknown", unit, in)
	}
	if batch < 1 {
		return nil, fmt.Errorf("qdq: batch %d < 1", batch)
	}
	wt := m.Initializers[u.Weight]
	if wt == nil {
		return nil, fmt.Errorf("qdq: unit %q: weight %q is not an initializer", unit, u.Weight)
	}
	g := &onnx.GraphProto{Name: "unit"}
	dims := func(s []int) []int64 {
		out := make([]int64, len(s))
		for i, d := range s {
			out[i] = int64(d)
		}
		return out
	}
	xShape := append([]int{batch}, shape[1:]...)
	g.Input = []*onnx.ValueInfoProto{valueInfo("X", xShape)}
	x := "X"
	if aBits < FloatBits {
		at, err := ActType(aBits)
		if err != nil {
			return nil, fmt.Errorf("qdq: unit %q: %w", unit, err)
		}
		x = qdqPair(g, "X", at, 1/(math.Exp2(float64(aBits))-1), 0)
	}
	wdims := dims(wt.Shape)
	if wBits < FloatBits {
		typ, err := WeightType(wBits)
		if err != nil {
			return nil, fmt.Errorf("qdq: unit %q: %w", unit, err)
		}
		axis := u.ChannelAxis
		q := sensitivity.Quantizer{Bits: wBits}
		dst := make([]float64, wt.Len())
		scales, err := q.Quantize(dst, wt.Float, sensitivity.Layout{Shape: wt.Shape, Axis: axis})
		if err != nil {
			return nil, fmt.Errorf("qdq: unit %q: %w", unit, err)
		}
		inner := 1
		for _, d := range wt.Shape[axis+1:] {
			inner *= d
		}
		codes := make([]int64, len(dst))
		s32 := make([]float32, len(scales))
		for c, s := range scales {
			s32[c] = float32(math.Max(s, 1e-12))
		}
		for i, v := range dst {
			c := (i / inner) % len(scales)
			codes[i] = int64(math.RoundToEven(v / float64(s32[c])))
		}
		g.Initializer = append(g.Initializer, intTensor("W_q", typ, wdims, codes),
			floatTensor("W_scale", []int64{int64(len(scales))}, s32),
			intTensor("W_zero_point", typ, []int64{int64(len(scales))}, make([]int64, len(scales))))
		g.Node = append(g.Node, &onnx.NodeProto{OpType: "DequantizeLinear", Input: []string{"W_q", "W_scale", "W_zero_point"},
			Output: []string{"W"}, Attribute: []*onnx.AttributeProto{attrInt("axis", int64(axis))}})
	} else {
		g.Initializer = append(g.Initializer, floatTensor("W", wdims, f32(wt.Float)))
	}
	node := &onnx.NodeProto{OpType: u.Op, Output: []string{"Y"}}
	node.Input = make([]string, len(nd.Inputs))
	node.Input[slot] = x
	node.Input[u.WeightInput] = "W"
	for i, name := range nd.Inputs {
		if node.Input[i] != "" || name == "" {
			continue
		}
		t := m.Initializers[name]
		if t == nil || !t.Type.IsFloat() {
			return nil, fmt.Errorf("qdq: unit %q: input %q of %s is not a float initializer", unit, name, nd.Label())
		}
		b := fmt.Sprintf("B%d", i)
		g.Initializer = append(g.Initializer, floatTensor(b, dims(t.Shape), f32(t.Float)))
		node.Input[i] = b
	}
	for _, a := range nd.Attrs {
		ap, err := attrProto(a)
		if err != nil {
			return nil, fmt.Errorf("qdq: unit %q: %w", unit, err)
		}
		node.Attribute = append(node.Attribute, ap)
	}
	g.Node = append(g.Node, node)
	y := "Y"
	if aBits < FloatBits {
		at, _ := ActType(aBits)
		_, hi := at.Range()
		y = qdqPair(g, "Y", at, 16/(math.Exp2(float64(aBits))-1), (hi+1)/2)
	}
	g.Output = []*onnx.ValueInfoProto{valueInfo(y, nil)}
	mp := &onnx.ModelProto{IrVersion: IRVersion, ProducerName: "bitplan", Graph: g,
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: "", Version: Opset}}}
	return proto.Marshal(mp)
}

// qdqPair appends QuantizeLinear → DequantizeLinear of tensor t with scale
// s and zero point z to g and returns the dequantized name.
func qdqPair(g *onnx.GraphProto, t string, typ Type, s float64, z int64) string {
	g.Initializer = append(g.Initializer, floatTensor(t+"_scale", nil, []float32{float32(s)}), intTensor(t+"_zero_point", typ, nil, []int64{z}))
	g.Node = append(g.Node,
		&onnx.NodeProto{OpType: "QuantizeLinear", Input: []string{t, t + "_scale", t + "_zero_point"}, Output: []string{t + "_q"}},
		&onnx.NodeProto{OpType: "DequantizeLinear", Input: []string{t + "_q", t + "_scale", t + "_zero_point"}, Output: []string{t + "_dq"}})
	return t + "_dq"
}

func valueInfo(name string, shape []int) *onnx.ValueInfoProto {
	tt := &onnx.TypeProto_Tensor{ElemType: int32(Float)}
	if shape != nil {
		tt.Shape = &onnx.TensorShapeProto{}
		for _, d := range shape {
			tt.Shape.Dim = append(tt.Shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		}
	}
	return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: tt}}}
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// attrProto converts an imported attribute back (the unit operators use
// ints, int lists, floats and strings).
func attrProto(a *model.Attr) (*onnx.AttributeProto, error) {
	switch a.Type {
	case model.AttrInt:
		return &onnx.AttributeProto{Name: a.Name, Type: onnx.AttributeProto_INT, I: a.Int}, nil
	case model.AttrInts:
		return &onnx.AttributeProto{Name: a.Name, Type: onnx.AttributeProto_INTS, Ints: a.Ints}, nil
	case model.AttrFloat:
		return &onnx.AttributeProto{Name: a.Name, Type: onnx.AttributeProto_FLOAT, F: float32(a.Float)}, nil
	case model.AttrString:
		return &onnx.AttributeProto{Name: a.Name, Type: onnx.AttributeProto_STRING, S: []byte(a.String)}, nil
	}
	return nil, fmt.Errorf("attribute %q of type %v cannot be copied", a.Name, a.Type)
}
