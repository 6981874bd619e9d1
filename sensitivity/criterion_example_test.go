package sensitivity_test

import (
	"fmt"

	"github.com/bitplan/bitplan/sensitivity"
)

// A table scored by another criterion carries its Ω per candidate, which
// Omega (and so the ILP) uses instead of AvgTrace · DeltaSq.
func ExampleTable_SetScores() {
	t := &sensitivity.Table{Layers: []sensitivity.Layer{
		{Name: "conv", Params: 100, AvgTrace: 0.5, DeltaSq: map[string]float64{"4": 2, "8": 0.01}},
	}}
	fmt.Println("hessian Ω at 4 bits:", t.Layers[0].Omega("4"))
	c, _ := sensitivity.ParseCriterion("measured")
	_ = t.SetScores(c, []map[string]float64{{"4": 0.031, "8": 0.0002}}, nil)
	fmt.Println(t.Criterion, "Ω at 4 bits:", t.Layers[0].Omega("4"))
	// Output:
	// hessian Ω at 4 bits: 1
	// measured Ω at 4 bits: 0.031
}
