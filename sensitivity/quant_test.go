package sensitivity

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestQuantizeExact(t *testing.T) {
	// Two output channels of a 2×3 weight; 3 bits: n = 3.
	w := []float64{0.3, -0.6, 0.15, 1.0, 0.5, -0.26}
	dst := make([]float64, len(w))
	scales, err := Quantizer{Bits: 3}.Quantize(dst, w, Layout{Shape: []int{2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	// Channel 0: s = 0.6/3 = 0.2: 0.3/0.2 = 1.5 → 2 (half to even), −3, 0.75 → 1.
	// Channel 1: s = 1/3: 3, 1.5 → 2, −0.78 → −1.
	want := []float64{0.4, -0.6, 0.2, 1, 2.0 / 3, -1.0 / 3}
	for i := range want {
		if math.Abs(dst[i]-want[i]) > 1e-15 {
			t.Errorf("dst[%d] = %v, want %v", i, dst[i], want[i])
		}
	}
	if math.Abs(scales[0]-0.2) > 1e-15 || math.Abs(scales[1]-1.0/3) > 1e-15 {
		t.Errorf("scales = %v", scales)
	}
	// Per tensor: one scale 1/3 for everything.
	scales, _ = Quantizer{Bits: 3, PerTensor: true}.Quantize(dst, w, Layout{Shape: []int{2, 3}})
	if len(scales) != 1 || math.Abs(scales[0]-1.0/3) > 1e-15 || math.Abs(dst[0]-1.0/3) > 1e-15 {
		t.Errorf("per-tensor scales %v, dst %v", scales, dst)
	}
}

func TestQuantizeAxis(t *testing.T) {
	// A MatMul weight K×N = 2×2 has output channels on axis 1.
	w := []float64{1, 10, -1, 5}
	dst := make([]float64, 4)
	scales, err := Quantizer{Bits: 8}.Quantize(dst, w, Layout{Shape: []int{2, 2}, Axis: 1})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(scales[0]-1.0/127) > 1e-15 || math.Abs(scales[1]-10.0/127) > 1e-15 {
		t.Errorf("scales = %v, want [1/127 10/127]", scales)
	}
}

func TestAsymmetric(t *testing.T) {
	// Range [−1, 3] at 2 bits: s = 4/3, z = round(0.75) = 1; grid {−4/3, 0, 4/3, 8/3}.
	w := []float64{-1, 0, 1, 3}
	dst := make([]float64, 4)
	if _, err := (Quantizer{Bits: 2, Asymmetric: true, PerTensor: true}).Quantize(dst, w, Layout{}); err != nil {
		t.Fatal(err)
	}
	want := []float64{-4.0 / 3, 0, 4.0 / 3, 8.0 / 3}
	for i := range want {
		if math.Abs(dst[i]-want[i]) > 1e-15 {
			t.Errorf("dst[%d] = %v, want %v", i, dst[i], want[i])
		}
	}
}

// TestErrorShrinksPerBit checks the textbook law: each extra bit halves the
// step, so ‖Q(w) − w‖² falls about 4× (uniform rounding noise s²/12).
func TestErrorShrinksPerBit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	w := make([]float64, 64*576)
	for i := range w {
		w[i] = r.NormFloat64() * 0.05
	}
	l := Layout{Shape: []int{64, 64, 3, 3}}
	prev := 0.0
	for b := 3; b <= 10; b++ {
		e, err := Quantizer{Bits: b}.DeltaSq(w, l)
		if err != nil {
			t.Fatal(err)
		}
		if b > 3 {
			// The step shrinks by n_b/n_{b−1} = (2^(b−1)−1)/(2^(b−2)−1):
			// 7/3 at 4 bits, → 2 as b grows, so the error ratio → 4.
			step := (math.Exp2(float64(b-1)) - 1) / (math.Exp2(float64(b-2)) - 1)
			ratio := prev / e
			if math.Abs(ratio/(step*step)-1) > 0.1 {
				t.Errorf("%d→%d bits: error ratio %.2f, want ≈ %.2f", b-1, b, ratio, step*step)
			}
			if b >= 7 && (ratio < 3.7 || ratio > 4.3) {
				t.Errorf("%d→%d bits: error ratio %.2f, want ≈ 4", b-1, b, ratio)
			}
		}
		prev = e
	}
}

func TestMSEClippingNeverWorse(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	w := make([]float64, 32*100)
	for i := range w {
		w[i] = r.NormFloat64()
		if i%97 == 0 {
			w[i] *= 8 // outliers: where clipping pays
		}
	}
	l := Layout{Shape: []int{32, 100}}
	for _, asym := range []bool{false, true} {
		for b := 2; b <= 8; b++ {
			mm, _ := Quantizer{Bits: b, Asymmetric: asym}.DeltaSq(w, l)
			mse, _ := Quantizer{Bits: b, Asymmetric: asym, MSE: true}.DeltaSq(w, l)
			if mse > mm*(1+1e-12) {
				t.Errorf("asym=%v %d bits: MSE clipping error %g > min/max %g", asym, b, mse, mm)
			}
			if b == 3 && mse > 0.9*mm {
				t.Errorf("asym=%v 3 bits: MSE clipping gained little on outliers: %g vs %g", asym, mse, mm)
			}
		}
	}
}

func TestQuantizerErrors(t *testing.T) {
	w := []float64{1, 2, 3, 4}
	cases := []struct {
		q    Quantizer
		w    []float64
		l    Layout
		want string
	}{
		{Quantizer{Bits: 1}, w, Layout{}, "1 bits out of range [2, 32]"},
		{Quantizer{Bits: 40}, w, Layout{}, "out of range"},
		{Quantizer{Bits: 4}, w, Layout{Shape: []int{3}}, "holds 3 elements, tensor has 4"},
		{Quantizer{Bits: 4}, w, Layout{Shape: []int{2, 2}, Axis: 2}, "axis 2 out of range"},
		{Quantizer{Bits: 4}, w, Layout{Shape: []int{0, 4}}, "non-positive"},
		{Quantizer{Bits: 4}, []float64{1, math.NaN()}, Layout{}, "weight 1 is NaN"},
		{Quantizer{Bits: 4}, nil, Layout{}, "empty tensor"},
	}
	for _, c := range cases {
		_, err := c.q.DeltaSq(c.w, c.l)
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%+v on %v %+v: error %v, want %q", c.q, c.w, c.l, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func ExampleQuantizer() {
	w := []float64{0.3, -0.6, 0.15, 1.0, 0.5, -0.26} // 2 output channels × 3
	for _, b := range []int{4, 8} {
		d, _ := Quantizer{Bits: b}.DeltaSq(w, Layout{Shape: []int{2, 3}})
		fmt.Printf("%d bits: ‖Q(W)−W‖² = %.3g\n", b, d)
	}
	// Output:
	// 4 bits: ‖Q(W)−W‖² = 0.00806
	// 8 bits: ‖Q(W)−W‖² = 2.25e-05
}
