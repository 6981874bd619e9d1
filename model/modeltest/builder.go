// Package modeltest builds small ONNX ModelProto values in Go for tests of
// the importer and the engine.
package modeltest

import (
	"encoding/binary"
	"math"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// Builder accumulates a graph. The zero value is not usable; call New.
type Builder struct {
	mp *onnx.ModelProto
}

// New returns a builder for a graph with the given name and default-domain
// opset version.
func New(name string, opset int64) *Builder {
	return &Builder{mp: &onnx.ModelProto{
		IrVersion:    8,
		ProducerName: "modeltest",
		OpsetImport:  []*onnx.OperatorSetIdProto{{Domain: "", Version: opset}},
		Graph:        &onnx.GraphProto{Name: name},
	}}
}

func valueInfo(name string, elem int32, dims []int) *onnx.ValueInfoProto {
	sh := &onnx.TensorShapeProto{}
	for _, d := range dims {
		if d < 0 {
			sh.Dim = append(sh.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "N"}})
		} else {
			sh.Dim = append(sh.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		}
	}
	return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: elem, Shape: sh}}}}
}

// Input adds a FLOAT graph input; a negative dimension is symbolic ("N").
func (b *Builder) Input(name string, dims ...int) *Builder {
	b.mp.Graph.Input = append(b.mp.Graph.Input, valueInfo(name, int32(onnx.TensorProto_FLOAT), dims))
	return b
}

// IntInput adds an INT64 graph input (token ids, indices); a negative
// dimension is symbolic ("N").
func (b *Builder) IntInput(name string, dims ...int) *Builder {
	b.mp.Graph.Input = append(b.mp.Graph.Input, valueInfo(name, int32(onnx.TensorProto_INT64), dims))
	return b
}

// Output adds a FLOAT graph output with unknown shape.
func (b *Builder) Output(name string) *Builder {
	b.mp.Graph.Output = append(b.mp.Graph.Output, &onnx.ValueInfoProto{Name: name})
	return b
}

// Float adds a FLOAT initializer stored as little-endian raw_data.
func (b *Builder) Float(name string, dims []int, data []float64) *Builder {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(v)))
	}
	b.mp.Graph.Initializer = append(b.mp.Graph.Initializer, &onnx.TensorProto{
		Name: name, Dims: dims64(dims), DataType: int32(onnx.TensorProto_FLOAT), RawData: raw})
	return b
}

// Double adds a DOUBLE initializer stored in double_data.
func (b *Builder) Double(name string, dims []int, data []float64) *Builder {
	b.mp.Graph.Initializer = append(b.mp.Graph.Initializer, &onnx.TensorProto{
		Name: name, Dims: dims64(dims), DataType: int32(onnx.TensorProto_DOUBLE), DoubleData: append([]float64(nil), data...)})
	return b
}

// Int64 adds an INT64 initializer stored in int64_data.
func (b *Builder) Int64(name string, dims []int, data []int64) *Builder {
	b.mp.Graph.Initializer = append(b.mp.Graph.Initializer, &onnx.TensorProto{
		Name: name, Dims: dims64(dims), DataType: int32(onnx.TensorProto_INT64), Int64Data: append([]int64(nil), data...)})
	return b
}

// Node appends a node.
func (b *Builder) Node(op, name string, inputs, outputs []string, attrs ...*onnx.AttributeProto) *Builder {
	b.mp.Graph.Node = append(b.mp.Graph.Node, &onnx.NodeProto{
		OpType: op, Name: name, Input: inputs, Output: outputs, Attribute: attrs})
	return b
}

// Proto returns the model built so far (shared, not a copy).
func (b *Builder) Proto() *onnx.ModelProto { return b.mp }

// Bytes returns the serialized model.
func (b *Builder) Bytes() []byte {
	out, err := proto.Marshal(b.mp)
	if err != nil {
		panic(err)
	}
	return out
}

func dims64(d []int) []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = int64(v)
	}
	return out
}

// Int returns an INT attribute.
func Int(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}
}

// Ints returns an INTS attribute.
func Ints(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INTS, Ints: v}
}

// Float32 returns a FLOAT attribute.
func Float32(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_FLOAT, F: v}
}

// String returns a STRING attribute.
func String(name, v string) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_STRING, S: []byte(v)}
}

// TensorInt64 returns a TENSOR attribute holding INT64 values.
func TensorInt64(name string, dims []int, v []int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_TENSOR, T: &onnx.TensorProto{
		Dims: dims64(dims), DataType: int32(onnx.TensorProto_INT64), Int64Data: v}}
}

// TensorFloat returns a TENSOR attribute holding FLOAT values.
func TensorFloat(name string, dims []int, v []float64) *onnx.AttributeProto {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_TENSOR, T: &onnx.TensorProto{
		Dims: dims64(dims), DataType: int32(onnx.TensorProto_FLOAT), FloatData: f}}
}
