package prune

import (
	"context"
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

// RealizeOptions configures Realize. A nil *RealizeOptions means: no
// evaluation, no fine-tuning.
type RealizeOptions struct {
	// Test, when set, is the data the accuracies are measured on.
	Test data.Dataset
	// Original is the unpruned model's engine, to measure its accuracy on
	// Test (skipped when nil).
	Original *nn.Engine
	// Calibration is the fine-tuning data (needed with FineTune).
	Calibration data.Dataset
	// FineTune, when set, fine-tunes the pruned model (FineTune) and
	// stores the trained weights in the returned model.
	FineTune *FineTuneSettings
	// Engine configures the pruned model's engine.
	Engine *nn.Options
	// Compensate folds the removed channels' mean activations on the
	// calibration data into the consumers (ApplyCompensated); it needs
	// Original and Calibration.
	Compensate bool
}

// Realize writes the plan into the model (Apply), checks that the pruned
// model's parameter and FLOP counts are the plan's, and optionally measures
// test accuracy before and after a short fine-tuning, recorded in
// p.Accuracy. It returns the pruned (and fine-tuned) model and its engine.
func Realize(ctx context.Context, mp *onnx.ModelProto, st *Structure, p *plan.Plan, o *RealizeOptions) (*onnx.ModelProto, *nn.Engine, error) {
	if p.Pruning == nil || p.Keep() == nil {
		return nil, nil, fmt.Errorf("prune: the plan is %s: nothing to apply", p.Status)
	}
	if o == nil {
		o = &RealizeOptions{}
	}
	var out *onnx.ModelProto
	var err error
	if o.Compensate {
		if o.Original == nil || o.Calibration == nil {
			return nil, nil, fmt.Errorf("prune: compensation needs the original engine and calibration data")
		}
		means, err := InputMeans(o.Original, o.Calibration, st)
		if err != nil {
			return nil, nil, err
		}
		var skipped []string
		if out, skipped, err = ApplyCompensated(mp, st, p.Keep(), means); err != nil {
			return nil, nil, err
		}
		for _, s := range skipped {
			p.Warnings = append(p.Warnings, fmt.Sprintf("consumer %s has no bias and no BatchNorm: its removed inputs' mean is not compensated", s))
		}
	} else if out, err = Apply(mp, st, p.Keep()); err != nil {
		return nil, nil, err
	}
	m, err := model.FromProto(out)
	if err != nil {
		return nil, nil, err
	}
	var params, macs int64
	for _, u := range m.Units {
		params += u.Params
		macs += u.MACs
	}
	// Attention's Q·Kᵀ and P·V, as the cost model counts them.
	for _, a := range m.ActMatMuls() {
		macs += a.MACs
	}
	for name, want := range map[string]int64{"params": params, "flops": 2 * macs} {
		if u := p.Usage[name]; u != nil && u.Used != nil && *u.Used != float64(want) {
			return nil, nil, fmt.Errorf("prune: the pruned model has %d params and %d FLOPs, the plan says %s %v", params, 2*macs, name, *u.Used)
		}
	}
	e, err := nn.New(m, o.Engine)
	if err != nil {
		return nil, nil, fmt.Errorf("prune: the pruned model does not run: %w", err)
	}
	if o.Test != nil {
		acc := &plan.Accuracy{Samples: o.Test.Len()}
		if o.Original != nil {
			ev, err := o.Original.Evaluate(ctx, o.Test)
			if err != nil {
				return nil, nil, err
			}
			acc.Original = ev.Accuracy()
		}
		ev, err := e.Evaluate(ctx, o.Test)
		if err != nil {
			return nil, nil, err
		}
		acc.Pruned = ev.Accuracy()
		p.Pruning.Accuracy = acc
	}
	if o.FineTune != nil {
		if o.Calibration == nil {
			return nil, nil, fmt.Errorf("prune: fine-tuning needs calibration data")
		}
		res, err := FineTune(ctx, e, o.Calibration, o.FineTune)
		if err != nil {
			return nil, nil, err
		}
		if err := WriteWeights(out, e); err != nil {
			return nil, nil, err
		}
		if o.Test != nil {
			ev, err := e.Evaluate(ctx, o.Test)
			if err != nil {
				return nil, nil, err
			}
			p.Pruning.Accuracy.FineTuned = ptr(ev.Accuracy())
			p.Pruning.Accuracy.Steps = res.Steps
		}
	}
	return out, e, nil
}
