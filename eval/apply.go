package eval

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// Layer is the precision to simulate for one quantizable layer.
type Layer struct {
	// Name is the unit's name (nn.UnitLayout.Name).
	Name string
	// Bits is the weight bit width, 2..MaxBits (the symmetric quantizer
	// needs two bits; the asymmetric one accepts 1).
	Bits int
	// ABits is the bit width of the layer's data input, 1..MaxBits; 0
	// keeps the input in float64.
	ABits int
	// Kind is "" for a weight layer (a unit), sensitivity.KindAttention
	// for an activation × activation MatMul (Name is its node; Bits, below
	// FloatBits, quantizes both inputs; ABits is ignored) and
	// sensitivity.KindNonlinear for a block of non-linearities (Bits below
	// FloatBits: I-BERT's integer-only GELU, Softmax and LayerNorm).
	Kind string
}

// FromPlan returns the layers of a plan, checked against the engine's
// units: every plan layer must be a unit and every unit must have a plan
// layer, once, with bit widths in range. A plan layer with abits 0 takes
// the weight width (the table contract's convention: activations use the
// weight width unless told otherwise). Errors name the layer.
func FromPlan(p *plan.Plan, e *nn.Engine) ([]Layer, error) {
	if p == nil {
		return nil, fmt.Errorf("eval: nil plan")
	}
	units := e.Units()
	byName := make(map[string]bool, len(units))
	names := make([]string, len(units))
	for i, u := range units {
		byName[u.Name] = true
		names[i] = u.Name
	}
	seen := make(map[string]bool, len(p.Layers))
	var out []Layer
	var points, groups map[string]bool
	var groupList string
	for i, l := range p.Layers {
		if l.Kind == sensitivity.KindAttention {
			if points == nil {
				points = map[string]bool{}
				for _, a := range AttentionPoints(e) {
					points[a.Name] = true
				}
			}
			if !points[l.Name] || seen[l.Name] {
				return nil, fmt.Errorf("layers[%d]: attention layer %q is not an activation × activation MatMul of the model, or appears twice", i, l.Name)
			}
			seen[l.Name] = true
			if l.Bits < 1 || l.Bits > MaxBits {
				return nil, fmt.Errorf("layers[%d] (%q): bits %d out of range [1, %d] (%d and more: float)", i, l.Name, l.Bits, MaxBits, FloatBits)
			}
			out = append(out, Layer{Name: l.Name, Bits: l.Bits, ABits: l.Bits, Kind: l.Kind})
			continue
		}
		if l.Kind == sensitivity.KindNonlinear {
			if groups == nil {
				groups = map[string]bool{}
				gs := NonlinearGroups(e)
				for _, g := range gs {
					groups[g.Name] = true
				}
				groupList = strings.Join(nonlinearNames(gs), ", ")
			}
			if !groups[l.Name] || seen[l.Name] {
				return nil, fmt.Errorf("layers[%d]: non-linearity layer %q is not a block's non-linearity of the model (it has %s), or appears twice", i, l.Name, groupList)
			}
			seen[l.Name] = true
			if l.Bits < 1 || l.Bits > MaxBits {
				return nil, fmt.Errorf("layers[%d] (%q): bits %d out of range [1, %d] (below %d: integer-only, else float)", i, l.Name, l.Bits, MaxBits, FloatBits)
			}
			out = append(out, Layer{Name: l.Name, Bits: l.Bits, ABits: l.Bits, Kind: l.Kind})
			continue
		}
		if l.Kind != "" {
			return nil, fmt.Errorf("layers[%d] (%q): kind %q is not simulated", i, l.Name, l.Kind)
		}
		if !byName[l.Name] {
			return nil, fmt.Errorf("layers[%d]: plan layer %q is not a quantizable layer of the model (the model has %s)", i, l.Name, strings.Join(names, ", "))
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("layers[%d]: layer %q appears twice in the plan", i, l.Name)
		}
		seen[l.Name] = true
		if l.Bits == 0 && p.Status != "optimal" && p.Status != "limit" {
			return nil, fmt.Errorf("layers[%d] (%q): the plan has status %q and no bit widths to evaluate", i, l.Name, p.Status)
		}
		if l.Bits < 2 || l.Bits > MaxBits {
			return nil, fmt.Errorf("layers[%d] (%q): bits %d out of range [2, %d]", i, l.Name, l.Bits, MaxBits)
		}
		ab := l.ABits
		if ab == 0 {
			ab = l.Bits
		}
		if ab < 1 || ab > MaxBits {
			return nil, fmt.Errorf("layers[%d] (%q): abits %d out of range [1, %d]", i, l.Name, l.ABits, MaxBits)
		}
		out = append(out, Layer{Name: l.Name, Bits: l.Bits, ABits: ab})
	}
	for _, u := range units {
		if !seen[u.Name] {
			return nil, fmt.Errorf("model layer %q has no entry in the plan (the plan has %d layers)", u.Name, len(p.Layers))
		}
	}
	return out, nil
}

// Calibrate returns the range (min, max) of the data input of every unit
// that has one in the graph (UnitLayout.HasInput) over
// ds, keyed by unit name: one inference pass with observing input
// quantizers, at the engine's current weights. It removes every input
// quantizer of the engine, before the pass (so that the ranges are those
// of float activations) and after it.
func Calibrate(ctx context.Context, e *nn.Engine, ds data.Dataset) (map[string]Range, error) {
	type obs struct {
		mu     sync.Mutex
		lo, hi float64
		nan    bool
	}
	units := e.Units()
	obsv := make([]*obs, len(units))
	e.ClearInputQuantizers()
	defer e.ClearInputQuantizers()
	for i, u := range units {
		if !u.HasInput {
			continue // an LSTM's R: its input is internal to the node
		}
		o := &obs{lo: math.Inf(1), hi: math.Inf(-1)}
		obsv[i] = o
		err := e.SetInputQuantizer(u.Name, func(x []float64) {
			lo, hi, nan := math.Inf(1), math.Inf(-1), false
			for _, v := range x {
				if v != v {
					nan = true
				}
				lo = math.Min(lo, v)
				hi = math.Max(hi, v)
			}
			o.mu.Lock()
			o.lo, o.hi, o.nan = math.Min(o.lo, lo), math.Max(o.hi, hi), o.nan || nan
			o.mu.Unlock()
		})
		if err != nil {
			return nil, err
		}
	}
	if _, err := e.Evaluate(ctx, ds); err != nil {
		return nil, fmt.Errorf("eval: calibration: %w", err)
	}
	out := make(map[string]Range, len(units))
	for i, u := range units {
		o := obsv[i]
		if o == nil {
			continue
		}
		switch {
		case o.nan || math.IsInf(o.lo, 0) || math.IsInf(o.hi, 0):
			return nil, fmt.Errorf("eval: calibration: the input of layer %q is not finite (range [%g, %g])", u.Name, o.lo, o.hi)
		}
		out[u.Name] = Range{Min: o.lo, Max: o.hi}
	}
	return out, nil
}

// Settings tunes Apply. The zero value (or nil) means defaults.
type Settings struct {
	// Weights is the weight quantizer (its Bits is set per layer); the
	// zero value is HAWQ-V3's symmetric per-channel min/max, the default
	// of plan.Analyze.
	Weights sensitivity.Quantizer
	// Calibration chooses the activation ranges (zero value: min/max).
	Calibration Calibration
	// Ranges, when not nil, are the activation ranges to use (by layer
	// name, as Calibrate returns them) instead of calibrating on the data:
	// valid when the listed layers' inputs do not depend on their own
	// quantization (one layer quantized at a time, as the fisher and
	// measured criteria do). A layer with ABits > 0 and no range is an
	// error.
	Ranges map[string]Range
	// AttentionRanges, when not nil, are the ranges of the attention
	// points' two inputs (by node name, as CalibrateAttention returns
	// them) instead of calibrating them on the data.
	AttentionRanges map[string][2]Range
	// NonlinearRanges, when not nil, are the max |x| of the
	// non-linearities' inputs (by node name, as CalibrateNonlinear returns
	// them) instead of calibrating them on the data.
	NonlinearRanges map[string]float64
	// FloatBias keeps biases in float64. By default the bias of a Conv or
	// Gemm whose input is quantized is rounded to the INT32 grid of an
	// integer kernel, step s_x·s_w[c] (the float32 product of the float32
	// scales, as a QDQ model stores it; Jacob et al., CVPR 2018, §2.4).
	FloatBias bool
}

// Applied is a plan applied to an engine; Restore undoes it.
type Applied struct {
	// Layers reports, in the engine's unit order, what was applied.
	Layers []AppliedLayer
	// Attention reports the attention points of the plan, in plan order;
	// Nonlinear the simulated integer-only non-linearities.
	Attention []AppliedAttention
	Nonlinear []AppliedNonlinear
	e         *nn.Engine
	theta     []float64
}

// AppliedLayer is one layer's quantization.
type AppliedLayer struct {
	Layer
	// Weights is the number of weight elements.
	Weights int
	// DeltaSq is ‖Q(W) − W‖²₂ and RelErr ‖Q(W) − W‖/‖W‖.
	DeltaSq, RelErr float64
	// Input is the calibrated range of the layer's data input (zero when
	// ABits is 0).
	Input Range
	// Act is the input quantizer (zero when ABits is 0).
	Act ActQuantizer
	// Scales are the weight quantizer's steps, one per output channel
	// (one for a per-tensor quantizer), and Layout the weight's shape and
	// channel axis they were computed over: the quantized weights are
	// code·Scales[c] for integer codes.
	Scales []float64
	Layout sensitivity.Layout
}

// Apply fake-quantizes the engine to the given layers: every listed
// layer's weights are replaced by their quantized values (nn.SetWeights),
// then the data inputs of the layers with ABits > 0 get a static quantizer
// whose range is calibrated on calib at the quantized weights (CalibrateWith
// with s.Calibration:
// the ranges the deployed model's activations take; calib may be nil when
// no layer quantizes its input). Layers not listed keep float weights and
// inputs. Call Restore to get the float model back. Errors name the layer.
func Apply(ctx context.Context, e *nn.Engine, layers []Layer, calib data.Dataset, s *Settings) (*Applied, error) {
	var set Settings
	if s != nil {
		set = *s
	}
	units := e.Units()
	idx := make(map[string]int, len(units))
	for i, u := range units {
		idx[u.Name] = i
	}
	want := make([]*Layer, len(units))
	needCalib := false
	var att, nonlin []Layer
	for i := range layers {
		l := &layers[i]
		switch l.Kind {
		case "":
		case sensitivity.KindAttention:
			att = append(att, *l)
			continue
		case sensitivity.KindNonlinear:
			nonlin = append(nonlin, *l)
			continue
		default:
			return nil, fmt.Errorf("eval: layer %q: unknown kind %q", l.Name, l.Kind)
		}
		j, ok := idx[l.Name]
		if !ok {
			return nil, fmt.Errorf("eval: layer %q is not a quantizable layer of the model", l.Name)
		}
		if want[j] != nil {
			return nil, fmt.Errorf("eval: layer %q given twice", l.Name)
		}
		lo := 2
		if set.Weights.Asymmetric {
			lo = 1
		}
		if l.Bits < lo || l.Bits > MaxBits {
			return nil, fmt.Errorf("eval: layer %q: weight bits %d out of range [%d, %d]", l.Name, l.Bits, lo, MaxBits)
		}
		if l.ABits < 0 || l.ABits > MaxBits {
			return nil, fmt.Errorf("eval: layer %q: activation bits %d out of range [0, %d] (0: float)", l.Name, l.ABits, MaxBits)
		}
		needCalib = needCalib || l.ABits > 0
		want[j] = l
	}
	if needCalib && calib == nil && set.Ranges == nil {
		return nil, fmt.Errorf("eval: activation quantization needs calibration data")
	}
	a := &Applied{e: e, theta: e.Theta()}
	e.ClearInputQuantizers()
	for j, u := range units {
		l := want[j]
		if l == nil {
			continue
		}
		w, err := e.Weights(u.Name)
		if err != nil {
			a.Restore()
			return nil, err
		}
		q := set.Weights
		q.Bits = l.Bits
		dst := make([]float64, len(w))
		lay := weightLayout(u)
		scales, err := q.Quantize(dst, w, lay)
		if err != nil {
			a.Restore()
			return nil, fmt.Errorf("eval: layer %q: %w", u.Name, err)
		}
		var d2, w2 float64
		for i := range w {
			d := dst[i] - w[i]
			d2 += d * d
			w2 += w[i] * w[i]
		}
		al := AppliedLayer{Layer: *l, Weights: len(w), DeltaSq: d2, Scales: scales, Layout: lay}
		if w2 > 0 {
			al.RelErr = math.Sqrt(d2 / w2)
		}
		if err := e.SetWeights(u.Name, dst); err != nil {
			a.Restore()
			return nil, err
		}
		a.Layers = append(a.Layers, al)
	}
	if !needCalib {
		if err := a.finishApply(ctx, e, att, nonlin, calib, set); err != nil {
			return nil, err
		}
		return a, nil
	}
	bits := make(map[string]int, len(a.Layers))
	for _, al := range a.Layers {
		if al.ABits > 0 {
			bits[al.Name] = al.ABits
		}
	}
	ranges := set.Ranges
	if ranges == nil {
		var err error
		if ranges, err = CalibrateWith(ctx, e, calib, set.Calibration, bits); err != nil {
			a.Restore()
			return nil, err
		}
	}
	for i := range a.Layers {
		al := &a.Layers[i]
		if al.ABits > 0 && !units[idx[al.Name]].HasInput {
			al.ABits = 0 // an LSTM's R multiplies the node's internal hidden state: kept float
		}
		if al.ABits == 0 {
			continue
		}
		r, ok := ranges[al.Name]
		if !ok {
			a.Restore()
			return nil, fmt.Errorf("eval: layer %q: no activation range in Settings.Ranges", al.Name)
		}
		al.Input = r
		q, err := NewActQuantizer(al.ABits, al.Input)
		if err != nil {
			a.Restore()
			return nil, fmt.Errorf("eval: layer %q: %w", al.Name, err)
		}
		al.Act = q
		if err := q.Install(e, al.Name); err != nil {
			a.Restore()
			return nil, err
		}
	}
	if !set.FloatBias {
		if err := quantizeBiases(e, a.Layers, units, idx); err != nil {
			a.Restore()
			return nil, err
		}
	}
	if err := a.finishApply(ctx, e, att, nonlin, calib, set); err != nil {
		return nil, err
	}
	return a, nil
}

// finishApply installs the non-linearities' and then the attention
// points' simulations, after the weight layers (so attention ranges are
// calibrated on the model as deployed). On error the engine is restored.
func (a *Applied) finishApply(ctx context.Context, e *nn.Engine, att, nonlin []Layer, calib data.Dataset, set Settings) error {
	if err := a.applyNonlinear(ctx, e, nonlin, calib, set); err != nil {
		a.Restore()
		return err
	}
	if err := a.applyAttention(ctx, e, att, calib, set); err != nil {
		a.Restore()
		return err
	}
	return nil
}

// quantizeBiases rounds the bias of every Conv or Gemm layer with a
// quantized input to its INT32 grid, b_c ← round(b_c/s_c)·s_c with
// s_c = float32(s_x)·float32(s_w[c]) in float32 arithmetic.
func quantizeBiases(e *nn.Engine, layers []AppliedLayer, units []nn.UnitLayout, idx map[string]int) error {
	theta := e.Theta()
	changed := false
	for _, al := range layers {
		u := units[idx[al.Name]]
		if al.ABits == 0 || u.BiasSize == 0 || (u.Op != "Conv" && u.Op != "Gemm") {
			continue
		}
		if len(al.Scales) != 1 && len(al.Scales) != u.BiasSize {
			continue
		}
		sx, _ := al.Act.Scale()
		for j := 0; j < u.BiasSize; j++ {
			sw := al.Scales[0]
			if len(al.Scales) > 1 {
				sw = al.Scales[j]
			}
			s := float64(float32(sx) * float32(sw))
			if !(s > 0) || math.IsInf(s, 0) {
				continue
			}
			k := math.RoundToEven(theta[u.BiasOffset+j] / s)
			if math.Abs(k) > math.MaxInt32 {
				continue
			}
			theta[u.BiasOffset+j] = k * s
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return e.SetTheta(theta)
}

// Restore puts back the float weights and removes the input quantizers.
func (a *Applied) Restore() {
	a.e.ClearInputQuantizers()
	// θ has the engine's length by construction.
	_ = a.e.SetTheta(a.theta)
}

// weightLayout returns the output-channel layout of a unit's weight: its
// shape and the axis of its output channels (nn.UnitLayout.ChannelAxis,
// defined once per operator by the registry), so that plan prices Δ², eval
// simulates and the QDQ export stores the same per-channel scales.
func weightLayout(u nn.UnitLayout) sensitivity.Layout {
	return sensitivity.Layout{Shape: slices.Clone(u.WeightShape), Axis: u.ChannelAxis}
}
