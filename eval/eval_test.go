package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

// lenetPath is the repository's LeNet-5 (testdata/models/README.md).
var lenetPath = filepath.Join("..", "testdata", "models", "lenet.onnx")

func lenet(t testing.TB) *nn.Engine {
	t.Helper()
	m, err := model.Load(lenetPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mnist(t testing.TB, split data.Split, n int) *data.Memory {
	t.Helper()
	ds, err := data.MNIST(split, n)
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	return ds
}

func uniform(e *nn.Engine, w, a int) []Layer {
	var ls []Layer
	for _, u := range e.Units() {
		ls = append(ls, Layer{Name: u.Name, Bits: w, ABits: a})
	}
	return ls
}

func TestRunSixteenBitsMatchesFloatAndTwoBitsDrops(t *testing.T) {
	e := lenet(t)
	ctx := context.Background()
	test := mnist(t, data.Test, 300)
	calib := mnist(t, data.Train, 64)
	theta := e.Theta()
	r16, err := Run(ctx, &Config{Engine: e, Layers: uniform(e, 16, 16), Calib: calib, Test: test})
	if err != nil {
		t.Fatal(err)
	}
	if r16.Quantized.Correct != r16.Float.Correct || math.Abs(r16.Quantized.Loss-r16.Float.Loss) > 1e-3*r16.Float.Loss {
		t.Errorf("W16A16: %+v, float %+v", r16.Quantized, r16.Float)
	}
	r2, err := Run(ctx, &Config{Engine: e, Layers: uniform(e, 2, 2), Calib: calib, Test: test})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Quantized.Accuracy > r2.Float.Accuracy-0.05 || r2.Quantized.Loss < 2*r2.Float.Loss {
		t.Errorf("W2A2 barely hurts: %+v, float %+v", r2.Quantized, r2.Float)
	}
	r8, err := Run(ctx, &Config{Engine: e, Layers: uniform(e, 8, 8), Calib: calib, Test: test})
	if err != nil {
		t.Fatal(err)
	}
	if r8.Quantized.Accuracy < r8.Float.Accuracy-0.01 {
		t.Errorf("W8A8 loses more than a point: %+v, float %+v", r8.Quantized, r8.Float)
	}
	t.Logf("accuracy on %d samples: float %.4f, W16A16 %.4f, W8A8 %.4f, W2A2 %.4f", test.Len(), r16.Float.Accuracy, r16.Quantized.Accuracy, r8.Quantized.Accuracy, r2.Quantized.Accuracy)
	// Run restores the engine.
	if !slices.Equal(e.Theta(), theta) {
		t.Error("Run did not restore the weights")
	}
	after, _ := e.Evaluate(ctx, test)
	if after.Loss != r2.Float.Loss {
		t.Errorf("after Run: loss %g, float %g", after.Loss, r2.Float.Loss)
	}
}

// TestApplyWeightsOnGrid checks that every output channel of every
// quantized weight holds at most 2^b − 1 distinct values, symmetric
// multiples of max|W_c|/(2^(b−1) − 1), and that Δ² is what Apply reports.
func TestApplyWeightsOnGrid(t *testing.T) {
	e := lenet(t)
	ctx := context.Background()
	orig := map[string][]float64{}
	for _, u := range e.Units() {
		orig[u.Name], _ = e.Weights(u.Name)
	}
	const bits = 3
	a, err := Apply(ctx, e, uniform(e, bits, 0), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Restore()
	n := math.Exp2(bits-1) - 1
	for i, u := range e.Units() {
		w, _ := e.Weights(u.Name)
		lay := weightLayout(u)
		for _, ch := range u.ChannelIndices() {
			var amax float64
			for _, k := range ch[:len(ch)-min(1, u.BiasSize/u.OutChannels)] {
				amax = math.Max(amax, math.Abs(orig[u.Name][k-u.WeightOffset]))
			}
			s := amax / n
			distinct := map[float64]bool{}
			for _, k := range ch[:len(ch)-min(1, u.BiasSize/u.OutChannels)] {
				v := w[k-u.WeightOffset]
				c := v / s
				if math.Abs(c-math.Round(c)) > 1e-9 || math.Abs(c) > n+1e-9 {
					t.Fatalf("%s (axis %d): weight %g is %g steps of %g", u.Name, lay.Axis, v, c, s)
				}
				distinct[v] = true
			}
			if len(distinct) > 2*int(n)+1 {
				t.Fatalf("%s: %d distinct values in a channel", u.Name, len(distinct))
			}
		}
		var d2 float64
		for k := range w {
			d := w[k] - orig[u.Name][k]
			d2 += d * d
		}
		if al := a.Layers[i]; math.Abs(al.DeltaSq-d2) > 1e-12*d2 || al.Name != u.Name || al.ABits != 0 {
			t.Errorf("%s: applied %+v, Δ² %g", u.Name, al, d2)
		}
	}
	a.Restore()
	for _, u := range e.Units() {
		w, _ := e.Weights(u.Name)
		if !slices.Equal(w, orig[u.Name]) {
			t.Errorf("%s: Restore did not restore the weights", u.Name)
		}
	}
}

// TestCalibrateMatchesIntermediates computes every unit's input range
// independently from the engine's intermediate tensors.
func TestCalibrateMatchesIntermediates(t *testing.T) {
	e := lenet(t)
	calib := mnist(t, data.Train, 40)
	ranges, err := Calibrate(context.Background(), e, calib)
	if err != nil {
		t.Fatal(err)
	}
	im, err := e.Intermediates(calib.Inputs, calib.Len())
	if err != nil {
		t.Fatal(err)
	}
	m := e.Model()
	for _, u := range m.Units {
		in := m.Nodes[u.Node].Inputs[1-u.WeightInput]
		if u.Op == "Conv" {
			in = m.Nodes[u.Node].Inputs[0]
		}
		x := im[in].Data
		want := Range{slices.Min(x), slices.Max(x)}
		if ranges[u.Name] != want {
			t.Errorf("%s: calibrated %v, intermediates give %v", u.Name, ranges[u.Name], want)
		}
	}
	// The image is in [0, 1]; the Gemm inputs follow a ReLU.
	if r := ranges["/conv1/Conv"]; r.Min != 0 || r.Max != 1 {
		t.Errorf("/conv1/Conv input %v, want [0, 1]", r)
	}
	for _, name := range []string{"/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm"} {
		if ranges[name].Min != 0 || ranges[name].Max <= 0 {
			t.Errorf("%s input %v, want [0, max > 0]", name, ranges[name])
		}
	}
}

func writePlan(t *testing.T, layers string) *plan.Plan {
	t.Helper()
	p, _, err := plan.Parse([]byte(`{"status": "optimal", "layers": [` + layers + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const lenetLayers = `{"name": "/conv1/Conv", "bits": 8, "abits": 8},
{"name": "/conv2/Conv", "bits": 4, "abits": 8},
{"name": "/fc1/Gemm", "bits": 2, "abits": 8},
{"name": "/fc2/Gemm", "bits": 4, "abits": 8},
{"name": "/fc3/Gemm", "bits": 8`

func TestFromPlan(t *testing.T) {
	e := lenet(t)
	ls, err := FromPlan(writePlan(t, lenetLayers+`}`), e)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 5 || ls[2] != (Layer{Name: "/fc1/Gemm", Bits: 2, ABits: 8}) || ls[4] != (Layer{Name: "/fc3/Gemm", Bits: 8, ABits: 8}) {
		t.Errorf("layers %+v (abits 0 must take the weight width)", ls)
	}
	cases := []struct {
		layers, want string
	}{
		{lenetLayers + `}, {"name": "/fc4/Gemm", "bits": 4}`, `layers[5]: plan layer "/fc4/Gemm" is not a quantizable layer of the model (the model has /conv1/Conv, /conv2/Conv, /fc1/Gemm, /fc2/Gemm, /fc3/Gemm)`},
		{`{"name": "/conv1/Conv", "bits": 8}`, `model layer "/conv2/Conv" has no entry in the plan`},
		{lenetLayers + `}, {"name": "/fc1/Gemm", "bits": 4}`, `layers[5]: layer "/fc1/Gemm" appears twice`},
		{strings.Replace(lenetLayers, `"bits": 2`, `"bits": 1`, 1) + `}`, `layers[2] ("/fc1/Gemm"): bits 1 out of range [2, 32]`},
		{strings.Replace(lenetLayers, `"bits": 2`, `"bits": 40`, 1) + `}`, `layers[2] ("/fc1/Gemm"): bits 40 out of range [2, 32]`},
		{lenetLayers + `, "abits": 33}`, `layers[4] ("/fc3/Gemm"): abits 33 out of range [1, 32]`},
	}
	for _, c := range cases {
		_, err := FromPlan(writePlan(t, c.layers), e)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FromPlan: %v\nwant %q", err, c.want)
		}
	}
	inf, _, err := plan.Parse([]byte(`{"status": "infeasible", "layers": [{"name": "/conv1/Conv", "bits": 0, "abits": 0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromPlan(inf, e); err == nil || !strings.Contains(err.Error(), `status "infeasible" and no bit widths`) {
		t.Errorf("infeasible plan: %v", err)
	}
	if _, err := Apply(context.Background(), e, []Layer{{Name: "/fc1/Gemm", Bits: 4, ABits: 8}}, nil, nil); err == nil || !strings.Contains(err.Error(), "needs calibration data") {
		t.Errorf("Apply without calibration data: %v", err)
	}
	if _, err := Apply(context.Background(), e, []Layer{{Name: "nope", Bits: 4}}, nil, nil); err == nil || !strings.Contains(err.Error(), `"nope" is not a quantizable layer`) {
		t.Errorf("Apply with an unknown layer: %v", err)
	}
}

// FuzzFromPlan feeds arbitrary plan JSON to plan.Parse and FromPlan: no
// panics, and accepted layers are in range and cover the model.
func FuzzFromPlan(f *testing.F) {
	e := lenet(f)
	f.Add([]byte(`{"status": "optimal", "layers": [` + lenetLayers + `}]}`))
	f.Add([]byte(`{"status": "infeasible", "layers": []}`))
	f.Add([]byte(`{"status": "optimal", "layers": [{"name": "/fc1/Gemm", "bits": -1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _, err := plan.Parse(b)
		if err != nil {
			return
		}
		ls, err := FromPlan(p, e)
		if err != nil {
			return
		}
		if len(ls) != len(e.Units()) {
			t.Fatalf("%d layers for %d units", len(ls), len(e.Units()))
		}
		for _, l := range ls {
			if l.Bits < 2 || l.Bits > MaxBits || l.ABits < 1 || l.ABits > MaxBits {
				t.Fatalf("accepted %+v", l)
			}
		}
	})
}

func TestReportFormats(t *testing.T) {
	e := lenet(t)
	ctx := context.Background()
	ls, err := FromPlan(writePlan(t, lenetLayers+`}`), e)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(ctx, &Config{Engine: e, Layers: ls, Calib: mnist(t, data.Train, 32), Test: mnist(t, data.Test, 64), Model: "lenet"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []plan.Format{plan.Text, plan.Markdown, plan.CSV, plan.JSON} {
		var b bytes.Buffer
		if err := r.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "/fc1/Gemm") {
			t.Errorf("%s report lacks the layers:\n%s", f, b.String())
		}
		if f == plan.JSON {
			var back Report
			if err := json.Unmarshal(b.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if back.Quantized != r.Quantized || len(back.Layers) != 5 || back.Layers[2] != r.Layers[2] {
				t.Errorf("JSON round trip: %+v", back)
			}
		}
		if f == plan.CSV && strings.Count(b.String(), "\n") != 1+2+5 {
			t.Errorf("CSV has %d lines:\n%s", strings.Count(b.String(), "\n"), b.String())
		}
	}
	if err := r.Write(discard{}, "yaml"); err == nil {
		t.Error("unknown format accepted")
	}
	if r.WeightBytes != (150*8+2400*4+48000*2+10080*4+840*8)/8 {
		t.Errorf("weight bytes %g", r.WeightBytes)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// ExampleRun applies a mixed plan to LeNet-5 and compares its MNIST
// accuracy with the float model's.
func ExampleRun() {
	m, err := model.Load(lenetPath)
	if err != nil {
		fmt.Println(err)
		return
	}
	e, err := nn.New(m, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	calib, err := data.MNIST(data.Train, 64)
	if err != nil {
		fmt.Println(err)
		return
	}
	test, err := data.MNIST(data.Test, 200)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _, err := plan.Parse([]byte(`{"status": "optimal", "layers": [
		{"name": "/conv1/Conv", "bits": 8, "abits": 8},
		{"name": "/conv2/Conv", "bits": 4, "abits": 8},
		{"name": "/fc1/Gemm", "bits": 2, "abits": 8},
		{"name": "/fc2/Gemm", "bits": 4, "abits": 8},
		{"name": "/fc3/Gemm", "bits": 8, "abits": 8}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	layers, err := FromPlan(p, e)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := Run(context.Background(), &Config{Engine: e, Layers: layers, Calib: calib, Test: test})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("float %.1f %%, quantized %.1f %%, weights %.0f of %.0f bytes\n",
		100*r.Float.Accuracy, 100*r.Quantized.Accuracy, r.WeightBytes, r.FloatBytes)
	for _, l := range r.Layers {
		fmt.Printf("%-12s W%d A%d  input [%.3g, %.3g]\n", l.Name, l.Bits, l.ABits, l.InputMin, l.InputMax)
	}
	// Output:
	// float 100.0 %, quantized 79.0 %, weights 19230 of 245880 bytes
	// /conv1/Conv  W8 A8  input [0, 1]
	// /conv2/Conv  W4 A8  input [0, 2.58]
	// /fc1/Gemm    W2 A8  input [0, 6.6]
	// /fc2/Gemm    W4 A8  input [0, 8.74]
	// /fc3/Gemm    W8 A8  input [0, 7.61]
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(lenetPath); err != nil {
		fmt.Println("eval tests need", lenetPath)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
