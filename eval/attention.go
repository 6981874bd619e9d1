package eval

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// FloatBits is the width at and above which an attention point or a
// block's non-linearities stay in float: the "16" candidate of a
// sensitivity.KindAttention or KindNonlinear layer (FP16 on the device).
const FloatBits = 16

// AttentionBits are the default candidate widths of an attention point:
// both inputs in 4 or 8 bits, or float (FloatBits).
var AttentionBits = []int{4, 8, FloatBits}

// AttentionPoints returns the activation × activation MatMuls of the
// engine's model (model.Model.ActMatMuls: attention's Q·Kᵀ and P·V), with
// per-sample MACs at the engine's input shapes.
func AttentionPoints(e *nn.Engine) []model.ActMatMul { return e.Model().ActMatMuls() }

// AppliedAttention is one attention point as Apply quantized it.
type AppliedAttention struct {
	// Name is the MatMul node's name; Node its index in the engine's model.
	Name string
	Node int
	// Bits is the width of both inputs (0: float).
	Bits int
	// Inputs are the calibrated ranges of the two inputs and Acts their
	// quantizers (zero when Bits is 0).
	Inputs [2]Range
	Acts   [2]ActQuantizer
}

// CalibrateAttention returns the min/max range of both inputs of every
// attention point over ds, by name, with the engine as it is set up (the
// quantized weights and the input quantizers already installed, so the
// ranges are those the deployed model's attention sees). Its observers are
// removed before it returns; other quantizers are left in place.
func CalibrateAttention(ctx context.Context, e *nn.Engine, ds data.Dataset, points []model.ActMatMul) (map[string][2]Range, error) {
	type obs struct {
		mu     sync.Mutex
		lo, hi float64
		nan    bool
	}
	o := make([][2]*obs, len(points))
	remove := func() {
		for _, p := range points {
			_ = e.SetNodeInputQuantizer(p.Name, 0, nil)
			_ = e.SetNodeInputQuantizer(p.Name, 1, nil)
		}
	}
	for i, p := range points {
		for in := 0; in < 2; in++ {
			ob := &obs{lo: math.Inf(1), hi: math.Inf(-1)}
			o[i][in] = ob
			err := e.SetNodeInputQuantizer(p.Name, in, func(x []float64) {
				lo, hi, nan := math.Inf(1), math.Inf(-1), false
				for _, v := range x {
					if v != v {
						nan = true
					}
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
				ob.mu.Lock()
				ob.lo, ob.hi, ob.nan = math.Min(ob.lo, lo), math.Max(ob.hi, hi), ob.nan || nan
				ob.mu.Unlock()
			})
			if err != nil {
				remove()
				return nil, err
			}
		}
	}
	_, err := e.Evaluate(ctx, ds)
	remove()
	if err != nil {
		return nil, fmt.Errorf("eval: attention calibration: %w", err)
	}
	out := make(map[string][2]Range, len(points))
	for i, p := range points {
		var r [2]Range
		for in := 0; in < 2; in++ {
			ob := o[i][in]
			if ob.nan || math.IsInf(ob.lo, 0) || math.IsInf(ob.hi, 0) {
				return nil, fmt.Errorf("eval: attention calibration: input %d of %q is not finite (range [%g, %g])", in, p.Name, ob.lo, ob.hi)
			}
			r[in] = Range{Min: ob.lo, Max: ob.hi}
		}
		out[p.Name] = r
	}
	return out, nil
}

// applyAttention installs the quantizers of the attention layers of ls
// (Kind sensitivity.KindAttention, Bits below FloatBits) on both inputs of
// their MatMuls, with ranges from set.AttentionRanges or calibrated on
// calib with everything else already applied.
func (a *Applied) applyAttention(ctx context.Context, e *nn.Engine, ls []Layer, calib data.Dataset, set Settings) error {
	byName := map[string]model.ActMatMul{}
	for _, p := range AttentionPoints(e) {
		byName[p.Name] = p
	}
	var quant []model.ActMatMul
	var bits []int
	for _, l := range ls {
		p, ok := byName[l.Name]
		if !ok {
			return fmt.Errorf("eval: layer %q is not an activation × activation MatMul of the model", l.Name)
		}
		if l.Bits < 0 || l.Bits > MaxBits {
			return fmt.Errorf("eval: attention point %q: bits %d out of range [0, %d]", l.Name, l.Bits, MaxBits)
		}
		if l.Bits == 0 || l.Bits >= FloatBits {
			a.Attention = append(a.Attention, AppliedAttention{Name: p.Name, Node: p.Node})
			continue
		}
		quant, bits = append(quant, p), append(bits, l.Bits)
	}
	if len(quant) == 0 {
		return nil
	}
	ranges := set.AttentionRanges
	if ranges == nil {
		if calib == nil {
			return fmt.Errorf("eval: attention quantization needs calibration data")
		}
		var err error
		if ranges, err = CalibrateAttention(ctx, e, calib, quant); err != nil {
			return err
		}
	}
	for i, p := range quant {
		r, ok := ranges[p.Name]
		if !ok {
			return fmt.Errorf("eval: attention point %q: no range in Settings.AttentionRanges", p.Name)
		}
		aa := AppliedAttention{Name: p.Name, Node: p.Node, Bits: bits[i], Inputs: r}
		for in := 0; in < 2; in++ {
			q, err := NewActQuantizer(bits[i], r[in])
			if err != nil {
				return fmt.Errorf("eval: attention point %q input %d: %w", p.Name, in, err)
			}
			aa.Acts[in] = q
			if err := e.SetNodeInputQuantizer(p.Name, in, q.Func()); err != nil {
				return err
			}
			lo, hi := q.Clip()
			if err := e.SetNodeInputClip(p.Name, in, lo, hi); err != nil {
				return err
			}
		}
		a.Attention = append(a.Attention, aa)
	}
	return nil
}

// AttentionSettings tunes AddAttention. The zero value (or nil) means
// defaults.
type AttentionSettings struct {
	// Bits are the candidate widths of both inputs; nil means
	// AttentionBits (4, 8 and float). A width of FloatBits or more is the
	// float candidate, Ω 0. Float only ([FloatBits]) adds the points
	// pinned to float: their MACs are counted in the plan's BOPS, latency
	// and energy, and nothing is quantized.
	Bits []int
	// Calibration of the inputs: min/max (Calibration's other methods apply
	// to the weight layers' inputs only).
}

// AddAttention appends to t one layer of Kind sensitivity.KindAttention
// per activation × activation MatMul of the engine's model: Params 0, its
// MACs (per sample, at the data's sequence length), both inputs' elements
// as InElems, and for every candidate width b the measured Ω: the loss
// increase on calib with that point alone quantized at b bits (both
// inputs, ranges calibrated once at the float model), scaled to the
// table's criterion: 2·ΔL for the Hessian criteria (HAWQ's Ω is the
// second-order term ΔWᵀHΔW of ΔL ≈ ½ΔWᵀHΔW, the scale plan's verification
// uses), ΔL for the measured and fisher criteria. The weight and taylor
// criteria have no loss scale and are refused. It returns the number of
// layers added (0 for a model without attention).
func AddAttention(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, s *AttentionSettings) (int, error) {
	var set AttentionSettings
	if s != nil {
		set = *s
	}
	bits := set.Bits
	if bits == nil {
		bits = AttentionBits
	}
	points := AttentionPoints(e)
	if len(points) == 0 {
		return 0, nil
	}
	scale, err := lossScale(t)
	if err != nil {
		return 0, err
	}
	quantized := false
	for _, b := range bits {
		if b < 1 || b > MaxBits {
			return 0, fmt.Errorf("eval: attention bits %d out of range [1, %d]", b, MaxBits)
		}
		quantized = quantized || b < FloatBits
	}
	for _, p := range points {
		if !p.ShapeKnown {
			return 0, fmt.Errorf("eval: attention point %q: operand shapes unknown, its MACs cannot be counted", p.Name)
		}
	}
	var ranges map[string][2]Range
	var base float64
	if quantized {
		if calib == nil || calib.Len() == 0 {
			return 0, fmt.Errorf("eval: attention candidates need calibration data")
		}
		e.ClearInputQuantizers()
		if ranges, err = CalibrateAttention(ctx, e, calib, points); err != nil {
			return 0, err
		}
		r, err := e.Evaluate(ctx, calib)
		if err != nil {
			return 0, err
		}
		base = r.Loss
	}
	for _, p := range points {
		l := sensitivity.Layer{Name: p.Name, Kind: sensitivity.KindAttention, MACs: float64(p.MACs),
			InElems: float64(p.InElems()), OutElems: float64(p.OutElems), DeltaSq: map[string]float64{}, Scores: map[string]float64{}}
		for _, b := range bits {
			k := sensitivity.Precision{W: b, A: b}.String()
			l.DeltaSq[k] = 0
			if b >= FloatBits {
				l.Scores[k] = 0
				continue
			}
			a := &Applied{e: e, theta: e.Theta()}
			err := a.applyAttention(ctx, e, []Layer{{Name: p.Name, Bits: b, Kind: sensitivity.KindAttention}}, calib, Settings{AttentionRanges: ranges})
			var r nn.Eval
			if err == nil {
				r, err = e.Evaluate(ctx, calib)
			}
			a.Restore()
			if err != nil {
				return 0, fmt.Errorf("eval: attention point %q at %d bits: %w", p.Name, b, err)
			}
			l.Scores[k] = scale * (r.Loss - base)
		}
		if !quantized {
			l.Pin = sensitivity.Precision{W: bits[0], A: bits[0]}.String()
		}
		t.Layers = append(t.Layers, l)
	}
	return len(points), nil
}

// lossScale returns the factor that puts a measured loss increase ΔL on
// the scale of the table's Ω: 2 for the Hessian criteria (HAWQ's Ω is
// ΔWᵀHΔW of ΔL ≈ ½ΔWᵀHΔW, the scale plan's verification uses), 1 for the
// measured and fisher criteria; the weight and taylor criteria have no
// loss scale and are refused.
func lossScale(t *sensitivity.Table) (float64, error) {
	switch sensitivity.Criterion(t.Criterion) {
	case "", sensitivity.Hessian, sensitivity.Diag, sensitivity.Quadratic:
		return 2, nil
	case sensitivity.Measured, sensitivity.Fisher:
		return 1, nil
	}
	return 0, fmt.Errorf("eval: attention and non-linearity candidates need a loss-scaled criterion (hessian, diag, quadratic, fisher or measured), not %s", t.Criterion)
}
