package plan

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/internal/jsonx"
	"github.com/bitplan/bitplan/internal/readfile"
)

// Plan is a per-layer plan — bit widths, kept channels, or both — with its
// optimality certificate: the one plan type of quantization (Solve),
// pruning and joint plans (package prune, which fills Pruning). Its JSON
// form is the plan contract of the project's design notes: at least
// status, objective, bound, gap, layers (name, bits) and usage (per
// resource: used and limit).
type Plan struct {
	// Model names the planned model.
	Model string `json:"model,omitempty"`
	// Status is "optimal", "infeasible" or "limit"; "feasible" for a
	// pruning baseline (no optimality claim) that meets the budgets.
	Status string `json:"status"`
	// Objective is Σ Ω of the chosen candidates; nil when no plan was found.
	Objective *float64 `json:"objective"`
	// Bound is a proven lower bound on the optimal objective; nil when the
	// problem is infeasible.
	Bound *float64 `json:"bound"`
	// Gap is the relative gap between Objective and Bound; nil without both.
	Gap *float64 `json:"gap"`
	// Nodes counts branch-and-bound nodes.
	Nodes int `json:"nodes"`
	// SolveSeconds is the solver's wall time.
	SolveSeconds float64 `json:"solve_seconds"`
	// Engine names the solver that produced the plan.
	Engine string `json:"engine"`
	// Source says where the sensitivities came from (estimator, probes,
	// calibration samples, quantizer).
	Source string `json:"source,omitempty"`
	// Layers holds the choice of every layer, in table order.
	Layers []Layer `json:"layers"`
	// Usage maps each resource to its use, budget and shadow price.
	Usage map[string]*Usage `json:"usage"`
	// Uniform lists the uniform-precision baselines (every free layer at the
	// same candidate).
	Uniform []Uniform `json:"uniform,omitempty"`
	// Infeasibility explains an infeasible status.
	Infeasibility *Infeasibility `json:"infeasibility,omitempty"`
	// Stability, when computed, tells how the plan moves when the traces are
	// resampled within their error.
	Stability *Stability `json:"stability,omitempty"`
	// Verification, when asked for, holds every measured candidate plan
	// and whether the measurement overruled Ω; when it did, Layers, Usage
	// and Objective are those of the best measured plan, and Bound and Gap
	// say how far its Ω is from the Ω optimum.
	Verification *Verification `json:"verification,omitempty"`
	// Pruning, for a pruning or joint plan, holds the planner, the groups
	// and their kept structures, and the measured accuracies.
	Pruning *Pruning `json:"pruning,omitempty"`
	// Warnings lists non-fatal diagnostics.
	Warnings []string `json:"warnings,omitempty"`

	order []string // resource order for reports
}

// Layer is one layer's decision.
type Layer struct {
	Name string `json:"name"`
	// Bits and ABits are the chosen weight and activation bit widths (0 when
	// no plan was found).
	Bits  int `json:"bits"`
	ABits int `json:"abits"`
	// Choice is the candidate key of the sensitivity table ("4", "w4a8").
	Choice string `json:"choice"`
	// Omega is the layer's sensitivity at the choice.
	Omega float64 `json:"omega"`
	// AvgTrace and AvgTraceStderr are Tr(H)/n and its standard error.
	AvgTrace       float64 `json:"avg_trace"`
	AvgTraceStderr float64 `json:"avg_trace_stderr,omitempty"`
	Params         float64 `json:"params"`
	MACs           float64 `json:"macs"`
	// Costs maps each resource to the layer's cost at the choice.
	Costs map[string]float64 `json:"costs,omitempty"`
	// Tie names the tie group the layer belongs to, if any.
	Tie string `json:"tie,omitempty"`
	// Pinned reports a layer fixed by the table.
	Pinned bool `json:"pinned,omitempty"`
	// Kind is the table layer's kind: "" for a weight layer, "attention"
	// for an activation × activation MatMul whose two inputs are quantized
	// to Bits (16: float), "nonlinear" for a block's GELU, Softmax and
	// LayerNorm computed integer-only (Bits 8, I-BERT) or in float (16);
	// see sensitivity.Layer.Kind.
	Kind string `json:"kind,omitempty"`
	// Pruned, in a pruning plan, is the unit before and after pruning.
	Pruned *LayerPruning `json:"pruned,omitempty"`
}

// Usage is a resource's use under the plan.
type Usage struct {
	// Unit is the unit of every value ("B", "BOPS", "ms", "J").
	Unit string `json:"unit"`
	// Used is the plan's total; nil when no plan was found.
	Used *float64 `json:"used"`
	// Limit is the budget, nil when the resource is not budgeted.
	Limit *float64 `json:"limit"`
	// Budget is the budget as the user wrote it ("50%", "6.5MB").
	Budget string `json:"budget,omitempty"`
	// Slack is Limit − Used.
	Slack *float64 `json:"slack,omitempty"`
	// ShadowPrice is the Ω saved per unit of extra budget, from the root LP
	// relaxation.
	ShadowPrice *float64 `json:"shadow_price,omitempty"`
	// Min and Max are the totals with every layer at its lowest and highest
	// candidate (the ends of the percentage convention; in a pruning plan
	// the least value the row can take and the unpruned model's).
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Predicted is a pruning plan's value of the ILP's linearised cost
	// model, beside the true Used.
	Predicted *float64 `json:"predicted,omitempty"`

	// Kind fixes how values are formatted.
	Kind budget.Kind `json:"-"`
}

// Uniform is a uniform-precision baseline.
type Uniform struct {
	Choice string             `json:"choice"`
	Bits   int                `json:"bits"`
	ABits  int                `json:"abits"`
	Omega  float64            `json:"omega"`
	Costs  map[string]float64 `json:"costs"`
	// Fits reports whether it meets every budget.
	Fits bool `json:"fits"`
}

// Infeasibility explains why no plan meets the budgets.
type Infeasibility struct {
	// Rows gives, per budget, the least value it can take.
	Rows []InfeasibleRow `json:"rows"`
	// Conflicts lists minimal sets of budgets that cannot hold together.
	Conflicts [][]string `json:"conflicts"`
}

// InfeasibleRow is one budget's limit and least achievable value.
type InfeasibleRow struct {
	Resource string  `json:"resource"`
	Unit     string  `json:"unit"`
	Limit    float64 `json:"limit"`
	Least    float64 `json:"least"`
}

// certificate copies a solution's certificate into the plan.
func (p *Plan) certificate(sol *ilp.Solution) {
	p.Status = sol.Status.String()
	p.Nodes = sol.Nodes
	p.SolveSeconds = sol.Time.Seconds()
	if sol.Choices != nil && !math.IsInf(sol.Objective, 0) {
		p.Objective = ptr(sol.Objective)
	}
	if sol.Status != ilp.Infeasible && !math.IsInf(sol.Bound, 0) && !math.IsNaN(sol.Bound) {
		p.Bound = ptr(sol.Bound)
	}
	if p.Objective != nil && p.Bound != nil && !math.IsNaN(sol.Gap) && !math.IsInf(sol.Gap, 0) {
		p.Gap = ptr(sol.Gap)
	}
}

// Resources returns the plan's resource names in report order.
func (p *Plan) Resources() []string {
	if len(p.order) == len(p.Usage) {
		return p.order
	}
	order := []string{"size", "bops", "latency", "energy", "params", "flops"}
	rank := func(s string) int {
		for i, o := range order {
			if len(s) >= len(o) && s[:len(o)] == o {
				return i
			}
		}
		return len(order)
	}
	var rs []string
	for k := range p.Usage {
		rs = append(rs, k)
	}
	sort.Slice(rs, func(i, j int) bool {
		if rank(rs[i]) != rank(rs[j]) {
			return rank(rs[i]) < rank(rs[j])
		}
		return rs[i] < rs[j]
	})
	p.order = rs
	return rs
}

// MaxPlanBytes bounds the size of a plan file read by ReadFile (a plan of
// a million layers is about 300 MB).
const MaxPlanBytes = 2 << 30

// ReadFile reads a plan written with WriteJSON (see Parse). Errors name the
// file.
func ReadFile(path string) (*Plan, []string, error) {
	b, err := readfile.Read(path, MaxPlanBytes)
	if err != nil {
		return nil, nil, err
	}
	p, warn, err := Parse(b)
	if err != nil {
		return nil, warn, fmt.Errorf("%s: %w", path, err)
	}
	return p, warn, nil
}

// Parse decodes a plan's JSON and checks the fields other tools rely on:
// a status, and per layer a name and non-negative bit widths. A key given
// twice in one object is an error naming it and its place; fields the plan
// format does not define are returned as warnings (a typo such as "bitz"
// would otherwise pass silently).
func Parse(b []byte) (*Plan, []string, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, fmt.Errorf("not a bitplan plan: %v", jsonx.Error(b, err))
	}
	if err := jsonx.Duplicates(b); err != nil {
		return nil, nil, fmt.Errorf("not a bitplan plan: %v", err)
	}
	warn := jsonx.Unknown(b, &p)
	if p.Status == "" || p.Layers == nil {
		return nil, warn, fmt.Errorf("not a bitplan plan: missing \"status\" or \"layers\"")
	}
	for i, l := range p.Layers {
		if l.Name == "" {
			return nil, warn, fmt.Errorf("layers[%d]: missing \"name\"", i)
		}
		if l.Bits < 0 || l.Bits > 64 || l.ABits < 0 || l.ABits > 64 {
			return nil, warn, fmt.Errorf("layers[%d] (%q): bits %d/%d out of range 0..64", i, l.Name, l.Bits, l.ABits)
		}
	}
	for name, u := range p.Usage {
		if u == nil {
			return nil, warn, fmt.Errorf("usage[%q]: null", name)
		}
		u.Kind = kindOfUnit(u.Unit)
	}
	return &p, warn, nil
}

func kindOfUnit(u string) budget.Kind {
	k, _ := budget.KindOfUnit(u)
	return k
}
