package nn_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// zooRefMeta mirrors the meta.json files of scripts/make_zoo_reference.py.
type zooRefMeta struct {
	refMeta
	LossKind string `json:"loss_kind"`
	Ignore   int    `json:"ignore_index"`
}

// TestZooHessianReference compares the engine with PyTorch double
// backprop (float64, the ONNX graph's own weights, scripts/
// make_zoo_reference.py) on the recurrent and dense-prediction models:
// tiny_lstm, tiny_gru and tiny_unet of the zoo (per-pixel labels with an
// ignore index for the U-Net, whose reference traces are its exact
// Gauss-Newton blocks, checked by double backprop in the script) and two
// exports covering the other LSTM/GRU,
// ConvTranspose and Resize variants (rnn_variants, updown): outputs, loss,
// gradient, H·v, vᵀHv and the exact Hessian trace of every unit, each to
// refTol (1e-6) relative.
func TestZooHessianReference(t *testing.T) {
	for _, name := range []string{"tiny_lstm", "tiny_gru", "tiny_unet", "rnn_variants", "updown"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "ref", name)
			raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
			if err != nil {
				t.Fatalf("committed reference missing (regenerate with scripts/make_zoo_reference.py): %v", err)
			}
			var meta zooRefMeta
			if err := json.Unmarshal(raw, &meta); err != nil {
				t.Fatalf("meta.json: %v", err)
			}
			m, err := model.Load(filepath.Join(dir, meta.ONNX))
			if err != nil {
				t.Fatal(err)
			}
			x := readNPY(t, filepath.Join(dir, "inputs.npy"))
			labels := readNPY(t, filepath.Join(dir, "labels.npy"))
			n := x.Shape[0]
			if labels.Len() == 0 || len(labels.Int) != labels.Len() {
				t.Fatalf("labels.npy: want int64 labels, got dtype %s", labels.DType)
			}
			var loss nn.Loss = nn.ClassLabels{}
			y := make([]int, n)
			if meta.LossKind == "position" {
				all := make([]int, len(labels.Int))
				for i, v := range labels.Int {
					all[i] = int(v)
				}
				loss = nn.PositionLabels{Labels: all, ClassAxis: 0, Ignore: meta.Ignore}
			} else {
				for i, v := range labels.Int {
					y[i] = int(v)
				}
			}
			ds, err := data.NewMemory(x.Float, y, x.Shape[1:])
			if err != nil {
				t.Fatal(err)
			}
			e, err := nn.New(m, &nn.Options{Loss: loss, Precision: nn.Float64})
			if err != nil {
				t.Fatal(err)
			}
			params := e.Params()
			if len(params) != len(meta.Params) {
				t.Fatalf("%d parameter tensors, reference has %d", len(params), len(meta.Params))
			}
			for i, p := range meta.Params {
				q := params[i]
				if q.Name != p.Name || !slices.Equal(q.Shape, p.Shape) || q.Offset != p.Offset || q.Size != p.Size {
					t.Errorf("param %d: %+v, reference %+v", i, q, p)
				}
			}
			units := e.Units()
			if len(units) != len(meta.Units) {
				t.Fatalf("%d units, reference has %d", len(units), len(meta.Units))
			}
			for i, u := range meta.Units {
				q := units[i]
				if q.Name != u.Name || q.Weight != u.Weight || q.Bias != u.Bias || q.Offset != u.Offset || q.Size != u.Size {
					t.Errorf("unit %d: %s %s %s [%d,+%d), reference %+v", i, q.Name, q.Weight, q.Bias, q.Offset, q.Size, u)
				}
			}
			ctx := context.Background()
			logits, err := e.Logits(x.Float, n)
			if err != nil {
				t.Fatal(err)
			}
			if r := maxRel(logits, readNPY(t, filepath.Join(dir, "logits.npy")).Float); r > refTol {
				t.Errorf("outputs: relative difference %.3g", r)
			}
			ev, _, v, hv := refProducts(t, e, ds, dir, meta.Loss, meta.VTHV, refTol)
			start := time.Now()
			worst := 0.0
			for _, u := range units {
				want, ok := meta.ExactBlockTraces[u.Name]
				if !ok {
					t.Errorf("the reference has no exact trace of %s", u.Name)
					continue
				}
				got, err := e.BlockTrace(ctx, ds, hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}, 64)
				if err != nil {
					t.Fatal(err)
				}
				rel := math.Abs(got-want) / math.Max(math.Abs(want), 1e-300)
				worst = max(worst, rel)
				if rel > refTol {
					t.Errorf("exact trace of %s: %.12g, reference %.12g (relative %.3g)", u.Name, got, want, rel)
				}
			}
			t.Logf("loss %.6f, vᵀHv %.6g; %d exact unit traces in %.2fs, worst relative difference %.2g",
				ev.Loss, dot(v, hv), len(units), time.Since(start).Seconds(), worst)
		})
	}
}
