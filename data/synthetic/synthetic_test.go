package synthetic_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/data/synthetic"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

func engine(t testing.TB, name string) *nn.Engine {
	t.Helper()
	m, err := model.Load(filepath.Join("..", "..", "testdata", "models", name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGenerate: on the residual CNN (six BatchNormalization nodes) the
// statistics loss falls by at least 100× from its start.
func TestGenerate(t *testing.T) {
	e := engine(t, "rescnn")
	ds, rep, err := synthetic.Generate(context.Background(), e, &synthetic.Settings{Samples: 8, Batch: 8, Steps: 60, LR: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 8 || rep.BatchNorms != 6 {
		t.Fatalf("%d samples, %d BatchNorms", ds.Len(), rep.BatchNorms)
	}
	t.Logf("loss %.4g → %.4g (%.0f×)", rep.Start[0], rep.End[0], rep.Start[0]/rep.End[0])
	if !(rep.End[0]*100 <= rep.Start[0]) {
		t.Errorf("loss fell from %g to %g, want at least 100×", rep.Start[0], rep.End[0])
	}
	for _, l := range ds.Labels {
		if l < 0 || l >= e.Classes() {
			t.Fatalf("label %d", l)
		}
	}
}

// TestGenerate1D: on bn1d, a Conv1d/BatchNorm1d classifier of
// Fashion-MNIST rows as 28-step sequences (Q-ASR's 1-D setting), the loss
// also falls by at least 100×.
func TestGenerate1D(t *testing.T) {
	e := engine(t, "bn1d")
	ds, rep, err := synthetic.Generate(context.Background(), e, &synthetic.Settings{Samples: 16, Batch: 16, Steps: 120, LR: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4g → %.4g (%.0f×)", rep.Start[0], rep.End[0], rep.Start[0]/rep.End[0])
	if rep.BatchNorms != 3 || fmt.Sprint(ds.SampleShape()) != "[28 28]" || !(rep.End[0]*100 <= rep.Start[0]) {
		t.Errorf("%d BatchNorms, shape %v, loss %g → %g: want 3, [28 28] and a 100× fall", rep.BatchNorms, ds.SampleShape(), rep.Start[0], rep.End[0])
	}
}

// TestBN1dAccuracy checks the committed bn1d model (its ReduceMean
// rewritten as GlobalAveragePool + Flatten) against the accuracy PyTorch
// printed when scripts/train_bn1d.py trained it: 0.8292 on the 10,000
// Fashion-MNIST test images.
func TestBN1dAccuracy(t *testing.T) {
	ds, err := data.FashionMNIST(data.Test)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	x := make([]float64, ds.Len()*784)
	y := make([]int, ds.Len())
	if err := ds.Read(0, x, y); err != nil {
		t.Fatal(err)
	}
	seq, err := data.NewMemory(x, y, []int{28, 28})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := engine(t, "bn1d").Evaluate(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ev.Accuracy()-0.8292) > 0.0005 {
		t.Errorf("accuracy %.4f, PyTorch 0.8292", ev.Accuracy())
	}
}

func TestNoBatchNorm(t *testing.T) {
	_, _, err := synthetic.Generate(context.Background(), engine(t, "lenet"), nil)
	if !errors.Is(err, synthetic.ErrNoBatchNorm) {
		t.Errorf("lenet: %v, want ErrNoBatchNorm", err)
	}
}

// TestInputGradient checks the engine's input gradient of the statistics
// loss against central finite differences along random directions.
func TestInputGradient(t *testing.T) {
	e := engine(t, "rescnn")
	bns, err := e.BatchNorms()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(bns))
	for i, b := range bns {
		names[i] = b.Input
	}
	const n = 3
	size := 28 * 28
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, n*size)
	for i := range x {
		x[i] = rng.Float64()
	}
	loss := func(x []float64) (float64, []float64) {
		var l float64
		g, err := e.InputGradient(x, n, names, func(vals, adjs [][]float64) {
			for i, b := range bns {
				l += synthetic.StatLoss(vals[i], adjs[i], n, b.Mean, b.Var, b.Epsilon)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return l, g
	}
	_, g := loss(x)
	for k := 0; k < 3; k++ {
		v := make([]float64, len(x))
		dot := 0.0
		for i := range v {
			v[i] = rng.NormFloat64()
			dot += v[i] * g[i]
		}
		// A small step: larger ones move ReLU inputs across zero (the
		// loss is piecewise smooth), which at 1e-5 costs 0.3 %.
		const h = 1e-7
		xp, xm := make([]float64, len(x)), make([]float64, len(x))
		for i := range x {
			xp[i], xm[i] = x[i]+h*v[i], x[i]-h*v[i]
		}
		lp, _ := loss(xp)
		lm, _ := loss(xm)
		fd := (lp - lm) / (2 * h)
		if rel := math.Abs(fd-dot) / math.Max(math.Abs(fd), 1e-12); rel > 1e-5 {
			t.Errorf("direction %d: gradient·v %g, finite difference %g (relative error %.2g)", k, dot, fd, rel)
		}
	}
	if _, err := e.InputGradient(x, n, []string{"no such tensor"}, func(_, _ [][]float64) {}); err == nil {
		t.Error("unknown tensor accepted")
	}
}
