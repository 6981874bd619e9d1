package ort

// The pure-Go helpers of the binding run in every build, so they are tested
// here without ONNX Runtime (and are not dead code in a default build).

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/nn"
)

// scoreOnce scores one batch of n samples with l.
func scoreOnce(t *testing.T, l nn.Loss, ds data.Dataset, z []float32, shape []int) eval.Result {
	t.Helper()
	labels := make([]int, ds.Len())
	if err := ds.Read(0, make([]float64, ds.Len()*data.SampleSize(ds)), labels); err != nil {
		t.Fatal(err)
	}
	sc := newScorer(l, ds)
	if err := sc.add(0, ds.Len(), z, shape, labels, nil); err != nil {
		t.Fatal(err)
	}
	return sc.result()
}

func TestScorerClassLabels(t *testing.T) {
	ds := &data.Memory{Inputs: make([]float64, 4), Labels: []int{1, 2, 1, 1}, Shape: []int{1}}
	z := []float32{1, 3, 2, 1, 3, 2, 5, 5, 0, 1000, 0, 0}
	r := scoreOnce(t, nil, ds, z, []int{3})
	ce := math.Log(math.Exp(1)+math.Exp(3)+math.Exp(2)) - 3
	// Sample 0: label 1 is the arg max; 1: label 2 is not; 2: a tie goes
	// to the first maximum (as the engine counts it), not label 1; 3: large
	// logits do not overflow (−log softmax = 1000).
	want := (ce + (ce + 1) + (math.Log(2*math.Exp(5)+1) - 5) + 1000) / 4
	if math.Abs(r.Loss-want) > 1e-9 || r.Correct != 1 || r.N != 4 || r.Accuracy != 0.25 {
		t.Errorf("class labels: %+v; want loss %v, 1 of 4 correct", r, want)
	}
}

// TestScorerPositions scores a hand-made N×C×H×W output (segmentation
// layout) and the same logits as N×H×W×C, against cross-entropy computed
// pixel by pixel: the mean over the labelled pixels, as PyTorch's
// CrossEntropyLoss(ignore_index=-100). The scorer once read each sample's
// C·H·W values as one row of classes (ONNX Runtime's tiny_unet loss 7.0
// against the simulation's 1.12, accuracy 0).
func TestScorerPositions(t *testing.T) {
	const n, c, h, w = 2, 3, 2, 2
	// Pixel (s, y, x) has the arg max class (s+y+2x)%3 with margin 1+x.
	labels := []int{0, 2, 1, -100, 1, 0, 0, 1}
	nchw := make([]float32, n*c*h*w)
	nhwc := make([]float32, n*c*h*w)
	logit := func(s, k, y, x int) float32 {
		v := float32(k)*0.25 - float32(s)*0.5 + float32(y)
		if k == (s+y+2*x)%3 {
			v += 1 + float32(x)
		}
		return v
	}
	want, correct, scored := 0.0, 0, 0
	for s := 0; s < n; s++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				m := 0.0
				for k := 0; k < c; k++ {
					v := logit(s, k, y, x)
					nchw[((s*c+k)*h+y)*w+x] = v
					nhwc[((s*h+y)*w+x)*c+k] = v
					m += math.Exp(float64(v))
				}
				lab := labels[(s*h+y)*w+x]
				if lab == -100 {
					continue
				}
				want += math.Log(m) - float64(logit(s, lab, y, x))
				scored++
				if lab == (s+y+2*x)%3 {
					correct++
				}
			}
		}
	}
	want /= float64(scored)
	if correct == 0 || correct == scored {
		t.Fatalf("the hand-made labels should be partly right: %d of %d", correct, scored)
	}
	ds := &data.Memory{Inputs: make([]float64, n), Labels: make([]int, n), Shape: []int{1}}
	for _, tc := range []struct {
		name  string
		z     []float32
		shape []int
		axis  int
	}{
		{"N×C×H×W", nchw, []int{c, h, w}, 0},
		{"N×H×W×C", nhwc, []int{h, w, c}, -1},
	} {
		r := scoreOnce(t, nn.PositionLabels{Labels: labels, ClassAxis: tc.axis, Ignore: -100}, ds, tc.z, tc.shape)
		if math.Abs(r.Loss-want) > 1e-6 || r.Correct != correct || r.N != n || math.Abs(r.Accuracy-float64(correct)/float64(scored)) > 1e-12 {
			t.Errorf("%s: %+v; want loss %.6f, %d of %d labelled pixels correct", tc.name, r, want, correct, scored)
		}
	}
	// An output shape that changes between batches is an error, not a
	// misread.
	sc := newScorer(nn.PositionLabels{Labels: labels, Ignore: -100}, ds)
	if err := sc.add(0, 1, nchw[:c*h*w], []int{c, h, w}, []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := sc.add(1, 1, nchw[:c*h*w], []int{c, h * w}, []int{0}, nil); err == nil {
		t.Error("a changed output shape was accepted")
	}
}

func TestSummarize(t *testing.T) {
	ts := []time.Duration{5, 1, 4, 2, 3}
	got := summarize(ts, 8)
	want := Latency{Median: 3, Min: 1, Max: 5, Runs: 5, Batch: 8}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
}

func TestModelIOAndKernels(t *testing.T) {
	b := IdentityModel([]int{2, 3, 4})
	ins, out, err := modelIO(b)
	if err != nil || len(ins) != 1 || ins[0].Name != "X" || out != "Y" || !slices.Equal(ins[0].Sample, []int64{3, 4}) || ins[0].Type != onnx.TensorProto_FLOAT {
		t.Fatalf("modelIO = %+v %q %v; want X FLOAT [3 4], Y", ins, out, err)
	}
	k, err := countKernels(b)
	if err != nil || len(k) != 1 || k["Identity"] != 1 {
		t.Fatalf("countKernels = %v, %v; want map[Identity:1]", k, err)
	}
	if len(k.Quantized()) != 0 {
		t.Errorf("Identity counted as an integer kernel")
	}

	// A domain is kept in the kernel's name; an initializer is not the
	// data input.
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		t.Fatal(err)
	}
	mp.Graph.Node = append(mp.Graph.Node, &onnx.NodeProto{OpType: "QGemm", Domain: "com.microsoft"})
	mp.Graph.Initializer = []*onnx.TensorProto{{Name: "W"}}
	mp.Graph.Input = append([]*onnx.ValueInfoProto{{Name: "W"}}, mp.Graph.Input...)
	b2, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	if ins, _, err := modelIO(b2); err != nil || len(ins) != 1 || ins[0].Name != "X" {
		t.Errorf("modelIO with an initializer input = %+v, %v; want X", ins, err)
	}
	k, err = countKernels(b2)
	if err != nil || k["com.microsoft:QGemm"] != 1 || k.Quantized()["com.microsoft:QGemm"] != 1 {
		t.Errorf("countKernels = %v, %v; want com.microsoft:QGemm counted and integer", k, err)
	}

	for _, bad := range [][]byte{{0xff, 0xff}, nil} {
		if _, _, err := modelIO(bad); err == nil {
			t.Errorf("modelIO(%x) gave no error", bad)
		}
		if _, err := countKernels(bad); err == nil {
			t.Errorf("countKernels(%x) gave no error", bad)
		}
	}
}

// TestModelIOInputs reads every data input of a model of two (token ids
// INT64 with a symbolic sequence length, a FLOAT mask), in file order, and
// checks data shapes against them: ONNX Runtime once got only the first
// input, so tiny_bert could not run.
func TestModelIOInputs(t *testing.T) {
	vi := func(name string, typ onnx.TensorProto_DataType, dims ...int64) *onnx.ValueInfoProto {
		sh := &onnx.TensorShapeProto{}
		for _, d := range dims {
			dim := &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "n"}}
			if d > 0 {
				dim.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d}
			}
			sh.Dim = append(sh.Dim, dim)
		}
		return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: int32(typ), Shape: sh}}}}
	}
	mp := &onnx.ModelProto{Graph: &onnx.GraphProto{
		Input:  []*onnx.ValueInfoProto{vi("ids", onnx.TensorProto_INT64, -1, -1), vi("mask", onnx.TensorProto_FLOAT, -1, 16)},
		Output: []*onnx.ValueInfoProto{vi("logits", onnx.TensorProto_FLOAT, -1, 3)}}}
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	ins, out, err := modelIO(b)
	if err != nil || len(ins) != 2 || out != "logits" {
		t.Fatalf("modelIO = %+v %q %v", ins, out, err)
	}
	if ins[0].Name != "ids" || ins[0].Type != onnx.TensorProto_INT64 || !slices.Equal(ins[0].Sample, []int64{0}) ||
		ins[1].Name != "mask" || ins[1].Type != onnx.TensorProto_FLOAT || !slices.Equal(ins[1].Sample, []int64{16}) {
		t.Errorf("inputs %+v; want ids INT64 [0], mask FLOAT [16]", ins)
	}
	sh, err := sampleShapes(ins, [][]int{{16}, {16}})
	if err != nil || !slices.Equal(sh[0], []int64{16}) || !slices.Equal(sh[1], []int64{16}) {
		t.Errorf("sampleShapes = %v, %v; want [[16] [16]]", sh, err)
	}
	for _, c := range []struct {
		data [][]int
		want string
	}{
		{nil, `input "ids" has the symbolic per-sample shape`},
		{[][]int{{16}}, "1 inputs in the data, the model has 2 (ids, mask)"},
		{[][]int{{16}, {8}}, `model's input "mask" takes [16]`},
		{[][]int{{16, 2}, {16}}, `model's input "ids" takes [0]`},
	} {
		if _, err := sampleShapes(ins, c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sampleShapes(%v) = %v, want an error containing %q", c.data, err, c.want)
		}
	}
}

// TestNewFeed checks a feed's shape (batch first) and its values, integer
// or float32, against the float64 values it was made from.
func TestNewFeed(t *testing.T) {
	x := []float64{101, 2023, 0, 1, 7, 102}
	f := NewFeed("input_ids", true, x, 2, []int{3})
	if f.Name != "input_ids" || !slices.Equal(f.Shape, []int64{2, 3}) || f.Float != nil ||
		!slices.Equal(f.Int, []int64{101, 2023, 0, 1, 7, 102}) {
		t.Errorf("integer feed %+v", f)
	}
	g := NewFeed("pixels", false, []float64{0.5, -1.25}, 1, []int{1, 2})
	if !slices.Equal(g.Shape, []int64{1, 1, 2}) || g.Int != nil || !slices.Equal(g.Float, []float32{0.5, -1.25}) {
		t.Errorf("float feed %+v", g)
	}
}
