//go:build ort

package ort_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/qdq"
)

// Tolerances of TestReduceTinyORT. ONNX Runtime computes in float32: the
// float logits (of size up to 7.5) agree with PyTorch's float64 module to
// rounding, ≈ 1e-6 (reduceFloatTol leaves a margin of 10 over the scale).
// The QDQ model and the simulation of the same plan part where a value
// lies within float32 rounding of a rounding boundary of an 8-bit grid and
// flips to the neighbouring code, and ONNX Runtime's float32 arithmetic
// against the engine's float64: measured 5e-7 at most on logits of scale
// 8.6 (200 inputs, both opsets: no value of these inputs lies that close
// to a boundary); reduceQDQTol, relative to the scale, leaves the
// variadic model's margin for flips.
const (
	reduceFloatTol = 1e-5
	reduceQDQTol   = 5e-3
)

// TestReduceTinyORT: testdata/models/reduce_tiny_op13.onnx and _op17.onnx
// (ReduceMax, ReduceMin, ReduceL2, ReduceLogSumExp, ReduceProd, ReduceL1,
// ReduceSumSquare and ReduceLogSum on computed tensors, axes as
// attributes) run in ONNX Runtime and give PyTorch's logits of
// reduce_tiny_ref.npz; their W8A8 QDQ export (opset 21: the reductions
// take their axes as inputs, left in float between the quantized layers)
// loads and runs there and agrees with bitplan's simulation of the plan
// on 200 random inputs.
func TestReduceTinyORT(t *testing.T) { tinyORT(t, "reduce_tiny") }

// TestPoolTinyORT: testdata/models/pool_tiny_op13.onnx and _op17.onnx
// (GlobalMaxPool of nn.AdaptiveMaxPool2d(1) and F.adaptive_max_pool1d,
// GlobalLpPool p 1, 2, 3 of computed tensors) run in ONNX Runtime and give
// PyTorch's logits of pool_tiny_ref.npz; their W8A8 QDQ export loads and
// runs there and agrees with bitplan's simulation of the plan on 200
// random inputs (tolerances as TestReduceTinyORT's).
func TestPoolTinyORT(t *testing.T) { tinyORT(t, "pool_tiny") }

// tinyORT runs testdata/models/<base>_op13.onnx and _op17.onnx in ONNX
// Runtime against the logits of <base>_ref.npz, and their W8A8 QDQ export
// against bitplan's simulation (see TestReduceTinyORT).
func tinyORT(t *testing.T, base string) {
	initORT(t)
	ctx := context.Background()
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", base+"_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	xa, err := z.Array("input")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := z.Array("logits")
	if err != nil {
		t.Fatal(err)
	}
	for _, opset := range []int{13, 17} {
		name := fmt.Sprintf("%s_op%d", base, opset)
		b, e := loadModel(t, name)
		s, err := ort.Open(b, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		x := make([]float32, len(xa.Float))
		for i, v := range xa.Float {
			x[i] = float32(v)
		}
		got, err := s.Run(x, 4)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		d := 0.0
		for i, v := range ref.Float {
			d = math.Max(d, math.Abs(float64(got[i])-v))
		}
		if d > reduceFloatTol*scaleOf(ref.Float) {
			t.Errorf("%s: ONNX Runtime's float logits differ from PyTorch's by %.3g", name, d)
		}
		// W8A8 QDQ.
		r := rand.New(rand.NewPCG(uint64(opset), 6))
		mk := func(n int) *data.Memory {
			ds := &data.Memory{Inputs: make([]float64, n*64), Labels: make([]int, n), Shape: e.SampleShape()}
			for i := range ds.Inputs {
				ds.Inputs[i] = float64(float32(r.NormFloat64()))
			}
			return ds
		}
		calib, test := mk(64), mk(200)
		var layers []eval.Layer
		for _, u := range e.Units() {
			layers = append(layers, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
		}
		res, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: calib})
		if err != nil {
			t.Fatalf("%s: QDQ export: %v", name, err)
		}
		out, err := res.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		sim := simulated(t, e, layers, calib, test)
		qs, err := ort.Open(out, nil)
		if err != nil {
			t.Fatalf("%s W8A8: ONNX Runtime refuses the QDQ model: %v", name, err)
		}
		tx := make([]float32, len(test.Inputs))
		for i, v := range test.Inputs {
			tx[i] = float32(v)
		}
		zq, err := qs.Run(tx, test.Len())
		qs.Close()
		if err != nil {
			t.Fatal(err)
		}
		maxd, scale, disagree, _ := compareLogits(sim, zq, test)
		t.Logf("%s: float logits %.3g from PyTorch's; W8A8 QDQ in ONNX Runtime against the simulation: max |Δlogit| %.3g (scale %.3g), %d of %d predictions differ",
			name, d, maxd, scale, disagree, test.Len())
		if maxd > reduceQDQTol*scale {
			t.Errorf("%s W8A8: QDQ logits in ONNX Runtime differ from the simulation's by %.3g (scale %.3g)", name, maxd, scale)
		}
	}
}

// scaleOf returns max(1, max |v|).
func scaleOf(v []float64) float64 {
	s := 1.0
	for _, x := range v {
		s = math.Max(s, math.Abs(x))
	}
	return s
}
