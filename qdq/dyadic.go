package qdq

import (
	"fmt"
	"math"
)

// DyadicBits is the width of a dyadic multiplier's numerator b: 31 bits,
// the int32 fixed-point multiplier of integer-only kernels (gemmlowp;
// HAWQ-V3's batch_frexp rounds the mantissa to 2^31).
const DyadicBits = 31

// DyadicScales are a layer's requantization multipliers as dyadic numbers
// (HAWQ-V3, Yao et al., arXiv:2011.10680, §3.3): for every output channel
// c, the scale M_c = s_x·s_w[c]/s_y that maps the int32 accumulator to the
// next quantized tensor (scale s_y) is b_c/2^shift_c with an integer b_c of
// at most DyadicBits bits, so integer hardware requantizes with one
// multiplication and one shift.
type DyadicScales struct {
	// Output is the quantized tensor the layer's output reaches (directly
	// or through operators that commute with its quantizer: Relu, the
	// max-like reductions, the layout operators; see passThrough). The
	// multipliers requantize the layer's output, before those operators.
	Output string `json:"output"`
	// OutputScale is s_y.
	OutputScale float64 `json:"output_scale"`
	// Multiplier and Shift are b_c and shift_c per output channel of the
	// layer.
	Multiplier []int64 `json:"multiplier"`
	Shift      []int   `json:"shift"`
	// MaxRelErr is the largest |b/2^shift − M|/M over the channels.
	MaxRelErr float64 `json:"max_rel_err"`
}

// Dyadic returns b and shift with b/2^shift the dyadic number nearest to
// m > 0 with b < 2^DyadicBits (m = f·2^e with f ∈ [0.5, 1): b =
// round(f·2^DyadicBits), shift = DyadicBits − e).
func Dyadic(m float64) (b int64, shift int, err error) {
	if !(m > 0) || math.IsInf(m, 0) {
		return 0, 0, fmt.Errorf("qdq: requantization scale %g is not a positive number", m)
	}
	f, e := math.Frexp(m)
	b = int64(math.Round(f * (1 << DyadicBits)))
	shift = DyadicBits - e
	if b == 1<<DyadicBits { // f rounded up to 1
		b, shift = b/2, shift-1
	}
	return b, shift, nil
}

// passThrough lists operators that commute with a per-tensor quantizer
// whose grid holds 0: op(Q(x)) = Q(op(x)) for Q(x) = clamp(round(x/s) + z)
// with one scale s > 0 and zero point z, so an integer-only backend runs
// them on the codes of the layer's requantized output and gets the codes
// of the quantized tensor after them, whatever their shapes. Relu needs
// the grid to hold 0; the others hold for any monotone Q: the max-like
// reductions (MaxPool, GlobalMaxPool, ReduceMax, ReduceMin over any axes,
// the channel axis too, as the multipliers are applied before them: Q is
// non-decreasing, rounding and clamping included, so the largest and
// smallest codes are the codes of the largest and smallest values; an
// empty reduction's ±Inf has no code), and operators that only move
// elements (Flatten, Reshape, Identity, Squeeze, Unsqueeze, Transpose,
// DepthToSpace, SpaceToDepth). TestPassThroughCommutes checks this on
// the operators' conformance cases.
var passThrough = map[string]bool{"Relu": true, "MaxPool": true, "GlobalMaxPool": true, "ReduceMax": true, "ReduceMin": true,
	"Flatten": true, "Reshape": true, "Identity": true, "Squeeze": true, "Unsqueeze": true,
	"Transpose": true, "DepthToSpace": true, "SpaceToDepth": true}

// dyadic records the requantization multipliers of every layer with a
// quantized input whose output reaches another quantized input. The stored
// float32 scales are left as they are: b_c/2^shift_c equals M_c to within
// 2^-31 relative, finer than float32's 2^-24, so the float32 scales already
// give the dyadic products to float32 precision; an integer-only backend
// reads (b_c, shift_c) from the model's metadata.
func (x *exporter) dyadic(layers []LayerSummary) error {
	for i := range layers {
		l := &layers[i]
		if l.ABits == 0 {
			continue
		}
		ni, err := x.unitNode(l.Name)
		if err != nil {
			return err
		}
		t := x.g.Node[ni].Output[0]
		sy, found := 0.0, false
		for hop := 0; hop < len(x.g.Node); hop++ {
			if s, ok := x.qsrc[t]; ok {
				sy, found = s, true
				break
			}
			cs := x.consumers[t]
			if len(cs) != 1 || !passThrough[x.g.Node[cs[0]].OpType] {
				break
			}
			t = x.g.Node[cs[0]].Output[0]
		}
		if !found || sy == 0 {
			continue
		}
		slot := dataInput(x.e.Model().Unit(l.Name))
		if slot < 0 {
			continue
		}
		sx := x.qin[x.g.Node[ni].Input[slot]]
		d := &DyadicScales{Output: t, OutputScale: sy}
		for _, sw := range l.scales {
			m := sx * sw / sy
			if m == 0 {
				d.Multiplier, d.Shift = append(d.Multiplier, 0), append(d.Shift, 0)
				continue
			}
			b, sh, err := Dyadic(m)
			if err != nil {
				return fmt.Errorf("qdq: layer %q: %w", l.Name, err)
			}
			d.Multiplier, d.Shift = append(d.Multiplier, b), append(d.Shift, sh)
			d.MaxRelErr = math.Max(d.MaxRelErr, math.Abs(math.Ldexp(float64(b), -sh)-m)/m)
		}
		l.Dyadic = d
	}
	return nil
}
