package nn_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/advancedclimatesystems/gonnx"
	"github.com/advancedclimatesystems/gonnx/onnx"
	"gorgonia.org/tensor"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// gonnxTol is the agreement required with gonnx, an independent ONNX
// runtime computing in float32: relative to the output's largest magnitude.
const gonnxTol = 1e-4

func f32tensor(shape []int, v []float64) tensor.Tensor {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	if len(shape) == 0 {
		shape = []int{1}
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(f))
}

func vinfo(name string, shape []int) *onnx.ValueInfoProto {
	sh := &onnx.TensorShapeProto{}
	for _, d := range shape {
		sh.Dim = append(sh.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: 1, Shape: sh}}}}
}

// rawProto returns a TensorProto with the values in raw_data.
func rawProto(name string, shape []int, v []float64, ints bool) *onnx.TensorProto {
	tp := &onnx.TensorProto{Name: name}
	for _, d := range shape {
		tp.Dims = append(tp.Dims, int64(d))
	}
	if ints {
		tp.DataType = int32(onnx.TensorProto_INT64)
		for _, x := range v {
			tp.RawData = binary.LittleEndian.AppendUint64(tp.RawData, uint64(int64(x)))
		}
		return tp
	}
	tp.DataType = int32(onnx.TensorProto_FLOAT)
	for _, x := range v {
		tp.RawData = binary.LittleEndian.AppendUint32(tp.RawData, math.Float32bits(float32(x)))
	}
	return tp
}

// compareNodes runs every node that gonnx can execute as a one-node graph
// on the engine's own intermediate inputs and compares the outputs. It
// returns the number of nodes compared.
func compareNodes(t *testing.T, m *model.Model, e *nn.Engine, x []float64, n int) int {
	t.Helper()
	vals, err := e.Intermediates(x, n)
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := m.InferShapes(map[string][]int{m.Inputs[0].Name: append([]int{n}, e.SampleShape()...)})
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, nd := range m.Nodes {
		if len(nd.Outputs) != 1 {
			continue
		}
		out, ok := vals[nd.Outputs[0]]
		if !ok {
			continue
		}
		if _, folded := shapes.Ints[nd.Outputs[0]]; folded {
			continue
		}
		g := &onnx.GraphProto{Name: "node"}
		feeds := gonnx.Tensors{}
		skip := false
		for _, in := range nd.Inputs {
			if in == "" {
				continue
			}
			v, ok := vals[in]
			if !ok {
				skip = true
				break
			}
			_, isInit := m.Initializers[in]
			iv, isInt := shapes.Ints[in]
			switch {
			case isInt:
				f := make([]float64, len(iv))
				for i, z := range iv {
					f[i] = float64(z)
				}
				g.Initializer = append(g.Initializer, rawProto(in, v.Shape, f, true))
			case isInit:
				g.Initializer = append(g.Initializer, rawProto(in, v.Shape, v.Data, false))
			default:
				g.Input = append(g.Input, vinfo(in, v.Shape))
				feeds[in] = f32tensor(v.Shape, v.Data)
			}
		}
		if skip {
			continue
		}
		g.Output = []*onnx.ValueInfoProto{vinfo(nd.Outputs[0], out.Shape)}
		np := &onnx.NodeProto{Name: nd.Name, OpType: nd.Op, Input: nd.Inputs, Output: nd.Outputs}
		for _, a := range nd.Attrs {
			np.Attribute = append(np.Attribute, attrProto(a))
		}
		g.Node = []*onnx.NodeProto{np}
		mp := &onnx.ModelProto{IrVersion: 7, Graph: g, OpsetImport: []*onnx.OperatorSetIdProto{{Version: 13}}}
		gm, err := gonnx.NewModel(mp)
		if err != nil {
			t.Logf("gonnx cannot load %s: %v", nd.Label(), err)
			continue
		}
		res, err := gm.Run(feeds)
		if err != nil {
			t.Logf("gonnx cannot run %s: %v", nd.Label(), err)
			continue
		}
		got, ok := res[nd.Outputs[0]].Data().([]float32)
		if !ok || len(got) != len(out.Data) {
			t.Errorf("%s: gonnx returned %T of %d values, engine %d", nd.Label(), res[nd.Outputs[0]].Data(), len(got), len(out.Data))
			continue
		}
		scale, diff := 0.0, 0.0
		for i, v := range out.Data {
			scale = max(scale, math.Abs(v))
			diff = max(diff, math.Abs(v-float64(got[i])))
		}
		if diff > gonnxTol*max(scale, 1e-3) {
			t.Errorf("%s: max difference %.3g from gonnx (output scale %.3g)", nd.Label(), diff, scale)
		}
		compared++
	}
	return compared
}

func attrProto(a *model.Attr) *onnx.AttributeProto {
	p := &onnx.AttributeProto{Name: a.Name}
	switch a.Type {
	case model.AttrInt:
		p.Type, p.I = onnx.AttributeProto_INT, a.Int
	case model.AttrFloat:
		p.Type, p.F = onnx.AttributeProto_FLOAT, float32(a.Float)
	case model.AttrString:
		p.Type, p.S = onnx.AttributeProto_STRING, []byte(a.String)
	case model.AttrInts:
		p.Type, p.Ints = onnx.AttributeProto_INTS, a.Ints
	case model.AttrFloats:
		p.Type = onnx.AttributeProto_FLOATS
		for _, f := range a.Floats {
			p.Floats = append(p.Floats, float32(f))
		}
	case model.AttrTensor:
		p.Type = onnx.AttributeProto_TENSOR
		p.T = rawProto("", a.Tensor.Shape, a.Tensor.Values(), !a.Tensor.Type.IsFloat())
	}
	return p
}

// TestGonnxNodes compares, node by node, the engine's forward values with
// gonnx on the synthetic graphs and the testdata models, and whole models
// where gonnx runs every operator.
func TestGonnxNodes(t *testing.T) {
	for ci, c := range netCases {
		t.Run(c.name, func(t *testing.T) {
			m := buildNet(t, c, uint64(ci))
			e, err := nn.New(m, nil)
			if err != nil {
				t.Fatal(err)
			}
			ds := randomData(t, e, 3, uint64(ci))
			if k := compareNodes(t, m, e, ds.Inputs, 3); k == 0 {
				t.Error("gonnx could run none of the nodes: nothing was compared")
			} else {
				t.Logf("%d nodes agree with gonnx", k)
			}
		})
	}
	for _, name := range []string{"mlp", "lenet", "rescnn"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "models", name+".onnx")
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("committed model %s missing: %v", path, err)
			}
			m, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			e, err := nn.New(m, nil)
			if err != nil {
				t.Fatal(err)
			}
			const n = 4
			r := rand.New(rand.NewPCG(9, 9))
			x := make([]float64, n*784)
			for i := range x {
				x[i] = r.Float64()
			}
			k := compareNodes(t, m, e, x, n)
			if k == 0 {
				t.Error("gonnx could run none of the nodes: nothing was compared")
			}
			t.Logf("%d of %d nodes agree with gonnx", k, len(m.Nodes))
			// Whole model.
			gm, err := gonnx.NewModelFromFile(path)
			if err != nil {
				t.Logf("gonnx cannot load the whole model: %v", err)
				return
			}
			res, err := gm.Run(gonnx.Tensors{m.Inputs[0].Name: f32tensor([]int{n, 1, 28, 28}, x)})
			if err != nil {
				t.Logf("gonnx cannot run the whole model (%v); compared node by node only", err)
				return
			}
			logits, err := e.Logits(x, n)
			if err != nil {
				t.Fatal(err)
			}
			got := res[m.Outputs[0].Name].Data().([]float32)
			scale, diff := 0.0, 0.0
			for i, v := range logits {
				scale = max(scale, math.Abs(v))
				diff = max(diff, math.Abs(v-float64(got[i])))
			}
			if diff > gonnxTol*scale {
				t.Errorf("logits differ from gonnx by %.3g (scale %.3g)", diff, scale)
			}
			t.Logf("whole-model logits agree with gonnx to %.2g (scale %.3g)", diff, scale)
		})
	}
}
