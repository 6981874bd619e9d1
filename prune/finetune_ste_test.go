package prune

import (
	"math"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestFineTuneQuantizedActivations checks two full-batch steps of the
// quantization-aware fine-tuning with the activations fake-quantized in
// the gradient pass (nn.Engine.SetQuantizedGradient) against a hand
// computation on x(·×2) → Gemm a (2→3, bias) → Relu → Gemm b (3→2): the
// weights on a grid of 1/8 (FineTuneSettings.Quantize), Relu's output on
// a grid of 1/4 clipped to [0, 1]; each step's gradient is taken at the
// quantized weights and activations, the input gradient of a clipped
// activation is zero, and the heavy-ball update applies it to the float θ.
func TestFineTuneQuantizedActivations(t *testing.T) {
	wa := []float64{0.7, -0.45, 0.3, 0.9, -0.55, 0.2}
	ba := []float64{0.05, -0.1, 0.2}
	wb := []float64{0.6, -0.8, 0.35, -0.4, 0.5, 0.95}
	b := mt.New("ste", 13)
	b.Input("x", -1, 2)
	b.Double("wa", []int{3, 2}, wa)
	b.Double("ba", []int{3}, ba)
	b.Double("wb", []int{2, 3}, wb)
	b.Node("Gemm", "a", []string{"x", "wa", "ba"}, []string{"h"}, mt.Int("transB", 1))
	b.Node("Relu", "r", []string{"h"}, []string{"h1"})
	b.Node("Gemm", "b", []string{"h1", "wb"}, []string{"y"}, mt.Int("transB", 1))
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{BatchSize: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	x := []float64{1.5, -0.5, 0.2, 1.1, -1, 0.4, 2, 1.3, 0.6, -0.9}
	labels := []int{0, 1, 1, 0, 1}
	ds, err := data.NewMemory(x, labels, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	qw := func(v float64) float64 { return math.RoundToEven(v*8) / 8 }
	qa := func(v float64) float64 { return math.Min(math.Max(math.RoundToEven(v*4)/4, 0), 1) }
	if err := e.SetInputQuantizer("b", func(v []float64) {
		for i := range v {
			v[i] = qa(v[i])
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetInputClip("b", 0, 1); err != nil {
		t.Fatal(err)
	}
	e.SetQuantizedGradient(true)
	// θ = (wa, ba, wb); Quantize rounds the weights, not the bias.
	isBias := func(i int) bool { return i >= 6 && i < 9 }
	quantize := func(dst, theta []float64) {
		for i, v := range theta {
			dst[i] = v
			if !isBias(i) {
				dst[i] = qw(v)
			}
		}
	}
	// grad is the hand straight-through gradient at θ (quantized first).
	clipped := 0
	grad := func(theta []float64) []float64 {
		q := make([]float64, len(theta))
		quantize(q, theta)
		wa, ba, wb := q[:6], q[6:9], q[9:]
		g := make([]float64, len(theta))
		n := float64(len(labels))
		for s, y := range labels {
			var h, hq [3]float64
			for j := range h {
				h[j] = ba[j] + wa[2*j]*x[2*s] + wa[2*j+1]*x[2*s+1]
				hq[j] = qa(math.Max(h[j], 0))
			}
			var z [2]float64
			for k := range z {
				for j := range hq {
					z[k] += wb[3*k+j] * hq[j]
				}
			}
			mx := math.Max(z[0], z[1])
			lse := mx + math.Log(math.Exp(z[0]-mx)+math.Exp(z[1]-mx))
			for k := range z {
				dz := math.Exp(z[k]-lse) / n
				if k == y {
					dz -= 1 / n
				}
				for j := range hq {
					g[9+3*k+j] += dz * hq[j]
					if h[j] <= 0 {
						continue
					}
					if h[j] > 1 { // saturated: the straight-through gradient is cut
						clipped++
						continue
					}
					d := dz * wb[3*k+j]
					g[6+j] += d
					g[2*j] += d * x[2*s]
					g[2*j+1] += d * x[2*s+1]
				}
			}
		}
		return g
	}
	const lr, mu = 0.3, 0.9
	theta0 := e.Theta()
	v := grad(theta0)
	theta1 := make([]float64, len(theta0))
	for i := range theta0 {
		theta1[i] = theta0[i] - lr*v[i]
	}
	g1 := grad(theta1)
	want := make([]float64, len(theta0))
	for i := range theta0 {
		v[i] = mu*v[i] + g1[i]
		want[i] = theta1[i] - lr*v[i]
	}
	if clipped == 0 {
		t.Fatal("no activation saturates in the hand reference: the test cannot see the clip mask")
	}
	if _, err := FineTune(t.Context(), e, ds, &FineTuneSettings{Steps: 2, BatchSize: len(labels), LR: lr, Momentum: mu, Quantize: quantize}); err != nil {
		t.Fatal(err)
	}
	got := e.Theta()
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("θ[%d] = %.15g after two steps, hand reference %.15g (θ0 %.15g)", i, got[i], want[i], theta0[i])
		}
	}
}
