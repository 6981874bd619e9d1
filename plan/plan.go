package plan

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/sensitivity"
)

// Resource is a cost that a plan can be budgeted on: one row of the ILP
// when a budget names it, and a column of the report in every case.
type Resource struct {
	// Name identifies the resource in budgets and reports: "size", "bops",
	// "latency", or a device-qualified name such as "latency@t4".
	Name string
	// Kind fixes the unit (budget.Kind.Unit) and the flag syntax.
	Kind budget.Kind
	// Cost returns the layer's cost at candidate key (precision p).
	Cost func(l *sensitivity.Layer, key string, p sensitivity.Precision) float64
	// Supports, when not nil, reports whether the resource can cost a
	// precision at all; candidates it rejects are removed from the plan
	// (a device without a pair holding them).
	Supports func(p sensitivity.Precision) bool
}

// SizeResource costs model size in bytes: params · b_w / 8.
var SizeResource = Resource{Name: "size", Kind: budget.Size,
	Cost: func(l *sensitivity.Layer, _ string, p sensitivity.Precision) float64 {
		return l.Params * float64(p.W) / 8
	}}

// BOPSResource costs bit operations: MACs · b_w · b_a.
var BOPSResource = Resource{Name: "bops", Kind: budget.BOPS,
	Cost: func(l *sensitivity.Layer, _ string, p sensitivity.Precision) float64 {
		return l.MACs * float64(p.W) * float64(p.A)
	}}

// TableLatencyResource costs latency from the table's measured latency_ms.
var TableLatencyResource = Resource{Name: "latency", Kind: budget.Latency,
	Cost: func(l *sensitivity.Layer, key string, _ sensitivity.Precision) float64 {
		return l.LatencyMS[key]
	}}

// DefaultResources returns the resources a table supports on its own:
// size and BOPS always, latency when every layer has latency_ms.
func DefaultResources(t *sensitivity.Table) []Resource {
	rs := []Resource{SizeResource, BOPSResource}
	for i := range t.Layers {
		if t.Layers[i].LatencyMS == nil {
			return rs
		}
	}
	return append(rs, TableLatencyResource)
}

// Budget limits one resource.
type Budget struct {
	// Resource names a Resource of the request.
	Resource string
	// Spec is the parsed limit (absolute or a percentage of the range).
	Spec budget.Spec
}

// Request is everything Solve needs.
type Request struct {
	// Table holds the layers, their sensitivities and candidates.
	Table *sensitivity.Table
	// Resources lists the costs to report and budget; nil means
	// DefaultResources(Table).
	Resources []Resource
	// Devices adds each device's latency and energy resources
	// ("latency@t4", "energy@t4").
	Devices []Device
	// Budgets lists the limits; each becomes one ILP row.
	Budgets []Budget
	// Solver is the ILP engine; nil means ilp.Solve.
	Solver ilp.Solver
	// Settings tunes the solver; nil means defaults.
	Settings *ilp.Settings
	// Engine names the solver in the plan ("bitplan" when empty).
	Engine string
	// Verify, when not nil, measures the plan against its alternatives on
	// held-out data and returns the best measured (see Verification).
	Verify *Verify
}

// defaultSolver adapts ilp.Solve to ilp.Solver.
type defaultSolver struct{}

func (defaultSolver) Solve(ctx context.Context, p *ilp.Problem, s *ilp.Settings) (*ilp.Solution, error) {
	return ilp.Solve(ctx, p, s)
}

// layerInfo caches a layer's candidates.
type layerInfo struct {
	precs []sensitivity.Precision
	keys  []string
}

// built is a request turned into an ILP, with what is needed to map the
// solution back to layers.
type built struct {
	req       *Request
	resources []Resource
	info      []layerInfo
	cost      [][][]float64 // layer, candidate, resource
	lo, hi    []float64     // per resource: all-lowest and all-highest totals
	rows      []ilp.Row
	rowRes    []int // resource of each row
	merged    []ilp.Group
	// groups are the ILP groups before tied layers were merged, one per layer.
	groups   []ilp.Group
	prob     *ilp.Problem
	warnings []string
	// layerIndex maps layer names to table indices and tieOf a layer index
	// to the name of its tie group (when it has one).
	layerIndex map[string]int
	tieOf      map[int]string
	// omega overrides Ω of (layer index, candidate key) pairs: the measured
	// values of a verification's correction.
	omega map[omegaKey]float64
}

// Problem returns the ILP that Solve would solve for req: one group per
// layer (tied layers merged), one row per budget. Use it to export the
// problem (ilp.WriteMPS, ilp.WriteLP).
func Problem(req *Request) (*ilp.Problem, error) {
	b, err := build(req)
	if err != nil {
		return nil, err
	}
	return b.prob, nil
}

func build(req *Request) (*built, error) { return buildWith(req, nil) }

// buildWith is build with Ω replaced by omega where it has a value.
func buildWith(req *Request, omega map[omegaKey]float64) (*built, error) {
	t := req.Table
	if t == nil || len(t.Layers) == 0 {
		return nil, fmt.Errorf("plan: empty table")
	}
	b := &built{req: req, resources: req.Resources, omega: omega}
	if b.resources == nil {
		b.resources = DefaultResources(t)
	}
	for _, d := range req.Devices {
		w, err := d.check(t)
		if err != nil {
			return nil, err
		}
		b.warnings = append(b.warnings, w...)
		b.resources = append(b.resources, d.Resources()...)
	}
	resources := b.resources
	byName := map[string]int{}
	for i, r := range resources {
		byName[r.Name] = i
	}
	info := make([]layerInfo, len(t.Layers))
	for i := range t.Layers {
		precs, keys := t.Layers[i].Candidates()
		info[i].precs, info[i].keys = precs[:0:len(precs)], keys[:0:len(keys)]
		for c := range precs {
			ok := true
			for _, r := range resources {
				if r.Supports != nil && !r.Supports(precs[c]) {
					ok = false
				}
			}
			if ok || keys[c] == t.Layers[i].Pin {
				info[i].precs = append(info[i].precs, precs[c])
				info[i].keys = append(info[i].keys, keys[c])
			}
		}
		if len(info[i].keys) == 0 {
			return nil, fmt.Errorf("plan: layer %q: no candidate precision can run on the given devices", t.Layers[i].Name)
		}
	}
	b.info = info

	// Per-layer cost of every candidate on every resource.
	cost := make([][][]float64, len(t.Layers))
	for i := range t.Layers {
		l := &t.Layers[i]
		cost[i] = make([][]float64, len(info[i].keys))
		flat := make([]float64, len(info[i].keys)*len(resources))
		for c, k := range info[i].keys {
			cost[i][c] = flat[c*len(resources) : (c+1)*len(resources) : (c+1)*len(resources)]
			for r, res := range resources {
				v := res.Cost(l, k, info[i].precs[c])
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, fmt.Errorf("plan: layer %q: %s cost of candidate %s is %v", l.Name, res.Name, k, v)
				}
				cost[i][c][r] = v
			}
		}
	}
	b.cost = cost
	b.lo, b.hi = rangeOf(t, info, cost, len(resources))
	for _, bu := range req.Budgets {
		r, ok := byName[bu.Resource]
		if !ok {
			return nil, fmt.Errorf("plan: budget on %q: no such resource here (have %s)", bu.Resource, names(resources))
		}
		limit := bu.Spec.Resolve(b.lo[r], b.hi[r])
		b.rows = append(b.rows, ilp.Row{Name: bu.Resource, Unit: resources[r].Kind.Unit(), Limit: limit})
		b.rowRes = append(b.rowRes, r)
	}
	if len(req.Budgets) == 0 {
		b.warnings = append(b.warnings, "no budget given: every layer takes its most accurate candidate")
	}

	groups := make([]ilp.Group, len(t.Layers))
	for i := range t.Layers {
		l := &t.Layers[i]
		g := ilp.Group{Name: l.Name, Pin: l.Pin, Choices: make([]ilp.Choice, 0, len(info[i].keys))}
		flat := make([]float64, len(info[i].keys)*len(b.rows))
		for c, k := range info[i].keys {
			ch := ilp.Choice{Label: k, Value: b.omegaOf(i, k), Costs: flat[c*len(b.rows) : (c+1)*len(b.rows) : (c+1)*len(b.rows)]}
			for j, r := range b.rowRes {
				ch.Costs[j] = cost[i][c][r]
			}
			g.Choices = append(g.Choices, ch)
		}
		groups[i] = g
	}
	b.groups = groups
	merged, err := ilp.Merge(groups, t.TieGroups())
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	for g := range merged {
		merged[g].Choices = undominated(merged[g])
	}
	b.merged = merged
	b.prob = &ilp.Problem{Groups: merged, Rows: b.rows}
	b.layerIndex = map[string]int{}
	for i, l := range t.Layers {
		b.layerIndex[l.Name] = i
	}
	b.tieOf = map[int]string{}
	for _, g := range merged {
		if len(g.Members) > 1 {
			for _, m := range g.Members {
				b.tieOf[b.layerIndex[m]] = g.Name
			}
		}
	}
	return b, nil
}

// omegaKey names one candidate of one layer (table index, candidate key).
type omegaKey struct {
	layer int
	key   string
}

// omegaOf is the ILP value of layer i at candidate k: Ω, or its override.
func (b *built) omegaOf(i int, k string) float64 {
	if v, ok := b.omega[omegaKey{i, k}]; ok {
		return v
	}
	return b.req.Table.Layers[i].Omega(k)
}

// Solve builds the ILP of a request (see Problem), solves it, and returns
// the plan with its certificate, per-layer choices, usage of every resource
// and the uniform-precision baselines. An infeasible budget is not an error:
// the plan's Status is "infeasible" and Infeasibility explains it.
func Solve(ctx context.Context, req *Request) (*Plan, error) {
	b, err := build(req)
	if err != nil {
		return nil, err
	}
	t, info, cost, resources, rows, rowRes, lo, hi :=
		req.Table, b.info, b.cost, b.resources, b.rows, b.rowRes, b.lo, b.hi
	p := &Plan{Model: t.Model, Engine: req.Engine, Source: t.Source, Warnings: b.warnings}
	if p.Engine == "" {
		p.Engine = "bitplan"
	}
	prob := b.prob
	solver := req.Solver
	if solver == nil {
		solver = defaultSolver{}
	}
	// The uniform baselines need no solution: they are summed beside the
	// search (on another core when there is one).
	uniformDone := make(chan []Uniform, 1)
	go func() { uniformDone <- uniform(t, info, cost, resources, rows, rowRes) }()
	sol, err := solver.Solve(ctx, prob, req.Settings)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	p.certificate(sol)
	chosen, err := b.layerChoices(sol.Choices)
	if err != nil {
		return nil, err
	}
	b.fill(p, chosen)
	for r, res := range resources {
		u := p.Usage[res.Name]
		u.Min, u.Max = lo[r], hi[r]
	}
	for j, row := range rows {
		u := p.Usage[row.Name]
		u.Limit = ptr(row.Limit)
		u.Budget = req.Budgets[j].Spec.Text
		if sol.Shadow != nil {
			u.ShadowPrice = ptr(sol.Shadow[j])
		}
		if u.Used != nil {
			u.Slack = ptr(row.Limit - *u.Used)
		}
	}
	if sol.Infeasibility != nil {
		inf := &Infeasibility{}
		for j, row := range rows {
			inf.Rows = append(inf.Rows, InfeasibleRow{Resource: row.Name, Limit: row.Limit,
				Least: sol.Infeasibility.MinUsage[j], Unit: row.Unit})
		}
		for _, c := range sol.Infeasibility.Conflicts {
			var ns []string
			for _, j := range c {
				ns = append(ns, rows[j].Name)
			}
			inf.Conflicts = append(inf.Conflicts, ns)
		}
		p.Infeasibility = inf
	}
	p.Uniform = <-uniformDone
	if req.Verify != nil && sol.Choices != nil {
		if err := b.verify(ctx, p, chosen); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// layerChoices maps a solution of the merged problem (a choice per group,
// nil when there is none) to a candidate index per layer (−1 without a
// solution).
func (b *built) layerChoices(groupChoices []int) ([]int, error) {
	t := b.req.Table
	chosen := make([]int, len(t.Layers))
	for i := range chosen {
		chosen[i] = -1
	}
	if groupChoices == nil {
		return chosen, nil
	}
	// The groups before merging list every layer's candidates in info's
	// order, so Expand's indices are indices into info[i].
	chosen, err := (&ilp.Problem{Groups: b.groups}).Expand(b.merged, groupChoices)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return chosen, nil
}

// fill sets the plan's layers to the candidates chosen per layer (−1: no
// plan) and every resource's use, keeping the limits, shadow prices and
// ranges already in p.Usage (Slack is recomputed). A plan with an
// Objective gets Σ Ω of the new choices (the table's Ω, not an override).
func (b *built) fill(p *Plan, chosen []int) {
	t := b.req.Table
	used := make([]float64, len(b.resources))
	p.Layers = p.Layers[:0]
	complete := len(chosen) > 0
	var omega float64
	for i := range t.Layers {
		l := &t.Layers[i]
		lp := Layer{Name: l.Name, AvgTrace: l.AvgTrace, AvgTraceStderr: l.AvgTraceStderr,
			Params: l.Params, MACs: l.MACs, Tie: b.tieOf[i], Pinned: l.Pin != "", Kind: l.Kind}
		if c := chosen[i]; c >= 0 {
			k := b.info[i].keys[c]
			lp.Choice, lp.Bits, lp.ABits = k, b.info[i].precs[c].W, b.info[i].precs[c].A
			lp.Omega = l.Omega(k)
			omega += lp.Omega
			lp.Costs = map[string]float64{}
			for r, res := range b.resources {
				lp.Costs[res.Name] = b.cost[i][c][r]
				used[r] += b.cost[i][c][r]
			}
		} else {
			complete = false
		}
		p.Layers = append(p.Layers, lp)
	}
	if p.Usage == nil {
		p.Usage = map[string]*Usage{}
	}
	p.order = p.order[:0]
	for r, res := range b.resources {
		u := p.Usage[res.Name]
		if u == nil {
			u = &Usage{Unit: res.Kind.Unit(), Kind: res.Kind}
			p.Usage[res.Name] = u
		}
		u.Used = nil
		if complete {
			u.Used = ptr(used[r])
		}
		if u.Limit != nil && u.Used != nil {
			u.Slack = ptr(*u.Limit - *u.Used)
		}
		p.order = append(p.order, res.Name)
	}
	if complete && p.Objective != nil && omega != *p.Objective {
		p.Objective = ptr(omega)
	}
}

// rangeOf returns, per resource, the total cost with every layer at its
// lowest candidate and at its highest (pinned layers at their pin): the two
// ends of HAWQ's percentage convention.
func rangeOf(t *sensitivity.Table, info []layerInfo, cost [][][]float64, nres int) (lo, hi []float64) {
	lo, hi = make([]float64, nres), make([]float64, nres)
	for i := range t.Layers {
		a, b := 0, len(info[i].keys)-1
		if pin := t.Layers[i].Pin; pin != "" {
			for c, k := range info[i].keys {
				if k == pin {
					a, b = c, c
				}
			}
		}
		for r := 0; r < nres; r++ {
			lo[r] += cost[i][a][r]
			hi[r] += cost[i][b][r]
		}
	}
	return lo, hi
}

// uniformChoices returns the candidate index of every layer when every
// layer that is not pinned takes candidate key (pinned layers their pin;
// attention and non-linearity layers without it their nearest wider
// candidate), or nil when some weight layer lacks it.
func uniformChoices(t *sensitivity.Table, info []layerInfo, key string) []int {
	idx := make([]int, len(t.Layers))
	for i := range t.Layers {
		idx[i] = -1
		want := key
		if pin := t.Layers[i].Pin; pin != "" {
			want = pin
		}
		for c, k := range info[i].keys {
			if k == want {
				idx[i] = c
			}
		}
		if idx[i] < 0 && t.Layers[i].Kind != "" && t.Layers[i].Pin == "" {
			idx[i] = nearestWider(info[i], want)
		}
		if idx[i] < 0 {
			return nil
		}
	}
	return idx
}

// nearestWider returns the index of the narrowest candidate of an
// attention or non-linearity layer at least as wide as key (its widest
// when none is), so that a uniform baseline of weight widths ("4") also
// sets the layers whose candidates differ (non-linearities: 8 or float).
func nearestWider(in layerInfo, key string) int {
	p, err := sensitivity.ParsePrecision(key)
	if err != nil {
		return -1
	}
	best, widest := -1, -1
	for c, q := range in.precs {
		if q.W >= p.W && (best < 0 || q.W < in.precs[best].W) {
			best = c
		}
		if widest < 0 || q.W > in.precs[widest].W {
			widest = c
		}
	}
	if best < 0 {
		return widest
	}
	return best
}

// uniform evaluates every candidate shared by all layers, applied to every
// layer that is not pinned.
func uniform(t *sensitivity.Table, info []layerInfo, cost [][][]float64, resources []Resource, rows []ilp.Row, rowRes []int) []Uniform {
	var out []Uniform
	for c0, key := range info[0].keys {
		idx := uniformChoices(t, info, key)
		if idx == nil {
			continue
		}
		u := Uniform{Choice: key, Bits: info[0].precs[c0].W, ABits: info[0].precs[c0].A,
			Costs: make(map[string]float64, len(resources)), Fits: true}
		sum := make([]float64, len(resources))
		for i := range t.Layers {
			u.Omega += t.Layers[i].Omega(info[i].keys[idx[i]])
			for r, v := range cost[i][idx[i]] {
				sum[r] += v
			}
		}
		for r, res := range resources {
			u.Costs[res.Name] += sum[r]
		}
		for j, r := range rowRes {
			if u.Costs[resources[r].Name] > rows[j].Limit*(1+1e-12) {
				u.Fits = false
			}
		}
		out = append(out, u)
	}
	return out
}

func names(rs []Resource) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Name)
	}
	return strings.Join(s, ", ")
}

func ptr(v float64) *float64 { return &v }

// undominated returns g's choices without those dominated by a wider one:
// choice c is dropped when another choice d has the same Ω (exactly), no
// higher cost in any budgeted row, and a precision at least as wide in both
// weights and activations, wider in one. The group's pin is always kept.
//
// This is the one place the planner breaks such ties, and it breaks them
// towards the wider precision on purpose: the weight-only criteria
// (hessian, diag, taylor, weight) score ‖ΔW‖², which cannot see the
// activation error, so W4A4 and W4A8 get the same Ω and, under a size
// budget, the same cost. The ILP is then indifferent and its solver's
// order decides, and it picked W4A4 (on ResCNN's first convolution a
// measured 0.354 of loss, against 0.003 at W4A8). Among equal Ω the wider
// activation costs nothing budgeted and is the safe choice. A budget that
// does charge activations (BOPS, latency) makes the narrower candidate
// cheaper, so it is not dominated and stays. Merged (tied) groups are
// compared on their summed Ω and costs, so tied layers keep equal labels.
func undominated(g ilp.Group) []ilp.Choice {
	precs := make([]sensitivity.Precision, len(g.Choices))
	parsed := make([]bool, len(g.Choices))
	for c, ch := range g.Choices {
		p, err := sensitivity.ParsePrecision(ch.Label)
		precs[c], parsed[c] = p, err == nil
	}
	dominated := func(c int) bool {
		if !parsed[c] || g.Choices[c].Label == g.Pin {
			return false
		}
		for d := range g.Choices {
			if d == c || !parsed[d] || g.Choices[d].Value != g.Choices[c].Value {
				continue
			}
			pc, pd := precs[c], precs[d]
			if pd.W < pc.W || pd.A < pc.A || pd.W == pc.W && pd.A == pc.A {
				continue
			}
			cheaper := true
			for j, v := range g.Choices[d].Costs {
				if v > g.Choices[c].Costs[j] {
					cheaper = false
					break
				}
			}
			if cheaper {
				return true
			}
		}
		return false
	}
	// A new slice: without ties Merge's groups share their Choices with the
	// per-layer groups that Expand reads.
	out := make([]ilp.Choice, 0, len(g.Choices))
	for c, ch := range g.Choices {
		if !dominated(c) {
			out = append(out, ch)
		}
	}
	return out
}
