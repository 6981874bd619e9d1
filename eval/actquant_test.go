package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/sensitivity"
)

// gridTol is the tolerance of "lies on the grid": codes are recovered as
// (Q(x) − lo')/s with lo' = −z·s, which loses a few ulps of the code.
const gridTol = 1e-9

// randomCase draws a range (signed or not) and inputs that overshoot it.
func randomCase(r *rand.Rand) (ActQuantizer, []float64) {
	bits := 1 + r.IntN(10)
	hi := math.Exp(4 * (r.Float64() - 0.5))
	lo := 0.0
	if r.IntN(2) == 0 {
		lo = -math.Exp(4 * (r.Float64() - 0.5))
	}
	q, err := NewActQuantizer(bits, Range{Min: lo, Max: hi})
	if err != nil {
		panic(err)
	}
	x := make([]float64, 64)
	for i := range x {
		x[i] = lo + (hi-lo)*(1.4*r.Float64()-0.2)
	}
	x[0], x[1] = lo, hi
	return q, x
}

func TestActQuantizerGridRangeIdempotence(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 2000; trial++ {
		q, x := randomCase(r)
		s, z := q.Scale()
		l := q.Levels()
		y := slices.Clone(x)
		q.Quantize(y)
		for i, v := range y {
			// On the grid: v = (k − z)·s with k an integer in [0, L].
			k := v/s + z
			if math.Abs(k-math.Round(k)) > gridTol*math.Max(1, l) || math.Round(k) < 0 || math.Round(k) > l {
				t.Fatalf("%v: Q(%g) = %g is code %g, not an integer in [0, %g]", q, x[i], v, k, l)
			}
			// Inside the calibrated range the error is at most s/2 (plus
			// the zero point's shift of the grid, at most s/2, at the ends).
			if x[i] >= q.Lo && x[i] <= q.Hi && math.Abs(v-x[i]) > s*(1+1e-9) {
				t.Fatalf("%v: |Q(%g) − x| = %g > s = %g", q, x[i], math.Abs(v-x[i]), s)
			}
			if x[i] > (l-z)*s+s/2 && v != (l-z)*s {
				t.Fatalf("%v: %g above the range maps to %g, want the top level %g", q, x[i], v, (l-z)*s)
			}
			if x[i] < -z*s-s/2 && v != -z*s {
				t.Fatalf("%v: %g below the range maps to %g, want the bottom level %g", q, x[i], v, -z*s)
			}
		}
		// Idempotent: Q(Q(x)) = Q(x).
		yy := slices.Clone(y)
		q.Quantize(yy)
		for i := range y {
			if math.Abs(yy[i]-y[i]) > 1e-12*math.Max(1, math.Abs(y[i])) {
				t.Fatalf("%v: Q(Q(%g)) = %g ≠ Q = %g", q, x[i], yy[i], y[i])
			}
		}
		// Monotone.
		idx := make([]int, len(x))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return int(math.Copysign(1, x[a]-x[b])) })
		for j := 1; j < len(idx); j++ {
			if y[idx[j]] < y[idx[j-1]] {
				t.Fatalf("%v: not monotone: Q(%g) = %g < Q(%g) = %g", q, x[idx[j]], y[idx[j]], x[idx[j-1]], y[idx[j-1]])
			}
		}
		// Zero is a level.
		zero := []float64{0}
		q.Quantize(zero)
		if zero[0] != 0 {
			t.Fatalf("%v: Q(0) = %g", q, zero[0])
		}
	}
}

// TestActQuantizerMatchesWeightQuantizer compares with the asymmetric
// per-tensor weight quantizer of package sensitivity, an independent
// implementation of the same formula, when the calibrated range is the
// data's own min/max.
func TestActQuantizerMatchesWeightQuantizer(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for trial := 0; trial < 500; trial++ {
		bits := 1 + r.IntN(12)
		x := make([]float64, 50)
		shift := 0.0
		if r.IntN(2) == 0 {
			shift = -0.3 * r.Float64()
		}
		for i := range x {
			x[i] = r.Float64() + shift
		}
		rg := Range{Min: slices.Min(x), Max: slices.Max(x)}
		q, err := NewActQuantizer(bits, rg)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Clone(x)
		q.Quantize(got)
		want := make([]float64, len(x))
		if _, err := (sensitivity.Quantizer{Bits: bits, Asymmetric: true, PerTensor: true}).Quantize(want, x, sensitivity.Layout{Shape: []int{len(x)}}); err != nil {
			t.Fatal(err)
		}
		for i := range x {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Fatalf("%d bits, range %v: Q(%g) = %g, sensitivity.Quantizer gives %g", bits, rg, x[i], got[i], want[i])
			}
		}
	}
}

func TestActQuantizerUnsignedPixels(t *testing.T) {
	// MNIST pixels k/255 on an 8-bit unsigned [0, 1] grid are exact.
	q, err := NewActQuantizer(8, Range{Min: 0, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	if q.Signed() || q.String() != "8-bit unsigned [0, 1]" {
		t.Errorf("quantizer %v, signed %v", q, q.Signed())
	}
	x := make([]float64, 256)
	for k := range x {
		x[k] = float64(k) / 255
	}
	y := slices.Clone(x)
	q.Quantize(y)
	for k := range x {
		if math.Abs(y[k]-x[k]) > 1e-15 {
			t.Fatalf("pixel %d/255 → %g", k, y[k])
		}
	}
	// A 2-bit grid has four levels 0, 1/3, 2/3, 1.
	q2, _ := NewActQuantizer(2, Range{Min: 0.2, Max: 1})
	y = slices.Clone(x)
	q2.Quantize(y)
	levels := map[float64]bool{}
	for _, v := range y {
		levels[math.Round(v*3)] = true
		if math.Abs(v*3-math.Round(v*3)) > 1e-12 {
			t.Fatalf("2-bit value %g not a multiple of 1/3", v)
		}
	}
	if len(levels) != 4 {
		t.Errorf("%d levels, want 4", len(levels))
	}
	// Degenerate range: everything to 0.
	q0, _ := NewActQuantizer(4, Range{})
	y = []float64{-1, 0, 3}
	q0.Quantize(y)
	if !slices.Equal(y, []float64{0, 0, 0}) {
		t.Errorf("degenerate range: %v", y)
	}
	// NaN stays NaN.
	y = []float64{math.NaN()}
	q.Quantize(y)
	if !math.IsNaN(y[0]) {
		t.Errorf("Q(NaN) = %g", y[0])
	}
}

func TestActQuantizerErrors(t *testing.T) {
	cases := []struct {
		bits int
		r    Range
		want string
	}{
		{0, Range{0, 1}, "activation bits 0 out of range [1, 32]"},
		{33, Range{0, 1}, "activation bits 33 out of range"},
		{8, Range{1, 0}, "not a finite interval"},
		{8, Range{math.NaN(), 1}, "not a finite interval"},
		{8, Range{0, math.Inf(1)}, "not a finite interval"},
	}
	for _, c := range cases {
		if _, err := NewActQuantizer(c.bits, c.r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewActQuantizer(%d, %v) = %v, want %q", c.bits, c.r, err, c.want)
		}
	}
}

func TestParseQuantizer(t *testing.T) {
	cases := []struct {
		spec string
		want sensitivity.Quantizer
		err  string
	}{
		{"", sensitivity.Quantizer{}, ""},
		{"symmetric,per-channel,minmax", sensitivity.Quantizer{}, ""},
		{"Asymmetric, per-tensor", sensitivity.Quantizer{Asymmetric: true, PerTensor: true}, ""},
		{"mse", sensitivity.Quantizer{MSE: true}, ""},
		{"symmetric,asymmetric", sensitivity.Quantizer{}, `"asymmetric" contradicts "symmetric"`},
		{"per-row", sensitivity.Quantizer{}, `unknown word "per-row"`},
	}
	for _, c := range cases {
		q, err := ParseQuantizer(c.spec)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseQuantizer(%q) = %v, want error %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil || q != c.want {
			t.Errorf("ParseQuantizer(%q) = %+v, %v; want %+v", c.spec, q, err, c.want)
		}
		if back, _ := ParseQuantizer(DescribeQuantizer(q)); back != q {
			t.Errorf("round trip of %q: %+v", c.spec, back)
		}
	}
}

func FuzzParseQuantizer(f *testing.F) {
	for _, s := range []string{"", "symmetric,per-channel,minmax", "asymmetric,per-tensor,mse", ",,", "mse,minmax"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuantizer(s)
		if err != nil {
			return
		}
		if back, err := ParseQuantizer(DescribeQuantizer(q)); err != nil || back != q {
			t.Errorf("round trip of %q: %+v, %v", s, back, err)
		}
	})
}

// ExampleActQuantizer quantizes values to a 2-bit grid calibrated on
// [-0.5, 1]: four levels with zero among them, saturating outside.
func ExampleActQuantizer() {
	q, err := NewActQuantizer(2, Range{Min: -0.5, Max: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	x := []float64{-1, -0.3, 0, 0.2, 0.6, 2}
	q.Quantize(x)
	s, z := q.Scale()
	fmt.Println(q, "step", s, "zero point", z)
	fmt.Println(x)
	// Output:
	// 2-bit asymmetric [-0.5, 1] step 0.5 zero point 1
	// [-0.5 -0.5 0 0 0.5 1]
}

// TestActQuantizerClip: inside Clip's range the quantizer only rounds
// (|Q(x) − x| ≤ s/2), outside it saturates at the range's nearer end,
// and the range is [Lo, Hi] moved by at most s/2.
func TestActQuantizerClip(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for trial := 0; trial < 2000; trial++ {
		q, x := randomCase(r)
		s, _ := q.Scale()
		lo, hi := q.Clip()
		if math.Abs(lo-q.Lo) > s/2*(1+1e-12) || math.Abs(hi-q.Hi) > s/2*(1+1e-12) || lo > 0 || hi < 0 {
			t.Fatalf("%v: Clip [%g, %g], step %g", q, lo, hi, s)
		}
		y := slices.Clone(x)
		q.Quantize(y)
		for i, v := range x {
			tol := 1e-9 * (1 + math.Abs(v))
			switch {
			case v >= lo && v <= hi:
				if math.Abs(y[i]-v) > s/2+tol {
					t.Fatalf("%v: Q(%g) = %g inside the clipping range [%g, %g], more than s/2 = %g away", q, v, y[i], lo, hi, s/2)
				}
			case v < lo:
				if math.Abs(y[i]-lo) > tol {
					t.Fatalf("%v: Q(%g) = %g below the clipping range, want %g", q, v, y[i], lo)
				}
			default:
				if math.Abs(y[i]-hi) > tol {
					t.Fatalf("%v: Q(%g) = %g above the clipping range, want %g", q, v, y[i], hi)
				}
			}
		}
	}
}
