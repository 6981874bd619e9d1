package ilp_test

import (
	"context"
	"fmt"
	"os"

	"github.com/bitplan/bitplan/ilp"
)

// Three layers choose 4 or 8 bits under a model-size budget; the last two
// layers are tied (they must share a precision).
func Example() {
	layer := func(name string, params, omega4, omega8 float64) ilp.Group {
		return ilp.Group{Name: name, Choices: []ilp.Choice{
			{Label: "4", Value: omega4, Costs: []float64{params * 4 / 8}},
			{Label: "8", Value: omega8, Costs: []float64{params * 8 / 8}},
		}}
	}
	layers := &ilp.Problem{Groups: []ilp.Group{
		layer("conv1", 1000, 0.50, 0.01),
		layer("conv2", 4000, 0.30, 0.02),
		layer("down", 500, 0.20, 0.01),
	}}
	merged, err := ilp.Merge(layers.Groups, [][]int{{1, 2}})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := &ilp.Problem{Groups: merged, Rows: []ilp.Row{{Name: "size", Unit: "B", Limit: 4000}}}
	sol, err := ilp.Solve(context.Background(), p, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sol.Status, "objective", sol.Objective, "gap", sol.Gap)
	fmt.Printf("size used %.0f of %.0f B, shadow price %.3g per B\n", sol.Usage[0], p.Rows[0].Limit, sol.Shadow[0])
	per, err := layers.Expand(merged, sol.Choices)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, c := range per {
		fmt.Println(layers.Groups[i].Name, layers.Groups[i].Choices[c].Label)
	}
	// Output:
	// optimal objective 0.51 gap 0
	// size used 3250 of 4000 B, shadow price 0.000209 per B
	// conv1 8
	// conv2 4
	// down 4
}

// An impossible pair of budgets is explained, not reported as an error.
func ExampleSolve_infeasible() {
	g := func(name string) ilp.Group {
		return ilp.Group{Name: name, Choices: []ilp.Choice{
			{Label: "4", Value: 1, Costs: []float64{1, 3}},
			{Label: "8", Value: 0, Costs: []float64{3, 1}},
		}}
	}
	p := &ilp.Problem{
		Groups: []ilp.Group{g("a"), g("b")},
		Rows:   []ilp.Row{{Name: "size", Limit: 2}, {Name: "latency", Limit: 2}, {Name: "energy", Limit: 0.5}},
	}
	for k := range p.Groups {
		for c := range p.Groups[k].Choices {
			p.Groups[k].Choices[c].Costs = append(p.Groups[k].Choices[c].Costs, 1)
		}
	}
	sol, _ := ilp.Solve(context.Background(), p, nil)
	fmt.Println(sol.Status)
	fmt.Println("least usage per row:", sol.Infeasibility.MinUsage)
	fmt.Println("conflicting rows:", sol.Infeasibility.Conflicts)
	// Output:
	// infeasible
	// least usage per row: [2 2 2]
	// conflicting rows: [[2] [0 1]]
}

// The problem is written for external MIP solvers (cbc, glpsol).
func ExampleWriteLP() {
	p := &ilp.Problem{
		Groups: []ilp.Group{{Name: "fc", Choices: []ilp.Choice{
			{Label: "4", Value: 0.5, Costs: []float64{2}},
			{Label: "8", Value: 0.1, Costs: []float64{4}},
		}}},
		Rows: []ilp.Row{{Name: "size", Limit: 3}},
	}
	if err := ilp.WriteLP(os.Stdout, p); err != nil {
		fmt.Println(err)
	}
	// Output:
	// \ bitplan multiple-choice knapsack: 1 groups, 1 rows
	// \ r_0 = row "size" divided by 8
	// \ x_0_0 = group "fc" choice "4"
	// \ x_0_1 = group "fc" choice "8"
	// Minimize
	//  obj: 0.5 x_0_0 + 0.1 x_0_1
	// Subject To
	//  r_0: 0.25 x_0_0 + 0.5 x_0_1 <= 0.375
	//  g_0: x_0_0 + x_0_1 = 1
	// Bounds
	// Binaries
	//  x_0_0
	//  x_0_1
	// End
}

// The three best plans of two layers under a size budget, each proven the
// next best by a solve with no-good rows excluding the ones before it.
func ExampleKBest() {
	layer := func(name string, omega4, omega8 float64) ilp.Group {
		return ilp.Group{Name: name, Choices: []ilp.Choice{
			{Label: "4", Value: omega4, Costs: []float64{4}},
			{Label: "8", Value: omega8, Costs: []float64{8}},
		}}
	}
	p := &ilp.Problem{Groups: []ilp.Group{layer("a", 0.5, 0), layer("b", 0.2, 0)},
		Rows: []ilp.Row{{Name: "size", Unit: "B", Limit: 12}}}
	sols, err := ilp.KBest(context.Background(), nil, p, 2, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range sols {
		fmt.Println(s.Status, s.Objective, p.Groups[0].Choices[s.Choices[0]].Label, p.Groups[1].Choices[s.Choices[1]].Label)
	}
	// Output:
	// optimal 0.2 8 4
	// optimal 0.5 4 8
	// optimal 0.7 4 4
}
