//go:build clp

package clp_test

import (
	"context"
	"fmt"

	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/ilp/clp"
)

// Two layers, 4 or 8 bits each, under a 14-byte budget: the sensitive
// conv1 gets 8 bits. The root relaxation would spend the last 2 bytes on
// half of conv2's upgrade, so a byte is worth 0.3/4 = 0.075 of Ω.
func ExampleSolver() {
	p := &ilp.Problem{
		Rows: []ilp.Row{{Name: "size", Unit: "B", Limit: 14}},
		Groups: []ilp.Group{
			{Name: "conv1", Choices: []ilp.Choice{
				{Label: "4", Value: 0.9, Costs: []float64{4}},
				{Label: "8", Value: 0.1, Costs: []float64{8}},
			}},
			{Name: "conv2", Choices: []ilp.Choice{
				{Label: "4", Value: 0.5, Costs: []float64{4}},
				{Label: "8", Value: 0.2, Costs: []float64{8}},
			}},
		},
	}
	sol, err := clp.Solver{}.Solve(context.Background(), p, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for g, c := range sol.Choices {
		fmt.Printf("%s: %s bits\n", p.Groups[g].Name, p.Groups[g].Choices[c].Label)
	}
	fmt.Printf("%v, objective %.2f, size %g of %g B, shadow price %.3f per B\n",
		sol.Status, sol.Objective, sol.Usage[0], p.Rows[0].Limit, sol.Shadow[0])
	// Output:
	// conv1: 8 bits
	// conv2: 4 bits
	// optimal, objective 0.60, size 12 of 14 B, shadow price 0.075 per B
}

// Solve min −x1 − 2 x2 subject to x1 + x2 ≤ 4 and x1 + 3 x2 ≤ 6 with x ≥ 0,
// then tighten x1 ≤ 2 and re-solve from the previous basis.
func ExampleModel() {
	m := clp.NewModel()
	defer m.Close()
	a := &clp.CSC{Rows: 2, Cols: 2, Start: []int{0, 2, 4}, Index: []int{0, 1, 0, 1}, Value: []float64{1, 1, 1, 3}}
	if err := m.LoadProblem(a, nil, nil, []float64{-1, -2}, nil, []float64{4, 6}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%v %.4f %.4f %.4f\n", m.Dual(), m.Objective(), m.ColSolution(), m.RowPrice())
	if err := m.SetColumnBounds(nil, []float64{2, clp.Inf}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%v %.4f %.4f\n", m.Dual(), m.Objective(), m.ColSolution())
	// Output:
	// optimal -5.0000 [3.0000 1.0000] [-0.5000 -0.5000]
	// optimal -4.6667 [2.0000 1.3333]
}
