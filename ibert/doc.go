// Package ibert implements the integer-only approximations of GELU,
// Softmax and LayerNorm of I-BERT (Kim, Gholami, Yao, Mahoney and
// Keutzer, "I-BERT: Integer-only BERT Quantization", ICML 2021,
// arXiv:2101.01321, §3.3–3.6 and Algorithms 1–4), on integer codes q of a
// real value x = S·q, and their float64 simulations on a quantization
// grid, so that a plan can price and measure integer-only non-linearities
// against float ones.
//
// The building block is I-POLY (Algorithm 1), a second-order polynomial
// a(x + b)² + c evaluated on q with integer constants only:
//
//	q_b = ⌊b/S⌋,  q_c = ⌊c/(a·S²)⌋,  q_out = (q + q_b)² + q_c,  S_out = a·S²
//
// i-GELU (Algorithm 2) approximates erf by L(x) = sgn(x)·[a(min(|x|, −b) +
// b)² + 1] with (a, b) = (−0.2888, −1.769), and GELU(x) = x/2·[1 +
// erf(x/√2)] by x/2·[1 + L(x/√2)]. i-exp (Algorithm 3) writes x ≤ 0 as
// (−ln 2)·z + p with p ∈ (−ln 2, 0] and approximates exp(p) by
// 0.3585(p + 1.353)² + 0.344, so exp(x) ≈ L(p) >> z. Softmax subtracts the
// row maximum, takes i-exp and divides by the row sum in fixed point
// (output on the 2^−m grid, m = 8 by default). LayerNorm's standard
// deviation is an integer square root by Newton's iteration (Algorithm 4),
// exact: ⌊√n⌋.
//
// Arithmetic is int64 throughout: the 16-bit input grids of the
// simulations keep every product below 2^62 without the right shifts an
// INT32 kernel needs (the reference implementation shifts the erf term by
// 14 bits to stay in 32 bits), so these functions compute the paper's
// algorithms exactly, without that extra rounding.
//
// The approximation errors in real arithmetic, computed on a uniform grid
// of 100,001 points (TestRealArithmeticErrors): i-GELU against GELU on
// [−4, 4] RMS 0.0082 and max 0.0182 (I-BERT's Table 1 compares GELU
// approximations by L2 and L∞ distance on this interval); the exp
// polynomial on (−ln 2, 0] max 0.00213 (absolute, relative 0.31 %), which
// bounds i-exp's error on every x ≤ 0 since the shift by z scales it by
// 2^−z. The integer versions add the floors' errors, a few grid steps S;
// the tests check both.
package ibert
