package eval

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/ibert"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// SoftmaxOutBits is the output width of the simulated integer-only
// Softmax (I-BERT's, 8 bits on the 2^−8 grid).
const SoftmaxOutBits = 8

// NonlinearGroup is one plan layer of kind sensitivity.KindNonlinear: the
// non-linearities of one function in one block of the model, computed
// integer-only (I-BERT) or in float together.
type NonlinearGroup struct {
	// Name is the plan layer's name: the block and the function,
	// "/layers.0/gelu" ("/gelu" for nodes outside any block).
	Name string
	// Block and Function say what it holds; Tie names the block's choice
	// ("/layers.0/nonlinear"), shared by the block's functions.
	Block, Function, Tie string
	// Nodes are the non-linearities.
	Nodes []model.NonLinear
	// Elems is their elements per sample.
	Elems int64
}

// NonlinearGroups returns the engine's non-linearities (model.NonLinears)
// grouped by block and function, in order of first appearance.
func NonlinearGroups(e *nn.Engine) []NonlinearGroup {
	var out []NonlinearGroup
	at := map[string]int{}
	for _, nl := range e.Model().NonLinears() {
		name := nl.Block + "/" + nl.Kind
		i, ok := at[name]
		if !ok {
			i = len(out)
			at[name] = i
			out = append(out, NonlinearGroup{Name: name, Block: nl.Block, Function: nl.Kind})
		}
		out[i].Nodes = append(out[i].Nodes, nl)
		out[i].Elems += nl.Elems
	}
	kinds := map[string]int{}
	for _, g := range out {
		kinds[g.Block]++
	}
	for i := range out {
		if kinds[out[i].Block] > 1 {
			out[i].Tie = out[i].Block + "/nonlinear"
		}
	}
	return out
}

// AppliedNonlinear is one simulated integer-only non-linearity.
type AppliedNonlinear struct {
	// Layer is the plan layer (NonlinearGroup.Name) it belongs to.
	Layer string
	model.NonLinear
	// Range is the calibrated max |x| of its input (0 for Softmax, whose
	// grid is fixed: ibert.SoftmaxScale) and Scale the input step.
	Range, Scale float64
}

// CalibrateNonlinear returns max |x| of the input of every listed
// non-linearity over ds (by node name), with the engine as it is set up;
// its observers are removed before it returns.
func CalibrateNonlinear(ctx context.Context, e *nn.Engine, ds data.Dataset, nls []model.NonLinear) (map[string]float64, error) {
	var mu sync.Mutex
	out := map[string]float64{}
	remove := func() {
		for _, nl := range nls {
			_ = e.SetNodeInputQuantizer(nl.Name, nl.Input, nil)
		}
	}
	for _, nl := range nls {
		name := nl.Name
		out[name] = 0
		err := e.SetNodeInputQuantizer(name, nl.Input, func(x []float64) {
			m := 0.0
			for _, v := range x {
				m = math.Max(m, math.Abs(v))
			}
			mu.Lock()
			out[name] = math.Max(out[name], m)
			mu.Unlock()
		})
		if err != nil {
			remove()
			return nil, err
		}
	}
	_, err := e.Evaluate(ctx, ds)
	remove()
	if err != nil {
		return nil, fmt.Errorf("eval: non-linearity calibration: %w", err)
	}
	for name, m := range out {
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return nil, fmt.Errorf("eval: non-linearity calibration: the input of %q is not finite", name)
		}
	}
	return out, nil
}

// applyNonlinear replaces the outputs of the non-linearities of the
// nonlinear layers of ls with Bits below FloatBits by I-BERT's
// integer-only simulations (package ibert): GELU and LayerNorm on the
// symmetric ibert.InputBits grid over the calibrated max |x| (from
// set.NonlinearRanges or calibrated on calib), Softmax on the fixed
// ibert.SoftmaxScale grid with an 8-bit output. A LayerNormalization's γ
// and β are applied in float to the integer normalisation (I-BERT folds
// β/γ into an integer bias, a difference of one output step).
func (a *Applied) applyNonlinear(ctx context.Context, e *nn.Engine, ls []Layer, calib data.Dataset, set Settings) error {
	groups := map[string]NonlinearGroup{}
	for _, g := range NonlinearGroups(e) {
		groups[g.Name] = g
	}
	var todo []AppliedNonlinear
	var need []model.NonLinear
	for _, l := range ls {
		g, ok := groups[l.Name]
		if !ok {
			return fmt.Errorf("eval: layer %q is not a block's non-linearity of the model", l.Name)
		}
		if l.Bits == 0 || l.Bits >= FloatBits {
			continue
		}
		for _, nl := range g.Nodes {
			todo = append(todo, AppliedNonlinear{Layer: l.Name, NonLinear: nl})
			if nl.Kind != model.Softmax {
				if _, ok := set.NonlinearRanges[nl.Name]; !ok {
					need = append(need, nl)
				}
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	ranges := set.NonlinearRanges
	if len(need) > 0 {
		if calib == nil {
			return fmt.Errorf("eval: integer-only non-linearities need calibration data")
		}
		got, err := CalibrateNonlinear(ctx, e, calib, need)
		if err != nil {
			return err
		}
		for k, v := range ranges {
			got[k] = v
		}
		ranges = got
	}
	m := e.Model()
	for _, an := range todo {
		nl := an.NonLinear
		var f nn.NodeOutputFunc
		switch nl.Kind {
		case model.Softmax:
			an.Scale = ibert.SoftmaxScale
			f = func(x, y []float64) { ibert.SimSoftmax(y, x, nl.Row, SoftmaxOutBits) }
		case model.GELU:
			an.Range = ranges[nl.Name]
			an.Scale = ibert.InputScale(an.Range)
			s := an.Scale
			factor := 1.0
			if m.Nodes[nl.Node].Op == "Mul" {
				factor = 2 // the node computes x·(1 + erf(x/√2)) = 2·GELU(x)
			}
			f = func(x, y []float64) {
				if s == 0 {
					clear(y)
					return
				}
				ibert.SimGELU(y, x, s)
				for i := range y {
					y[i] *= factor
				}
			}
		case model.LayerNorm:
			an.Range = ranges[nl.Name]
			an.Scale = ibert.InputScale(an.Range)
			s, row := an.Scale, nl.Row
			var gamma, beta []float64
			if t := m.Initializers[nl.Gamma]; t != nil {
				gamma = t.Values()
			}
			if t := m.Initializers[nl.Beta]; t != nil {
				beta = t.Values()
			}
			if nl.Gamma != "" && len(gamma) != row || nl.Beta != "" && len(beta) != row {
				return fmt.Errorf("eval: layer norm %q: scale or bias is not a constant of %d values", nl.Name, row)
			}
			f = func(x, y []float64) {
				if s == 0 {
					clear(y)
				} else {
					ibert.SimNormalize(y, x, row, s)
				}
				for i := range y {
					if gamma != nil {
						y[i] *= gamma[i%row]
					}
					if beta != nil {
						y[i] += beta[i%row]
					}
				}
			}
		}
		if err := e.SetNodeOutput(nl.Name, nl.Input, f); err != nil {
			return err
		}
		a.Nonlinear = append(a.Nonlinear, an)
	}
	return nil
}

// AddNonlinear appends to t one layer of Kind sensitivity.KindNonlinear
// per block and function of the engine's model (NonlinearGroups): Params
// and MACs 0, InElems the elements per sample, Function the function,
// candidates "8" (I-BERT's integer-only approximation, Ω the measured loss
// increase on calib with that group alone integer-only, scaled to the
// table's criterion as in AddAttention) and "16" (float, Ω 0), tied per
// block so that a block's non-linearities are integer-only or float
// together. It returns the number of layers added.
func AddNonlinear(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table) (int, error) {
	groups := NonlinearGroups(e)
	if len(groups) == 0 {
		return 0, nil
	}
	scale, err := lossScale(t)
	if err != nil {
		return 0, err
	}
	if calib == nil || calib.Len() == 0 {
		return 0, fmt.Errorf("eval: integer-only non-linearities need calibration data")
	}
	e.ClearInputQuantizers()
	var all []model.NonLinear
	for _, g := range groups {
		all = append(all, g.Nodes...)
	}
	ranges, err := CalibrateNonlinear(ctx, e, calib, all)
	if err != nil {
		return 0, err
	}
	base, err := e.Evaluate(ctx, calib)
	if err != nil {
		return 0, err
	}
	for _, g := range groups {
		a := &Applied{e: e, theta: e.Theta()}
		err := a.applyNonlinear(ctx, e, []Layer{{Name: g.Name, Bits: 8, Kind: sensitivity.KindNonlinear}}, calib, Settings{NonlinearRanges: ranges})
		var r nn.Eval
		if err == nil {
			r, err = e.Evaluate(ctx, calib)
		}
		a.Restore()
		if err != nil {
			return 0, fmt.Errorf("eval: %s integer-only: %w", g.Name, err)
		}
		t.Layers = append(t.Layers, sensitivity.Layer{Name: g.Name, Kind: sensitivity.KindNonlinear, Function: g.Function,
			InElems: float64(g.Elems), OutElems: float64(g.Elems), Tie: g.Tie,
			DeltaSq: map[string]float64{"8": 0, "16": 0}, Scores: map[string]float64{"8": scale * (r.Loss - base.Loss), "16": 0}})
	}
	return len(groups), nil
}

// nonlinearNames lists the groups' names, sorted, for messages.
func nonlinearNames(gs []NonlinearGroup) []string {
	var s []string
	for _, g := range gs {
		s = append(s, g.Name)
	}
	sort.Strings(s)
	return s
}
