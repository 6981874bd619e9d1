package sensitivity

import (
	"fmt"
	"math"
)

// Quantizer is a uniform b-bit quantizer. Its zero value with Bits set is
// HAWQ-V3's default for weights: symmetric, per output channel, with the
// range set by the channel's largest magnitude (min/max).
//
// Symmetric (Krishnamoorthi, arXiv:1806.08342, eq. 7–8), per range r:
//
//	n     = 2^(b−1) − 1
//	s     = r / n,  r = max |w|
//	Q(w)  = s · clamp(round(w/s), −n, n)
//
// Asymmetric, per range [lo, hi] ∋ 0:
//
//	s     = (hi − lo) / (2^b − 1),  z = round(−lo/s)
//	Q(w)  = s · (clamp(round(w/s) + z, 0, 2^b − 1) − z)
//
// round is round-half-to-even (as torch.round). With MSE clipping the range
// r (or [lo, hi]) is shrunk by the factor α ∈ (0, 1] from a grid that
// minimises ‖Q(w) − w‖² for that channel or tensor (Nagel et al., "A White
// Paper on Neural Network Quantization", arXiv:2106.08295, §3.5).
type Quantizer struct {
	// Bits is the bit width b, 1..32 (symmetric needs b ≥ 2).
	Bits int
	// Asymmetric selects an affine quantizer with a zero point; false (the
	// default) is symmetric.
	Asymmetric bool
	// PerTensor uses one range for the whole tensor; false (the default)
	// uses one range per output channel.
	PerTensor bool
	// MSE selects MSE-optimal clipping; false (the default) uses min/max.
	MSE bool
}

// mseGrid is the number of clipping factors tried by MSE clipping, evenly
// spaced in [mseLow, 1].
const (
	mseGrid = 80
	mseLow  = 0.2
)

// Layout says how a weight tensor is split into output channels: the
// tensor's shape and the axis that indexes output channels (0 for Conv's
// O×I×kH×kW and for Gemm's N×K weight with transB; 1 for a MatMul weight
// K×N).
type Layout struct {
	Shape []int
	Axis  int
}

// check validates the layout against n elements.
func (l Layout) check(n int) (outer, channels, inner int, err error) {
	if len(l.Shape) == 0 {
		if n == 0 {
			return 0, 0, 0, fmt.Errorf("quantizer: empty tensor")
		}
		return 1, 1, n, nil
	}
	if l.Axis < 0 || l.Axis >= len(l.Shape) {
		return 0, 0, 0, fmt.Errorf("quantizer: channel axis %d out of range for shape %v", l.Axis, l.Shape)
	}
	size := 1
	for _, d := range l.Shape {
		if d <= 0 {
			return 0, 0, 0, fmt.Errorf("quantizer: shape %v has a non-positive dimension", l.Shape)
		}
		size *= d
	}
	if size != n {
		return 0, 0, 0, fmt.Errorf("quantizer: shape %v holds %d elements, tensor has %d", l.Shape, size, n)
	}
	outer, inner = 1, 1
	for _, d := range l.Shape[:l.Axis] {
		outer *= d
	}
	for _, d := range l.Shape[l.Axis+1:] {
		inner *= d
	}
	return outer, l.Shape[l.Axis], inner, nil
}

// Check reports whether the quantizer can be applied: Bits in 1..32
// (2..32 when symmetric). Commands call it on their candidates before any
// work.
func (q Quantizer) Check() error {
	lo := 1
	if !q.Asymmetric {
		lo = 2
	}
	if q.Bits < lo || q.Bits > 32 {
		return fmt.Errorf("quantizer: %d bits out of range [%d, 32]", q.Bits, lo)
	}
	return nil
}

// Quantize writes Q(w) into dst (which may be w itself) and returns the
// scale of every channel (one scale when PerTensor). Non-finite weights are
// an error.
func (q Quantizer) Quantize(dst, w []float64, l Layout) ([]float64, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	if len(dst) != len(w) {
		return nil, fmt.Errorf("quantizer: dst has %d elements, w has %d", len(dst), len(w))
	}
	outer, channels, inner, err := l.check(len(w))
	if err != nil {
		return nil, err
	}
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("quantizer: weight %d is %v", i, v)
		}
	}
	if q.PerTensor {
		idx := make([]int, len(w))
		for i := range idx {
			idx[i] = i
		}
		return []float64{q.quantizeSet(dst, w, idx)}, nil
	}
	scales := make([]float64, channels)
	idx := make([]int, 0, outer*inner)
	for c := 0; c < channels; c++ {
		idx = idx[:0]
		for o := 0; o < outer; o++ {
			base := (o*channels + c) * inner
			for i := 0; i < inner; i++ {
				idx = append(idx, base+i)
			}
		}
		scales[c] = q.quantizeSet(dst, w, idx)
	}
	return scales, nil
}

// DeltaSq returns ‖Q(w) − w‖²₂, the quantization error term of HAWQ-V3's
// sensitivity Ω.
func (q Quantizer) DeltaSq(w []float64, l Layout) (float64, error) {
	dst := make([]float64, len(w))
	if _, err := q.Quantize(dst, w, l); err != nil {
		return 0, err
	}
	var s, comp float64 // Kahan summation: many tiny terms
	for i := range w {
		d := dst[i] - w[i]
		y := d*d - comp
		t := s + y
		comp = (t - s) - y
		s = t
	}
	return s, nil
}

// quantizeSet quantizes the elements w[idx] into dst[idx] with one range
// and returns its scale.
func (q Quantizer) quantizeSet(dst, w []float64, idx []int) float64 {
	lo, hi := 0.0, 0.0
	for _, i := range idx {
		lo = math.Min(lo, w[i])
		hi = math.Max(hi, w[i])
	}
	if !q.MSE {
		return q.apply(dst, w, idx, lo, hi)
	}
	bestA, bestErr := 1.0, math.Inf(1)
	for g := 0; g < mseGrid; g++ {
		a := mseLow + (1-mseLow)*float64(g)/float64(mseGrid-1)
		if e := q.err(w, idx, a*lo, a*hi); e < bestErr {
			bestA, bestErr = a, e
		}
	}
	return q.apply(dst, w, idx, bestA*lo, bestA*hi)
}

// params returns scale, zero point and the integer range for [lo, hi].
func (q Quantizer) params(lo, hi float64) (s, z, qmin, qmax float64) {
	if q.Asymmetric {
		qmax = math.Exp2(float64(q.Bits)) - 1
		s = (hi - lo) / qmax
		if s == 0 {
			return 0, 0, 0, qmax
		}
		return s, math.RoundToEven(-lo / s), 0, qmax
	}
	n := math.Exp2(float64(q.Bits-1)) - 1
	s = math.Max(-lo, hi) / n
	return s, 0, -n, n
}

// one quantizes a single value.
func one(v, s, z, qmin, qmax float64) float64 {
	if s == 0 {
		return 0
	}
	x := math.RoundToEven(v/s) + z
	x = math.Max(qmin, math.Min(qmax, x))
	return (x - z) * s
}

func (q Quantizer) apply(dst, w []float64, idx []int, lo, hi float64) float64 {
	s, z, qmin, qmax := q.params(lo, hi)
	for _, i := range idx {
		dst[i] = one(w[i], s, z, qmin, qmax)
	}
	return s
}

func (q Quantizer) err(w []float64, idx []int, lo, hi float64) float64 {
	s, z, qmin, qmax := q.params(lo, hi)
	var e float64
	for _, i := range idx {
		d := one(w[i], s, z, qmin, qmax) - w[i]
		e += d * d
	}
	return e
}
