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

// TestLayoutTinyORT: testdata/models/layout_tiny_op14.onnx and _op17.onnx
// (DepthToSpace in both modes, SpaceToDepth, Einsum, Trilu, CumSum and
// GatherElements on computed tensors) run in ONNX Runtime and give
// PyTorch's logits of layout_tiny_ref.npz; their W8A8 QDQ export (opset 21,
// the layout nodes left in float between the quantized convolutions) loads
// and runs there and agrees with bitplan's simulation of the plan on 200
// random inputs. The tolerances are TestVariadicTinyORT's; measured
// (ONNX Runtime 1.24.1): float logits 5.4e-8 from PyTorch's, QDQ against
// the simulation 2.8e-8 at most (logits below 1), both opsets.
func TestLayoutTinyORT(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", "layout_tiny_ref.npz"))
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
	for _, opset := range []int{14, 17} {
		name := fmt.Sprintf("layout_tiny_op%d", opset)
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
		if d > variadicFloatTol {
			t.Errorf("%s: ONNX Runtime's float logits differ from PyTorch's by %.3g", name, d)
		}
		// W8A8 QDQ.
		r := rand.New(rand.NewPCG(uint64(opset), 5))
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
		if maxd > variadicQDQTol*scale {
			t.Errorf("%s W8A8: QDQ logits in ONNX Runtime differ from the simulation's by %.3g (scale %.3g)", name, maxd, scale)
		}
	}
}
