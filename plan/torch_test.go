package plan_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// Agreement required between bitplan and the PyTorch producer
// (python/bitplan_torch), both in float64 on the same weights, data and
// probes.
const (
	// torchTraceTol bounds the relative difference of Hutchinson and exact
	// traces and their standard errors: the same probes through two exact
	// HVP implementations differ only by float rounding (measured ≤ 1e-12).
	torchTraceTol = 1e-9
	// torchSketchTol bounds Hutch++'s: its QR factorisations (LAPACK here,
	// torch there) differ in rounding, amplified by ill-conditioned sketches.
	torchSketchTol = 1e-6
	// torchQuantTol bounds Δ²: the same float64 operations, summed in a
	// different order.
	torchQuantTol = 1e-12
)

// torchRef mirrors testdata/torch/<model>.json, written by
// scripts/make_torch_tables.py from the PyTorch module of the model.
type torchRef struct {
	Model    string `json:"model"`
	ONNX     string `json:"onnx"`
	Inputs   string `json:"inputs"`
	Labels   string `json:"labels"`
	Settings struct {
		N         int      `json:"n"`
		Seed      uint64   `json:"seed"`
		Tol       float64  `json:"tol"`
		MinProbes int      `json:"min_probes"`
		MaxProbes int      `json:"max_probes"`
		Matvecs   int      `json:"matvecs"`
		Bits      []string `json:"bits"`
	} `json:"settings"`
	Hutchinson  json.RawMessage                          `json:"hutchinson"`
	HutchPP     json.RawMessage                          `json:"hutchpp"`
	ExactTraces map[string]float64                       `json:"exact_traces"`
	Quant       map[string]map[string]map[string]float64 `json:"quant"`
}

func relDiff(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Max(math.Abs(want), 1e-300)
}

// parseTable validates one of the reference's tables with the reader
// `bitplan solve` uses.
func parseTable(t *testing.T, name string, raw json.RawMessage) *sensitivity.Table {
	t.Helper()
	tab, warn, err := sensitivity.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range warn {
		if !strings.Contains(w, "negative avg_trace") {
			t.Errorf("%s: warning %s", name, w)
		}
	}
	return tab
}

// compareTables checks the Python table against bitplan's for the same
// model, data and estimator settings.
func compareTables(t *testing.T, what string, py, gt *sensitivity.Table, tol float64) (worst float64) {
	t.Helper()
	if py.Source != gt.Source {
		t.Errorf("%s: source\n python %q\n bitplan %q", what, py.Source, gt.Source)
	}
	if len(py.Layers) != len(gt.Layers) {
		t.Fatalf("%s: %d layers, bitplan has %d", what, len(py.Layers), len(gt.Layers))
	}
	for i := range gt.Layers {
		p, g := &py.Layers[i], &gt.Layers[i]
		if p.Name != g.Name || p.Params != g.Params || p.MACs != g.MACs || p.InElems != g.InElems ||
			p.OutElems != g.OutElems || p.OutChannels != g.OutChannels {
			t.Errorf("%s: layer %d: python %s params %g macs %g in %g out %g channels %g; bitplan %s %g %g %g %g %g",
				what, i, p.Name, p.Params, p.MACs, p.InElems, p.OutElems, p.OutChannels,
				g.Name, g.Params, g.MACs, g.InElems, g.OutElems, g.OutChannels)
		}
		for _, c := range []struct {
			field     string
			got, want float64
		}{{"avg_trace", p.AvgTrace, g.AvgTrace}, {"avg_trace_stderr", p.AvgTraceStderr, g.AvgTraceStderr}} {
			r := relDiff(c.got, c.want)
			worst = max(worst, r)
			if r > tol {
				t.Errorf("%s: %s %s = %.15g, bitplan %.15g (relative %.3g)", what, g.Name, c.field, c.got, c.want, r)
			}
		}
		for k, want := range g.DeltaSq {
			if r := relDiff(p.DeltaSq[k], want); r > torchQuantTol {
				t.Errorf("%s: %s delta_sq[%s] = %.15g, bitplan %.15g (relative %.3g)", what, g.Name, k, p.DeltaSq[k], want, r)
			}
		}
		if len(p.DeltaSq) != len(g.DeltaSq) {
			t.Errorf("%s: %s candidates %v, bitplan %v", what, g.Name, p.DeltaSq, g.DeltaSq)
		}
	}
	return worst
}

// TestPyTorchProducer compares the tables, exact traces and quantization
// errors that python/bitplan_torch computed on the models' PyTorch
// definitions (committed under testdata/torch) with bitplan's own on the
// ONNX exports: the same probes (Go's PCG, reproduced in Python), the same
// stopping point, the same Δ² for every quantizer, and the same plan from
// `solve` on the Python table as from the Go table.
func TestPyTorchProducer(t *testing.T) {
	for _, name := range []string{"mlp", "lenet", "rescnn"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "torch")
			raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatalf("committed reference missing (regenerate with /usr/bin/python3 scripts/make_torch_tables.py): %v", err)
			}
			var ref torchRef
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatalf("%s.json: %v", name, err)
			}
			m, err := model.Load(filepath.Join(dir, ref.ONNX))
			if err != nil {
				t.Fatal(err)
			}
			e, err := nn.New(m, nil)
			if err != nil {
				t.Fatal(err)
			}
			all, err := data.LoadNPY(filepath.Join(dir, ref.Inputs), filepath.Join(dir, ref.Labels))
			if err != nil {
				t.Fatal(err)
			}
			if ref.Settings.N < 1 || ref.Settings.N > all.Len() {
				t.Fatalf("settings.n = %d, want 1..%d", ref.Settings.N, all.Len())
			}
			ds := all.Subset(ref.Settings.N)
			var cands []sensitivity.Precision
			for _, b := range ref.Settings.Bits {
				p, err := sensitivity.ParsePrecision(b)
				if err != nil {
					t.Fatal(err)
				}
				cands = append(cands, p)
			}
			ctx := context.Background()
			s := ref.Settings

			// Hutchinson: same probes, same stopping point, same table.
			pyHut := parseTable(t, "hutchinson", ref.Hutchinson)
			got, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: ds, Model: name, Candidates: cands,
				Trace: &hessian.Settings{Seed: s.Seed, Tol: s.Tol, MinProbes: s.MinProbes, MaxProbes: s.MaxProbes}})
			if err != nil {
				t.Fatal(err)
			}
			w := compareTables(t, "hutchinson", pyHut, got.Table, torchTraceTol)
			t.Logf("hutchinson: %s; worst relative difference of avg_trace/stderr %.2g", got.Table.Source, w)

			// Hutch++: same test vectors.
			pyPP := parseTable(t, "hutchpp", ref.HutchPP)
			gotPP, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: ds, Model: name, Candidates: cands,
				Method: plan.HutchPP, Sketch: &hessian.SketchSettings{Seed: s.Seed, Matvecs: s.Matvecs}})
			if err != nil {
				t.Fatal(err)
			}
			w = compareTables(t, "hutch++", pyPP, gotPP.Table, torchSketchTol)
			t.Logf("hutch++: worst relative difference %.2g", w)

			// Exact traces of the small units' weight blocks.
			t0 := time.Now()
			op, err := e.Operator(ds)
			if err != nil {
				t.Fatal(err)
			}
			if len(ref.ExactTraces) == 0 {
				t.Fatal("reference has no exact traces")
			}
			worst := 0.0
			for _, u := range e.Units() {
				want, ok := ref.ExactTraces[u.Name]
				if !ok {
					continue
				}
				d, err := hessian.ExactDiagonal(ctx, op, hessian.Block{Name: u.Name, Offset: u.WeightOffset, Size: u.WeightSize}, 0)
				if err != nil {
					t.Fatal(err)
				}
				var tr float64
				for _, v := range d {
					tr += v
				}
				r := relDiff(tr, want)
				worst = max(worst, r)
				if r > torchTraceTol {
					t.Errorf("exact: %s Tr = %.15g, python %.15g (relative %.3g)", u.Name, tr, want, r)
				}
				delete(ref.ExactTraces, u.Name)
			}
			if len(ref.ExactTraces) > 0 {
				t.Errorf("exact traces for units bitplan does not have: %v", ref.ExactTraces)
			}
			t.Logf("exact: worst relative difference %.2g (%v)", worst, time.Since(t0))

			// Δ² for every quantizer of the --quantizer flag.
			if len(ref.Quant) != 8 {
				t.Errorf("reference has %d quantizers, want 8", len(ref.Quant))
			}
			for spec, units := range ref.Quant {
				var q sensitivity.Quantizer
				q.Asymmetric = strings.Contains(spec, "asymmetric")
				q.PerTensor = strings.Contains(spec, "per-tensor")
				q.MSE = strings.Contains(spec, "mse")
				for _, u := range e.Units() {
					wts, err := e.Weights(u.Name)
					if err != nil {
						t.Fatal(err)
					}
					axis := 0
					if len(u.WeightShape) == 2 && u.WeightShape[0] != u.OutChannels {
						axis = 1
					}
					for b, want := range units[u.Name] {
						fmt.Sscan(b, &q.Bits)
						got, err := q.DeltaSq(wts, sensitivity.Layout{Shape: u.WeightShape, Axis: axis})
						if err != nil {
							t.Fatal(err)
						}
						if r := relDiff(got, want); r > torchQuantTol {
							t.Errorf("quant %s: %s %s bits: Δ² %.15g, python %.15g (relative %.3g)", spec, u.Name, b, got, want, r)
						}
					}
					if len(units[u.Name]) == 0 {
						t.Errorf("quant %s: no values for unit %s", spec, u.Name)
					}
				}
			}

			// solve on the Python table gives the plan of the Go table.
			for _, frac := range []string{"25%", "50%", "75%"} {
				spec, err := budget.Parse(budget.Size, frac)
				if err != nil {
					t.Fatal(err)
				}
				var bits [2][]int
				for k, tab := range []*sensitivity.Table{pyHut, got.Table} {
					p, err := plan.Solve(ctx, &plan.Request{Table: tab, Budgets: []plan.Budget{{Resource: "size", Spec: spec}}})
					if err != nil {
						t.Fatal(err)
					}
					for _, l := range p.Layers {
						bits[k] = append(bits[k], l.Bits)
					}
				}
				if fmt.Sprint(bits[0]) != fmt.Sprint(bits[1]) {
					t.Errorf("size %s: plan of the python table %v, of bitplan's %v", frac, bits[0], bits[1])
				}
			}
		})
	}
}
