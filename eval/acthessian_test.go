package eval

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// exactInputDiagonal returns, per unit of names, the exact diagonal of
// the Hessian with respect to its input over all of ds (sample-major),
// from InputHVP with one unit vector per coordinate, and the inputs.
func exactInputDiagonal(t *testing.T, e *nn.Engine, ds data.Dataset, names []string) (diag, x [][]float64) {
	t.Helper()
	ctx := context.Background()
	diag, x = make([][]float64, len(names)), make([][]float64, len(names))
	const k = 64
	dirs := make([]int, k)
	for u, name := range names {
		var mu sync.Mutex
		for q0 := 0; ; q0 += k {
			done := false
			err := e.InputHVP(ctx, ds, []string{name}, dirs, func(c *nn.InputChunk) {
				per := len(c.X[0]) / c.N
				for j := 0; j < k; j++ {
					if q := q0 + j - c.Start*per; q >= 0 && q < len(c.X[0]) {
						c.V[j][0][q] = 1
					}
				}
			}, func(c *nn.InputChunk) error {
				mu.Lock()
				defer mu.Unlock()
				per := len(c.X[0]) / c.N
				if diag[u] == nil {
					diag[u], x[u] = make([]float64, ds.Len()*per), make([]float64, ds.Len()*per)
				}
				copy(x[u][c.Start*per:], c.X[0])
				for j := 0; j < k; j++ {
					if q := q0 + j - c.Start*per; q >= 0 && q < len(c.X[0]) {
						diag[u][q0+j] = c.HV[j][0][q]
					}
				}
				done = q0+k >= ds.Len()*per
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if done {
				break
			}
		}
	}
	return diag, x
}

// actCase is LeNet in float64 on 4 of its reference samples with
// candidates W4A4, W4A8 and W8A8.
func actCase(t *testing.T) (*nn.Engine, data.Dataset, *sensitivity.Table) {
	t.Helper()
	m, err := model.Load(lenetPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "testdata", "ref", "lenet")
	all, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ds := data.Head(all, 4)
	tbl := &sensitivity.Table{Model: "lenet"}
	for _, u := range e.Units() {
		tbl.Layers = append(tbl.Layers, sensitivity.Layer{Name: u.Name, Params: float64(u.WeightSize), AvgTrace: 1,
			DeltaSq: map[string]float64{"4": 1, "w4a8": 1, "8": 0.01}})
	}
	return e, ds, tbl
}

// The activation traces and diagonal sums of ActivationTerm against the
// exact diagonal of every LeNet layer's input Hessian (unit-vector
// products over the 4 samples' inputs): over 6 seeds of 20 probes the 95 %
// Student-t intervals cover the exact values at the stated rate (at least
// 85 % of the 6 × 5 layers × 3 quantities = 90 intervals; 14 misses of
// 90 have a binomial probability below 0.1 % at 95 % coverage), the
// pooled estimates lie within 4 standard errors and order the layers as
// the exact values do, E‖Δa‖² equals the quantizer's squared error summed
// by hand, and Ω adds the term.
func TestActivationTermAgainstExact(t *testing.T) {
	e, ds, tbl := actCase(t)
	ctx := context.Background()
	var names []string
	for _, l := range tbl.Layers {
		names = append(names, l.Name)
	}
	diag, xs := exactInputDiagonal(t, e, ds, names)
	ranges, err := Calibrate(ctx, e, ds)
	if err != nil {
		t.Fatal(err)
	}
	n := float64(ds.Len())
	type want struct{ avg, sq4, sq8, w4, w8 float64 }
	exact := make([]want, len(names))
	for u, name := range names {
		var tr float64
		for _, d := range diag[u] {
			tr += d
		}
		exact[u].avg = tr / (float64(len(diag[u])) / n)
		for _, bits := range []int{4, 8} {
			q, err := NewActQuantizer(bits, ranges[name])
			if err != nil {
				t.Fatal(err)
			}
			qx := append([]float64(nil), xs[u]...)
			q.Quantize(qx)
			var sq, w float64
			for j := range qx {
				d := qx[j] - xs[u][j]
				sq += d * d
				w += diag[u][j] * d * d
			}
			if bits == 4 {
				exact[u].sq4, exact[u].w4 = sq/n, w
			} else {
				exact[u].sq8, exact[u].w8 = sq/n, w
			}
		}
	}
	const seeds, probes = 6, 20
	const tq = 2.093 // Student t, 19 degrees of freedom, 97.5 %
	covered, total := 0, 0
	sum, se2 := make([][3]float64, len(names)), make([][3]float64, len(names))
	for seed := uint64(1); seed <= seeds; seed++ {
		tb := clone(tbl)
		res, err := ActivationTerm(ctx, e, ds, tb, &ActivationSettings{Trace: &hessian.Settings{Seed: seed, MinProbes: probes, MaxProbes: probes}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Layers) != len(names) || res.Traces.Probes != probes {
			t.Fatalf("%d layers, %d probes", len(res.Layers), res.Traces.Probes)
		}
		for u := range names {
			l := tb.Layers[u]
			if seed == 1 {
				for key, w := range map[string]float64{"4": exact[u].sq4, "w4a8": exact[u].sq8, "8": exact[u].sq8} {
					if got := l.ActDeltaSq[key]; math.Abs(got-w) > 1e-9*(w+1e-12) {
						t.Errorf("%s: E‖Δa‖² at %s = %.10g, by hand %.10g", l.Name, key, got, w)
					}
				}
				if got, w := l.Omega("4"), 1+l.ActAvgTrace*l.ActDeltaSq["4"]; got != w {
					t.Errorf("%s: Ω(W4A4) = %v, want the weight term 1 + the activation term = %v", l.Name, got, w)
				}
			}
			est := [3]float64{l.ActAvgTrace, res.Weighted[u]["4"].Trace, res.Weighted[u]["8"].Trace}
			se := [3]float64{l.ActAvgTraceStderr, res.Weighted[u]["4"].StdErr, res.Weighted[u]["8"].StdErr}
			ex := [3]float64{exact[u].avg, exact[u].w4, exact[u].w8}
			for q := range est {
				total++
				if math.Abs(est[q]-ex[q]) <= tq*se[q] {
					covered++
				}
				sum[u][q] += est[q]
				se2[u][q] += se[q] * se[q]
			}
		}
	}
	t.Logf("activation Hessian: 95%% intervals covered the exact value %d of %d times", covered, total)
	if float64(covered) < 0.85*float64(total) {
		t.Errorf("95%% intervals covered the exact values only %d of %d times", covered, total)
	}
	// The criterion orders the layers by their A4 activation term as the
	// brute force does, wherever the exact values are apart by more than
	// 4 pooled standard errors.
	ordered := 0
	for u := range names {
		for v := range names {
			eu, ev := exact[u].avg*exact[u].sq4, exact[v].avg*exact[v].sq4
			mu, mv := sum[u][0]/seeds*exact[u].sq4, sum[v][0]/seeds*exact[v].sq4
			se := math.Sqrt(se2[u][0]*exact[u].sq4*exact[u].sq4+se2[v][0]*exact[v].sq4*exact[v].sq4) / seeds
			if eu-ev > 4*se {
				ordered++
				if !(mu > mv) {
					t.Errorf("%s above %s by the exact A4 activation term (%.4g vs %.4g), not by the estimate (%.4g vs %.4g)", names[u], names[v], eu, ev, mu, mv)
				}
			}
		}
	}
	if ordered < 4 {
		t.Errorf("only %d layer pairs apart: the ordering check tests little", ordered)
	}
	for u, name := range names {
		ex := [3]float64{exact[u].avg, exact[u].w4, exact[u].w8}
		for q, what := range []string{"Tr(H_a)/n_a", "Σ diag(H_a)·Δa² at A4", "Σ diag(H_a)·Δa² at A8"} {
			m, se := sum[u][q]/seeds, math.Sqrt(se2[u][q])/seeds
			if math.Abs(m-ex[q]) > 4*se || ex[q] <= 0 {
				t.Errorf("%s: %s: mean estimate %.6g ± %.2g over %d seeds, exact %.6g", name, what, m, se, seeds, ex[q])
			}
		}
	}
}

// On a diag table the diagonal activation term is added to the scores with
// combined standard errors; another criterion's table is refused.
func TestActivationTermDiagAndErrors(t *testing.T) {
	e, ds, tbl := actCase(t)
	ctx := context.Background()
	tb := clone(tbl)
	tb.Criterion = string(sensitivity.Diag)
	for i := range tb.Layers {
		tb.Layers[i].Scores = map[string]float64{"4": 1, "w4a8": 1, "8": 0.01}
		tb.Layers[i].ScoreStderr = map[string]float64{"4": 0.3, "w4a8": 0.3, "8": 0.001}
	}
	res, err := ActivationTerm(ctx, e, ds, tb, &ActivationSettings{Trace: &hessian.Settings{Seed: 1, MinProbes: 4, MaxProbes: 4}})
	if err != nil {
		t.Fatal(err)
	}
	for u, l := range tb.Layers {
		w := res.Weighted[u]["4"]
		if l.Scores["4"] != 1+w.Trace || l.Scores["w4a8"] != 1+res.Weighted[u]["w4a8"].Trace || math.Abs(l.ScoreStderr["4"]-math.Hypot(0.3, w.StdErr)) > 1e-15 {
			t.Errorf("%s: scores %v ± %v, activation term at A4 %v ± %v", l.Name, l.Scores, l.ScoreStderr, w.Trace, w.StdErr)
		}
	}
	tb = clone(tbl)
	tb.Criterion = string(sensitivity.Fisher)
	if _, err := ActivationTerm(ctx, e, ds, tb, nil); err == nil {
		t.Error("a fisher table was accepted")
	}
	tb = clone(tbl)
	tb.Layers[0].Name = "nope"
	if _, err := ActivationTerm(ctx, e, ds, tb, nil); err == nil {
		t.Error("a layer that is not a unit was accepted")
	}
}

// On fmnist_rescnn, /conv1/Conv loses much more at W4A4 than at W4A8
// (measured, that layer alone quantized: the study's case), which
// HAWQ-V3's weight-only Ω cannot see (the two candidates have the same
// ΔW, so their Ω tie); with the activation term the Hessian criterion
// puts W4A4 above W4A8 by more than 3 standard errors of the term. (The
// term is second order and isotropic: it predicts far less than the
// measured increase, see docs/validation.md.)
func TestActivationTermOrdersW4A4OnResCNN(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "testdata", "models", "fmnist_rescnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	train, err := data.FashionMNIST(data.Train)
	if err != nil {
		t.Fatal(err) // .ci/run installs dataset-fashion-mnist: absent is a failure
	}
	calib, err := data.Rows(train, seq(64))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := &hessian.Settings{Seed: 1, MinProbes: 6, MaxProbes: 6}
	s, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: calib, Method: plan.Hutchinson, Trace: set,
		Candidates: []sensitivity.Precision{{W: 4, A: 4}, {W: 4, A: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	const name = "/conv1/Conv"
	tbl := s.Table
	idx := -1
	for i, l := range tbl.Layers {
		if l.Name == name {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatalf("no layer %s", name)
	}
	base, err := e.Evaluate(ctx, calib)
	if err != nil {
		t.Fatal(err)
	}
	var meas [2]float64
	for j, a := range []int{4, 8} {
		ap, err := Apply(ctx, e, []Layer{{Name: name, Bits: 4, ABits: a}}, calib, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.Evaluate(ctx, calib)
		ap.Restore()
		if err != nil {
			t.Fatal(err)
		}
		meas[j] = r.Loss - base.Loss
	}
	w := tbl.Layers[idx]
	if w.Omega("4") != w.Omega("w4a8") {
		t.Fatalf("weight-only Ω: W4A4 %v, W4A8 %v (expected a tie)", w.Omega("4"), w.Omega("w4a8"))
	}
	if meas[0] < 10*math.Max(meas[1], 1e-4) {
		t.Fatalf("measured: W4A4 %.4g is not far above W4A8 %.4g; the case no longer tests anything", meas[0], meas[1])
	}
	quad := clone(tbl)
	if _, err := ActivationTerm(ctx, e, calib, tbl, &ActivationSettings{Trace: set}); err != nil {
		t.Fatal(err)
	}
	// The exact quadratic form along the error sees most of the measured
	// gap (the isotropic term assumes the error spread evenly over the
	// curvature; at 4 bits the small post-ReLU values all round to 0).
	if _, err := ActivationTerm(ctx, e, calib, quad, &ActivationSettings{Quadratic: true}); err != nil {
		t.Fatal(err)
	}
	q4, q8 := quad.Layers[idx].Omega("4"), quad.Layers[idx].Omega("w4a8")
	t.Logf("%s: quadratic Ω W4A4 %.4g, W4A8 %.4g", name, q4, q8)
	if !(q4 > 5*q8) {
		t.Errorf("%s: quadratic Ω at W4A4 %.4g not above 5× W4A8's %.4g (measured %.4g vs %.4g)", name, q4, q8, meas[0], meas[1])
	}
	l := tbl.Layers[idx]
	o4, o8 := l.Omega("4"), l.Omega("w4a8")
	se := l.ActAvgTraceStderr * (l.ActDeltaSq["4"] - l.ActDeltaSq["w4a8"])
	t.Logf("%s: measured loss increase W4A4 %.4g, W4A8 %.4g; Ω W4A4 %.4g, W4A8 %.4g (weight term %.4g, activation term at A4 %.4g ± %.2g)",
		name, meas[0], meas[1], o4, o8, w.Omega("4"), l.ActAvgTrace*l.ActDeltaSq["4"], l.ActAvgTraceStderr*l.ActDeltaSq["4"])
	if !(o4-o8 > 3*se) {
		t.Errorf("%s: Ω at W4A4 %.4g, at W4A8 %.4g: want W4A4 above W4A8 by more than 3 standard errors (%.2g), as measured (%.4g vs %.4g)", name, o4, o8, se, meas[0], meas[1])
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func clone(t *sensitivity.Table) *sensitivity.Table {
	c := *t
	c.Layers = make([]sensitivity.Layer, len(t.Layers))
	for i, l := range t.Layers {
		c.Layers[i] = l
		c.Layers[i].DeltaSq = cloneMap(l.DeltaSq)
		c.Layers[i].Scores = cloneMap(l.Scores)
		c.Layers[i].ScoreStderr = cloneMap(l.ScoreStderr)
		c.Layers[i].ActDeltaSq = cloneMap(l.ActDeltaSq)
	}
	return &c
}

func cloneMap(m map[string]float64) map[string]float64 {
	if m == nil {
		return nil
	}
	c := make(map[string]float64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// The quadratic activation term against second differences of the loss
// along the quantizer's error, applied to each LeNet layer's input through
// an input quantizer (x + ε·(Q(x) − x)); Ω is the weight term plus it.
func TestActivationTermQuadratic(t *testing.T) {
	e, ds, tbl := actCase(t)
	ctx := context.Background()
	tb := clone(tbl)
	res, err := ActivationTerm(ctx, e, ds, tb, &ActivationSettings{Quadratic: true})
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := Calibrate(ctx, e, ds)
	if err != nil {
		t.Fatal(err)
	}
	base, err := e.Evaluate(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	const eps = 1e-3
	for k, li := range res.Layers {
		l := tb.Layers[li]
		for _, key := range []string{"4", "8"} {
			p, _ := sensitivity.ParsePrecision(key)
			q, err := NewActQuantizer(p.A, ranges[l.Name])
			if err != nil {
				t.Fatal(err)
			}
			loss := func(s float64) float64 {
				if err := e.SetInputQuantizer(l.Name, func(x []float64) {
					y := append([]float64(nil), x...)
					q.Quantize(y)
					for j := range x {
						x[j] += s * (y[j] - x[j])
					}
				}); err != nil {
					t.Fatal(err)
				}
				r, err := e.Evaluate(ctx, ds)
				if err != nil {
					t.Fatal(err)
				}
				e.ClearInputQuantizers()
				return r.Loss
			}
			fd := (loss(eps) - 2*base.Loss + loss(-eps)) / (eps * eps)
			got := res.Quadratic[k][key]
			if math.Abs(got-fd) > 1e-3*math.Abs(fd)+1e-9 {
				t.Errorf("%s at %s: Δaᵀ H_a Δa = %.8g, second difference %.8g", l.Name, key, got, fd)
			}
			if w := l.AvgTrace*l.DeltaSq[key] + got; l.Omega(key) != w {
				t.Errorf("%s at %s: Ω %v, want the weight term + the quadratic term %v", l.Name, key, l.Omega(key), w)
			}
		}
	}
	if tb.Criterion != string(sensitivity.Hessian) || res.Traces != nil {
		t.Errorf("criterion %q, traces %v", tb.Criterion, res.Traces)
	}
}

// An estimate continued from a pilot (ActivationSettings.Continue) equals
// the same estimate from scratch, and a pilot of other settings or layers
// is refused.
func TestActivationTermContinue(t *testing.T) {
	e, ds, tbl := actCase(t)
	ctx := context.Background()
	fixed := func(n int) *hessian.Settings { return &hessian.Settings{Seed: 3, MinProbes: n, MaxProbes: n} }
	want, err := ActivationTerm(ctx, e, ds, clone(tbl), &ActivationSettings{Trace: fixed(9)})
	if err != nil {
		t.Fatal(err)
	}
	pilot, err := ActivationTerm(ctx, e, ds, clone(tbl), &ActivationSettings{Trace: fixed(4)})
	if err != nil {
		t.Fatal(err)
	}
	tb := clone(tbl)
	got, err := ActivationTerm(ctx, e, ds, tb, &ActivationSettings{Trace: fixed(9), Continue: pilot})
	if err != nil {
		t.Fatal(err)
	}
	if got.Traces.Probes != 9 || got.Traces.Matvecs != 5 {
		t.Errorf("continued: %d probes, %d computed; want 9, 5", got.Traces.Probes, got.Traces.Matvecs)
	}
	for k := range want.Traces.Blocks {
		if g, w := got.Traces.Blocks[k], want.Traces.Blocks[k]; math.Abs(g.Trace-w.Trace) > 1e-12*math.Abs(w.Trace) || math.Abs(g.StdErr-w.StdErr) > 1e-12*w.StdErr {
			t.Errorf("block %d: continued %+v, from scratch %+v", k, g, w)
		}
		for key, w := range want.Weighted[k] {
			if g := got.Weighted[k][key]; math.Abs(g.Trace-w.Trace) > 1e-12*math.Abs(w.Trace) {
				t.Errorf("block %d at %s: weighted sum continued %v, from scratch %v", k, key, g.Trace, w.Trace)
			}
		}
	}
	if tb.Layers[0].ActAvgTrace == 0 {
		t.Error("the continued estimate did not set the table's activation traces")
	}
	if _, err := ActivationTerm(ctx, e, ds, clone(tbl), &ActivationSettings{Trace: &hessian.Settings{Seed: 4, MinProbes: 9, MaxProbes: 9}, Continue: pilot}); err == nil {
		t.Error("a pilot of another seed was continued")
	}
	short := clone(tbl)
	short.Layers = short.Layers[1:]
	if _, err := ActivationTerm(ctx, e, ds, short, &ActivationSettings{Trace: fixed(9), Continue: pilot}); err == nil {
		t.Error("a pilot over other layers was continued")
	}
}

// exactInputTraces returns, per unit of names, the exact trace of the
// Hessian with respect to its input averaged over the samples of ds, and
// every sample's own trace: one direction per coordinate of a sample's
// input, set on every sample at once (the Hessian is block diagonal over
// samples).
func exactInputTraces(t *testing.T, e *nn.Engine, ds data.Dataset, names []string) (avg []float64, per [][]float64) {
	t.Helper()
	ctx := context.Background()
	const k = 64
	avg, per = make([]float64, len(names)), make([][]float64, len(names))
	for u, name := range names {
		per[u] = make([]float64, ds.Len())
		var mu sync.Mutex
		for q0, size := 0, 1; q0 < size; q0 += k {
			dirs := make([]int, k)
			err := e.InputHVP(ctx, ds, []string{name}, dirs, func(c *nn.InputChunk) {
				size = len(c.X[0]) / c.N
				for j := 0; j < k && q0+j < size; j++ {
					for s := 0; s < c.N; s++ {
						c.V[j][0][s*size+q0+j] = 1
					}
				}
			}, func(c *nn.InputChunk) error {
				mu.Lock()
				defer mu.Unlock()
				for j := 0; j < k && q0+j < size; j++ {
					for s := 0; s < c.N; s++ {
						x := c.HV[j][0][s*size+q0+j] * float64(ds.Len())
						per[u][c.Start+s] += x
						avg[u] += x / float64(ds.Len())
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return avg, per
}

var (
	updateActExact = flag.Bool("update-act-exact", false, "recompute testdata/ref/lenet/act_exact.json (exact activation traces, about 30 s)")
	actSeeds       = flag.Int("act-coverage-seeds", 16, "seeds of TestActivationImportanceAgainstExact (docs/probes.md: 1000)")
)

// actExactPath holds the exact activation traces of LeNet on its 32
// reference samples (exactInputTraces; -update-act-exact rewrites it).
var actExactPath = filepath.Join("..", "testdata", "ref", "lenet", "act_exact.json")

// The importance-sampled activation traces (the default design after a
// 4-probe pilot) against the exact traces of LeNet on its 32 reference
// samples, whose per-sample curvature spans four orders of magnitude:
// the design is used, the mean over the seeds is within 4 standard
// errors of the exact trace on every layer, and the library's 95 %
// intervals cover it at least 75 % of the time at the default 16 seeds
// (93–97 % at 1,000, -act-coverage-seeds 1000: docs/probes.md).
func TestActivationImportanceAgainstExact(t *testing.T) {
	e, _, _ := actCase(t)
	dir := filepath.Join("..", "testdata", "ref", "lenet")
	ds, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tbl := &sensitivity.Table{Model: "lenet"}
	for _, u := range e.Units() {
		names = append(names, u.Name)
		tbl.Layers = append(tbl.Layers, sensitivity.Layer{Name: u.Name, Params: float64(u.WeightSize), AvgTrace: 1,
			DeltaSq: map[string]float64{"4": 1, "8": 0.01}})
	}
	var exact struct {
		Note   string    `json:"note"`
		Layers []string  `json:"layers"`
		Traces []float64 `json:"traces"`
	}
	if *updateActExact {
		exact.Note = "exact Tr(H_a) (mean over the 32 samples of testdata/ref/lenet) of every LeNet layer's input, float64: go test ./eval -run TestActivationImportanceAgainstExact -update-act-exact"
		exact.Layers = names
		exact.Traces, _ = exactInputTraces(t, e, ds, names)
		b, err := json.MarshalIndent(exact, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(actExactPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(actExactPath)
	if err != nil {
		t.Fatalf("%v (go test ./eval -run TestActivationImportanceAgainstExact -update-act-exact makes it)", err)
	}
	if err := json.Unmarshal(b, &exact); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(exact.Layers, names) {
		t.Fatalf("%s is over layers %v, the model has %v", actExactPath, exact.Layers, names)
	}
	ctx := context.Background()
	seeds := *actSeeds
	const probes = 16
	sum, sum2 := make([]float64, len(names)), make([]float64, len(names))
	covered := make([]int, len(names))
	used := 0
	var batch float64
	for seed := 1; seed <= seeds; seed++ {
		res, err := ActivationTerm(ctx, e, ds, clone(tbl), &ActivationSettings{Trace: &hessian.Settings{Seed: uint64(seed), MinProbes: probes, MaxProbes: probes}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Design != nil {
			used++
			batch += res.Design.Expected()
		}
		for k, b := range res.Traces.Blocks {
			sum[k] += b.Trace
			sum2[k] += b.Trace * b.Trace
			if b.Lo <= exact.Traces[k] && exact.Traces[k] <= b.Hi {
				covered[k]++
			}
		}
	}
	if used < seeds*3/4 {
		t.Fatalf("the importance design was used in %d of %d runs", used, seeds)
	}
	t.Logf("design in %d of %d runs, expected batch %.1f of %d samples", used, seeds, batch/float64(used), ds.Len())
	n := float64(seeds)
	for k, name := range names {
		m := sum[k] / n
		sd := math.Sqrt(max(0, sum2[k]/n-m*m))
		cov := float64(covered[k]) / n
		t.Logf("%s: exact %.5g, mean %.5g (z %.2f), relative SD of a run %.3f, coverage %.1f %%", name, exact.Traces[k], m, (m-exact.Traces[k])/(sd/math.Sqrt(n)), sd/m, 100*cov)
		if math.Abs(m-exact.Traces[k]) > 4*sd/math.Sqrt(n) {
			t.Errorf("%s: mean %.6g over %d seeds, exact %.6g (SD %.3g): biased", name, m, seeds, exact.Traces[k], sd)
		}
		lo := 0.75
		if seeds >= 1000 {
			lo = 0.93
		}
		if cov < lo || (seeds >= 1000 && cov > 0.97) {
			t.Errorf("%s: 95 %% intervals covered the exact trace in %.1f %% of %d runs", name, 100*cov, seeds)
		}
	}
}
