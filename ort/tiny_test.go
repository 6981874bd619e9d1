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
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/qdq"
)

// Tolerances of the tiny models in ONNX Runtime (tinyORT, checkORT). ONNX
// Runtime computes in float32: the float logits (of size up to 13) agree
// with PyTorch's float64 module to rounding, ≈ 1e-7 relative to their
// scale (tinyFloatTol leaves a margin of 100). The QDQ model and the
// simulation of the same plan part where a value lies within float32
// rounding of a rounding boundary of an 8-bit grid and flips to the
// neighbouring code, and ONNX Runtime's float32 arithmetic against the
// engine's float64: measured 2.7e-4 at most on the variadic model's
// logits below 1 (200 inputs, both opsets), 5e-7 on the reduce model's of
// scale 8.6 (no value of those inputs lies that close to a boundary);
// tinyQDQTol, relative to the scale, leaves a margin of 18 for flips.
const (
	tinyFloatTol = 1e-5
	tinyQDQTol   = 5e-3
)

// tinyCase is a tiny model of testdata/models for tinyORT.
type tinyCase struct {
	// opsets of the exports <base>_op<opset>.onnx; 13 and 17 when empty.
	opsets []int
	// seed of the random inputs of the QDQ comparison (with the opset).
	seed uint64
	// inputs are the reference's arrays fed to the model; "input" when
	// empty.
	inputs []string
	// gen, when set, draws the n random samples of the QDQ comparison
	// (as a dataset and as the model's inputs); else each is a float32
	// normal tensor of the model's sample shape.
	gen func(t *testing.T, r *rand.Rand, n int) (data.Dataset, [][]float64)
}

// tinyORT runs testdata/models/<base>_op<opset>.onnx in ONNX Runtime
// against the logits of <base>_ref.npz, and their W8A8 QDQ export against
// bitplan's simulation on 200 random inputs (see checkORT).
func tinyORT(t *testing.T, base string, c tinyCase) {
	initORT(t)
	if len(c.opsets) == 0 {
		c.opsets = []int{13, 17}
	}
	if len(c.inputs) == 0 {
		c.inputs = []string{"input"}
	}
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", base+"_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	get := func(name string) *data.Array {
		t.Helper()
		a, err := z.Array(name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var xs [][]float64
	for _, in := range c.inputs {
		a := get(in)
		if a.Int != nil {
			xs = append(xs, ints(a.Int))
		} else {
			xs = append(xs, a.Float)
		}
	}
	ref := get("logits").Float
	for _, opset := range c.opsets {
		name := fmt.Sprintf("%s_op%d", base, opset)
		b, e := loadModel(t, name)
		r := rand.New(rand.NewPCG(uint64(opset), c.seed))
		gen := c.gen
		if gen == nil {
			gen = func(t *testing.T, r *rand.Rand, n int) (data.Dataset, [][]float64) {
				ds := normalSamples(r, e, n)
				return ds, [][]float64{ds.Inputs}
			}
		}
		calib, _ := gen(t, r, 64)
		_, tx := gen(t, r, 200)
		checkORT(t, name, "PyTorch's", b, e, xs, ref, tinyFloatTol*scaleOf(ref), calib, tx, 200)
	}
}

// normalSamples returns n samples of e's sample shape, float32-rounded
// standard normal values drawn from r, labelled 0.
func normalSamples(r *rand.Rand, e *nn.Engine, n int) *data.Memory {
	ds := &data.Memory{Inputs: make([]float64, n*data.SampleSize(&data.Memory{Shape: e.SampleShape()})), Labels: make([]int, n), Shape: e.SampleShape()}
	for i := range ds.Inputs {
		ds.Inputs[i] = float64(float32(r.NormFloat64()))
	}
	return ds
}

// checkORT runs the model b (name in messages) in ONNX Runtime on the four
// samples xs and requires max |logit − ref| ≤ floatTol (ref is called
// refName in messages); then exports it W8A8 (every unit at 8-bit
// weights and activations, ranges calibrated on calib), requires ONNX
// Runtime to load and run the QDQ model on the n samples tx, and its
// logits to agree with the engine's simulation of the plan within
// tinyQDQTol of their scale.
func checkORT(t *testing.T, name, refName string, b []byte, e *nn.Engine, xs [][]float64, ref []float64, floatTol float64, calib data.Dataset, tx [][]float64, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := ort.Open(b, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, err := s.RunInputs(xs, nil, 4)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := 0.0
	for i, v := range ref {
		d = math.Max(d, math.Abs(float64(got[i])-v))
	}
	if d > floatTol {
		t.Errorf("%s: ONNX Runtime's float logits differ from %s by %.3g", name, refName, d)
	}
	// W8A8 QDQ.
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
	a, err := eval.Apply(ctx, e, layers, calib, nil)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := e.LogitsInputs(tx, n)
	a.Restore()
	if err != nil {
		t.Fatal(err)
	}
	qs, err := ort.Open(out, nil)
	if err != nil {
		t.Fatalf("%s W8A8: ONNX Runtime refuses the QDQ model: %v", name, err)
	}
	zq, err := qs.RunInputs(tx, nil, n)
	qs.Close()
	if err != nil {
		t.Fatal(err)
	}
	maxd, scale, disagree, _ := compareLogits(sim, zq, &data.Memory{Labels: make([]int, n)})
	t.Logf("%s: float logits %.3g from %s; W8A8 QDQ in ONNX Runtime against the simulation: max |Δlogit| %.3g (scale %.3g), %d of %d predictions differ",
		name, d, refName, maxd, scale, disagree, n)
	if maxd > tinyQDQTol*scale {
		t.Errorf("%s W8A8: QDQ logits in ONNX Runtime differ from the simulation's by %.3g (scale %.3g)", name, maxd, scale)
	}
}

// ints returns v as float64s.
func ints(v []int64) []float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return f
}

// scaleOf returns max(1, max |v|).
func scaleOf(v []float64) float64 {
	s := 1.0
	for _, x := range v {
		s = math.Max(s, math.Abs(x))
	}
	return s
}
