package prune

import (
	"bytes"
	"encoding/json"
	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/plan"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// TestFineTuneRecovers prunes lenet hard, fine-tunes briefly on 64 training
// images and checks that the loss on them drops and that WriteWeights
// stores exactly the engine's trained parameters.
func TestFineTuneRecovers(t *testing.T) {
	l := load(t, "lenet")
	ds, err := data.MNIST(data.Train, 64)
	if err != nil {
		t.Fatal(err) // MNIST ships with the GoMNIST module: missing data is a failure
	}
	pp, err := Solve(t.Context(), &Request{Structure: l.st, Importance: synthImportance(t, l.e, 4), Budgets: []plan.Budget{pct(budget.Params, 0.2)}})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := Apply(l.mp, l.st, pp.Keep())
	if err != nil {
		t.Fatal(err)
	}
	pl := loadProto(t, mp)
	before, err := pl.e.Evaluate(t.Context(), ds)
	if err != nil {
		t.Fatal(err)
	}
	res, err := FineTune(t.Context(), pl.e, ds, &FineTuneSettings{Steps: 60, BatchSize: 16, LR: 0.01, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	after, err := pl.e.Evaluate(t.Context(), ds)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f → %.4f, accuracy %.3f → %.3f (mini-batch loss %.3f → %.3f)", before.Loss, after.Loss, before.Accuracy(), after.Accuracy(), res.FirstLoss, res.LastLoss)
	if !(after.Loss < before.Loss) || res.Steps != 60 {
		t.Errorf("fine-tuning did not lower the loss: %.4f → %.4f", before.Loss, after.Loss)
	}
	if err := WriteWeights(mp, pl.e); err != nil {
		t.Fatal(err)
	}
	again := loadProto(t, mp)
	th1, th2 := pl.e.Theta(), again.e.Theta()
	for i := range th1 {
		if float32(th1[i]) != float32(th2[i]) {
			t.Fatalf("θ[%d]: written %v, engine %v", i, th2[i], th1[i])
		}
	}
}

func TestFineTuneErrors(t *testing.T) {
	l := load(t, "lenet")
	ds, err := data.MNIST(data.Train, 4)
	if err != nil {
		t.Fatal(err) // MNIST ships with the GoMNIST module: missing data is a failure
	}
	for _, s := range []FineTuneSettings{{Steps: -1}, {BatchSize: -2}, {LR: -1}, {Momentum: 1}} {
		if _, err := FineTune(t.Context(), l.e, ds, &s); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

func TestReportFormats(t *testing.T) {
	l := load(t, "rescnn")
	pp, err := Solve(t.Context(), &Request{Structure: l.st, Importance: synthImportance(t, l.e, 1), Joint: true, Bits: []int{4, 8},
		Budgets: []plan.Budget{pct(budget.Size, 0.2)}, Model: "rescnn"})
	if err != nil {
		t.Fatal(err)
	}
	f := 0.97
	pp.Pruning.Accuracy = &plan.Accuracy{Samples: 10, Original: 0.99, Pruned: 0.9, FineTuned: &f, Steps: 5}
	for _, f := range []plan.Format{plan.Text, plan.Markdown, plan.CSV, plan.JSON} {
		var b bytes.Buffer
		if err := pp.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		s := b.String()
		for _, want := range []string{"/conv2/Conv"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s report lacks %q:\n%s", f, want, s)
			}
		}
		if f == plan.JSON {
			var m map[string]any
			if err := json.Unmarshal(b.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"status", "objective", "bound", "gap", "layers", "usage"} {
				if _, ok := m[k]; !ok {
					t.Errorf("JSON lacks %q", k)
				}
			}
			if layers := m["layers"].([]any); layers[0].(map[string]any)["bits"] == nil {
				t.Error("layers lack bits")
			}
		}
		if f == plan.Text && (!strings.Contains(s, "fine-tuned") || !strings.Contains(s, "Left intact")) {
			t.Errorf("text report:\n%s", s)
		}
	}
}

// TestFineTuneQuantizeSTE checks the straight-through step: one full-batch
// step from θ0 lands at θ0 − η ∇L(Q(θ0)) (the gradient at the quantized
// point applied to the float θ), and the engine ends at that float θ, not
// at its quantized copy.
func TestFineTuneQuantizeSTE(t *testing.T) {
	l := load(t, "lenet")
	ds, err := data.MNIST(data.Train, 8)
	if err != nil {
		t.Fatal(err) // MNIST ships with the GoMNIST module: missing data is a failure
	}
	const step, lr = 0.01, 0.05
	quantize := func(dst, theta []float64) {
		for i, v := range theta {
			dst[i] = step * math.Round(v/step)
		}
	}
	theta0 := l.e.Theta()
	q0 := make([]float64, len(theta0))
	quantize(q0, theta0)
	if err := l.e.SetTheta(q0); err != nil {
		t.Fatal(err)
	}
	g := make([]float64, len(theta0))
	if _, err := l.e.Gradient(t.Context(), ds, g); err != nil {
		t.Fatal(err)
	}
	if err := l.e.SetTheta(theta0); err != nil {
		t.Fatal(err)
	}
	calls := 0
	if _, err := FineTune(t.Context(), l.e, ds, &FineTuneSettings{Steps: 1, BatchSize: 8, LR: lr, Seed: 3,
		Quantize: func(dst, theta []float64) { calls++; quantize(dst, theta) }}); err != nil {
		t.Fatal(err)
	}
	got := l.e.Theta()
	moved := 0
	for i := range got {
		want := theta0[i] - lr*g[i]
		if math.Abs(got[i]-want) > 1e-9*(1+math.Abs(want)) {
			t.Fatalf("θ[%d] = %.12g after the step, want θ0 − η∇L(Q(θ0)) = %.12g (θ0 %.12g)", i, got[i], want, theta0[i])
		}
		if got[i] != theta0[i] && got[i] != step*math.Round(got[i]/step) {
			moved++
		}
	}
	if moved == 0 || calls != 2 {
		t.Errorf("%d parameters off the grid after the step (want the float θ), Quantize called %d times (want 2)", moved, calls)
	}
}

// TestFineTuneInputs: fine-tuning a model of two inputs (tiny_bert's token
// ids and attention mask) takes one full-batch step exactly as the
// engine's gradient on the whole set says, and more steps lower the loss.
func TestFineTuneInputs(t *testing.T) {
	l := loadZoo(t, "tiny_bert", "op13")
	const n = 16
	r := rand.New(rand.NewPCG(3, 4))
	xs := zooInputs(r, l, n)
	labels := make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(3)
	}
	var arrays []*data.Array
	var names []string
	for i, in := range l.e.Inputs() {
		arrays = append(arrays, &data.Array{Shape: append([]int{n}, in.Sample...), DType: "<f8", Float: xs[i]})
		names = append(names, in.Name)
	}
	ds, err := data.NewArrays(names, arrays, labels)
	if err != nil {
		t.Fatal(err)
	}
	theta := slices.Clone(l.e.Theta())
	grad := make([]float64, len(theta))
	before, err := l.e.Gradient(t.Context(), ds, grad)
	if err != nil {
		t.Fatal(err)
	}
	const lr = 0.05
	if _, err := FineTune(t.Context(), l.e, ds, &FineTuneSettings{Steps: 1, BatchSize: n, LR: lr}); err != nil {
		t.Fatal(err)
	}
	got := l.e.Theta()
	for i := range theta {
		if want := theta[i] - lr*grad[i]; math.Abs(got[i]-want) > 1e-12*max(1, math.Abs(want)) {
			t.Fatalf("θ[%d] = %v after one full-batch step, want %v", i, got[i], want)
		}
	}
	if _, err := FineTune(t.Context(), l.e, ds, &FineTuneSettings{Steps: 30, BatchSize: 8, LR: lr, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	after, err := l.e.Evaluate(t.Context(), ds)
	if err != nil {
		t.Fatal(err)
	}
	if !(after.Loss < before.Loss) {
		t.Errorf("fine-tuning did not lower the loss: %.4f → %.4f", before.Loss, after.Loss)
	}
}
