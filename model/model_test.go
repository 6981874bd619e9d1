package model_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
)

func seq(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i%7)/10 - 0.3
	}
	return v
}

// lenet builds a LeNet-5 graph as PyTorch exports it with a dynamic batch:
// the flatten is Shape → Gather → Unsqueeze → Concat → Reshape.
func lenet() *mt.Builder {
	b := mt.New("lenet", 13)
	b.Input("x", -1, 1, 28, 28)
	b.Float("c1.w", []int{6, 1, 5, 5}, seq(150)).Float("c1.b", []int{6}, seq(6))
	b.Float("c2.w", []int{16, 6, 5, 5}, seq(2400)).Float("c2.b", []int{16}, seq(16))
	b.Float("f1.w", []int{120, 400}, seq(48000)).Float("f1.b", []int{120}, seq(120))
	b.Float("f2.w", []int{10, 120}, seq(1200)).Float("f2.b", []int{10}, seq(10))
	b.Int64("zero", []int{}, []int64{0}).Int64("minus1", []int{1}, []int64{-1})
	b.Node("Conv", "conv1", []string{"x", "c1.w", "c1.b"}, []string{"a1"}, mt.Ints("pads", 2, 2, 2, 2), mt.Ints("kernel_shape", 5, 5))
	b.Node("Relu", "r1", []string{"a1"}, []string{"a2"})
	b.Node("MaxPool", "p1", []string{"a2"}, []string{"a3"}, mt.Ints("kernel_shape", 2, 2), mt.Ints("strides", 2, 2))
	b.Node("Conv", "conv2", []string{"a3", "c2.w", "c2.b"}, []string{"a4"})
	b.Node("Relu", "r2", []string{"a4"}, []string{"a5"})
	b.Node("MaxPool", "p2", []string{"a5"}, []string{"a6"}, mt.Ints("kernel_shape", 2, 2), mt.Ints("strides", 2, 2))
	b.Node("Shape", "s", []string{"a6"}, []string{"s0"})
	b.Node("Gather", "g", []string{"s0", "zero"}, []string{"s1"}, mt.Int("axis", 0))
	b.Node("Unsqueeze", "u", []string{"s1"}, []string{"s2"}, mt.Ints("axes", 0))
	b.Node("Concat", "c", []string{"s2", "minus1"}, []string{"s3"}, mt.Int("axis", 0))
	b.Node("Reshape", "flat", []string{"a6", "s3"}, []string{"a7"})
	b.Node("Gemm", "fc1", []string{"a7", "f1.w", "f1.b"}, []string{"a8"}, mt.Int("transB", 1))
	b.Node("Relu", "r3", []string{"a8"}, []string{"a9"})
	b.Node("Gemm", "fc2", []string{"a9", "f2.w", "f2.b"}, []string{"logits"}, mt.Int("transB", 1))
	b.Output("logits")
	return b
}

func TestLeNetUnits(t *testing.T) {
	m, err := model.Decode(lenet().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, op, w, bias string
		shape             string
		params, macs      int64
		in, out           int64
	}{
		{"conv1", "Conv", "c1.w", "c1.b", "[6 1 5 5]", 156, 6 * 28 * 28 * 25, 784, 6 * 28 * 28},
		{"conv2", "Conv", "c2.w", "c2.b", "[16 6 5 5]", 2416, 16 * 10 * 10 * 150, 6 * 14 * 14, 1600},
		{"fc1", "Gemm", "f1.w", "f1.b", "[120 400]", 48120, 48000, 400, 120},
		{"fc2", "Gemm", "f2.w", "f2.b", "[10 120]", 1210, 1200, 120, 10},
	}
	if len(m.Units) != len(want) {
		t.Fatalf("got %d units, want %d: %+v", len(m.Units), len(want), m.Units)
	}
	for i, w := range want {
		u := m.Units[i]
		got := fmt.Sprintf("%s %s %s %s %v %d %d %d %d %v", u.Name, u.Op, u.Weight, u.Bias, u.WeightShape, u.Params, u.MACs, u.InElems, u.OutElems, u.ShapeKnown)
		exp := fmt.Sprintf("%s %s %s %s %s %d %d %d %d true", w.name, w.op, w.w, w.bias, w.shape, w.params, w.macs, w.in, w.out)
		if got != exp {
			t.Errorf("unit %d:\n got %s\nwant %s", i, got, exp)
		}
	}
	// Shape inference at another batch size folds the shape arithmetic.
	s, err := m.InferShapes(map[string][]int{"x": {7, 1, 28, 28}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Ints["s3"], s.Dims["a7"], s.Dims["logits"]); got != "[7 -1] [7 400] [7 10]" {
		t.Errorf("batch 7: shape values and dims %s", got)
	}
	if _, err := m.InferShapes(map[string][]int{"x": {7, 3, 28, 28}}); err == nil ||
		!strings.Contains(err.Error(), "declares 1") {
		t.Errorf("wrong channel count: err = %v", err)
	}
}

func TestDepthwiseAndMatMul(t *testing.T) {
	b := mt.New("dw", 13)
	b.Input("x", -1, 4, 9, 9)
	b.Float("dw.w", []int{4, 1, 3, 3}, seq(36))
	b.Float("pw.w", []int{8, 4, 1, 1}, seq(32))
	b.Float("mm.w", []int{8, 5}, seq(40)).Float("mm.b", []int{5}, seq(5))
	b.Node("Conv", "", []string{"x", "dw.w"}, []string{"y1"}, mt.Int("group", 4), mt.String("auto_pad", "SAME_UPPER"), mt.Ints("strides", 2, 2))
	b.Node("Conv", "pw", []string{"y1", "pw.w"}, []string{"y2"})
	b.Node("GlobalAveragePool", "gap", []string{"y2"}, []string{"y3"})
	b.Node("Flatten", "fl", []string{"y3"}, []string{"y4"})
	b.Node("MatMul", "mm", []string{"y4", "mm.w"}, []string{"y5"})
	b.Node("Add", "mmb", []string{"y5", "mm.b"}, []string{"out"})
	b.Output("out")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Units) != 3 {
		t.Fatalf("units: %+v", m.Units)
	}
	dw, pw, mm := m.Units[0], m.Units[1], m.Units[2]
	// SAME_UPPER with stride 2 on 9: out = ceil(9/2) = 5.
	if dw.Name != "dw.w" || dw.Group != 4 || dw.MACs != 4*5*5*9 || dw.OutElems != 100 || dw.Params != 36 {
		t.Errorf("depthwise unit %+v", dw)
	}
	if pw.MACs != 8*25*4 || pw.Bias != "" {
		t.Errorf("pointwise unit %+v", pw)
	}
	if mm.Bias != "mm.b" || mm.MACs != 40 || mm.Params != 45 || mm.OutChannels != 5 || mm.BiasNode != 5 {
		t.Errorf("matmul unit %+v", mm)
	}
}

func TestUnknownOpKeepsUnits(t *testing.T) {
	b := mt.New("odd", 13)
	b.Input("x", -1, 3)
	b.Float("w1", []int{3, 4}, seq(12)).Float("w2", []int{4, 2}, seq(8))
	b.Node("MatMul", "m1", []string{"x", "w1"}, []string{"h"})
	b.Node("FancyActivation", "odd", []string{"h"}, []string{"h2"})
	b.Node("MatMul", "m2", []string{"h2", "w2"}, []string{"y"})
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Units) != 2 || !m.Units[0].ShapeKnown || m.Units[1].ShapeKnown || m.Units[1].Params != 8 {
		t.Errorf("units %+v", m.Units)
	}
	// value_info supplies the unknown op's shape.
	b.Proto().Graph.ValueInfo = append(b.Proto().Graph.ValueInfo, &onnx.ValueInfoProto{Name: "h2", Type: &onnx.TypeProto{
		Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: 1, Shape: &onnx.TensorShapeProto{
			Dim: []*onnx.TensorShapeProto_Dimension{
				{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "N"}},
				{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: 4}}}}}}}})
	m, err = model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Units[1].ShapeKnown || m.Units[1].MACs != 8 {
		t.Errorf("with value_info: %+v", m.Units[1])
	}
	if got := fmt.Sprint(m.Ops()); got != "[MatMul FancyActivation]" {
		t.Errorf("Ops() = %s", got)
	}
}

// TestWindowBruteForce compares the output size formula with a count of the
// window positions that fit, over random geometries.
func TestWindowBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for it := 0; it < 2000; it++ {
		in, k, s, d := 1+r.IntN(12), 1+r.IntN(4), 1+r.IntN(3), 1+r.IntN(2)
		// PyTorch (whose ceil-mode rule the formula follows) allows pads up
		// to half the kernel.
		pb, pe := r.IntN(k/2+1), r.IntN(k/2+1)
		ceil := r.IntN(2)
		n := &model.Node{Op: "MaxPool", Attrs: map[string]*model.Attr{
			"strides":   {Name: "strides", Type: model.AttrInts, Ints: []int64{int64(s)}},
			"dilations": {Name: "dilations", Type: model.AttrInts, Ints: []int64{int64(d)}},
			"pads":      {Name: "pads", Type: model.AttrInts, Ints: []int64{int64(pb), int64(pe)}},
			"ceil_mode": {Name: "ceil_mode", Type: model.AttrInt, Int: int64(ceil)},
		}}
		span := (k-1)*d + 1
		w, err := n.Window([]int{in}, []int{k})
		if in+pb+pe < span {
			if err == nil {
				t.Fatalf("in %d k %d: no error for an input smaller than the kernel", in, k)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		// Brute force: windows start at -pb + i·s; floor mode needs the window
		// inside the padded input, ceil mode only its start inside input or
		// leading padding (PyTorch rule).
		want := 0
		for i := 0; ; i++ {
			st := -pb + i*s
			inside := st+span <= in+pe
			// ceil mode adds a window overhanging the trailing padding by
			// up to s-1 elements if it starts inside the input.
			extra := ceil == 1 && st+span <= in+pe+s-1 && st < in
			if !inside && !extra {
				break
			}
			want++
		}
		if w.Out[0] != want {
			t.Fatalf("in %d k %d s %d d %d pads %d,%d ceil %d: out %d, brute force %d", in, k, s, d, pb, pe, ceil, w.Out[0], want)
		}
	}
}

func TestWindowSame(t *testing.T) {
	for _, mode := range []string{"SAME_UPPER", "SAME_LOWER"} {
		for in := 1; in < 12; in++ {
			for k := 1; k < 5; k++ {
				for s := 1; s < 4; s++ {
					n := &model.Node{Op: "Conv", Attrs: map[string]*model.Attr{
						"auto_pad": {Name: "auto_pad", Type: model.AttrString, String: mode},
						"strides":  {Name: "strides", Type: model.AttrInts, Ints: []int64{int64(s)}},
					}}
					w, err := n.Window([]int{in}, []int{k})
					if err != nil {
						t.Fatal(err)
					}
					if w.Out[0] != (in+s-1)/s {
						t.Errorf("%s in %d k %d s %d: out %d", mode, in, k, s, w.Out[0])
					}
					pb, pe := w.PadBegin[0], w.PadEnd[0]
					if pb+pe < 0 || (mode == "SAME_UPPER" && pe < pb) || (mode == "SAME_LOWER" && pb < pe) || pe-pb > 1 || pb-pe > 1 {
						t.Errorf("%s in %d k %d s %d: pads %d,%d", mode, in, k, s, pb, pe)
					}
				}
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := lenet().Bytes()
	cases := []struct {
		name string
		data func() []byte
		want string
	}{
		{"empty", func() []byte { return nil }, "empty file"},
		{"garbage", func() []byte { return []byte("this is not a protobuf at all\xff\xff\xff") }, "not a ModelProto"},
		{"truncated", func() []byte { return good[:len(good)/2] }, "invalid ONNX model"},
		{"missing initializer", func() []byte {
			b := lenet()
			g := b.Proto().Graph
			g.Initializer = g.Initializer[1:]
			return b.Bytes()
		}, `input "c1.w" is not a graph input, an initializer`},
		{"string tensor", func() []byte {
			b := lenet()
			b.Proto().Graph.Initializer[0].DataType = int32(onnx.TensorProto_STRING)
			return b.Bytes()
		}, `tensor "c1.w": data type STRING is not supported`},
		{"raw size", func() []byte {
			b := lenet()
			b.Proto().Graph.Initializer[0].Dims = []int64{6, 1, 5, 4}
			return b.Bytes()
		}, `raw_data has 600 bytes, want 480`},
		{"group", func() []byte {
			b := lenet()
			b.Proto().Graph.Node[0].Attribute = append(b.Proto().Graph.Node[0].Attribute, mt.Int("group", 0))
			return b.Bytes()
		}, `Conv node "conv1" (#0): attribute "group": is 0`},
		{"auto_pad", func() []byte {
			b := lenet()
			b.Proto().Graph.Node[3].Attribute = append(b.Proto().Graph.Node[3].Attribute, mt.String("auto_pad", "SOMETIMES"))
			return b.Bytes()
		}, `attribute "auto_pad": is "SOMETIMES"`},
		{"strides", func() []byte {
			b := lenet()
			b.Proto().Graph.Node[2].Attribute[1] = mt.Ints("strides", 2, 0)
			return b.Bytes()
		}, `attribute "strides": value 1 is 0`},
		{"kernel too big", func() []byte {
			b := lenet()
			b.Proto().Graph.Node[2].Attribute[0] = mt.Ints("kernel_shape", 40, 2)
			return b.Bytes()
		}, "smaller than the kernel"},
		{"no outputs", func() []byte {
			b := lenet()
			b.Proto().Graph.Output = nil
			return b.Bytes()
		}, "no outputs"},
		{"channels", func() []byte {
			b := lenet()
			b.Proto().Graph.Initializer[2].Dims = []int64{16, 3, 5, 10}
			return b.Bytes()
		}, "input has 6 channels but weight [16 3 5 10]"},
		{"negative dim", func() []byte {
			b := lenet()
			b.Proto().Graph.Initializer[0].Dims = []int64{-6, 1, 5, 5}
			return b.Bytes()
		}, "dimension 0 is -6"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := model.Decode(c.data())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := model.Decode([]byte{0x0a}); !errors.Is(err, model.ErrFormat) {
		t.Errorf("truncated varint: %v does not wrap ErrFormat", err)
	}
	if _, err := model.Load(filepath.Join(t.TempDir(), "absent.onnx")); err == nil || !strings.Contains(err.Error(), "absent.onnx") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestTensorEncodings(t *testing.T) {
	cases := []struct {
		tp   *onnx.TensorProto
		want string
	}{
		{&onnx.TensorProto{Name: "f", Dims: []int64{2}, DataType: 1, FloatData: []float32{1.5, -2}}, "[1.5 -2] []"},
		{&onnx.TensorProto{Name: "d", Dims: []int64{2}, DataType: 11, RawData: []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0}}, "[1 -2] []"},
		{&onnx.TensorProto{Name: "h", Dims: []int64{2}, DataType: 10, RawData: []byte{0x00, 0x3c, 0x00, 0xc0}}, "[1 -2] []"},
		{&onnx.TensorProto{Name: "i", Dims: []int64{3}, DataType: 7, Int64Data: []int64{1, -1, 5}}, "[] [1 -1 5]"},
		{&onnx.TensorProto{Name: "j", Dims: []int64{2}, DataType: 6, RawData: []byte{0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0}}, "[] [-1 2]"},
		{&onnx.TensorProto{Name: "s", DataType: 7, Int64Data: []int64{9}}, "[] [9]"},
	}
	for _, c := range cases {
		tt, err := model.TensorFromProto(c.tp)
		if err != nil {
			t.Errorf("%s: %v", c.tp.Name, err)
			continue
		}
		if got := fmt.Sprint(tt.Float, tt.Int); got != c.want {
			t.Errorf("%s: got %s, want %s", c.tp.Name, got, c.want)
		}
	}
	_, err := model.TensorFromProto(&onnx.TensorProto{Name: "x", Dims: []int64{3}, DataType: 1, FloatData: []float32{1}})
	if err == nil || !strings.Contains(err.Error(), `tensor "x": 1 FLOAT values for shape [3], want 3`) {
		t.Errorf("short typed data: %v", err)
	}
	_, err = model.TensorFromProto(&onnx.TensorProto{Name: "x", Dims: []int64{1 << 30, 1 << 30}, DataType: 1})
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("huge shape: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	// Small seeds keep the fuzzer's minimization fast: a tiny conv net with
	// the export's shape arithmetic, and a truncation of it.
	b := mt.New("tiny", 13)
	b.Input("x", -1, 1, 4, 4)
	b.Float("w", []int{2, 1, 2, 2}, seq(8)).Double("b", []int{2}, seq(2))
	b.Float("fw", []int{3, 2}, seq(6)).Int64("shape", []int{2}, []int64{0, -1})
	b.Node("Conv", "c", []string{"x", "w", "b"}, []string{"y"}, mt.Ints("strides", 2, 2), mt.String("auto_pad", "SAME_UPPER"))
	b.Node("GlobalAveragePool", "g", []string{"y"}, []string{"y2"})
	b.Node("Reshape", "r", []string{"y2", "shape"}, []string{"y3"})
	b.Node("Gemm", "f", []string{"y3", "fw"}, []string{"z"}, mt.Int("transB", 1))
	b.Output("z")
	good := b.Bytes()
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add([]byte{})
	f.Add([]byte{0x3a, 0x05, 0x12, 0x03, 'a', 'b', 'c'})
	// Real exports with the shape arithmetic import normalisation folds
	// (Shape, Gather, Unsqueeze, Concat, ConstantOfShape of an LSTM state).
	for _, name := range []string{"tiny_lstm", "tiny_gru"} {
		zb, err := os.ReadFile(filepath.Join("..", "testdata", "zoo", name, "op13.onnx"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(zb)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := model.Decode(b)
		if err != nil {
			if m != nil {
				t.Fatal("non-nil model with an error")
			}
			return
		}
		for _, u := range m.Units {
			if u.Params <= 0 && len(u.WeightShape) > 0 && m.Initializers[u.Weight].Len() > 0 {
				t.Fatalf("unit %+v has no parameters", u)
			}
		}
	})
}

func ExampleDecode() {
	m, err := model.Decode(lenet().Bytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range m.Units {
		fmt.Printf("%-5s %-4s weight %v params %d MACs %d\n", u.Name, u.Op, u.WeightShape, u.Params, u.MACs)
	}
	// Output:
	// conv1 Conv weight [6 1 5 5] params 156 MACs 117600
	// conv2 Conv weight [16 6 5 5] params 2416 MACs 240000
	// fc1   Gemm weight [120 400] params 48120 MACs 48000
	// fc2   Gemm weight [10 120] params 1210 MACs 1200
}
