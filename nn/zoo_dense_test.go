package nn

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/model"
)

// TestZooPerPositionLogits compares the per-position outputs of the
// committed dense-prediction zoo models (tiny_unet: ConvTranspose and
// bilinear Resize; tiny_quartznet: per-frame logits) with PyTorch's, at
// every committed opset. The static check passes them with a per-position
// loss (class axis 0).
func TestZooPerPositionLogits(t *testing.T) {
	// As TestZooLogits: the export folded BatchNorm into the conv weights in
	// float32, so agreement is to about 1e-7 of the logits' scale.
	const tol = 1e-6
	loss := PositionLabels{ClassAxis: 0, Ignore: -100}
	for _, name := range []string{"tiny_unet", "tiny_quartznet"} {
		for _, opset := range []int{11, 13, 17} {
			dir := filepath.Join("..", "testdata", "zoo", name)
			m, err := model.Load(filepath.Join(dir, fmt.Sprintf("op%d.onnx", opset)))
			if err != nil {
				t.Fatal(err)
			}
			if err := check(m, loss); err != nil {
				t.Errorf("%s/op%d: the static check with per-position labels fails: %v", name, opset, err)
				continue
			}
			x := readNPY(t, filepath.Join(dir, m.Inputs[0].Name+".npy"))
			want := readNPY(t, filepath.Join(dir, "logits.npy"))
			e, err := New(m, &Options{Loss: loss, Precision: Float64})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Logits(x.Float, x.Shape[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want.Float) {
				t.Fatalf("%s/op%d: %d outputs, want %d", name, opset, len(got), len(want.Float))
			}
			worst, scale := 0.0, 0.0
			for i, v := range want.Float {
				scale = max(scale, math.Abs(v))
				worst = max(worst, math.Abs(got[i]-v))
			}
			if worst > tol*scale {
				t.Errorf("%s/op%d: outputs differ from PyTorch's by %.3g, more than %g of their scale %.3g", name, opset, worst, tol, scale)
			}
			t.Logf("%s/op%d: max |Δ| %.3g (scale %.3g)", name, opset, worst, scale)
		}
	}
}

// TestZooCachePerPositionLogits compares the large U-Net and QuartzNet of
// BITPLAN_ZOO_DIR (scripts/zoo.py --large) with PyTorch, when it is set.
func TestZooCachePerPositionLogits(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("set BITPLAN_ZOO_DIR to a directory made by /usr/bin/python3 scripts/zoo.py --large --out DIR")
	}
	// float32 BatchNorm folding by the exporter, as TestZooCacheLogits.
	const tol = 1e-4
	loss := PositionLabels{ClassAxis: 0, Ignore: -100}
	for _, name := range []string{"unet", "quartznet"} {
		for _, opset := range []int{13, 17} {
			f := filepath.Join(dir, fmt.Sprintf("%s_op%d.onnx", name, opset))
			if _, err := os.Stat(f); err != nil {
				t.Logf("%s: not in the cache", f)
				continue
			}
			m, err := model.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			x := readNPY(t, filepath.Join(dir, name+"_"+m.Inputs[0].Name+".npy"))
			want := readNPY(t, filepath.Join(dir, name+"_logits.npy"))
			e, err := New(m, &Options{Loss: loss, Precision: Float64})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Logits(x.Float, x.Shape[0])
			if err != nil {
				t.Fatal(err)
			}
			worst, scale := 0.0, 0.0
			for i, v := range want.Float {
				scale = max(scale, math.Abs(v))
				worst = max(worst, math.Abs(got[i]-v))
			}
			t.Logf("| %s | max |Δ| %.3g | scale %.3g |", filepath.Base(f), worst, scale)
			if worst > tol*scale {
				t.Errorf("%s: outputs differ from PyTorch's by %.3g (scale %.3g)", f, worst, scale)
			}
		}
	}
}
