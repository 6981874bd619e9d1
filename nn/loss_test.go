package nn_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// positionNet is a 1-D convolution giving 3 class logits at 4 positions per
// sample, N×3×4 (classAxis 0), or with a Transpose N×4×3 (classAxis −1),
// followed by a Tanh so that the Hessian has second-order terms.
func positionNet(t *testing.T, last bool, l nn.Loss) *nn.Engine {
	t.Helper()
	r := rand.New(rand.NewPCG(5, 5))
	b := mt.New("positions", 13)
	b.Input("x", -1, 2, 5)
	dbl(b, r, "w", 3, 2, 2)
	dbl(b, r, "b", 3)
	b.Node("Conv", "conv", []string{"x", "w", "b"}, []string{"h"})
	out := "t"
	b.Node("Tanh", "tanh", []string{"h"}, []string{"t"})
	if last {
		b.Node("Transpose", "tr", []string{"t"}, []string{"y"}, mt.Ints("perm", 0, 2, 1))
		out = "y"
	}
	b.Output(out)
	m := decode(t, b)
	e, err := nn.New(m, &nn.Options{BatchSize: 2, Workers: 2, Loss: l})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func tanhNet(t *testing.T) *nn.Engine {
	t.Helper()
	r := rand.New(rand.NewPCG(6, 6))
	b := mt.New("tanh", 13)
	b.Input("x", -1, 3)
	dbl(b, r, "w1", 4, 3)
	dbl(b, r, "b1", 4)
	dbl(b, r, "w2", 3, 4)
	b.Node("Gemm", "fc1", []string{"x", "w1", "b1"}, []string{"h"}, mt.Int("transB", 1))
	b.Node("Tanh", "act", []string{"h"}, []string{"a"})
	b.Node("Gemm", "fc2", []string{"a", "w2"}, []string{"y"}, mt.Int("transB", 1))
	b.Output("y")
	e, err := nn.New(decode(t, b), &nn.Options{BatchSize: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// withLoss rebuilds e's model with loss l.
func withLoss(t *testing.T, e *nn.Engine, l nn.Loss) *nn.Engine {
	t.Helper()
	e2, err := nn.New(e.Model(), &nn.Options{BatchSize: 2, Workers: 2, Loss: l})
	if err != nil {
		t.Fatal(err)
	}
	return e2
}

// checkDerivatives compares the gradient with central differences of the
// loss and H·v with central differences of the gradient.
func checkDerivatives(t *testing.T, e *nn.Engine, ds data.Dataset) {
	t.Helper()
	r := rand.New(rand.NewPCG(9, 9))
	theta := e.Theta()
	g := gradAt(t, e, ds, theta)
	for i := range theta {
		u := make([]float64, len(theta))
		u[i] = 1
		fd := lossDifference(t, e, ds, theta, u, fdStep)
		if math.Abs(fd-g[i]) > fdTol*max(norm(g), 1e-8)+1e-9 {
			t.Errorf("∂L/∂θ[%d]: analytic %.10g, finite difference %.10g", i, g[i], fd)
		}
	}
	if err := e.SetTheta(theta); err != nil {
		t.Fatal(err)
	}
	op, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	v := randn(r, len(theta), 1)
	hv := make([]float64, len(theta))
	if err := op.HVP(context.Background(), hv, v); err != nil {
		t.Fatal(err)
	}
	fd := gradDifference(t, e, ds, theta, v, fdStep)
	if err := relErr(hv, fd); err > fdTol {
		t.Errorf("H·v differs from differences of gradients by %.3g (relative)", err)
	}
	if err := e.SetTheta(theta); err != nil {
		t.Fatal(err)
	}
}

func positionData(t *testing.T, n int) *data.Memory {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	ds, err := data.NewMemory(randn(r, n*10, 1), make([]int, n), []int{2, 5})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestPositionLabels(t *testing.T) {
	ds := positionData(t, 5)
	r := rand.New(rand.NewPCG(8, 8))
	labels := make([]int, 5*4)
	for i := range labels {
		labels[i] = r.IntN(3)
		if i%7 == 3 {
			labels[i] = -100
		}
	}
	for _, last := range []bool{false, true} {
		axis := 0
		if last {
			axis = -1
		}
		l := nn.PositionLabels{Labels: labels, ClassAxis: axis, Ignore: -100}
		e := positionNet(t, last, l)
		checkDerivatives(t, e, ds)
		// The loss is the mean over labelled positions of −log p[label].
		ev, err := e.Evaluate(context.Background(), ds)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float64, 5*10)
		if err := ds.Read(0, x, make([]int, 5)); err != nil {
			t.Fatal(err)
		}
		z, err := e.Logits(x, 5)
		if err != nil {
			t.Fatal(err)
		}
		want, count := 0.0, 0
		for s := 0; s < 5; s++ {
			for q := 0; q < 4; q++ {
				y := labels[s*4+q]
				if y == -100 {
					continue
				}
				at := func(c int) float64 {
					if last {
						return z[s*12+q*3+c]
					}
					return z[s*12+c*4+q]
				}
				lse := math.Log(math.Exp(at(0)) + math.Exp(at(1)) + math.Exp(at(2)))
				want += lse - at(y)
				count++
			}
		}
		want /= float64(count)
		if math.Abs(ev.Loss-want) > 1e-12 || ev.Scored != count {
			t.Errorf("class axis %d: loss %.15g over %d positions, want %.15g over %d", axis, ev.Loss, ev.Scored, want, count)
		}
	}
	// Bad labels are refused before any work.
	bad := nn.PositionLabels{Labels: make([]int, 7), Ignore: -100}
	e := positionNet(t, false, bad)
	if _, err := e.Evaluate(context.Background(), ds); err == nil {
		t.Error("wrong label count accepted")
	}
}

func TestMSE(t *testing.T) {
	e := tanhNet(t)
	ds := randomData(t, e, 5, 3)
	r := rand.New(rand.NewPCG(10, 10))
	e = withLoss(t, e, nn.MSE{Targets: randn(r, 5*3, 1)})
	checkDerivatives(t, e, ds)
	if _, err := withLoss(t, e, nn.MSE{Targets: make([]float64, 4)}).Evaluate(context.Background(), ds); err == nil {
		t.Error("wrong target count accepted")
	}
}

// TestKL checks the KL loss to the model's own predictions: zero loss and
// gradient at the reference, a positive semi-definite Hessian there (the
// Fisher matrix), and gradient and H·v against finite differences away from
// the reference.
func TestKL(t *testing.T) {
	base := tanhNet(t)
	ds := randomData(t, base, 5, 4)
	e := withLoss(t, base, nn.KL{Theta: base.Theta()})
	ctx := context.Background()
	g := make([]float64, e.Dim())
	ev, err := e.Gradient(ctx, ds, g)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ev.Loss) > 1e-15 || norm(g) > 1e-15 || ev.Correct != 5 {
		t.Errorf("at the reference: loss %g, |∇L| %g, agreement %d/5; want 0, 0, 5", ev.Loss, norm(g), ev.Correct)
	}
	op, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(11, 11))
	for k := 0; k < 5; k++ {
		v := randn(r, e.Dim(), 1)
		hv := make([]float64, e.Dim())
		if err := op.HVP(ctx, hv, v); err != nil {
			t.Fatal(err)
		}
		if q := dot(v, hv); q < -1e-14 {
			t.Errorf("vᵀHv = %g < 0 at the reference: the Fisher matrix must be PSD", q)
		}
	}
	// Away from the reference.
	theta := e.Theta()
	for i := range theta {
		theta[i] += 0.3 * r.NormFloat64()
	}
	if err := e.SetTheta(theta); err != nil {
		t.Fatal(err)
	}
	checkDerivatives(t, e, ds)
	if _, err := nn.New(base.Model(), &nn.Options{Loss: nn.KL{Theta: make([]float64, 3)}}); err == nil {
		t.Error("a reference of the wrong length accepted")
	}
}

func decode(t *testing.T, b *mt.Builder) *model.Model {
	t.Helper()
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUnscored: the forward-only loss suits a per-position output without
// labels (class labels would refuse it), scores 0 with a zero gradient,
// and leaves the forward pass (Logits) as it is.
func TestUnscored(t *testing.T) {
	ds := positionData(t, 5)
	e := positionNet(t, false, nn.Unscored{})
	g := make([]float64, e.Dim())
	for i := range g {
		g[i] = 1
	}
	ev, err := e.Gradient(context.Background(), ds, g)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Loss != 0 || norm(g) != 0 || ev.Scored != 0 {
		t.Errorf("loss %g, |∇L| %g, %d scored; want 0, 0, 0", ev.Loss, norm(g), ev.Scored)
	}
	x := make([]float64, 5*10)
	if err := ds.Read(0, x, make([]int, 5)); err != nil {
		t.Fatal(err)
	}
	z, err := e.Logits(x, 5)
	if err != nil {
		t.Fatal(err)
	}
	ref := positionNet(t, false, nn.PositionLabels{Labels: make([]int, 5*4), Ignore: -100})
	want, err := ref.Logits(x, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(z, want) {
		t.Error("the forward pass differs under Unscored")
	}
}
