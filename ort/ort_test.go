//go:build ort

package ort_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/qdq"
)

// Tolerances of the agreement between ONNX Runtime and the simulation.
const (
	// accTol is the largest accuracy difference (fraction) between the QDQ
	// model in ONNX Runtime and bitplan eval's simulation: the 0.3
	// points. With the simulation rounding biases to the INT32 grid as the
	// export stores them, the two differ only by float32 against float64
	// arithmetic (and ONNX Runtime's integer kernels' requantization), and
	// no prediction of the 1,000 (or 10,000) test images differs.
	accTol = 0.003
	// floatLogitTol bounds |logit_ORT − logit_engine| of the float models
	// (float32 against float64 arithmetic on logits of size ~10–30).
	floatLogitTol = 1e-3
)

func initORT(t *testing.T) {
	t.Helper()
	if err := ort.Init(""); err != nil {
		t.Skipf("ONNX Runtime not available: %v", err)
	}
}

func loadModel(t *testing.T, name string) ([]byte, *nn.Engine) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "models", name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, e
}

func mnist(t *testing.T, split data.Split, n int) *data.Memory {
	t.Helper()
	ds, err := data.MNIST(split, n)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestFloatModelsMatchEngine(t *testing.T) {
	initORT(t)
	test := mnist(t, data.Test, 200)
	for _, name := range []string{"mlp", "lenet", "rescnn"} {
		b, e := loadModel(t, name)
		s, err := ort.Open(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, len(test.Inputs))
		for i, v := range test.Inputs {
			x[i] = float32(v)
		}
		z, err := s.Run(x, test.Len())
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.Logits(test.Inputs, test.Len())
		if err != nil {
			t.Fatal(err)
		}
		var d float64
		for i := range want {
			d = math.Max(d, math.Abs(float64(z[i])-want[i]))
		}
		if d > floatLogitTol {
			t.Errorf("%s: float logits differ by %g between ONNX Runtime and the engine", name, d)
		}
	}
}

// plans are the precisions the agreement test exports: uniform INT8,
// narrowed INT4 weights with narrowed 6-bit inputs, and for LeNet a mix
// of W/A pairs with a weight-only layer.
func plans(name string, e *nn.Engine) map[string][]eval.Layer {
	out := map[string][]eval.Layer{}
	for _, wa := range [][2]int{{8, 8}, {3, 6}} {
		var layers []eval.Layer
		for _, u := range e.Units() {
			layers = append(layers, eval.Layer{Name: u.Name, Bits: wa[0], ABits: wa[1]})
		}
		out[fmt.Sprintf("W%dA%d", wa[0], wa[1])] = layers
	}
	if name == "lenet" {
		out["mixed"] = []eval.Layer{
			{Name: "/conv1/Conv", Bits: 8, ABits: 8},
			{Name: "/conv2/Conv", Bits: 4, ABits: 8},
			{Name: "/fc1/Gemm", Bits: 2, ABits: 4},
			{Name: "/fc2/Gemm", Bits: 6, ABits: 8},
			{Name: "/fc3/Gemm", Bits: 8},
		}
	}
	return out
}

// TestQDQMatchesSimulation exports every testdata model under each plan,
// runs it in ONNX Runtime and compares with bitplan's simulation of the
// same plan on the engine: accuracy within accTol, and the logits.
func TestQDQMatchesSimulation(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	calib := mnist(t, data.Train, 256)
	test := mnist(t, data.Test, testN())
	for _, name := range []string{"mlp", "lenet", "rescnn"} {
		b, e := loadModel(t, name)
		for pname, layers := range plans(name, e) {
			r, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: calib})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range r.Summary.Layers {
				want := map[bool]string{true: "INT4", false: "INT8"}[l.Bits <= 4]
				if l.WeightType != want {
					t.Errorf("%s %s %s: %d-bit weights stored as %s, want %s", name, pname, l.Name, l.Bits, l.WeightType, want)
				}
			}
			out, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			sim := simulated(t, e, layers, calib, test)
			s, err := ort.Open(out, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", name, pname, err)
			}
			got, z, err := s.Evaluate(ctx, test, &ort.EvalOptions{Keep: true})
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			maxd, _, disagree, simCorrect := compareLogits(sim, z, test)
			simAcc := float64(simCorrect) / float64(test.Len())
			t.Logf("%s %s: simulated %.4f, ONNX Runtime %.4f; %d of %d predictions differ, max |Δlogit| %.3g",
				name, pname, simAcc, got.Accuracy, disagree, test.Len(), maxd)
			tol := accTol
			if d := math.Abs(got.Accuracy - simAcc); d > tol {
				t.Errorf("%s %s: ONNX Runtime accuracy %.4f, simulated %.4f: differ by %.4f > %.4f",
					name, pname, got.Accuracy, simAcc, d, tol)
			}
		}
	}
}

func TestOptimizedKernels(t *testing.T) {
	initORT(t)
	b, e := loadModel(t, "mlp")
	var layers []eval.Layer
	for _, u := range e.Units() {
		layers = append(layers, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
	}
	r, err := qdq.Export(context.Background(), &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: mnist(t, data.Train, 64)})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := r.Marshal()
	k, err := ort.OptimizedKernels(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Each Gemm with a quantized input and INT8 weights becomes an integer
	// kernel; the float model has none.
	if q := k.Quantized(); len(q) == 0 {
		t.Errorf("W8A8 MLP: no integer kernels in ONNX Runtime's graph: %v", k)
	}
	kf, err := ort.OptimizedKernels(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q := kf.Quantized(); len(q) != 0 {
		t.Errorf("float MLP: integer kernels %v", q)
	}
}

// testN is the number of MNIST test images of the agreement test (the
// full 10,000 with BITPLAN_ORT_FULL=1; the figures in the comments above
// are from that run).
func testN() int {
	if os.Getenv("BITPLAN_ORT_FULL") != "" {
		return 10000
	}
	return 1000
}

// logits runs the engine on ds in chunks (one call on the whole set would
// size every buffer for all samples at once).
// simulated returns the engine's logits on test with layers
// fake-quantized by eval.Apply (activation ranges calibrated on calib),
// the simulation a QDQ model is compared with; the engine is restored.
func simulated(t *testing.T, e *nn.Engine, layers []eval.Layer, calib, test *data.Memory) []float64 {
	t.Helper()
	a, err := eval.Apply(context.Background(), e, layers, calib, nil)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := logits(e, test)
	a.Restore()
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

// compareLogits compares the simulated logits sim with ONNX Runtime's z
// on test (per sample, len(sim)/test.Len() classes): the largest
// |Δlogit|, the largest |sim| (at least 1), the number of samples whose
// predicted classes differ and the number the simulation predicts
// correctly.
func compareLogits(sim []float64, z []float32, test *data.Memory) (maxd, scale float64, disagree, simCorrect int) {
	c := len(sim) / test.Len()
	scale = 1
	for i := 0; i < test.Len(); i++ {
		as, ao := 0, 0
		for j := 0; j < c; j++ {
			k := i*c + j
			maxd = math.Max(maxd, math.Abs(sim[k]-float64(z[k])))
			scale = math.Max(scale, math.Abs(sim[k]))
			if sim[k] > sim[i*c+as] {
				as = j
			}
			if z[k] > z[i*c+ao] {
				ao = j
			}
		}
		if as == test.Labels[i] {
			simCorrect++
		}
		if as != ao {
			disagree++
		}
	}
	return maxd, scale, disagree, simCorrect
}

func logits(e *nn.Engine, ds *data.Memory) ([]float64, error) {
	const chunk = 250
	per := data.SampleSize(ds)
	var out []float64
	for i := 0; i < ds.Len(); i += chunk {
		n := min(chunk, ds.Len()-i)
		z, err := e.Logits(ds.Inputs[i*per:(i+n)*per], n)
		if err != nil {
			return nil, err
		}
		out = append(out, z...)
	}
	return out, nil
}

// TestZooQDQ exports the runnable zoo models (testdata/zoo; the others
// use operators the engine lacks, testdata/zoo/unsupported.txt) at W8A8
// and W4A8 and compares ONNX Runtime with the simulation on random
// normal inputs labelled by the float model (the zoo ships no labels):
// accuracy is then agreement with the float model.
func TestZooQDQ(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	for _, f := range []string{"op13", "op17"} {
		path := filepath.Join("..", "testdata", "zoo", "tiny_resnet", f+".onnx")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e, err := nn.New(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 1))
		mk := func(n int) *data.Memory {
			per := 1
			for _, d := range e.SampleShape() {
				per *= d
			}
			ds := &data.Memory{Inputs: make([]float64, n*per), Labels: make([]int, n), Shape: e.SampleShape()}
			for i := range ds.Inputs {
				ds.Inputs[i] = r.NormFloat64()
			}
			z, err := logits(e, ds)
			if err != nil {
				t.Fatal(err)
			}
			c := len(z) / n
			for i := range ds.Labels {
				for j := 1; j < c; j++ {
					if z[i*c+j] > z[i*c+ds.Labels[i]] {
						ds.Labels[i] = j
					}
				}
			}
			return ds
		}
		calib, test := mk(64), mk(500)
		for _, wa := range [][2]int{{8, 8}, {4, 8}} {
			var layers []eval.Layer
			for _, u := range e.Units() {
				layers = append(layers, eval.Layer{Name: u.Name, Bits: wa[0], ABits: wa[1]})
			}
			sim, err := eval.Run(ctx, &eval.Config{Engine: e, Layers: layers, Calib: calib, Test: test})
			if err != nil {
				t.Fatal(err)
			}
			x, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: calib})
			if err != nil {
				t.Fatalf("tiny_resnet/%s: %v", f, err)
			}
			out, _ := x.Marshal()
			s, err := ort.Open(out, nil)
			if err != nil {
				t.Fatalf("tiny_resnet/%s W%dA%d: %v", f, wa[0], wa[1], err)
			}
			got, _, err := s.Evaluate(ctx, test, nil)
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("tiny_resnet/%s W%dA%d: agreement with float: simulated %.4f, ONNX Runtime %.4f", f, wa[0], wa[1], sim.Quantized.Accuracy, got.Accuracy)
			// 500 samples: 0.3 points is 1.5 predictions; allow 2.
			if d := math.Abs(got.Accuracy - sim.Quantized.Accuracy); d > 2.0/500 {
				t.Errorf("tiny_resnet/%s W%dA%d: ONNX Runtime %.4f, simulated %.4f", f, wa[0], wa[1], got.Accuracy, sim.Quantized.Accuracy)
			}
		}
	}
}

// posLossTol bounds |loss_ORT − loss_engine| of a float model's mean
// per-position cross-entropy: float32 against float64 arithmetic on
// logits of size ~1–10 (measured: 8.1e-10 on tiny_unet, 9.6e-9 on
// tiny_quartznet; the bound leaves two orders of magnitude).
const posLossTol = 1e-6

// TestZooPositionLoss: ONNX Runtime's per-pixel (tiny_unet, N×C×H×W) and
// per-frame (tiny_quartznet, N×C×T) cross-entropy of the float model, with
// ignored positions, equals the engine's to posLossTol, and the same
// positions are predicted right. ONNX Runtime once read each sample's
// outputs as one row of classes: loss 7.0 against 1.12 (tiny_unet), 6.1
// against 1.89 (tiny_quartznet), accuracy 0.
func TestZooPositionLoss(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	for _, c := range []struct {
		name, input string
		label       func(i int) int // label of position i, sample after sample
	}{
		// The labels of cmd/bitplan's TestZooCommands.
		{"tiny_unet", "input.npy", func(i int) int {
			if i%16 == 0 {
				return -100
			}
			return (i/16 + i%16) % 3
		}},
		{"tiny_quartznet", "features.npy", func(i int) int {
			if i == 3 || i == 20 {
				return -100
			}
			return i * 7 % 6
		}},
	} {
		dir := filepath.Join("..", "testdata", "zoo", c.name)
		b, err := os.ReadFile(filepath.Join(dir, "op13.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		a, err := data.LoadNPYArray(filepath.Join(dir, c.input))
		if err != nil {
			t.Fatal(err)
		}
		ds := &data.Memory{Inputs: a.Float, Labels: make([]int, a.Shape[0]), Shape: a.Shape[1:]}
		e, err := nn.New(m, &nn.Options{Loss: nn.PositionLabels{Ignore: -100}})
		if err != nil {
			t.Fatal(err)
		}
		positions := 1
		for _, d := range e.OutputShape()[1:] {
			positions *= d
		}
		labels := make([]int, ds.Len()*positions)
		for i := range labels {
			labels[i] = c.label(i)
		}
		loss := nn.PositionLabels{Labels: labels, ClassAxis: 0, Ignore: -100}
		if err := e.SetLoss(loss); err != nil {
			t.Fatal(err)
		}
		sim, err := e.Evaluate(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ort.Open(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Evaluate(ctx, ds, &ort.EvalOptions{Loss: loss, Batch: 1})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: loss ONNX Runtime %.7f, engine %.7f (difference %.2g); correct %d, %d of %d labelled positions", c.name, got.Loss, sim.Loss, got.Loss-sim.Loss, got.Correct, sim.Correct, sim.Scored)
		if d := math.Abs(got.Loss - sim.Loss); d > posLossTol || got.Correct != sim.Correct || got.N != sim.N || math.Abs(got.Accuracy-sim.Accuracy()) > 1e-12 {
			t.Errorf("%s: ONNX Runtime %+v, engine %+v (accuracy %.4f)", c.name, got, sim, sim.Accuracy())
		}
	}
}

// bertLossTol bounds |loss_ORT − loss_engine| of tiny_bert's float model:
// float32 against float64 through two encoder layers (logits ~0.3).
const bertLossTol = 1e-6

// TestZooMultiInput evaluates tiny_bert (token ids and an attention mask,
// both INT64) in ONNX Runtime, every input fed by name order as bitplan's
// --inputs matcher orders them, and compares the float model's
// cross-entropy and predictions with the engine's on 24 samples: the
// committed pair and random ids with random padding. ONNX Runtime once got
// only the first input and refused the model.
func TestZooMultiInput(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	dir := filepath.Join("..", "testdata", "zoo", "tiny_bert")
	for _, f := range []string{"op13", "op17"} {
		b, err := os.ReadFile(filepath.Join(dir, f+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e, err := nn.New(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds := bertData(t, dir, m, 24)
		sim, err := e.Evaluate(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		// The mask first: the files are matched to the inputs by name.
		s, err := ort.Open(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Evaluate(ctx, ds, &ort.EvalOptions{Batch: 5})
		s.Close()
		if err != nil {
			t.Fatalf("tiny_bert/%s: %v", f, err)
		}
		t.Logf("tiny_bert/%s: loss ONNX Runtime %.8f, engine %.8f (difference %.2g); correct %d, %d of %d", f, got.Loss, sim.Loss, got.Loss-sim.Loss, got.Correct, sim.Correct, sim.Scored)
		if d := math.Abs(got.Loss - sim.Loss); d > bertLossTol || got.Correct != sim.Correct || got.Scored != sim.Scored || got.N != 24 {
			t.Errorf("tiny_bert/%s: ONNX Runtime %+v, engine %+v", f, got, sim)
		}
	}
}

// bertData returns n samples for tiny_bert: the committed two, then
// random token ids below 100 with a random number (0..8) of padded
// positions at the end, labels random of 3 classes; matched to m's
// inputs from files given mask first.
func bertData(t *testing.T, dir string, m *model.Model, n int) *data.Arrays {
	t.Helper()
	ids, err := data.LoadNPYArray(filepath.Join(dir, "input_ids.npy"))
	if err != nil {
		t.Fatal(err)
	}
	mask, err := data.LoadNPYArray(filepath.Join(dir, "attention_mask.npy"))
	if err != nil {
		t.Fatal(err)
	}
	const seq = 16
	r := rand.New(rand.NewPCG(13, 1))
	idv, mv := slices.Clone(ids.Int), slices.Clone(mask.Int)
	for i := 2; i < n; i++ {
		pad := r.IntN(9)
		for j := 0; j < seq; j++ {
			idv = append(idv, int64(r.IntN(100)))
			mv = append(mv, map[bool]int64{true: 1, false: 0}[j < seq-pad])
		}
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(3)
	}
	a, err := data.NewArrays([]string{"attention_mask", "input_ids"},
		[]*data.Array{{Shape: []int{n, seq}, Int: mv, DType: "<i8"}, {Shape: []int{n, seq}, Int: idv, DType: "<i8"}}, labels)
	if err != nil {
		t.Fatal(err)
	}
	var specs []data.InputSpec
	for _, in := range m.Inputs {
		specs = append(specs, data.InputSpec{Name: in.Name, Integer: in.Type.IsInt(), Type: in.Type.String()})
	}
	if err := a.MatchInputs(specs); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestZooQDQPerChannel exports tiny_lstm, tiny_gru (their W and R
// quantized per gate row) and tiny_unet (its ConvTranspose per output
// channel, weight axis 1) at W8A8 and W4A8 and compares ONNX Runtime's
// outputs on the QDQ model with the simulation's on 200 random normal
// inputs: the loss against the float model's predictions (per pixel for
// tiny_unet) agrees to qdqLossTol and every output to qdqOutTol of the
// largest. The exported DequantizeLinear axes are the simulation's.
func TestZooQDQPerChannel(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	for _, name := range []string{"tiny_lstm", "tiny_gru", "tiny_unet"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "zoo", name, "op13.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		var loss nn.Loss
		if name == "tiny_unet" {
			loss = nn.PositionLabels{Ignore: -100}
		}
		e, err := nn.New(m, &nn.Options{Loss: loss})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 1))
		mk := func(n int) *data.Memory {
			ds := &data.Memory{Inputs: make([]float64, n*data.SampleSize(&data.Memory{Shape: e.SampleShape()})), Labels: make([]int, n), Shape: e.SampleShape()}
			for i := range ds.Inputs {
				ds.Inputs[i] = r.NormFloat64()
			}
			return ds
		}
		calib, test := mk(64), mk(200)
		float, err := logits(e, test)
		if err != nil {
			t.Fatal(err)
		}
		// Labels: the float model's arg max (per sample, or per pixel on
		// the class axis 1 of N×C×H×W).
		out := e.OutputShape() // per sample
		classes, positions := out[0], 1
		for _, d := range out[1:] {
			positions *= d
		}
		labels := make([]int, test.Len()*positions)
		for s := 0; s < test.Len(); s++ {
			for p := 0; p < positions; p++ {
				best := 0
				for c := 1; c < classes; c++ {
					if float[(s*classes+c)*positions+p] > float[(s*classes+best)*positions+p] {
						best = c
					}
				}
				labels[s*positions+p] = best
			}
		}
		if name == "tiny_unet" {
			loss = nn.PositionLabels{Labels: labels, Ignore: -100}
			if err := e.SetLoss(loss); err != nil {
				t.Fatal(err)
			}
		} else {
			test.Labels = labels
		}
		for _, wa := range [][2]int{{8, 8}, {4, 8}} {
			var layers []eval.Layer
			for _, u := range e.Units() {
				layers = append(layers, eval.Layer{Name: u.Name, Bits: wa[0], ABits: wa[1]})
			}
			x, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: calib})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			a, err := eval.Apply(ctx, e, layers, calib, nil)
			if err != nil {
				t.Fatal(err)
			}
			sim, err := logits(e, test)
			if err != nil {
				t.Fatal(err)
			}
			simEv, err := e.Evaluate(ctx, test)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range x.Summary.Layers {
				if al := a.Layers[i]; l.Name != al.Name || l.Axis != al.Layout.Axis || l.Channels != len(al.Scales) {
					t.Errorf("%s %s: exported axis %d with %d scales, simulated axis %d with %d", name, l.Name, l.Axis, l.Channels, al.Layout.Axis, len(al.Scales))
				}
			}
			a.Restore()
			qb, _ := x.Marshal()
			s, err := ort.Open(qb, nil)
			if err != nil {
				t.Fatalf("%s W%dA%d: %v", name, wa[0], wa[1], err)
			}
			got, z, err := s.Evaluate(ctx, test, &ort.EvalOptions{Loss: loss, Keep: true})
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			var maxd, peak float64
			for i := range sim {
				maxd = math.Max(maxd, math.Abs(sim[i]-float64(z[i])))
				peak = math.Max(peak, math.Abs(sim[i]))
			}
			t.Logf("%s W%dA%d: loss simulated %.6f, ONNX Runtime %.6f; correct %d, %d of %d; max |Δout| %.3g of %.3g",
				name, wa[0], wa[1], simEv.Loss, got.Loss, simEv.Correct, got.Correct, simEv.Scored, maxd, peak)
			if d := math.Abs(got.Loss - simEv.Loss); d > qdqLossTol || maxd > qdqOutTol*peak {
				t.Errorf("%s W%dA%d: ONNX Runtime %+v, simulated %+v, max |Δout| %.3g", name, wa[0], wa[1], got, simEv, maxd)
			}
		}
	}
}

// Tolerances of TestZooQDQPerChannel: ONNX Runtime's float32 kernels
// (QLinearConv on tiny_unet) against the float64 simulation, where a value
// within float32 rounding of a rounding boundary takes the next code.
// Measured (ONNX Runtime 1.24.1): the recurrent models agree to 4.3e-8 in
// every output and 1e-6 in loss; tiny_unet's per-pixel loss to 2.1e-6,
// its outputs to 0.0385 of 1.99 at W4A8 (one code step of a few pixels:
// 1 of 51,200 predictions differs).
const (
	qdqLossTol = 1e-4
	qdqOutTol  = 3e-2
)
