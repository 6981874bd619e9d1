package nn_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// gridQ is a fake quantizer onto the grid s·k, k ∈ [kl, kh] (integers):
// Q(v) = s·clamp(round(v/s), kl, kh); its clipping range is [s·kl, s·kh].
type gridQ struct{ s, kl, kh float64 }

func (q gridQ) q(v float64) float64 {
	return q.s * math.Min(math.Max(math.RoundToEven(v/q.s), q.kl), q.kh)
}
func (q gridQ) apply(x []float64) {
	for i, v := range x {
		x[i] = q.q(v)
	}
}
func (q gridQ) in(v float64) bool { return v >= q.s*q.kl && v <= q.s*q.kh }

// steReference computes by hand, for twoGemm's x → a → Relu → b with x
// quantized by qa and Relu's output by qb, the mean cross-entropy and the
// straight-through gradient: the float graph's derivative rules evaluated
// at the quantized activations, the input gradients of quantized values
// masked by their clipping ranges (mask false: no mask, the plain STE).
// θ is (wa, ba, wb).
func steReference(x []float64, labels []int, wa, ba, wb []float64, qa, qb gridQ, mask bool) (loss float64, g []float64, clipped int) {
	n := len(labels)
	g = make([]float64, 9+3+6)
	gwa, gba, gwb := g[:9], g[9:12], g[12:]
	for s := 0; s < n; s++ {
		xq := make([]float64, 3)
		for i := range xq {
			xq[i] = qa.q(x[s*3+i])
		}
		h := make([]float64, 3)
		for j := range h {
			h[j] = ba[j]
			for i := 0; i < 3; i++ {
				h[j] += wa[j*3+i] * xq[i]
			}
		}
		r := make([]float64, 3)
		rq := make([]float64, 3)
		for j := range r {
			r[j] = math.Max(h[j], 0)
			rq[j] = qb.q(r[j])
		}
		z := make([]float64, 2)
		for k := range z {
			for j := 0; j < 3; j++ {
				z[k] += wb[k*3+j] * rq[j]
			}
		}
		mx := math.Max(z[0], z[1])
		lse := mx + math.Log(math.Exp(z[0]-mx)+math.Exp(z[1]-mx))
		loss += (lse - z[labels[s]]) / float64(n)
		dz := make([]float64, 2)
		for k := range dz {
			dz[k] = math.Exp(z[k]-lse) / float64(n)
		}
		dz[labels[s]] -= 1 / float64(n)
		drq := make([]float64, 3)
		for k := range dz {
			for j := 0; j < 3; j++ {
				gwb[k*3+j] += dz[k] * rq[j]
				drq[j] += wb[k*3+j] * dz[k]
			}
		}
		for j := 0; j < 3; j++ {
			dr := drq[j]
			if mask && !qb.in(r[j]) {
				dr = 0
				if drq[j] != 0 {
					clipped++
				}
			}
			dh := dr
			if h[j] <= 0 {
				dh = 0
			}
			gba[j] += dh
			for i := 0; i < 3; i++ {
				gwa[j*3+i] += dh * xq[i]
			}
		}
	}
	return loss, g, clipped
}

// TestQuantizedGradientMatchesHandReference checks the straight-through
// gradient of a quantized model against a hand computation: forward at
// the quantized activations, the consumer's weight gradient at the
// quantized input, the input gradient cut outside the clipping range
// (some of Relu's outputs lie above it, so the mask matters), in chunks
// of 2 on 2 workers (5 samples: a short last chunk), in float64 and
// float32.
func TestQuantizedGradientMatchesHandReference(t *testing.T) {
	x := []float64{1, -2, 0.5, 0.3, 0.3, -1, 2, 1, 0, -0.7, 1.4, 0.9, 0.2, -0.4, 1.9}
	labels := []int{0, 1, 1, 0, 1}
	ds, err := data.NewMemory(x, labels, []int{3})
	if err != nil {
		t.Fatal(err)
	}
	qa := gridQ{s: 0.25, kl: -6, kh: 6} // x in [-1.5, 1.5]: 2 and -2 clip, their gradient feeds no parameter
	qb := gridQ{s: 0.2, kl: 0, kh: 4}   // Relu's output in [0, 0.8]: several clip
	for _, prec := range []nn.Precision{nn.Float64, nn.Float32} {
		e := twoGemm(t)
		if prec == nn.Float32 {
			m := e.Model()
			var err error
			if e, err = nn.New(m, &nn.Options{BatchSize: 2, Workers: 2, Precision: nn.Float32}); err != nil {
				t.Fatal(err)
			}
		}
		wa, _ := e.Weights("a")
		wb, _ := e.Weights("b")
		ba := []float64{0.1, 0, -0.1}
		ctx := context.Background()
		g0 := make([]float64, e.Dim())
		ev0, err := e.Gradient(ctx, ds, g0)
		if err != nil {
			t.Fatal(err)
		}
		for _, set := range []struct {
			unit string
			q    gridQ
		}{{"a", qa}, {"b", qb}} {
			if err := e.SetInputQuantizer(set.unit, set.q.apply); err != nil {
				t.Fatal(err)
			}
			if err := e.SetInputClip(set.unit, set.q.s*set.q.kl, set.q.s*set.q.kh); err != nil {
				t.Fatal(err)
			}
		}
		// Off (the default), Gradient stays the float model's.
		g := make([]float64, e.Dim())
		ev, err := e.Gradient(ctx, ds, g)
		if err != nil {
			t.Fatal(err)
		}
		if ev != ev0 || !slices.Equal(g, g0) {
			t.Fatalf("%v: quantizers changed Gradient with SetQuantizedGradient off", prec)
		}
		e.SetQuantizedGradient(true)
		if ev, err = e.Gradient(ctx, ds, g); err != nil {
			t.Fatal(err)
		}
		loss, want, clipped := steReference(x, labels, wa, ba, wb, qa, qb, true)
		_, plain, _ := steReference(x, labels, wa, ba, wb, qa, qb, false)
		if clipped == 0 || relErr(plain, want) < 1e-3 {
			t.Fatalf("the reference clips %d gradients (differs from the plain STE by %.2g): the test cannot see the mask", clipped, relErr(plain, want))
		}
		tol := 1e-12
		if prec == nn.Float32 {
			tol = 1e-5
		}
		if math.Abs(ev.Loss-loss) > tol {
			t.Errorf("%v: loss %.15g, hand reference %.15g", prec, ev.Loss, loss)
		}
		if d := relErr(g, want); d > tol {
			t.Errorf("%v: gradient differs from the hand STE reference by %.3g (relative)\n got  %.6g\n want %.6g", prec, d, g, want)
		}
		ref, err := e.Evaluate(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(ref.Loss-ev.Loss) > tol {
			t.Errorf("%v: gradient pass loss %.15g, Evaluate's %.15g: not the same quantized model", prec, ev.Loss, ref.Loss)
		}
		// Without clipping ranges the plain STE passes everything.
		e.ClearInputQuantizers()
		_ = e.SetInputQuantizer("a", qa.apply)
		_ = e.SetInputQuantizer("b", qb.apply)
		if _, err = e.Gradient(ctx, ds, g); err != nil {
			t.Fatal(err)
		}
		if d := relErr(g, plain); d > tol {
			t.Errorf("%v: gradient without clipping ranges differs from the plain STE reference by %.3g", prec, d)
		}
	}
}

// TestQuantizedGradientClampExact: with a clamp as the "quantizer" (no
// rounding) and its range as the clipping range, the straight-through
// gradient is the exact derivative of the clamped model, checked against
// central differences of Evaluate (which applies the clamps) on rescnn,
// whose stem output feeds /conv1/Conv and the /down/Conv skip path: only
// /down/Conv's copy is clamped there, so the two consumers' adjoints must
// stay apart.
func TestQuantizedGradientClampExact(t *testing.T) {
	path := filepath.Join("..", "testdata", "models", "rescnn.onnx")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s missing: it is committed with the repository", path)
	}
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{BatchSize: 3, Precision: nn.Float64})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 7))
	const n = 5
	x := make([]float64, n*784)
	for i := range x {
		x[i] = r.Float64()
	}
	ds, err := data.NewMemory(x, []int{3, 1, 4, 1, 5}, []int{1, 28, 28})
	if err != nil {
		t.Fatal(err)
	}
	// The ranges of every unit's input, observed.
	var mu sync.Mutex
	hi := map[string]float64{}
	lo := map[string]float64{}
	for _, u := range e.Units() {
		name := u.Name
		lo[name], hi[name] = math.Inf(1), math.Inf(-1)
		if err := e.SetInputQuantizer(name, func(v []float64) {
			mu.Lock()
			for _, a := range v {
				lo[name], hi[name] = math.Min(lo[name], a), math.Max(hi[name], a)
			}
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Evaluate(ctx, ds); err != nil {
		t.Fatal(err)
	}
	e.ClearInputQuantizers()
	// Clamp every input other than /conv1/Conv's to the middle 60 % of
	// its range.
	for _, u := range e.Units() {
		if u.Name == "/conv1/Conv" {
			continue
		}
		a, b := lo[u.Name]+0.2*(hi[u.Name]-lo[u.Name]), hi[u.Name]-0.2*(hi[u.Name]-lo[u.Name])
		if err := e.SetInputQuantizer(u.Name, func(v []float64) {
			for i := range v {
				v[i] = math.Min(math.Max(v[i], a), b)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if err := e.SetInputClip(u.Name, a, b); err != nil {
			t.Fatal(err)
		}
	}
	e.SetQuantizedGradient(true)
	g := make([]float64, e.Dim())
	if _, err := e.Gradient(ctx, ds, g); err != nil {
		t.Fatal(err)
	}
	// The float gradient, for contrast.
	e.SetQuantizedGradient(false)
	gf := make([]float64, e.Dim())
	if _, err := e.Gradient(ctx, ds, gf); err != nil {
		t.Fatal(err)
	}
	e.SetQuantizedGradient(true)
	theta := e.Theta()
	loss := func(th []float64) float64 {
		if err := e.SetTheta(th); err != nil {
			t.Fatal(err)
		}
		ev, err := e.Evaluate(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Loss
	}
	const eps = 1e-6 // along unit directions: few kinks of the clamps and ReLUs crossed
	for k := 0; k < 3; k++ {
		v := randn(r, len(theta), 1)
		nv := norm(v)
		for i := range v {
			v[i] /= nv
		}
		tp, tm := slices.Clone(theta), slices.Clone(theta)
		for i := range v {
			tp[i] += eps * v[i]
			tm[i] -= eps * v[i]
		}
		fd := (loss(tp) - loss(tm)) / (2 * eps)
		got, float := dot(g, v), dot(gf, v)
		if math.Abs(got-fd) > 1e-6*(1+math.Abs(fd)) {
			t.Errorf("direction %d: gᵀv %.10g, central difference of the clamped model %.10g (float gradient %.10g)", k, got, fd, float)
		}
		if math.Abs(float-fd) < 1e-4*(1+math.Abs(fd)) {
			t.Errorf("direction %d: the float gradient %.10g also matches %.10g: the clamps do not bite", k, float, fd)
		}
	}
	_ = e.SetTheta(theta)
}
