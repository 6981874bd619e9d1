package eval

import (
	"context"
	"fmt"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// Measurer measures candidate plans by the simulation of Run: it
// implements plan.Measurer for plan.Verify. Each Measure applies the
// layers (Apply: weights fake-quantized, activation ranges calibrated on
// Calib at the quantized weights), evaluates the engine on HeldOut and
// restores it. HeldOut should be disjoint from the samples the Hessian
// traces were estimated on, so that the measurement does not reward the
// plan for fitting them.
type Measurer struct {
	// Engine runs the model; its weights are restored after every call.
	Engine *nn.Engine
	// Calib calibrates the activation ranges (may be nil when no layer
	// quantizes its input).
	Calib data.Dataset
	// HeldOut is the data the loss and accuracy are measured on.
	HeldOut data.Dataset
	// Weights is the weight quantizer (the one the plan was priced with).
	Weights sensitivity.Quantizer
	// Loss, when not nil, scores HeldOut instead of the engine's loss: a
	// loss that carries per-sample labels or targets (nn.PositionLabels,
	// nn.MSE) indexed from HeldOut's first sample, while the engine's own
	// indexes the calibration data. The engine's loss is restored after
	// every call.
	Loss nn.Loss
}

// Measure returns the mean loss and the accuracy on HeldOut with the
// given layers quantized (every other layer float); the accuracy is nil
// when the loss counts no predictions (MSE). A layer with ABits 0 takes
// its weight width, as in FromPlan.
func (m *Measurer) Measure(ctx context.Context, layers []plan.Layer) (plan.Measurement, error) {
	if m.Engine == nil || m.HeldOut == nil {
		return plan.Measurement{}, fmt.Errorf("eval: Measurer needs an engine and held-out data")
	}
	ls := make([]Layer, len(layers))
	for i, l := range layers {
		ab := l.ABits
		if ab == 0 {
			ab = l.Bits
		}
		ls[i] = Layer{Name: l.Name, Bits: l.Bits, ABits: ab, Kind: l.Kind}
	}
	a, err := Apply(ctx, m.Engine, ls, m.Calib, &Settings{Weights: m.Weights})
	if err != nil {
		return plan.Measurement{}, err
	}
	defer a.Restore()
	if m.Loss != nil {
		own := m.Engine.Loss()
		if err := m.Engine.SetLoss(m.Loss); err != nil {
			return plan.Measurement{}, fmt.Errorf("eval: held-out loss: %w", err)
		}
		defer m.Engine.SetLoss(own) // accepted before
	}
	ev, err := m.Engine.Evaluate(ctx, m.HeldOut)
	if err != nil {
		return plan.Measurement{}, fmt.Errorf("eval: held-out data: %w", err)
	}
	r := plan.Measurement{Loss: ev.Loss, N: ev.N}
	if ev.Scored > 0 {
		acc := ev.Accuracy()
		r.Accuracy = &acc
	}
	return r, nil
}
