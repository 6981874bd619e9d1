package nn_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// twoGemm builds x(N×3) → Gemm a (3→3) → Relu → Gemm b (3→2): the input of
// b is a computed activation, the input of a the graph input.
func twoGemm(t *testing.T) *nn.Engine {
	t.Helper()
	b := mt.New("twogemm", 13)
	b.Input("x", -1, 3)
	b.Double("wa", []int{3, 3}, []float64{0.5, -0.2, 0.1, 0.3, 0.8, -0.4, -0.6, 0.2, 0.9})
	b.Double("ba", []int{3}, []float64{0.1, 0, -0.1})
	b.Double("wb", []int{2, 3}, []float64{1, -1, 0.5, -0.3, 0.7, 0.2})
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
	return e
}

// gemmT computes x·Wᵀ (+ b) for n samples by direct loops: the independent
// reference of the hooked forward pass.
func gemmT(x []float64, n, k int, w, b []float64) []float64 {
	m := len(w) / k
	y := make([]float64, n*m)
	for s := 0; s < n; s++ {
		for j := 0; j < m; j++ {
			v := 0.0
			if b != nil {
				v = b[j]
			}
			for i := 0; i < k; i++ {
				v += x[s*k+i] * w[j*k+i]
			}
			y[s*m+j] = v
		}
	}
	return y
}

func TestInputQuantizerTransformsOnlyTheUnitInput(t *testing.T) {
	e := twoGemm(t)
	x := []float64{1, -2, 0.5, 0.3, 0.3, -1, 2, 1, 0}
	const n = 3
	wa, _ := e.Weights("a")
	wb, _ := e.Weights("b")
	ba := []float64{0.1, 0, -0.1}
	round := func(v []float64) {
		for i := range v {
			v[i] = math.Round(v[i]*4) / 4
		}
	}
	if err := e.SetInputQuantizer("b", round); err != nil {
		t.Fatal(err)
	}
	got, err := e.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	h := gemmT(x, n, 3, wa, ba)
	for i := range h {
		h[i] = max(h[i], 0)
	}
	hq := slices.Clone(h)
	round(hq)
	want := gemmT(hq, n, 3, wb, nil)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("logits %v, want %v", got, want)
		}
	}
	// Intermediates report the unquantized input (a private copy was
	// quantized) and the output computed from the quantized one.
	im, err := e.Intermediates(x, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range im["h1"].Data {
		if math.Abs(v-h[i]) > 1e-12 {
			t.Fatalf("h1 = %v, want the float activation %v", im["h1"].Data, h)
		}
	}
	if !slices.Equal(im["y"].Data, got) {
		t.Errorf("y = %v, logits %v", im["y"].Data, got)
	}
	// Quantizing the graph input as well.
	double := func(v []float64) {
		for i := range v {
			v[i] *= 2
		}
	}
	if err := e.SetInputQuantizer("a", double); err != nil {
		t.Fatal(err)
	}
	got, _ = e.Logits(x, n)
	x2 := slices.Clone(x)
	double(x2)
	h = gemmT(x2, n, 3, wa, ba)
	for i := range h {
		h[i] = max(h[i], 0)
	}
	round(h)
	want = gemmT(h, n, 3, wb, nil)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("with both quantizers: logits %v, want %v", got, want)
		}
	}
	// Removing them restores the float model.
	e.ClearInputQuantizers()
	got, _ = e.Logits(x, n)
	h = gemmT(x, n, 3, wa, ba)
	for i := range h {
		h[i] = max(h[i], 0)
	}
	want = gemmT(h, n, 3, wb, nil)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("cleared: logits %v, want %v", got, want)
		}
	}
	if err := e.SetInputQuantizer("c", round); err == nil || !strings.Contains(err.Error(), `no unit named "c"`) {
		t.Errorf("unknown unit: %v", err)
	}
}

func TestInputQuantizerLeavesDerivativesExact(t *testing.T) {
	e, err := nn.New(lenetLike(), &nn.Options{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ds := sampleData()
	g0 := make([]float64, e.Dim())
	ev0, err := e.Gradient(ctx, ds, g0)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float64, e.Dim())
	r := rand.New(rand.NewPCG(1, 1))
	for i := range v {
		v[i] = r.NormFloat64()
	}
	hv0 := [][]float64{make([]float64, e.Dim())}
	if err := e.HVP(ctx, ds, hv0, [][]float64{v}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	zero := func(x []float64) { calls.Add(1); clear(x) }
	for _, u := range e.Units() {
		if err := e.SetInputQuantizer(u.Name, zero); err != nil {
			t.Fatal(err)
		}
	}
	g := make([]float64, e.Dim())
	ev, err := e.Gradient(ctx, ds, g)
	if err != nil {
		t.Fatal(err)
	}
	hv := [][]float64{make([]float64, e.Dim())}
	if err := e.HVP(ctx, ds, hv, [][]float64{v}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 0 {
		t.Errorf("quantizers called %d times in gradient and HVP passes", calls.Load())
	}
	if ev != ev0 || !slices.Equal(g, g0) || !slices.Equal(hv[0], hv0[0]) {
		t.Errorf("derivatives changed by input quantizers")
	}
	// Evaluate does apply them: zero inputs give bias-only logits.
	q, err := e.Evaluate(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	if q.Loss == ev0.Loss {
		t.Errorf("Evaluate ignored the quantizers")
	}
	// 6 samples in chunks of 4: two chunks, two units each.
	if calls.Load() != 4 {
		t.Errorf("quantizers called %d times by Evaluate, want 4", calls.Load())
	}
}

// TestInputQuantizerSharedInput checks on rescnn, whose stem output feeds
// both /conv1/Conv and the /down/Conv skip path, that quantizing one
// consumer's input leaves the other's untouched.
func TestInputQuantizerSharedInput(t *testing.T) {
	path := filepath.Join("..", "testdata", "models", "rescnn.onnx")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present", path)
	}
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	r := rand.New(rand.NewPCG(3, 3))
	x := make([]float64, n*784)
	for i := range x {
		x[i] = r.Float64()
	}
	out := func(unit string) string { return m.Nodes[m.Unit(unit).Node].Outputs[0] }
	in := func(unit string) string { return m.Nodes[m.Unit(unit).Node].Inputs[0] }
	if in("/conv1/Conv") != in("/down/Conv") {
		t.Fatalf("rescnn: /conv1/Conv reads %q, /down/Conv %q; the test expects a shared input", in("/conv1/Conv"), in("/down/Conv"))
	}
	ref, err := e.Intermediates(x, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetInputQuantizer("/down/Conv", func(v []float64) { clear(v) }); err != nil {
		t.Fatal(err)
	}
	got, err := e.Intermediates(x, n)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[out("/conv1/Conv")].Data, ref[out("/conv1/Conv")].Data) {
		t.Error("quantizing /down/Conv's input changed /conv1/Conv's output")
	}
	for _, v := range got[out("/down/Conv")].Data { // no bias: zero in, zero out
		if v != 0 {
			t.Fatalf("/down/Conv output %v with a zeroed input", v)
		}
	}
	if slices.Equal(got[m.Outputs[0].Name].Data, ref[m.Outputs[0].Name].Data) {
		t.Error("logits unchanged")
	}
}

// ExampleEngine_SetInputQuantizer fake-quantizes the input of a layer to a
// grid of step 0.5 and compares the accuracy with the float model's.
func ExampleEngine_SetInputQuantizer() {
	e, err := nn.New(lenetLike(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	ds := sampleData()
	float, _ := e.Evaluate(ctx, ds)
	err = e.SetInputQuantizer("fc", func(x []float64) {
		for i, v := range x {
			x[i] = math.Round(2*v) / 2
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	quant, _ := e.Evaluate(ctx, ds)
	fmt.Printf("float loss %.4f, quantized loss %.4f\n", float.Loss, quant.Loss)
	// Output:
	// float loss 2.3550, quantized loss 2.3372
}
