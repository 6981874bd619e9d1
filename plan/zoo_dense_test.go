package plan_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

// TestZooUNetAnalyzeApply plans and applies the committed tiny U-Net with
// per-pixel labels through the API (the command line's per-position loss
// flag is separate work): every unit, the ConvTranspose among them, gets a
// finite trace and Δ² per candidate, and the model quantized to W8A8 keeps
// its loss close to the float one.
func TestZooUNetAnalyzeApply(t *testing.T) {
	dir := filepath.Join("..", "testdata", "ref", "tiny_unet")
	m, err := model.Load(filepath.Join("..", "testdata", "zoo", "tiny_unet", "op13.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	x := readRefNPY(t, filepath.Join(dir, "inputs.npy"))
	y := readRefNPY(t, filepath.Join(dir, "labels.npy"))
	labels := make([]int, len(y.Int))
	for i, v := range y.Int {
		labels[i] = int(v)
	}
	e, err := nn.New(m, &nn.Options{Loss: nn.PositionLabels{Labels: labels, ClassAxis: 0, Ignore: -100}, Precision: nn.Float64})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.NewMemory(x.Float, make([]int, x.Shape[0]), x.Shape[1:])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: ds, Model: "tiny_unet",
		Trace: &hessian.Settings{Seed: 1, MinProbes: 4, MaxProbes: 4}})
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, l := range s.Table.Layers {
		seen = seen || l.Name == "/up2/ConvTranspose"
		if math.IsNaN(l.AvgTrace) || len(l.DeltaSq) == 0 || l.MACs <= 0 {
			t.Errorf("layer %s: avg trace %v, Δ² %v, MACs %v", l.Name, l.AvgTrace, l.DeltaSq, l.MACs)
		}
	}
	if !seen || len(s.Table.Layers) != 13 {
		t.Errorf("%d layers (want 13, /up2/ConvTranspose among them)", len(s.Table.Layers))
	}
	float, err := e.Evaluate(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	var layers []eval.Layer
	for _, u := range e.Units() {
		layers = append(layers, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
	}
	a, err := eval.Apply(ctx, e, layers, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := e.Evaluate(ctx, ds)
	a.Restore()
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(q.Loss - float.Loss); d > 0.05*float.Loss {
		t.Errorf("W8A8 loss %.6g, float %.6g", q.Loss, float.Loss)
	}
	t.Logf("float loss %.6g, W8A8 loss %.6g", float.Loss, q.Loss)
}

func readRefNPY(t *testing.T, path string) *data.Array {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := data.ReadNPY(f)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
