package prune

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Plan is a pruning (or joint pruning and quantization) plan with its
// certificate and the true costs of the pruned model.
type Plan struct {
	// Model names the model.
	Model string `json:"model,omitempty"`
	// Mode is the planner: ilp, threshold or l1.
	Mode Mode `json:"mode"`
	// Joint reports a joint pruning and quantization plan.
	Joint bool `json:"joint,omitempty"`
	// Status is "optimal" (proven for the true costs), "limit" (the best
	// plan found within the node limit), "feasible" (a baseline that meets
	// the budgets) or "infeasible".
	Status string `json:"status"`
	// Objective is Ω, the summed HAP importance of the removed channels
	// (plus Ω_quant in joint mode); nil without a plan.
	Objective *float64 `json:"objective"`
	// ObjectiveStdErr is the standard error of the pruning part of
	// Objective (channel estimates taken as independent).
	ObjectiveStdErr float64 `json:"objective_stderr,omitempty"`
	// Bound is a proven lower bound on Ω over all plans meeting the
	// budgets (the relaxation's, or Objective once the search proved
	// optimality; nil when unknown, e.g. with a latency budget), and Gap
	// the relative gap to Objective. Nil for the baselines.
	Bound *float64 `json:"bound"`
	Gap   *float64 `json:"gap"`
	// Nodes, SolveSeconds and Iterations sum the ILP solves of the
	// linearise–solve–verify loop; SearchNodes counts the exact
	// branch-and-bound's nodes.
	Nodes        int     `json:"nodes"`
	SolveSeconds float64 `json:"solve_seconds"`
	Iterations   int     `json:"iterations,omitempty"`
	SearchNodes  int     `json:"search_nodes,omitempty"`
	// ImprovedBy names the stage that improved on the ILP's plan ("local
	// search", "branch-and-bound"), if any.
	ImprovedBy string `json:"improved_by,omitempty"`
	// Groups holds one entry per channel group.
	Groups []GroupPlan `json:"groups"`
	// Layers holds one entry per unit, in model order.
	Layers []LayerPlan `json:"layers"`
	// Usage holds one entry per budgeted resource, plus params and flops.
	Usage []Usage `json:"usage"`
	// Unprunable lists the groups left intact, with the reasons.
	Unprunable []string `json:"unprunable,omitempty"`
	// Accuracy holds test accuracies when the caller measured them.
	Accuracy *Accuracy `json:"accuracy,omitempty"`
	// Warnings are non-fatal diagnostics.
	Warnings []string `json:"warnings,omitempty"`

	keep [][]int
}

// GroupPlan is one channel group's decision.
type GroupPlan struct {
	Name     string   `json:"name"`
	Units    []string `json:"units"`
	Channels int      `json:"channels"`
	Kept     int      `json:"kept"`
	// KeptChannels are the indices of the channels kept.
	KeptChannels []int `json:"kept_channels"`
	// Bits is the weight width in joint mode (0 otherwise).
	Bits int `json:"bits,omitempty"`
	// OmegaPrune is the summed importance of the removed channels, with
	// its standard error; OmegaQuant the members' Ω_quant (joint mode).
	OmegaPrune       float64 `json:"omega_prune"`
	OmegaPruneStdErr float64 `json:"omega_prune_stderr,omitempty"`
	OmegaQuant       float64 `json:"omega_quant,omitempty"`
	Prunable         bool    `json:"prunable"`
}

// LayerPlan is one unit before and after pruning.
type LayerPlan struct {
	Name  string `json:"name"`
	Group string `json:"group,omitempty"`
	// Bits is the weight width (32 in plain pruning of a float model).
	Bits int `json:"bits"`
	// OutChannels and InChannels are [before, after]; InChannels is nil
	// for a unit whose inputs are not pruned.
	OutChannels [2]int  `json:"out_channels"`
	InChannels  *[2]int `json:"in_channels,omitempty"`
	// Params and FLOPs are [before, after].
	Params [2]int64 `json:"params"`
	FLOPs  [2]int64 `json:"flops"`
	// OmegaRemoved is the importance of the unit's removed channels.
	OmegaRemoved float64 `json:"omega_removed"`
}

// Usage is one resource under the plan.
type Usage struct {
	Resource string `json:"resource"`
	Unit     string `json:"unit"`
	// Dense is the unpruned model's value (at the widest candidate).
	Dense float64 `json:"dense"`
	// Used is the pruned model's true value; Predicted the linear model's
	// value for the plan (ILP mode).
	Used      *float64 `json:"used"`
	Predicted *float64 `json:"predicted,omitempty"`
	// Limit is the budget; Budget the budget as written.
	Limit  *float64 `json:"limit"`
	Budget string   `json:"budget,omitempty"`
	// ShadowPrice is Ω saved per unit of extra budget (root LP of the last
	// ILP).
	ShadowPrice *float64 `json:"shadow_price,omitempty"`
	// Least is the least value the row can take (every group at its
	// smallest keep and width).
	Least float64 `json:"least"`

	res Resource
}

// Accuracy holds test-set accuracies of the original, pruned and
// fine-tuned models.
type Accuracy struct {
	Samples   int      `json:"samples"`
	Original  float64  `json:"original"`
	Pruned    float64  `json:"pruned"`
	FineTuned *float64 `json:"fine_tuned,omitempty"`
	// Steps is the number of fine-tuning steps.
	Steps int `json:"steps,omitempty"`
}

// Keep returns the kept channel indices of every group (Structure.Groups
// order); nil without a plan.
func (p *Plan) Keep() [][]int { return p.keep }

// Solve plans the pruning: it prices every keep choice (Ω_prune, and
// Ω_quant in joint mode), runs the requested planner and returns the plan
// with the true costs of the pruned model. An infeasible budget is not an
// error: the plan's Status says so and Usage gives each row's least value.
func Solve(ctx context.Context, req *Request) (*Plan, error) {
	p, err := prepare(req)
	if err != nil {
		return nil, err
	}
	mode := req.Mode
	if mode == "" {
		mode = ILP
	}
	out := &Plan{Model: req.Model, Mode: mode, Joint: req.Joint, Unprunable: req.Structure.Unprunable()}
	if len(req.Budgets) == 0 {
		out.Warnings = append(out.Warnings, "no budget given: nothing is pruned")
	}
	var keep [][]int
	bits := p.uniformBits(p.defBit)
	var ok bool
	var ires *ilpResult
	switch mode {
	case ILP:
		ires, err = p.solveILP(ctx)
		if err != nil {
			return nil, err
		}
		out.Iterations, out.Nodes, out.SolveSeconds = ires.iterations, ires.nodes, ires.elapsed.Seconds()
		out.SearchNodes, out.ImprovedBy = ires.searchNodes, ires.improvedBy
		if ires.choices != nil {
			ok = true
			var kc []int
			kc, bits = p.assign(ires.choices)
			keep = p.keepSets(kc)
		}
	case Threshold:
		keep, ok, err = p.threshold()
	case Magnitude:
		keep, ok, err = p.magnitude()
	}
	if err != nil {
		return nil, err
	}
	if err := p.report(out, keep, bits, ok, ires); err != nil {
		return nil, err
	}
	return out, nil
}

// report fills the plan's groups, layers and usage.
func (p *problem) report(out *Plan, keep [][]int, bits []int, ok bool, ires *ilpResult) error {
	// Least values: every prunable group at one channel, narrowest width.
	least := p.fullKeep()
	for _, g := range p.st.Groups {
		if g.Prunable {
			least[g.Index] = 1
			for _, d := range p.decs {
				if d.group == g.Index {
					least[g.Index] = d.choices[0].keep
					for _, c := range d.choices {
						least[g.Index] = min(least[g.Index], c.keep)
					}
				}
			}
		}
	}
	minBits := p.defBit
	if p.req.Joint {
		minBits = 4
		if len(p.req.Bits) > 0 {
			minBits = slices.Min(p.req.Bits)
		}
	}
	if out.Mode != ILP {
		least = p.fullKeep()
		for _, g := range p.st.Groups {
			if g.Prunable {
				least[g.Index] = 1
			}
		}
	}
	lv, err := p.exact(least, p.uniformBits(minBits))
	if err != nil {
		return err
	}
	for k, r := range p.rows {
		lim := r.limit
		out.Usage = append(out.Usage, Usage{Resource: r.name, Unit: r.res.Unit(), Dense: r.dense, Limit: &lim, Budget: r.budget, Least: lv[k], res: r.res})
	}
	// Always report params and FLOPs.
	for _, res := range []Resource{Params, FLOPs} {
		if !slices.ContainsFunc(p.rows, func(r row) bool { return r.res == res }) {
			p.rows = append(p.rows, row{res: res, name: res.String()})
			out.Usage = append(out.Usage, Usage{Resource: res.String(), Unit: res.Unit(), res: res})
		}
	}
	dense, err := p.exact(p.fullKeep(), p.uniformBits(p.defBit))
	if err != nil {
		return err
	}
	for k := range out.Usage {
		if out.Usage[k].Limit == nil {
			out.Usage[k].Dense = dense[k]
		}
	}
	if !ok || keep == nil {
		out.Status = "infeasible"
		if ires != nil && !ires.proven {
			out.Status = "limit"
		}
		return nil
	}
	out.keep = keep
	kc := make([]int, len(keep))
	for g := range keep {
		kc[g] = len(keep[g])
	}
	used, err := p.exact(kc, bits)
	if err != nil {
		return err
	}
	for k := range out.Usage {
		out.Usage[k].Used = ptr(used[k])
	}
	out.Status = "feasible"
	if ires != nil {
		out.Status = "limit"
		if ires.proven {
			out.Status = "optimal"
		}
		if !math.IsNaN(ires.bound) {
			out.Bound = ptr(ires.bound)
		}
		if sol := ires.relaxation; sol != nil {
			for k := range sol.Shadow {
				out.Usage[k].ShadowPrice = ptr(sol.Shadow[k])
			}
		}
		if ires.predicted != nil && ires.improvedBy == "" {
			for k := range ires.predicted {
				out.Usage[k].Predicted = ptr(ires.predicted[k])
			}
		}
	}
	// Groups.
	var obj, objVar float64
	unitBits := map[int]int{}
	for i := range bits {
		unitBits[i] = bits[i]
	}
	for _, g := range p.st.Groups {
		gp := GroupPlan{Name: g.Name, Units: g.Members(), Channels: g.Channels, Kept: len(keep[g.Index]),
			KeptChannels: keep[g.Index], Prunable: g.Prunable}
		kept := map[int]bool{}
		for _, c := range keep[g.Index] {
			kept[c] = true
		}
		var v float64
		for c := 0; c < g.Channels; c++ {
			if !kept[c] {
				gp.OmegaPrune += p.hap[g.Index][c]
				v += p.hapSE[g.Index][c] * p.hapSE[g.Index][c]
			}
		}
		gp.OmegaPruneStdErr = math.Sqrt(v)
		objVar += v
		obj += gp.OmegaPrune
		out.Groups = append(out.Groups, gp)
	}
	if p.req.Joint && ires != nil {
		for j, d := range p.decs {
			c := d.choices[ires.choices[j]]
			obj += c.omegaQuant
			if d.group >= 0 {
				out.Groups[d.group].Bits = c.bits
				out.Groups[d.group].OmegaQuant = c.omegaQuant
			}
		}
	}
	out.Objective = ptr(obj)
	out.ObjectiveStdErr = math.Sqrt(objVar)
	if out.Bound != nil {
		gap := math.Max(0, obj-*out.Bound) / math.Max(math.Abs(obj), 1e-300)
		if gap < 1e-12 {
			gap = 0 // rounding of equal sums
		}
		out.Gap = ptr(gap)
	}
	// Layers.
	for i, u := range p.uc {
		ko, ki := u.co, u.ci
		if u.out >= 0 {
			ko = kc[u.out]
		}
		if u.in >= 0 {
			ki = kc[u.in]
		}
		before := u.counts(u.co, u.ci)
		after := u.counts(ko, ki)
		lp := LayerPlan{Name: u.name, Bits: bits[i], OutChannels: [2]int{u.co, ko},
			Params: [2]int64{before.Params, after.Params}, FLOPs: [2]int64{2 * before.MACs, 2 * after.MACs}}
		if u.out >= 0 {
			g := p.st.Groups[u.out]
			lp.Group = g.Name
			idx := unitIndex(p.st, u.name)
			kept := map[int]bool{}
			for _, c := range keep[u.out] {
				kept[c] = true
			}
			for c := 0; c < g.Channels; c++ {
				if !kept[c] {
					v, _ := p.req.Importance.Channel(idx, c)
					lp.OmegaRemoved += v
				}
			}
		}
		if u.in >= 0 && !u.dw {
			lp.InChannels = &[2]int{u.ci, ki}
		}
		out.Layers = append(out.Layers, lp)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// Summary returns a one-line summary: mode, status, Ω and the usage of
// every row.
func (p *Plan) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", p.Mode, p.Status)
	if p.Objective != nil {
		fmt.Fprintf(&b, ", Ω %.4g", *p.Objective)
	}
	for _, u := range p.Usage {
		if u.Used != nil {
			fmt.Fprintf(&b, ", %s %s (%.1f%%)", u.Resource, formatValue(u.res, *u.Used), 100**u.Used/u.Dense)
		}
	}
	return b.String()
}
