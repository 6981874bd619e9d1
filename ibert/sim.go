package ibert

import "math"

// InputBits is the width of the symmetric input grid of the float64
// simulations: codes in ±(2^15 − 1). It stands for the INT32 accumulator
// output that feeds the non-linearities in I-BERT (a coarser grid, so the
// simulated error is not smaller than the deployed one), and keeps every
// intermediate product of the algorithms within int64.
const InputBits = 16

// maxCode is the largest code of the InputBits grid.
const maxCode = 1<<(InputBits-1) - 1

// InputScale returns the step of the InputBits grid over [−r, r]; 0 when
// r is not positive and finite.
func InputScale(r float64) float64 {
	if !(r > 0) || math.IsInf(r, 0) {
		return 0
	}
	return r / maxCode
}

// code returns x/s rounded to the grid (half away from zero) and clamped
// to ±maxCode.
func code(x, s float64) int64 {
	return int64(math.Max(-maxCode, math.Min(maxCode, math.Round(x/s))))
}

// SoftmaxScale is the input step of SimSoftmax: the InputBits grid over
// [−MaxShift·ln 2, 0], the range in which i-exp's output is not 0 (the
// row maximum is subtracted first, so only differences matter).
var SoftmaxScale = MaxShift * math.Ln2 / maxCode

// SimGELU writes S_out·i-GELU(code(x)) for every x, the input on the grid
// of step s > 0 (see InputScale).
func SimGELU(dst, x []float64, s float64) {
	g := NewGELU(s)
	for i, v := range x {
		dst[i] = 0 // S_out is negative (a < 0): no −0 for a zero code
		if c := g.Eval(code(v, s)); c != 0 {
			dst[i] = g.Scale() * float64(c)
		}
	}
}

// SimSoftmax writes the integer-only softmax of every row of n elements
// of x (the last axis): the row minus its maximum on the SoftmaxScale
// grid, i-exp, the fixed-point division, dequantized from the 2^−outBits
// output grid (I-BERT's Softmax output is 8-bit: outBits 8).
func SimSoftmax(dst, x []float64, n, outBits int) {
	e := NewExp(SoftmaxScale)
	q := make([]int64, n)
	out := make([]int64, n)
	step := math.Exp2(-float64(outBits))
	for r := 0; r+n <= len(x); r += n {
		row := x[r : r+n]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		for i, v := range row {
			d := v - mx
			if math.IsInf(d, -1) || d < -MaxShift*math.Ln2 {
				d = -MaxShift * math.Ln2
			}
			q[i] = code(d, SoftmaxScale)
		}
		Softmax(out, q, e, outBits)
		for i, v := range out {
			dst[r+i] = float64(v) * step
		}
	}
}

// SimNormalize writes I-BERT's integer layer normalisation (without γ, β)
// of every row of n elements of x, the input on the grid of step s > 0:
// Normalize on the codes, times NormScale(n).
func SimNormalize(dst, x []float64, n int, s float64) {
	q := make([]int64, n)
	out := make([]int64, n)
	sc := NormScale(n)
	for r := 0; r+n <= len(x); r += n {
		for i, v := range x[r : r+n] {
			q[i] = code(v, s)
		}
		Normalize(out, q)
		for i, v := range out {
			dst[r+i] = float64(v) * sc
		}
	}
}
