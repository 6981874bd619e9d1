package ilp

import (
	"context"
	"time"
)

// Problem is a multiple-choice knapsack problem with K resource rows:
//
//	minimise   Σ_g Value(g, c_g)
//	subject to Σ_g Cost_k(g, c_g) ≤ Limit_k   for every row k,
//	           exactly one choice c_g per group g.
//
// In bitplan a group is a layer (or several tied layers), a choice is a
// precision, the value is the layer's sensitivity Ω and the rows are the
// budgets (size, BOPS, latency, energy, one per device, or any other linear
// constraint over choices).
type Problem struct {
	// Groups lists the decision groups; every group needs at least one choice.
	Groups []Group
	// Rows lists the resource rows; every choice has one cost per row.
	Rows []Row
}

// Group is one decision: exactly one of its choices is taken.
type Group struct {
	// Name identifies the group in reports and errors.
	Name string
	// Members names the layers merged into this group by Merge (ties);
	// nil means the group is the single layer Name.
	Members []string
	// Choices are the alternatives; labels must be unique within the group.
	Choices []Choice
	// Pin, when not empty, is the label of the only choice allowed.
	Pin string
}

// Choice is one alternative of a group.
type Choice struct {
	// Label names the choice, e.g. "8" or "w4a8".
	Label string
	// Value is the objective contribution (Ω); it may be negative.
	Value float64
	// Costs holds one cost per row of the problem, in the order of
	// Problem.Rows; costs may be negative.
	Costs []float64
}

// Row is one resource constraint Σ_g Cost_k(g, c_g) ≤ Limit.
type Row struct {
	// Name identifies the row, e.g. "size" or "latency@t4".
	Name string
	// Unit is the unit of the row's costs, for reports (e.g. "B", "ms").
	Unit string
	// Limit is the right-hand side; +Inf means the row is not binding.
	Limit float64
}

// Status tells how a solve ended.
type Status int

const (
	// Optimal means Choices is optimal within the gap tolerances.
	Optimal Status = iota
	// Infeasible means no assignment satisfies every row.
	Infeasible
	// Limit means a time, node or open-node limit or a cancelled context stopped the
	// search; Choices holds the best assignment found (if any) and Bound a
	// valid lower bound.
	Limit
)

// String returns "optimal", "infeasible" or "limit".
func (s Status) String() string {
	switch s {
	case Optimal:
		return "optimal"
	case Infeasible:
		return "infeasible"
	case Limit:
		return "limit"
	}
	return "unknown"
}

// Settings tunes a solve. A nil *Settings means all defaults; the zero value
// of each field means its default.
type Settings struct {
	// TimeLimit stops the search after this long; 0 means no limit.
	TimeLimit time.Duration
	// NodeLimit stops the search after this many branch-and-bound nodes;
	// 0 means no limit.
	NodeLimit int
	// MaxOpen caps the open branch-and-bound nodes held in memory (each
	// takes a few hundred bytes); the search stops with Status Limit when
	// it would exceed the cap. 0 means 1<<20, negative means no cap.
	MaxOpen int
	// Progress, when set, is called about once a second during a search
	// that takes longer, with the time so far, the value of the best
	// assignment found (+Inf when none yet) and the best proven bound. It
	// runs on the solving goroutine and should return quickly.
	Progress func(elapsed time.Duration, objective, bound float64)
	// RelGap is the relative optimality gap at which the search stops;
	// 0 means 1e-9.
	RelGap float64
	// AbsGap is the absolute optimality gap at which the search stops;
	// 0 means 1e-12.
	AbsGap float64
}

// Solution is the certificate of a solve.
type Solution struct {
	// Status tells how the solve ended.
	Status Status
	// Choices holds the index of the chosen choice of every group, or is nil
	// when no feasible assignment was found.
	Choices []int
	// Objective is Σ Value of the chosen choices (+Inf when Choices is nil).
	Objective float64
	// Bound is a proven lower bound on the optimum.
	Bound float64
	// Gap is (Objective − Bound) / max(|Objective|, tiny); 0 when proven
	// optimal.
	Gap float64
	// Nodes counts branch-and-bound nodes explored.
	Nodes int
	// Time is the wall time of the solve.
	Time time.Duration
	// Usage holds Σ cost of the chosen choices for every row.
	Usage []float64
	// Slack holds Limit − Usage for every row.
	Slack []float64
	// Shadow holds, for every row, the root LP relaxation's shadow price:
	// the objective saved per unit of extra budget on that row (≥ 0; 0 for a
	// row that is not binding in the relaxation).
	Shadow []float64
	// Infeasibility explains an Infeasible status; nil otherwise.
	Infeasibility *Infeasibility
}

// Infeasibility explains why no assignment meets every row.
type Infeasibility struct {
	// MinUsage holds, for every row, the least value that row can take
	// (every group at its cheapest choice for that row alone).
	MinUsage []float64
	// Conflicts lists minimal sets of row indices that cannot be met
	// together although each row alone can (a single-row set means that row
	// alone is impossible).
	Conflicts [][]int
}

// Solver is an engine that solves a Problem. The default engine is this
// package's Solve; ilp/clp provides one whose relaxations are solved by
// COIN-OR CLP.
type Solver interface {
	Solve(ctx context.Context, p *Problem, s *Settings) (*Solution, error)
}
