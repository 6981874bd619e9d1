package eval

import (
	"context"
	"math"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/plan"
)

// The Measurer's figures are those of Run on the same data, and the engine
// comes back float.
func TestMeasurerMatchesRun(t *testing.T) {
	e := lenet(t)
	ctx := context.Background()
	held := mnist(t, data.Test, 200)
	calib := mnist(t, data.Train, 64)
	m := &Measurer{Engine: e, Calib: calib, HeldOut: held}
	fl, err := m.Measure(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pl []plan.Layer
	for i, l := range uniform(e, 3, 8) {
		if i == 2 {
			l.Bits = 2
		}
		pl = append(pl, plan.Layer{Name: l.Name, Bits: l.Bits, ABits: l.ABits})
	}
	q, err := m.Measure(ctx, pl)
	if err != nil {
		t.Fatal(err)
	}
	ls := uniform(e, 3, 8)
	ls[2].Bits = 2
	r, err := Run(ctx, &Config{Engine: e, Layers: ls, Calib: calib, Test: held})
	if err != nil {
		t.Fatal(err)
	}
	if fl.N != 200 || fl.Loss != r.Float.Loss || *fl.Accuracy != r.Float.Accuracy {
		t.Errorf("float: %+v, Run %+v", fl, r.Float)
	}
	if q.Loss != r.Quantized.Loss || *q.Accuracy != r.Quantized.Accuracy {
		t.Errorf("quantized: loss %g acc %g, Run %+v", q.Loss, *q.Accuracy, r.Quantized)
	}
	if q.Loss <= fl.Loss {
		t.Errorf("W3/W2 loss %g not above float %g", q.Loss, fl.Loss)
	}
	again, err := m.Measure(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(again.Loss-fl.Loss) != 0 {
		t.Errorf("engine not restored: float loss %g, then %g", fl.Loss, again.Loss)
	}
}
