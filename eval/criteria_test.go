package eval

import (
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// criteriaCase is LeNet on 16 of its reference samples with a table of
// four candidates (W2A8, W4A8, W8A8 and W4A16, whose 16-bit input is
// nearly float) and float biases, so that the brute-force computations
// below need not round biases.
func criteriaCase(t *testing.T) (*nn.Engine, data.Dataset, *sensitivity.Table, *ScoreSettings) {
	t.Helper()
	e := lenet(t)
	dir := filepath.Join("..", "testdata", "ref", "lenet")
	all, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ds := data.Head(all, 16)
	tbl := &sensitivity.Table{Model: "lenet"}
	for _, u := range e.Units() {
		w, err := e.Weights(u.Name)
		if err != nil {
			t.Fatal(err)
		}
		l := sensitivity.Layer{Name: u.Name, Params: float64(u.WeightSize), AvgTrace: 1, DeltaSq: map[string]float64{}}
		for _, k := range []string{"w2a8", "w4a8", "8", "w4a16"} {
			p, _ := sensitivity.ParsePrecision(k)
			if l.DeltaSq[k], err = (sensitivity.Quantizer{Bits: p.W}).DeltaSq(w, weightLayout(u)); err != nil {
				t.Fatal(err)
			}
		}
		tbl.Layers = append(tbl.Layers, l)
	}
	return e, ds, tbl, &ScoreSettings{Settings: Settings{FloatBias: true}}
}

// lossAlong returns the calibration loss at θ = theta + s·d on
// θ[off:off+len(d)], as a function of s (it leaves the engine there).
func lossAlong(t *testing.T, e *nn.Engine, ds data.Dataset, theta []float64, off int, d []float64) func(s float64) float64 {
	return func(s float64) float64 {
		th := append([]float64(nil), theta...)
		for j := range d {
			th[off+j] += s * d[j]
		}
		if err := e.SetTheta(th); err != nil {
			t.Fatal(err)
		}
		r, err := e.Evaluate(context.Background(), ds)
		if err != nil {
			t.Fatal(err)
		}
		return r.Loss
	}
}

func unitOf(t *testing.T, e *nn.Engine, name string) nn.UnitLayout {
	for _, u := range e.Units() {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no unit %q", name)
	return nn.UnitLayout{}
}

func TestScoreWeightIsDeltaSq(t *testing.T) {
	e, ds, tbl, set := criteriaCase(t)
	if err := Score(context.Background(), e, ds, tbl, sensitivity.Weight, set); err != nil {
		t.Fatal(err)
	}
	for _, l := range tbl.Layers {
		for k, d := range l.DeltaSq {
			if l.Omega(k) != d {
				t.Errorf("%s at %s: weight Ω %v, want Δ² %v", l.Name, k, l.Omega(k), d)
			}
		}
	}
	if tbl.Criterion != "weight" {
		t.Errorf("criterion %q", tbl.Criterion)
	}
}

// Taylor's |∇L·ΔW| against a central finite difference of the loss along
// ΔW (no gradient code involved).
func TestScoreTaylorAgainstFiniteDifferences(t *testing.T) {
	e, ds, tbl, set := criteriaCase(t)
	ctx := context.Background()
	if err := Score(ctx, e, ds, tbl, sensitivity.Taylor, set); err != nil {
		t.Fatal(err)
	}
	theta := e.Theta()
	// A step small against ΔW's third-order terms (a 2-bit ΔW is large)
	// and against the kinks of ReLU and max pooling.
	const h = 1e-5
	for _, l := range tbl.Layers {
		u := unitOf(t, e, l.Name)
		for _, k := range []string{"w2a8", "8"} {
			p, _ := sensitivity.ParsePrecision(k)
			d, err := quantError(e, u, sensitivity.Quantizer{}, p.W)
			if err != nil {
				t.Fatal(err)
			}
			loss := lossAlong(t, e, ds, theta, u.WeightOffset, d)
			// One-sided differences: max pooling over equal values (a
			// ReLU's zeros) has a kink at the float weights, where the
			// gradient is one of the one-sided derivatives.
			l0, lp, lm := loss(0), loss(h), loss(-h)
			fwd, bwd := (lp-l0)/h, (l0-lm)/h
			if err := e.SetTheta(theta); err != nil {
				t.Fatal(err)
			}
			got := l.Omega(k)
			lo, hi := math.Min(math.Abs(fwd), math.Abs(bwd)), math.Max(math.Abs(fwd), math.Abs(bwd))
			tol := 1e-3*hi + 1e-10
			if got < lo-tol || got > hi+tol {
				t.Errorf("%s at %s: taylor Ω %.8g, one-sided finite differences %.8g and %.8g", l.Name, k, got, fwd, bwd)
			}
		}
	}
}

// Measured against quantizing by hand: the weights through the quantizer
// and SetWeights, the input through a quantizer on its calibrated range.
func TestScoreMeasuredAgainstHandQuantization(t *testing.T) {
	e, ds, tbl, set := criteriaCase(t)
	ctx := context.Background()
	if err := Score(ctx, e, ds, tbl, sensitivity.Measured, set); err != nil {
		t.Fatal(err)
	}
	base, err := e.Evaluate(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	theta := e.Theta()
	for _, l := range tbl.Layers {
		u := unitOf(t, e, l.Name)
		for _, k := range []string{"w2a8", "w4a8"} {
			p, _ := sensitivity.ParsePrecision(k)
			d, err := quantError(e, u, sensitivity.Quantizer{}, p.W)
			if err != nil {
				t.Fatal(err)
			}
			w, _ := e.Weights(u.Name)
			for j := range w {
				w[j] += d[j]
			}
			if err := e.SetWeights(u.Name, w); err != nil {
				t.Fatal(err)
			}
			ranges, err := Calibrate(ctx, e, ds)
			if err != nil {
				t.Fatal(err)
			}
			q, err := NewActQuantizer(p.A, ranges[u.Name])
			if err != nil {
				t.Fatal(err)
			}
			if err := e.SetInputQuantizer(u.Name, q.Func()); err != nil {
				t.Fatal(err)
			}
			r, err := e.Evaluate(ctx, ds)
			if err != nil {
				t.Fatal(err)
			}
			e.ClearInputQuantizers()
			if err := e.SetTheta(theta); err != nil {
				t.Fatal(err)
			}
			want := r.Loss - base.Loss
			if got := l.Omega(k); math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
				t.Errorf("%s at %s: measured Ω %.10g, by hand %.10g", l.Name, k, got, want)
			}
		}
	}
}

// Fisher against a per-sample brute force on the fully connected layers:
// each sample's own output gradient (a one-sample pass) and Δy = x·ΔWᵀ
// from the layer's input; at W4A16 the input's rounding is negligible.
func TestScoreFisherAgainstPerSample(t *testing.T) {
	e, ds, tbl, set := criteriaCase(t)
	ctx := context.Background()
	if err := Score(ctx, e, ds, tbl, sensitivity.Fisher, set); err != nil {
		t.Fatal(err)
	}
	m := e.Model()
	size := data.SampleSize(ds)
	checked := 0
	for _, l := range tbl.Layers {
		u := unitOf(t, e, l.Name)
		if u.Op != "Gemm" {
			continue
		}
		node := m.Nodes[m.Unit(u.Name).Node]
		in, out := node.Inputs[0], node.Outputs[0]
		nOut, nIn := u.WeightShape[0], u.WeightShape[1]
		d, err := quantError(e, u, sensitivity.Quantizer{}, 4)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for s := 0; s < ds.Len(); s++ {
			one, err := data.Rows(ds, []int{s})
			if err != nil {
				t.Fatal(err)
			}
			_, g, err := e.TensorGradients(one, []string{out})
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float64, size)
			if err := ds.Read(s, x, make([]int, 1)); err != nil {
				t.Fatal(err)
			}
			xs, err := e.TensorValues(x, 1, []string{in})
			if err != nil {
				t.Fatal(err)
			}
			for j := 0; j < nOut; j++ {
				dy := 0.0
				for k := 0; k < nIn; k++ {
					dy += xs[0][k] * d[j*nIn+k]
				}
				want += g[0][j] * g[0][j] * dy * dy
			}
		}
		want /= 2 * float64(ds.Len())
		got := l.Omega("w4a16")
		if math.Abs(got-want) > 2e-3*want {
			t.Errorf("%s: fisher Ω at w4a16 %.8g, per-sample brute force %.8g", l.Name, got, want)
		}
		if l.Omega("w2a8") <= l.Omega("8") {
			t.Errorf("%s: fisher Ω at W2A8 %.4g not above W8A8's %.4g", l.Name, l.Omega("w2a8"), l.Omega("8"))
		}
		checked++
	}
	if checked != 3 {
		t.Fatalf("checked %d Gemm layers, want LeNet's 3", checked)
	}
}

func TestScoreRefusesHessianCriteria(t *testing.T) {
	e, ds, tbl, set := criteriaCase(t)
	for _, c := range []sensitivity.Criterion{sensitivity.Hessian, sensitivity.Diag, "bogus"} {
		if err := Score(context.Background(), e, ds, tbl, c, set); err == nil {
			t.Errorf("criterion %q accepted", c)
		}
	}
}

// Fisher on an LSTM node that the graph reads through Y_h only
// (fmnist_lstm: torch's last hidden state; Y is unused): the score of the
// input weights W and of the recurrent weights R is the per-sample brute
// force over Y_h, (1/2N) Σ_s Σ_j (∂ℓ_s/∂Y_h · ΔY_h)², with ΔY_h measured
// with that weight alone quantized (W2; the 16-bit input's rounding is
// negligible), and not the zero that Y's vanishing gradient would give.
func TestScoreFisherLSTMHiddenState(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "testdata", "models", "fmnist_lstm.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	rng := rand.New(rand.NewPCG(4, 4))
	x := make([]float64, n*28*28)
	y := make([]int, n)
	for i := range x {
		x[i] = rng.Float64()
	}
	for i := range y {
		y[i] = rng.IntN(10)
	}
	ds, err := data.NewMemory(x, y, []int{1, 28, 28})
	if err != nil {
		t.Fatal(err)
	}
	tbl := &sensitivity.Table{Model: "fmnist_lstm"}
	for _, u := range e.Units() {
		tbl.Layers = append(tbl.Layers, sensitivity.Layer{Name: u.Name, Params: float64(u.WeightSize), AvgTrace: 1, DeltaSq: map[string]float64{"w2a16": 1}})
	}
	if err := Score(t.Context(), e, ds, tbl, sensitivity.Fisher, &ScoreSettings{Settings: Settings{FloatBias: true}}); err != nil {
		t.Fatal(err)
	}
	lstm := m.Nodes[m.Unit(tbl.Layers[0].Name).Node]
	hy := lstm.Outputs[1]
	theta := e.Theta()
	checked := 0
	for _, l := range tbl.Layers {
		u := unitOf(t, e, l.Name)
		if u.Op != "LSTM" {
			continue
		}
		var want float64
		for s := 0; s < n; s++ {
			one, err := data.Rows(ds, []int{s})
			if err != nil {
				t.Fatal(err)
			}
			_, g, err := e.TensorGradients(one, []string{hy})
			if err != nil {
				t.Fatal(err)
			}
			xs := x[s*28*28 : (s+1)*28*28]
			y0, err := e.TensorValues(xs, 1, []string{hy})
			if err != nil {
				t.Fatal(err)
			}
			d, err := quantError(e, u, sensitivity.Quantizer{}, 2)
			if err != nil {
				t.Fatal(err)
			}
			w, _ := e.Weights(u.Name)
			for j := range w {
				w[j] += d[j]
			}
			if err := e.SetWeights(u.Name, w); err != nil {
				t.Fatal(err)
			}
			y1, err := e.TensorValues(xs, 1, []string{hy})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.SetTheta(theta); err != nil {
				t.Fatal(err)
			}
			for j := range y1[0] {
				v := g[0][j] * (y1[0][j] - y0[0][j])
				want += v * v
			}
		}
		want /= 2 * n
		got := l.Omega("w2a16")
		if !(want > 0) || math.Abs(got-want) > 2e-3*want {
			t.Errorf("%s: fisher Ω at W2 %.8g, per-sample brute force over Y_h %.8g", l.Name, got, want)
		}
		checked++
	}
	if checked != 2 {
		t.Fatalf("checked %d LSTM units, want W and R", checked)
	}
}

// Quadratic's weight part ΔWᵀ H_ii ΔW against the full-length
// Hessian-vector product (nn.Engine.HVP, not the block-local passes) and,
// where the loss is smooth along ΔW at the step's scale (two step sizes
// agree: ReLU zeros tied under max pooling put kinks on some lines),
// against central second differences of the calibration loss (no
// derivative code); its Ω is that part plus ActivationTerm's exact
// quadratic form of the layer's input error.
func TestScoreQuadraticAgainstSecondDifferences(t *testing.T) {
	e, ds, tbl, set := criteriaCase(t)
	ctx := context.Background()
	units := map[string]nn.UnitLayout{}
	for _, u := range e.Units() {
		units[u.Name] = u
	}
	weight := make([]map[string]float64, len(tbl.Layers))
	for i := range weight {
		weight[i] = map[string]float64{}
	}
	if err := quadratic(ctx, e, ds, tbl, units, *set, weight); err != nil {
		t.Fatal(err)
	}
	theta := e.Theta()
	smooth := 0
	for i, l := range tbl.Layers {
		u := units[l.Name]
		for _, k := range []string{"w2a8", "w4a8", "8"} {
			p, _ := sensitivity.ParsePrecision(k)
			d, err := quantError(e, u, sensitivity.Quantizer{}, p.W)
			if err != nil {
				t.Fatal(err)
			}
			v, hv := [][]float64{make([]float64, e.Dim())}, [][]float64{make([]float64, e.Dim())}
			copy(v[0][u.WeightOffset:], d)
			if err := e.HVP(ctx, ds, hv, v); err != nil {
				t.Fatal(err)
			}
			var full float64
			for j := range d {
				full += d[j] * hv[0][u.WeightOffset+j]
			}
			got := weight[i][k]
			if math.Abs(got-full) > 1e-10*math.Abs(full) {
				t.Errorf("%s at %s: block-local ΔWᵀHΔW = %.12g, full-length product %.12g", l.Name, k, got, full)
			}
			if k != "w2a8" {
				continue
			}
			loss := lossAlong(t, e, ds, theta, u.WeightOffset, d)
			second := func(h float64) float64 { return (loss(h) - 2*loss(0) + loss(-h)) / (h * h) }
			fd, fd2 := second(2e-5), second(1e-5)
			if err := e.SetTheta(theta); err != nil {
				t.Fatal(err)
			}
			if math.Abs(fd-fd2) > 1e-3*math.Abs(fd2) {
				continue // a kink within the step
			}
			smooth++
			if math.Abs(got-fd2) > 1e-3*math.Abs(fd2) {
				t.Errorf("%s at %s: ΔWᵀHΔW = %.8g, second difference %.8g", l.Name, k, got, fd2)
			}
		}
	}
	if smooth < 3 {
		t.Errorf("only %d of %d layers have a smooth loss along ΔW at the steps (want ≥ 3 second-difference checks)", smooth, len(tbl.Layers))
	}
	act, w := clone(tbl), make([]map[string]float64, len(weight))
	for i := range w {
		w[i] = maps.Clone(weight[i])
	}
	if err := act.SetScores(sensitivity.Quadratic, w, nil); err != nil {
		t.Fatal(err)
	}
	res, err := ActivationTerm(ctx, e, ds, act, &ActivationSettings{Quadratic: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := Score(ctx, e, ds, tbl, sensitivity.Quadratic, set); err != nil {
		t.Fatal(err)
	}
	if tbl.Criterion != string(sensitivity.Quadratic) || len(res.Layers) != len(tbl.Layers) {
		t.Fatalf("criterion %q, %d layers with an activation term", tbl.Criterion, len(res.Layers))
	}
	for k, li := range res.Layers {
		l := tbl.Layers[li]
		for key, q := range res.Quadratic[k] {
			if want := weight[li][key] + q; math.Abs(l.Omega(key)-want) > 1e-12*math.Abs(want) {
				t.Errorf("%s at %s: Ω %v, want ΔWᵀHΔW %v + Δaᵀ H_a Δa %v", l.Name, key, l.Omega(key), weight[li][key], q)
			}
		}
	}
	if _, err := ActivationTerm(ctx, e, ds, tbl, nil); err == nil {
		t.Error("a trace activation term on a quadratic table was accepted")
	}
}
