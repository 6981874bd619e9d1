package nn_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// refTol is the agreement required with the PyTorch float64 reference
// (double backprop on the ONNX file's own weights): 1e-6 relative.
const refTol = 1e-6

// refTol32 is the agreement required of a float32 run with the same
// float64 reference, relative to the largest magnitude of each compared
// vector. Float32 rounds each operation by at most u = 2⁻²⁴ ≈ 6e-8. These
// networks have at most L = 10 layers with a quantizable weight, whose
// products sum K ≤ 400 terms; blocked GEMM accumulates in partial sums, so
// each layer adds an error of about √K·u ≈ 1.2e-6 of its output's scale
// (the inputs' rounding adds u). A Hessian-vector product chains the
// forward, backward, R-forward and R-backward passes, 4L ≈ 40 layers of
// such error, ≈ 5e-5 of the scale in the worst case where the errors
// add; cancellation in the gradient of a nearly fitted loss can enlarge
// the relative error of small components, which the scale-relative
// measure discounts. refTol32 = 1e-4 leaves a margin of 2 over that
// bound; a kernel wrong in float32 (a dropped term, a truncated constant)
// is off by far more (the float64 run is held to 1e-6).
const refTol32 = 1e-4

// refMeta mirrors testdata/ref/<model>/meta.json, written by the reference
// scripts.
type refMeta struct {
	Model  string `json:"model"`
	ONNX   string `json:"onnx"`
	N      int    `json:"n"`
	Params []struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"`
		Offset int    `json:"offset"`
		Size   int    `json:"size"`
	} `json:"params"`
	Units []struct {
		Name   string `json:"name"`
		Weight string `json:"weight"`
		Bias   string `json:"bias"`
		Offset int    `json:"offset"`
		Size   int    `json:"size"`
	} `json:"units"`
	Loss             float64            `json:"loss"`
	ExactBlockTraces map[string]float64 `json:"exact_block_traces"`
	VTHV             float64            `json:"vTHv"`
}

func readNPY(t *testing.T, path string) *data.Array {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := data.ReadNPY(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return a
}

// maxRel returns max_i |got_i − want_i| / max_i |want_i|.
func maxRel(got, want []float64) float64 {
	d, s := 0.0, 0.0
	for i := range want {
		d = max(d, math.Abs(got[i]-want[i]))
		s = max(s, math.Abs(want[i]))
	}
	return d / max(s, 1e-300)
}

func TestPyTorchReference(t *testing.T) {
	for _, name := range []string{"mlp", "lenet", "rescnn"} {
		t.Run(name, func(t *testing.T) { checkReference(t, name, nn.Float64, refTol) })
		// float32: the same model, inputs and reference at refTol32; the
		// exact block traces (the slow part) are checked in float64 only.
		t.Run("float32_"+name, func(t *testing.T) { checkReference(t, name, nn.Float32, refTol32) })
	}
}

func checkReference(t *testing.T, name string, prec nn.Precision, refTol float64) {
	{
		{
			dir := filepath.Join("..", "testdata", "ref", name)
			raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
			if err != nil {
				t.Fatalf("committed reference missing (regenerate with scripts/make_reference.py): %v", err)
			}
			var meta refMeta
			if err := json.Unmarshal(raw, &meta); err != nil {
				t.Fatalf("meta.json: %v", err)
			}
			m, err := model.Load(filepath.Join(dir, meta.ONNX))
			if err != nil {
				t.Fatal(err)
			}
			e, err := nn.New(m, &nn.Options{BatchSize: 16, Precision: prec})
			if err != nil {
				t.Fatal(err)
			}
			// θ layout.
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
			ds, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()

			logits, err := e.Logits(ds.Inputs, ds.Len())
			if err != nil {
				t.Fatal(err)
			}
			if r := maxRel(logits, readNPY(t, filepath.Join(dir, "logits.npy")).Float); r > refTol {
				t.Errorf("logits: relative difference %.3g", r)
			}
			ev, g, v, hv := refProducts(t, e, ds, dir, meta.Loss, meta.VTHV, refTol)
			t.Logf("%v: loss %.6f, |g| %.4g, vᵀHv %.6g; relative differences: logits %.3g, loss %.3g, gradient %.3g, H·v %.3g", prec, ev.Loss, norm(g), dot(v, hv),
				maxRel(logits, readNPY(t, filepath.Join(dir, "logits.npy")).Float), math.Abs(ev.Loss-meta.Loss)/math.Abs(meta.Loss),
				maxRel(g, readNPY(t, filepath.Join(dir, "grad.npy")).Float), maxRel(hv, readNPY(t, filepath.Join(dir, "hv.npy")).Float))
			if prec == nn.Float32 {
				return
			}
			for _, u := range units {
				want, ok := meta.ExactBlockTraces[u.Name]
				if !ok {
					continue
				}
				if testing.Short() && u.Size > 200 {
					continue
				}
				got, err := e.BlockTrace(ctx, ds, hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}, 64)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(got-want) > refTol*math.Abs(want) {
					t.Errorf("exact trace of %s: %.12g, reference %.12g", u.Name, got, want)
				}
			}
		}
	}
}

// refProducts compares e's loss, gradient, H·v and vᵀHv on ds with the
// PyTorch reference in dir (grad.npy, v.npy, hv.npy and the meta's loss and
// vᵀHv) at relative tolerance tol, and returns them for reporting.
func refProducts(t *testing.T, e *nn.Engine, ds data.Dataset, dir string, loss, vthv, tol float64) (ev nn.Eval, g, v, hv []float64) {
	t.Helper()
	ctx := context.Background()
	g = make([]float64, e.Dim())
	ev, err := e.Gradient(ctx, ds, g)
	if err != nil {
		t.Fatal(err)
	}
	if r := math.Abs(ev.Loss-loss) / math.Abs(loss); r > tol {
		t.Errorf("loss %.12g, reference %.12g (relative %.3g)", ev.Loss, loss, r)
	}
	if r := maxRel(g, readNPY(t, filepath.Join(dir, "grad.npy")).Float); r > tol {
		t.Errorf("gradient: relative difference %.3g", r)
	}
	v = readNPY(t, filepath.Join(dir, "v.npy")).Float
	op, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	hv = make([]float64, e.Dim())
	if err := op.HVP(ctx, hv, v); err != nil {
		t.Fatal(err)
	}
	if r := maxRel(hv, readNPY(t, filepath.Join(dir, "hv.npy")).Float); r > tol {
		t.Errorf("H·v: relative difference %.3g", r)
	}
	if got := dot(v, hv); math.Abs(got-vthv) > tol*math.Abs(vthv) {
		t.Errorf("vᵀHv %.12g, reference %.12g", got, vthv)
	}
	return ev, g, v, hv
}
