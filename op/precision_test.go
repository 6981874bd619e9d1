package op

import (
	"fmt"
	"math"
	"testing"
)

// tol32 bounds the difference between a float32 and a float64 run of one
// kernel, relative to the largest float64 magnitude of the compared vector
// (at least 1). The inputs of a case are O(1) and rounded to float32
// (relative error ε32 = 2⁻²⁴ ≈ 6e-8 each); every output element of these
// small cases comes from at most about 50 rounded float32 operations (the
// longest are a 3×3 convolution's 18-term sums and LayerNorm's chain of
// ten primitives, whose adjoints repeat the chain), so the rounding error
// is at most about 50·ε32·(condition) ≈ 3e-6 times the result's scale for
// conditions up to 1 (Div and Log are run on inputs ≥ 0.5). tol32 = 1e-4
// leaves a margin of 30; a wrong float32 instantiation (a lost term, a
// float32 constant truncated to an integer, a missing conversion) is off
// by O(1).
const tol32 = 1e-4

// TestFloat32MatchesFloat64 runs every executable operator's cases in both
// precisions: forward values, gradients and Hessian-vector products of the
// harness loss must agree within tol32.
func TestFloat32MatchesFloat64(t *testing.T) {
	n := 0
	for _, d := range Defs() {
		if d.Exec == nil {
			continue
		}
		for i, c := range d.Cases {
			if err := checkFloat32(d, c, uint64(i)); err != nil {
				t.Errorf("%s case %q: %v", d.Type, c.Name, err)
			}
			n++
		}
	}
	t.Logf("%d cases compared", n)
}

// TestFloat32CatchesWrongKernel shows the comparison fails when the float32
// kernel differs from the float64 one.
func TestFloat32CatchesWrongKernel(t *testing.T) {
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	good := UnaryFns{F: sig, D1: func(_, y float64) float64 { return y * (1 - y) }}
	bad := UnaryFns{F: func(x float64) float64 { return sig(x) * 1.001 }, D1: good.D1}
	d := &Def{Type: "Mismatch", Infer: InferSame, Class: Elementwise, Cases: unaryCase(-2, 2),
		Exec: Both(newUnary[float64](fixed(good)), newUnary[float32](fixed(bad)))}
	if err := checkFloat32(d, d.Cases[0], 0); err == nil {
		t.Error("a float32 kernel 0.1% off its float64 twin passed")
	}
}

func checkFloat32(d *Def, c Case, seed uint64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	h, b, rng, err := buildCase(d, c, seed)
	if err != nil || h == nil {
		return err
	}
	k64, err := NewKernel[float64](d.Exec, b)
	if err != nil {
		return err
	}
	k32, err := NewKernel[float32](d.Exec, b)
	if err != nil {
		return err
	}
	h.k = k64
	h32 := &harness[float32]{k: k32, ns: h.ns, vars: h.vars, y: h.y, size: h.size, val: h.val}
	if st, ok := k64.(Stateful); ok {
		h.state = st.NewState()
		h32.state = k32.(Stateful).NewState()
	}
	w64, w32 := h.work(), h32.work()
	k64.Forward(w64)
	k32.Forward(w32)
	if err := near("forward", w64.Val[h.y], Convert[float64](w32.Val[h.y])); err != nil {
		return err
	}
	if d.Class == NotDifferentiable || len(h.vars) == 0 {
		return nil
	}
	h.c = make([]float64, h.size[h.y])
	for i := range h.c {
		h.c[i] = rng.NormFloat64()
	}
	h32.c = h.c
	x := h.get(h.val)
	v := make([]float64, len(x))
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	g64, hv64 := h.grad(x, v)
	g32, hv32 := h32.grad(x, v)
	if err := near("gradient", g64, g32); err != nil {
		return err
	}
	return near("H·v", hv64, hv32)
}

// near compares b with reference a within tol32 of a's scale.
func near(what string, a, b []float64) error {
	scale := 1.0
	for _, v := range a {
		scale = max(scale, math.Abs(v))
	}
	for i := range a {
		if d := math.Abs(a[i] - b[i]); d > tol32*scale || math.IsNaN(b[i]) {
			return fmt.Errorf("%s component %d: float32 %.8g, float64 %.8g (scale %.3g)", what, i, b[i], a[i], scale)
		}
	}
	return nil
}
