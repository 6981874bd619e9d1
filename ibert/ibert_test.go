package ibert

import (
	"math"
	"math/rand/v2"
	"testing"
)

func gelu(x float64) float64 { return x / 2 * (1 + math.Erf(x/math.Sqrt2)) }

// TestRealArithmeticErrors checks the paper's polynomials themselves (no
// integers) against the functions they approximate, on 100,001 points:
// i-GELU's RMS (0.0082, the L2 figure I-BERT reports for [−4, 4]) and
// maximum (0.0182) distance from GELU, and the exp polynomial's maximum
// error on (−ln 2, 0]. Wrong constants (a sign, a digit) fail these.
func TestRealArithmeticErrors(t *testing.T) {
	L := func(x float64) float64 {
		s := 1.0
		if x < 0 {
			s = -1
		}
		return s * (ErfA*math.Pow(math.Min(math.Abs(x), -ErfB)+ErfB, 2) + 1)
	}
	const n = 100001
	var ss, mx float64
	for i := 0; i < n; i++ {
		x := -4 + 8*float64(i)/(n-1)
		d := x/2*(1+L(x/math.Sqrt2)) - gelu(x)
		ss += d * d
		mx = math.Max(mx, math.Abs(d))
	}
	rms := math.Sqrt(ss / n)
	t.Logf("i-GELU on [-4, 4]: RMS %.5f, max %.5f", rms, mx)
	if rms > 0.0082+5e-5 || mx > 0.0182 {
		t.Errorf("i-GELU in real arithmetic: RMS %.5f (want ≤ 0.0082), max %.5f (want ≤ 0.0182)", rms, mx)
	}
	var emx float64
	for i := 0; i < n; i++ {
		p := -math.Ln2 * float64(i) / (n - 1)
		emx = math.Max(emx, math.Abs(ExpA*math.Pow(p+ExpB, 2)+ExpC-math.Exp(p)))
	}
	t.Logf("exp polynomial on (-ln 2, 0]: max error %.5f", emx)
	if emx > 0.00213 {
		t.Errorf("exp polynomial: max error %.5f, want ≤ 0.00213", emx)
	}
}

// TestIntegerGELU runs i-GELU on every code of the 16-bit grid over
// [−4, 4]: the integer result stays within the real-arithmetic bounds plus
// 4 grid steps (the floors of q_b, q_c and q_1), and within one step·(1+|x|)
// of the real-arithmetic approximation.
func TestIntegerGELU(t *testing.T) {
	s := InputScale(4)
	g := NewGELU(s)
	var ss, mx, worstReal float64
	n := 0
	L := func(x float64) float64 {
		sg := math.Copysign(1, x)
		return sg * (ErfA*math.Pow(math.Min(math.Abs(x), -ErfB)+ErfB, 2) + 1)
	}
	for q := int64(-maxCode); q <= maxCode; q++ {
		x := s * float64(q)
		y := g.Scale() * float64(g.Eval(q))
		d := y - gelu(x)
		ss += d * d
		mx = math.Max(mx, math.Abs(d))
		real := x / 2 * (1 + L(x/math.Sqrt2))
		if q == 0 {
			real = 0
		}
		worstReal = math.Max(worstReal, math.Abs(y-real)/(1+math.Abs(x)))
		n++
	}
	rms := math.Sqrt(ss / float64(n))
	t.Logf("integer i-GELU, step %.3g: RMS %.5f, max %.5f; vs real arithmetic %.3g steps·(1+|x|)", s, rms, mx, worstReal/s)
	if rms > 0.0082+4*s || mx > 0.0182+4*s {
		t.Errorf("integer i-GELU: RMS %.5f, max %.5f", rms, mx)
	}
	if worstReal > s {
		t.Errorf("integer i-GELU differs from the real-arithmetic polynomial by %.3g steps·(1+|x|)", worstReal/s)
	}
}

// TestIntegerExp: i-exp on every code of [−MaxShift·ln 2, 0] at the
// softmax grid is within the polynomial's 0.00213 plus 2 grid steps of
// exp.
func TestIntegerExp(t *testing.T) {
	s := SoftmaxScale
	e := NewExp(s)
	var mx float64
	for q := int64(-maxCode); q <= 0; q++ {
		got := e.Scale() * float64(e.Eval(q))
		mx = math.Max(mx, math.Abs(got-math.Exp(s*float64(q))))
	}
	t.Logf("integer i-exp, step %.3g: max error %.5f", s, mx)
	if mx > 0.00213+2*s {
		t.Errorf("integer i-exp: max error %.5f, want ≤ %.5f", mx, 0.00213+2*s)
	}
	if v := e.Eval(0); math.Abs(e.Scale()*float64(v)-1) > 0.00213+2*s {
		t.Errorf("i-exp(0) = %g", e.Scale()*float64(v))
	}
}

// TestSqrt: Algorithm 4 is the exact ⌊√n⌋, for every n below 2^20 and
// for random n up to 2^62; on 32-bit inputs it never needs more than the
// iterations logged (the bound asserted is the one measured here).
func TestSqrt(t *testing.T) {
	check := func(n uint64) int {
		r, it := Sqrt(n)
		if r*r > n || (r+1)*(r+1) <= n {
			t.Fatalf("Sqrt(%d) = %d", n, r)
		}
		return it
	}
	for n := uint64(0); n < 1<<20; n++ {
		check(n)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	most := 0
	for i := 0; i < 200000; i++ {
		most = max(most, check(rng.Uint64N(1<<32)))
		check(rng.Uint64N(1 << 62))
	}
	for _, n := range []uint64{1<<32 - 1, 1 << 31, 1<<31 - 1, 3, 4, 1 << 62} {
		most = max(most, check(n))
	}
	t.Logf("32-bit inputs: at most %d iterations", most)
	if most > 6 {
		t.Errorf("Sqrt took %d iterations on a 32-bit input", most)
	}
}

// TestSimSoftmax compares the integer-only softmax with float softmax on
// random rows (with a masked entry at −10000): every probability is within
// the exp polynomial's relative error (0.31 %) of the float one plus the
// 2^−8 output step and the input grid, and the masked entry is 0.
func TestSimSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	const n = 16
	x := make([]float64, 50*n)
	for i := range x {
		x[i] = 3 * rng.NormFloat64()
	}
	x[5] = -10000
	got := make([]float64, len(x))
	SimSoftmax(got, x, n, 8)
	var mx float64
	for r := 0; r < len(x); r += n {
		m := math.Inf(-1)
		for _, v := range x[r : r+n] {
			m = math.Max(m, v)
		}
		var sum float64
		for _, v := range x[r : r+n] {
			sum += math.Exp(v - m)
		}
		for i, v := range x[r : r+n] {
			p := math.Exp(v-m) / sum
			d := math.Abs(got[r+i] - p)
			mx = math.Max(mx, d)
			if d > 2*0.0031*p+1.0/256+1e-3 {
				t.Errorf("row %d, %d: %g, float %g", r/n, i, got[r+i], p)
			}
		}
	}
	if got[5] != 0 {
		t.Errorf("masked entry: %g", got[5])
	}
	t.Logf("integer softmax (8-bit output): max error %.5f", mx)
}

// TestSimNormalize: the integer layer normalisation of random rows is
// within 1e-3 of (x − mean)/std (population variance, no ε).
func TestSimNormalize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	const n = 32
	x := make([]float64, 20*n)
	for i := range x {
		x[i] = 2*rng.NormFloat64() + 0.7
	}
	s := InputScale(12)
	got := make([]float64, len(x))
	SimNormalize(got, x, n, s)
	var mx float64
	for r := 0; r < len(x); r += n {
		var mean, v float64
		for _, a := range x[r : r+n] {
			mean += a / n
		}
		for _, a := range x[r : r+n] {
			v += (a - mean) * (a - mean) / n
		}
		for i, a := range x[r : r+n] {
			mx = math.Max(mx, math.Abs(got[r+i]-(a-mean)/math.Sqrt(v)))
		}
	}
	t.Logf("integer layer norm, step %.3g: max error %.3g", s, mx)
	if mx > 1e-3 {
		t.Errorf("integer layer norm: max error %g", mx)
	}
}
