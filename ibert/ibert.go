package ibert

import (
	"math"
	"math/bits"
)

// The constants of I-BERT's polynomials (Kim et al., ICML 2021, §3.4 and
// §3.5).
const (
	// ErfA and ErfB are (a, b) of L(x) = sgn(x)[a(min(|x|, −b) + b)² + 1],
	// the second-order approximation of erf (eq. 8).
	ErfA, ErfB = -0.2888, -1.769
	// ExpA, ExpB and ExpC give L(p) = ExpA(p + ExpB)² + ExpC ≈ exp(p) on
	// p ∈ (−ln 2, 0] (eq. 11).
	ExpA, ExpB, ExpC = 0.3585, 1.353, 0.344
	// MaxShift caps the exponent z of i-exp: inputs below −MaxShift·ln 2
	// (about −20.8) give exp 0 to the output grid, as the reference
	// implementation clamps them.
	MaxShift = 30
)

// Poly is I-POLY (Algorithm 1) for one input scale S: the integer
// constants of a(x + b)² + c on codes q of x = S·q.
type Poly struct {
	// QB and QC are ⌊b/S⌋ and ⌊c/(a·S²)⌋; Scale is S_out = a·S².
	QB, QC int64
	Scale  float64
}

// NewPoly precomputes I-POLY's constants for input scale s > 0.
func NewPoly(s, a, b, c float64) Poly {
	return Poly{QB: int64(math.Floor(b / s)), QC: int64(math.Floor(c / (a * s * s))), Scale: a * s * s}
}

// Eval returns q_out = (q + q_b)² + q_c, with S_out·q_out ≈ a(S·q + b)² + c.
func (p Poly) Eval(q int64) int64 {
	t := q + p.QB
	return t*t + p.QC
}

// GELU is i-GELU (Algorithm 2) for one input scale S.
type GELU struct {
	erf   Poly  // I-POLY of L at scale S/√2
	clip  int64 // −q_b: |q| is clipped at −b/(S/√2)
	one   int64 // q_1 = ⌊1/S_erf⌋
	scale float64
}

// NewGELU precomputes i-GELU for input scale s > 0.
func NewGELU(s float64) GELU {
	se := s / math.Sqrt2
	p := NewPoly(se, ErfA, ErfB, 1)
	return GELU{erf: p, clip: -p.QB, one: int64(math.Floor(1 / p.Scale)), scale: s * p.Scale / 2}
}

// Scale returns S_out, the scale of Eval's output.
func (g GELU) Scale() float64 { return g.scale }

// Erf returns i-ERF's code of erf(S·q/√2) at scale S_erf (the erf step of
// Algorithm 2): sgn(q)·I-POLY(min(|q|, −q_b)).
func (g GELU) Erf(q int64) int64 {
	a := q
	if a < 0 {
		a = -a
	}
	a = min(a, g.clip)
	l := g.erf.Eval(a)
	if q < 0 {
		return -l
	}
	if q == 0 {
		return 0
	}
	return l
}

// Eval returns q_out = q·(q_erf + q_1), with S_out·q_out ≈ GELU(S·q).
func (g GELU) Eval(q int64) int64 { return q * (g.Erf(q) + g.one) }

// Exp is i-exp (Algorithm 3) for one input scale S, on codes q ≤ 0.
type Exp struct {
	poly Poly
	ln2  int64 // q_ln2 = ⌊ln 2/S⌋
}

// NewExp precomputes i-exp for input scale s > 0 (s < ln 2).
func NewExp(s float64) Exp {
	return Exp{poly: NewPoly(s, ExpA, ExpB, ExpC), ln2: int64(math.Floor(math.Ln2 / s))}
}

// Scale returns S_out = ExpA·S², the scale of Eval's output.
func (e Exp) Scale() float64 { return e.poly.Scale }

// Eval returns q_out with S_out·q_out ≈ exp(S·q) for q ≤ 0: z = ⌊−q/q_ln2⌋
// (at most MaxShift), p = q + z·q_ln2, q_out = I-POLY(p) >> z. Positive q
// are treated as 0.
func (e Exp) Eval(q int64) int64 {
	q = min(q, 0)
	z := -q / e.ln2 // q ≤ 0: truncation is the floor of −q/q_ln2
	if z > MaxShift {
		z = MaxShift
		q = -MaxShift * e.ln2
	}
	p := q + z*e.ln2
	return e.poly.Eval(p) >> z
}

// Sqrt returns ⌊√n⌋ by I-BERT's integer square root (Algorithm 4,
// Newton's iteration from x₀ = 2^⌈bits(n)/2⌉, stopping when an iterate
// does not decrease) and the number of iterations it took.
func Sqrt(n uint64) (root uint64, iters int) {
	if n == 0 {
		return 0, 0
	}
	x := uint64(1) << ((bits.Len64(n) + 1) / 2)
	for {
		iters++
		next := (x + n/x) / 2
		if next >= x {
			return x, iters
		}
		x = next
	}
}

// Softmax writes to dst the integer softmax of one row of codes q at scale
// s (I-BERT §3.5): q̃ = q − max q, e = i-exp(q̃), and dst_i = ⌊e_i·⌊2^32/Σe⌋
// / 2^(32−m)⌋ on the output grid 2^−m (m = outBits, 1..30), the fixed-
// point division of the reference implementation.
func Softmax(dst, q []int64, x Exp, outBits int) {
	if len(q) == 0 {
		return
	}
	mx := q[0]
	for _, v := range q[1:] {
		mx = max(mx, v)
	}
	var sum int64
	for i, v := range q {
		dst[i] = x.Eval(v - mx)
		sum += dst[i]
	}
	if sum <= 0 {
		clear(dst)
		return
	}
	f := (int64(1) << 32) / sum
	for i := range dst {
		dst[i] = dst[i] * f >> (32 - outBits)
	}
}

// Normalize writes to dst I-BERT's integer layer normalisation of one row
// of codes q (§3.6), without the affine γ, β: y = q − round(mean q),
// σ = Sqrt(Σ y²), dst_i = ⌊y_i·⌊2^31/σ⌋ / 2⌋, whose values times
// NormScale(len(q)) approximate (x_i − mean)/std. A constant row (σ = 0)
// gives zeros.
func Normalize(dst, q []int64) {
	n := int64(len(q))
	if n == 0 {
		return
	}
	var s int64
	for _, v := range q {
		s += v
	}
	mean := s / n
	if r := s - mean*n; 2*r >= n { // round half up: ⌊s/n + 1/2⌋
		mean++
	} else if 2*r < -n {
		mean--
	}
	var ss uint64
	for i, v := range q {
		dst[i] = v - mean
		ss += uint64(dst[i] * dst[i])
	}
	sigma, _ := Sqrt(ss)
	if sigma == 0 {
		clear(dst)
		return
	}
	f := (int64(1) << 31) / int64(sigma)
	for i := range dst {
		dst[i] = (dst[i] * f) >> 1
	}
}

// NormScale returns the scale of Normalize's output for rows of n
// elements: √n / 2^30.
func NormScale(n int) float64 { return math.Sqrt(float64(n)) / (1 << 30) }
