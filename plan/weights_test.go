package plan

import (
	"context"
	"math"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
)

// TestTraceOverWeights: the estimators see the weights' Hessian only, so
// every probe's total sample vᵀHv is the sum of its weight blocks'
// samples (a probe nonzero on the biases would add their terms), the
// total's size is the weights', and the total trace of "total trace
// (weights)" is the weight blocks' sum.
func TestTraceOverWeights(t *testing.T) {
	e, all := loadRef(t, "lenet")
	ds, err := data.Rows(all, []int{0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	var weights int
	for _, u := range e.Units() {
		weights += u.WeightSize
		if u.BiasSize == 0 {
			t.Fatalf("%s has no bias: the test needs biases", u.Name)
		}
	}
	for _, m := range []Method{Hutchinson, HutchPP} {
		s, err := Analyze(context.Background(), &Analysis{Engine: e, Data: ds, Method: m,
			Trace:  &hessian.Settings{Seed: 3, MinProbes: 4, MaxProbes: 4},
			Sketch: &hessian.SketchSettings{Seed: 3, Matvecs: 6}})
		if err != nil {
			t.Fatal(err)
		}
		r := s.Traces
		if r.Total.Size != weights {
			t.Errorf("%s: total over %d coordinates, want the %d weights", m, r.Total.Size, weights)
		}
		var blocks float64
		for _, b := range r.Blocks {
			blocks += b.Trace
		}
		if math.Abs(r.Total.Trace-blocks) > 1e-9*math.Abs(blocks) {
			t.Errorf("%s: total trace %.10g, weight blocks' sum %.10g", m, r.Total.Trace, blocks)
		}
		for i, row := range r.Samples {
			var sum float64
			for _, x := range row {
				sum += x
			}
			if math.Abs(r.TotalSamples[i]-sum) > 1e-9*math.Abs(sum) {
				t.Errorf("%s: probe %d: vᵀHv %.10g, blocks' samples sum to %.10g", m, i, r.TotalSamples[i], sum)
			}
		}
	}
}
