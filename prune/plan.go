package prune

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/plan"
)

// Solve plans the pruning: it prices every keep choice (Ω_prune, and
// Ω_quant in joint mode), runs the requested planner and returns the plan
// with the true costs of the pruned model. An infeasible budget is not an
// error: the plan's Status says so and Usage gives each row's least value.
func Solve(ctx context.Context, req *Request) (*plan.Plan, error) {
	p, err := prepare(req)
	if err != nil {
		return nil, err
	}
	mode := req.Mode
	if mode == "" {
		mode = ILP
	}
	out := &plan.Plan{Model: req.Model, Engine: "bitplan", Pruning: &plan.Pruning{Mode: string(mode), Joint: req.Joint, Unprunable: req.Structure.Unprunable()}}
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
		out.Pruning.Iterations, out.Nodes, out.SolveSeconds = ires.iterations, ires.nodes, ires.elapsed.Seconds()
		out.Pruning.SearchNodes, out.Pruning.ImprovedBy = ires.searchNodes, ires.improvedBy
		if ires.choices != nil {
			ok = true
			var kc []int
			kc, bits = p.assign(ires.choices)
			keep = p.keepSets(kc)
		}
	case Threshold:
		keep, ok, err = p.threshold()
	case Magnitude, Uniform:
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
func (p *problem) report(out *plan.Plan, keep [][]int, bits []int, ok bool, ires *ilpResult) error {
	// Always report params and FLOPs.
	for _, res := range []budget.Kind{budget.Params, budget.FLOPs} {
		if !slices.ContainsFunc(p.rows, func(r row) bool { return r.res == res }) {
			p.rows = append(p.rows, row{res: res, name: res.String()})
		}
	}
	if err := p.ranges(); err != nil {
		return err
	}
	out.Usage = map[string]*plan.Usage{}
	for k, r := range p.rows {
		u := &plan.Usage{Unit: r.res.Unit(), Kind: r.res, Min: r.least, Max: r.dense}
		if k < len(p.req.Budgets) {
			u.Limit, u.Budget = ptr(r.limit), r.spec.Text
		}
		out.Usage[r.name] = u
	}
	if !ok || keep == nil {
		out.Status = "infeasible"
		if ires != nil && !ires.proven {
			out.Status = "limit"
		}
		inf := &plan.Infeasibility{}
		for k, r := range p.rows[:len(p.req.Budgets)] {
			inf.Rows = append(inf.Rows, plan.InfeasibleRow{Resource: r.name, Unit: r.res.Unit(), Limit: r.limit, Least: p.rows[k].least})
			if r.least > r.limit*(1+1e-12)+1e-9 {
				inf.Conflicts = append(inf.Conflicts, []string{r.name})
			}
		}
		if out.Status == "infeasible" {
			out.Infeasibility = inf
		}
		return nil
	}
	kc := make([]int, len(keep))
	for g := range keep {
		kc[g] = len(keep[g])
	}
	used, err := p.exact(kc, bits)
	if err != nil {
		return err
	}
	for k, r := range p.rows {
		u := out.Usage[r.name]
		u.Used = ptr(used[k])
		if u.Limit != nil {
			u.Slack = ptr(*u.Limit - used[k])
		}
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
				out.Usage[p.rows[k].name].ShadowPrice = ptr(sol.Shadow[k])
			}
		}
		if ires.predicted != nil && ires.improvedBy == "" {
			for k := range ires.predicted {
				out.Usage[p.rows[k].name].Predicted = ptr(ires.predicted[k])
			}
		}
	}
	// Groups.
	var obj, objVar float64
	pr := out.Pruning
	for _, g := range p.st.Groups {
		gp := plan.PruneGroup{Name: g.Name, Units: g.Members(), Channels: g.Channels, Kept: len(keep[g.Index]),
			KeptChannels: keep[g.Index], Prunable: g.Prunable, Directions: g.Directions}
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
		pr.Groups = append(pr.Groups, gp)
	}
	if p.req.Joint && ires != nil {
		for j, d := range p.decs {
			c := d.choices[ires.choices[j]]
			obj += c.omegaQuant
			if d.group >= 0 {
				pr.Groups[d.group].Bits = c.bits
				pr.Groups[d.group].OmegaQuant = c.omegaQuant
			}
		}
	}
	out.Objective = ptr(obj)
	pr.ObjectiveStdErr = math.Sqrt(objVar)
	if out.Bound != nil {
		gap := math.Max(0, obj-*out.Bound) / math.Max(math.Abs(obj), 1e-300)
		if gap < 1e-12 {
			gap = 0 // rounding of equal sums
		}
		out.Gap = ptr(gap)
		if gap == 0 && out.Status == "limit" {
			// The exact search stopped at its node limit, but the bound is
			// a proven lower bound on the true optimum and the plan attains
			// it: the plan is optimal all the same.
			out.Status = "optimal"
		}
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
		lp := &plan.LayerPruning{OutChannels: [2]int{u.co, ko},
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
		l := plan.Layer{Name: u.name, Bits: bits[i], Omega: lp.OmegaRemoved, Params: float64(before.Params), MACs: float64(before.MACs),
			Costs: map[string]float64{}, Pruned: lp}
		if p.req.Joint {
			l.Choice = strconv.Itoa(bits[i])
		}
		if r, err := p.unitRows(i, ko, ki, bits[i]); err == nil {
			for k := range p.rows {
				l.Costs[p.rows[k].name] = r[k]
			}
		}
		out.Layers = append(out.Layers, l)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// Summary returns a one-line summary of a pruning plan: mode, status, Ω
// and the usage of every resource as a share of the unpruned model.
func Summary(p *plan.Plan) string {
	var b strings.Builder
	if p.Pruning != nil {
		fmt.Fprintf(&b, "%s: ", p.Pruning.Mode)
	}
	b.WriteString(p.Status)
	if p.Objective != nil {
		fmt.Fprintf(&b, ", Ω %.4g", *p.Objective)
	}
	for _, r := range p.Resources() {
		u := p.Usage[r]
		if u.Used != nil {
			fmt.Fprintf(&b, ", %s %s (%.1f%%)", r, budget.Format(u.Kind, *u.Used), 100**u.Used/u.Max)
		}
	}
	return b.String()
}
