package eval

import (
	"fmt"
	"math"
	"strconv"

	"github.com/bitplan/bitplan/nn"
)

// MaxBits is the largest bit width the quantizers accept; wider grids are
// indistinguishable from float64 for the models this package evaluates.
const MaxBits = 32

// Range is the interval of values an activation took on calibration data.
type Range struct {
	Min, Max float64
}

// ActQuantizer is the static uniform quantizer of one activation tensor
// with a range fixed by calibration (per tensor, min/max). With
// lo = min(Min, 0), hi = max(Max, 0) and L = 2^b − 1 levels:
//
//	s = (hi − lo) / L,  z = round(−lo / s)
//	Q(x) = s · (clamp(round(x/s) + z, 0, L) − z)
//
// the asymmetric (affine) quantizer of Krishnamoorthi, arXiv:1806.08342,
// eq. 1–3, whose grid holds 0 exactly (ReLU zeros and zero padding stay
// exact). When the calibrated input is non-negative (Min ≥ 0, e.g. after a
// ReLU) lo = 0, z = 0 and the grid is the unsigned [0, hi] with 2^b levels;
// otherwise the grid spans [lo, hi], shifted by at most s/2 so that 0 is a
// level. Values outside the range saturate at its ends. round is
// round-half-to-even, like torch.round and sensitivity.Quantizer.
type ActQuantizer struct {
	// Bits is the bit width b, 1..MaxBits.
	Bits int
	// Lo and Hi are the ends of the range, Lo ≤ 0 ≤ Hi.
	Lo, Hi float64
}

// NewActQuantizer returns the b-bit quantizer of the calibrated range r.
// It fails when bits is outside 1..MaxBits or r is not finite with
// Min ≤ Max.
func NewActQuantizer(bits int, r Range) (ActQuantizer, error) {
	if bits < 1 || bits > MaxBits {
		return ActQuantizer{}, fmt.Errorf("eval: activation bits %d out of range [1, %d]", bits, MaxBits)
	}
	if math.IsNaN(r.Min) || math.IsNaN(r.Max) || math.IsInf(r.Min, 0) || math.IsInf(r.Max, 0) || r.Min > r.Max {
		return ActQuantizer{}, fmt.Errorf("eval: activation range [%g, %g] is not a finite interval", r.Min, r.Max)
	}
	return ActQuantizer{Bits: bits, Lo: math.Min(r.Min, 0), Hi: math.Max(r.Max, 0)}, nil
}

// Levels returns L = 2^b − 1, the largest integer code.
func (q ActQuantizer) Levels() float64 { return math.Exp2(float64(q.Bits)) - 1 }

// Signed reports whether the grid has negative levels (Lo < 0).
func (q ActQuantizer) Signed() bool { return q.Lo < 0 }

// Scale returns the step s and the zero point z (0 when unsigned). s is 0
// for the degenerate range [0, 0], which maps every value to 0.
func (q ActQuantizer) Scale() (s, z float64) {
	s = (q.Hi - q.Lo) / q.Levels()
	if s == 0 {
		return 0, 0
	}
	return s, math.RoundToEven(-q.Lo / s)
}

// Quantize replaces every x[i] by Q(x[i]). NaNs stay NaN.
func (q ActQuantizer) Quantize(x []float64) {
	s, z := q.Scale()
	if s == 0 {
		clear(x)
		return
	}
	l := q.Levels()
	for i, v := range x {
		c := math.RoundToEven(v/s) + z
		if c < 0 {
			c = 0
		} else if c > l {
			c = l
		}
		x[i] = (c - z) * s
	}
}

// Clip returns the clipping range of the grid, [−z·s, (L − z)·s]: the
// values that land on a code without saturating at its ends (the range
// inside which the straight-through gradient passes, LSQ's
// −Q_N ≤ x/s ≤ Q_P; nn.Engine.SetInputClip). It is [Lo, Hi] shifted by
// the zero point's rounding, at most s/2.
func (q ActQuantizer) Clip() (lo, hi float64) {
	s, z := q.Scale()
	return -z * s, (q.Levels() - z) * s
}

// Install sets q as the input quantizer of the named unit of e, with its
// clipping range for straight-through gradient passes
// (nn.Engine.SetQuantizedGradient).
func (q ActQuantizer) Install(e *nn.Engine, unit string) error {
	if err := e.SetInputQuantizer(unit, q.Func()); err != nil {
		return err
	}
	lo, hi := q.Clip()
	return e.SetInputClip(unit, lo, hi)
}

// Func returns Quantize as an engine input quantizer (safe for concurrent
// calls: q is a value).
func (q ActQuantizer) Func() nn.InputQuantizer { return q.Quantize }

// String describes the quantizer: "8-bit unsigned [0, 2.5]".
func (q ActQuantizer) String() string {
	kind := "unsigned"
	if q.Signed() {
		kind = "asymmetric"
	}
	return fmt.Sprintf("%d-bit %s [%s, %s]", q.Bits, kind, g4(q.Lo), g4(q.Hi))
}

// g4 formats with four significant digits.
func g4(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
