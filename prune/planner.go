package prune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/profiles"
)

// Mode selects the pruning planner.
type Mode string

// The planners.
const (
	// ILP chooses a keep ratio per channel group (and a bit width in joint
	// mode) with the exact multiple-choice knapsack solver of package ilp,
	// over a linearised cost model that is verified and repaired.
	ILP Mode = "ilp"
	// Threshold is HAP's global threshold (Yu et al., arXiv:2101.08940):
	// channels are removed in increasing order of importance, across all
	// layers, until every budget is met.
	Threshold Mode = "threshold"
	// Magnitude is L1-norm filter pruning (Li et al., "Pruning filters for
	// efficient ConvNets", ICLR 2017): one keep ratio for every group,
	// the largest that meets the budgets, keeping each group's channels of
	// largest L1 norm.
	Magnitude Mode = "l1"
	// Uniform is the uniform-ratio baseline with HAP's ranking: one keep
	// ratio for every group, the largest that meets the budgets, keeping
	// each group's structures of highest HAP importance (so against ILP it
	// measures what per-group ratios gain, and against l1 what the
	// Hessian ranking gains).
	Uniform Mode = "uniform"
)

// ParseMode parses "ilp", "threshold", "uniform" or "l1".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ILP, Threshold, Magnitude, Uniform:
		return m, nil
	}
	return "", fmt.Errorf("prune: mode %q, want ilp, threshold, uniform or l1", s)
}

// DefaultRatios are the keep ratios the ILP chooses from by default.
var DefaultRatios = []float64{1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125}

// Request is a pruning-planning problem.
type Request struct {
	// Structure is the channel-dependency analysis of the model.
	Structure *Structure
	// Importance holds the channel statistics (Estimate or FromTraces).
	Importance *Importance
	// Budgets are the limits, one per resource of Resources (Resource
	// empty or the kind's name; "latency@PROFILE" is accepted for the
	// request's Profile). A percentage resolves as package budget says:
	// lo is every prunable group at its fewest kept channels (the smallest
	// ratio) and narrowest width, hi the unpruned model at the widest.
	Budgets []plan.Budget
	// Mode is the planner (default ILP).
	Mode Mode
	// Ratios are the keep ratios of the ILP (default DefaultRatios); a
	// group of C channels keeps max(1, round(r·C)) channels at ratio r (a
	// group of D directions, Group.Directions, D·max(1, round(r·C/D)):
	// the same number in each).
	Ratios []float64
	// Joint plans pruning and weight bit widths together (ILP only): the
	// choices of a group are (keep ratio, bits) pairs.
	Joint bool
	// Bits are the joint mode's candidate weight widths (default 4, 8);
	// activations use the same width in the latency model.
	Bits []int
	// Profile, when set, prices the Latency budgets; ProfileOptions tunes
	// its cost model.
	Profile        *profiles.Profile
	ProfileOptions *profiles.Options
	// Precision is the weight/activation precision of the Size and Latency
	// models in plain pruning (default w32a32, a float model).
	Precision profiles.Precision
	// Settings tunes each ILP solve.
	Settings *ilp.Settings
	// MaxIterations bounds the linearise–solve–verify rounds (default 30).
	MaxIterations int
	// NodeLimit bounds the exact branch-and-bound over the true costs
	// (default 2,000,000 nodes); beyond it the plan is the best found and
	// its status "limit".
	NodeLimit int
	// Model names the model in reports.
	Model string
}

type choice struct {
	keep, bits             int
	omegaPrune, omegaQuant float64
}

func (c choice) omega() float64 { return c.omegaPrune + c.omegaQuant }

type decision struct {
	name    string
	group   int // structure group, or −1 for a unit with fixed channels
	units   []int
	choices []choice
}

// problem is the prepared planning problem.
type problem struct {
	req    *Request
	st     *Structure
	uc     []unitCost
	ac     []actCost // activation × activation MatMuls (FLOPs only)
	rows   []row
	decs   []decision
	decOf  []int // unit → decision
	inDec  []int // unit → decision of its input group, or −1
	order  [][]int
	hap    [][]float64 // per group: HAP score per channel
	hapSE  [][]float64
	defBit int
	// minBit and maxBit are the narrowest and widest candidate widths.
	minBit, maxBit int
}

var errNoUnits = errors.New("prune: request without a structure or importances")

func prepare(req *Request) (*problem, error) {
	st, im := req.Structure, req.Importance
	if st == nil || im == nil {
		return nil, errNoUnits
	}
	if len(im.Units) != len(st.Roles) {
		return nil, fmt.Errorf("prune: importances for %d units, the model has %d", len(im.Units), len(st.Roles))
	}
	for i, r := range st.Roles {
		if im.Units[i].Unit != r.Unit {
			return nil, fmt.Errorf("prune: importance %d is for unit %q, want %q", i, im.Units[i].Unit, r.Unit)
		}
	}
	if c, err := coarsened(st, im); err != nil {
		return nil, err
	} else if c != im {
		r := *req
		r.Importance, im = c, c
		req = &r
	}
	mode := req.Mode
	if mode == "" {
		mode = ILP
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, err
	}
	if req.Joint && mode != ILP {
		return nil, fmt.Errorf("prune: joint pruning and quantization needs mode ilp, got %s", mode)
	}
	p := &problem{req: req, st: st, uc: newUnitCosts(st), ac: newActCosts(st)}
	prec := req.Precision
	if prec == (profiles.Precision{}) {
		prec = profiles.W32A32
	}
	if !prec.Valid() {
		return nil, fmt.Errorf("prune: precision %v: widths must be 1..64", prec)
	}
	p.defBit = prec.W
	bits := []int{prec.W}
	if req.Joint {
		bits = slices.Clone(req.Bits)
		if len(bits) == 0 {
			bits = []int{4, 8}
		}
		slices.Sort(bits)
		bits = slices.Compact(bits)
		for _, b := range bits {
			if b < 2 || b > 32 {
				return nil, fmt.Errorf("prune: candidate width %d bits, want 2..32", b)
			}
		}
		if err := im.AddDeltaSq(bits); err != nil {
			return nil, err
		}
	}
	ratios := req.Ratios
	if len(ratios) == 0 {
		ratios = DefaultRatios
	}
	for _, r := range ratios {
		if !(r > 0 && r <= 1) {
			return nil, fmt.Errorf("prune: keep ratio %v, want a value in (0, 1]", r)
		}
	}
	// Channel rankings: the lowest score is removed first.
	for _, g := range st.Groups {
		crit := HAP
		if mode == Magnitude {
			crit = L1
		}
		s, _ := GroupScores(st, im, g, crit)
		h, hse := GroupScores(st, im, g, HAP)
		p.order = append(p.order, removalOrder(s, g.dirs()))
		p.hap = append(p.hap, h)
		p.hapSE = append(p.hapSE, hse)
	}
	// Decisions: one per prunable group (its sources and depthwise
	// pass-throughs), one per remaining unit.
	p.decOf = make([]int, len(st.Roles))
	for i := range p.decOf {
		p.decOf[i] = -1
	}
	for _, g := range st.Groups {
		if !g.Prunable {
			continue
		}
		d := decision{name: g.Name, group: g.Index}
		for _, name := range g.Members() {
			i := unitIndex(st, name)
			d.units = append(d.units, i)
			p.decOf[i] = len(p.decs)
		}
		seen := map[int]bool{}
		for _, r := range ratios {
			nd := g.dirs()
			k := nd * max(1, int(math.Round(r*float64(g.Channels/nd))))
			if seen[k] {
				continue
			}
			seen[k] = true
			for _, b := range bits {
				d.choices = append(d.choices, p.newChoice(d.units, g.Index, k, b))
			}
		}
		if !seen[g.Channels] {
			for _, b := range bits {
				d.choices = append(d.choices, p.newChoice(d.units, g.Index, g.Channels, b))
			}
		}
		p.decs = append(p.decs, d)
	}
	for i, r := range st.Roles {
		if p.decOf[i] >= 0 {
			continue
		}
		d := decision{name: r.Unit, group: -1, units: []int{i}}
		for _, b := range bits {
			d.choices = append(d.choices, p.newChoice(d.units, -1, p.uc[i].co, b))
		}
		p.decOf[i] = len(p.decs)
		p.decs = append(p.decs, d)
	}
	p.inDec = make([]int, len(st.Roles))
	for i, r := range st.Roles {
		p.inDec[i] = -1
		if r.In >= 0 && st.Groups[r.In].Prunable {
			for j, d := range p.decs {
				if d.group == r.In {
					p.inDec[i] = j
				}
			}
		}
	}
	// Rows.
	for _, b := range req.Budgets {
		k := b.Spec.Kind
		if !slices.Contains(Resources, k) {
			return nil, fmt.Errorf("prune: a %s budget (%q) cannot price a pruning plan; want one of %v", k, b.Spec.Text, Resources)
		}
		if b.Resource != "" && b.Resource != k.String() && !(k == budget.Latency && req.Profile != nil && b.Resource == "latency@"+req.Profile.Name) {
			return nil, fmt.Errorf("prune: budget on %q has a %s limit (%q)", b.Resource, k, b.Spec.Text)
		}
		rw := row{res: k, name: k.String(), spec: b.Spec}
		if k == budget.BOPS && !req.Joint {
			rw.abits = prec.A
		}
		if k == budget.Latency {
			if req.Profile == nil {
				return nil, fmt.Errorf("prune: latency budget %q needs a hardware profile", b.Spec.Text)
			}
			rw.prof, rw.opts, rw.name = req.Profile, req.ProfileOptions, "latency@"+req.Profile.Name
			if !req.Joint {
				rw.abits = prec.A
			}
		}
		for _, o := range p.rows {
			if o.name == rw.name {
				return nil, fmt.Errorf("prune: two budgets on %s", rw.name)
			}
		}
		p.rows = append(p.rows, rw)
	}
	p.minBit, p.maxBit = bits[0], bits[len(bits)-1]
	if err := p.ranges(); err != nil {
		return nil, err
	}
	for k := range p.rows {
		p.rows[k].limit = p.rows[k].spec.Resolve(p.rows[k].least, p.rows[k].dense)
	}
	return p, nil
}

// ranges sets every row's dense value (every group whole, the widest
// candidate) and least value (every prunable group at its fewest kept
// channels among the choices, the narrowest candidate).
func (p *problem) ranges() error {
	dense, err := p.exact(p.fullKeep(), p.uniformBits(p.maxBit))
	if err != nil {
		return err
	}
	lv, err := p.exact(p.leastKeep(), p.uniformBits(p.minBit))
	if err != nil {
		return err
	}
	for k := range p.rows {
		p.rows[k].dense, p.rows[k].least = dense[k], lv[k]
	}
	return nil
}

// leastKeep is every prunable group at the fewest channels its choices
// keep.
func (p *problem) leastKeep() []int {
	least := p.fullKeep()
	for _, d := range p.decs {
		if d.group >= 0 {
			for _, c := range d.choices {
				least[d.group] = min(least[d.group], c.keep)
			}
		}
	}
	return least
}

// newChoice prices keeping the k most important channels of group g (−1:
// all channels of a fixed unit) at weight width b.
func (p *problem) newChoice(units []int, g, k, b int) choice {
	c := choice{keep: k, bits: b}
	im := p.req.Importance
	var kept []int
	if g >= 0 {
		ord := p.order[g]
		for _, ch := range ord[:len(ord)-k] {
			c.omegaPrune += p.hap[g][ch]
		}
		kept = ord[len(ord)-k:]
	}
	if !p.req.Joint {
		return c
	}
	for _, i := range units {
		u := &im.Units[i]
		ks := kept
		if g < 0 {
			ks = make([]int, len(u.Trace))
			for j := range ks {
				ks[j] = j
			}
		}
		var tr, n, d float64
		for _, ch := range ks {
			tr += u.Trace[ch]
			n += float64(u.Size[ch])
			d += u.DeltaSq[b][ch]
		}
		if n > 0 {
			c.omegaQuant += im.Sign.apply(tr) / n * d
		}
	}
	return c
}

func (p *problem) fullKeep() []int {
	k := make([]int, len(p.st.Groups))
	for i, g := range p.st.Groups {
		k[i] = g.Channels
	}
	return k
}

func (p *problem) uniformBits(b int) []int {
	bits := make([]int, len(p.uc))
	for i := range bits {
		bits[i] = b
	}
	return bits
}

// unitRows returns the row costs of unit i with ko output and ki input
// channels at weight width bits.
func (p *problem) unitRows(i, ko, ki, bits int) ([]float64, error) {
	n := p.uc[i].counts(ko, ki)
	v := make([]float64, len(p.rows))
	for k := range p.rows {
		x, err := p.rows[k].value(&p.uc[i], n, ko, bits)
		if err != nil {
			return nil, err
		}
		v[k] = x
	}
	return v, nil
}

// exact returns the row totals with keep[g] channels kept in group g and
// unit i at bits[i].
func (p *problem) exact(keep, bits []int) ([]float64, error) {
	tot := make([]float64, len(p.rows))
	for i, u := range p.uc {
		ko, ki := u.co, u.ci
		if u.out >= 0 {
			ko = keep[u.out]
		}
		if u.in >= 0 {
			ki = keep[u.in]
		}
		v, err := p.unitRows(i, ko, ki, bits[i])
		if err != nil {
			return nil, err
		}
		for k := range v {
			tot[k] += v[k]
		}
	}
	for _, a := range p.ac {
		k := 0
		if a.group >= 0 {
			k = keep[a.group]
		}
		p.addAct(tot, a.macsAt(k))
	}
	return tot, nil
}

// addAct adds an activation × activation MatMul of macs MACs to the FLOPs
// rows of v.
func (p *problem) addAct(v []float64, macs int64) {
	for k, r := range p.rows {
		if r.res == budget.FLOPs {
			v[k] += 2 * float64(macs)
		}
	}
}

// assign turns decision choices into keep counts and unit widths.
func (p *problem) assign(ch []int) (keep, bits []int) {
	keep, bits = p.fullKeep(), make([]int, len(p.uc))
	for j, d := range p.decs {
		c := d.choices[ch[j]]
		if d.group >= 0 {
			keep[d.group] = c.keep
		}
		for _, i := range d.units {
			bits[i] = c.bits
		}
	}
	return keep, bits
}

func (p *problem) feasible(v []float64) bool {
	for k, r := range p.rows {
		if v[k] > r.limit*(1+1e-12)+1e-9 {
			return false
		}
	}
	return true
}

func (p *problem) objective(ch []int) float64 {
	s := 0.0
	for j, d := range p.decs {
		s += d.choices[ch[j]].omega()
	}
	return s
}

// unitAt returns unit i's row costs when its decision takes choice jd and
// its input decision choice ji (ignored without one).
func (p *problem) unitAt(i, jd, ji int) ([]float64, error) {
	d := p.decs[p.decOf[i]]
	c := d.choices[jd]
	u := p.uc[i]
	ko, ki := u.co, u.ci
	if d.group >= 0 {
		ko = c.keep
	}
	if in := p.inDec[i]; in >= 0 {
		if in == p.decOf[i] {
			ki = c.keep
		} else {
			ki = p.decs[in].choices[ji].keep
		}
	}
	return p.unitRows(i, ko, ki, c.bits)
}

// linearize returns the ILP whose choice costs are the first-order
// separable model of the true costs around the assignment lin:
//
//	f_u(x, y) ≈ f_u(x, ŷ) + f_u(x̂, y) − f_u(x̂, ŷ)
//
// for every unit u whose cost f_u depends on its own decision x and on the
// decision y of the group feeding it (x̂, ŷ the choices in lin). The model is
// exact whenever one of the two keeps its choice in lin, so it is exact at
// lin itself; for the bilinear params and MACs of a chain it errs by
// (x − x̂)(y − ŷ)·const. tight is subtracted from every limit.
func (p *problem) linearize(lin []int, tight []float64) (*ilp.Problem, error) {
	prob := &ilp.Problem{}
	costs := make([][][]float64, len(p.decs))
	for j, d := range p.decs {
		costs[j] = make([][]float64, len(d.choices))
		for c := range d.choices {
			costs[j][c] = make([]float64, len(p.rows))
		}
	}
	add := func(dst, v []float64, sign float64) {
		for k := range v {
			dst[k] += sign * v[k]
		}
	}
	for i := range p.uc {
		D, I := p.decOf[i], p.inDec[i]
		for c := range p.decs[D].choices {
			ji := 0
			if I >= 0 && I != D {
				ji = lin[I]
			}
			v, err := p.unitAt(i, c, ji)
			if err != nil {
				return nil, err
			}
			add(costs[D][c], v, 1)
		}
		if I < 0 || I == D {
			continue
		}
		base, err := p.unitAt(i, lin[D], lin[I])
		if err != nil {
			return nil, err
		}
		for c := range p.decs[I].choices {
			v, err := p.unitAt(i, lin[D], c)
			if err != nil {
				return nil, err
			}
			add(costs[I][c], v, 1)
			add(costs[I][c], base, -1)
		}
	}
	// Activation products: linear in their group's kept heads (exact);
	// fixed ones are a constant, carried by every choice of decision 0.
	for _, a := range p.ac {
		j := -1
		if a.group >= 0 {
			j = slices.IndexFunc(p.decs, func(d decision) bool { return d.group == a.group })
		}
		if j < 0 {
			if len(p.decs) > 0 {
				for c := range p.decs[0].choices {
					p.addAct(costs[0][c], a.macsAt(0))
				}
			}
			continue
		}
		for c, ch := range p.decs[j].choices {
			p.addAct(costs[j][c], a.macsAt(ch.keep))
		}
	}
	for j, d := range p.decs {
		g := ilp.Group{Name: d.name}
		for c, ch := range d.choices {
			g.Choices = append(g.Choices, ilp.Choice{Label: p.label(ch), Value: ch.omega(), Costs: costs[j][c]})
		}
		prob.Groups = append(prob.Groups, g)
	}
	for k, r := range p.rows {
		prob.Rows = append(prob.Rows, ilp.Row{Name: r.name, Unit: r.res.Unit(), Limit: r.limit - tight[k]})
	}
	return prob, nil
}

func (p *problem) label(c choice) string {
	s := strconv.Itoa(c.keep)
	if p.req.Joint {
		s += "@" + strconv.Itoa(c.bits)
	}
	return s
}

// predicted returns the linear model's row totals of the choices ch.
func predicted(prob *ilp.Problem, ch []int) []float64 {
	v := make([]float64, len(prob.Rows))
	for j, g := range prob.Groups {
		for k, c := range g.Choices[ch[j]].Costs {
			v[k] += c
		}
	}
	return v
}

// ilpResult is what the ILP planner found.
type ilpResult struct {
	choices    []int
	sol        *ilp.Solution // the ILP that produced the first incumbent
	predicted  []float64
	iterations int
	nodes      int
	elapsed    time.Duration
	// bound is a proven lower bound on the true optimum (NaN if unknown);
	// proven reports that the search finished, so choices is optimal (or
	// the problem infeasible when choices is nil).
	bound        float64
	proven       bool
	searchNodes  int
	relaxInfeas  bool
	improvedBy   string
	relaxation   *ilp.Solution
	boundIsValid bool
}

// solveILP plans in three stages.
//
//  1. Relaxation: the ILP linearised at "no pruning" (every choice priced
//     with its neighbours whole). For params, FLOPs and size every unit's
//     cost is c·x·y (x, y the kept fractions of its output and input
//     channels, widths folded into c) and the tangent model
//     c·(x + y − 1) ≤ c·x·y, so this ILP underestimates every row: its
//     optimum is a lower bound on the true optimum (McCormick's
//     underestimator at the upper corner) and its infeasibility proves the
//     budget infeasible. Latency rows (a roofline max) carry no such
//     guarantee and void the bound.
//  2. Incumbent: sequential linearisation — solve, verify the plan's true
//     costs, re-linearise around it; a row that overshoots has its limit
//     tightened by the overshoot — then exact-cost local search.
//  3. Proof: depth-first branch-and-bound over the decisions with the true
//     costs, pruning a partial plan when its Ω plus the least Ω of the rest
//     reaches the incumbent's, or when it overshoots a budget with every
//     undecided group at its cheapest choice (costs grow with the channels
//     and bits kept). Finishing within Request.NodeLimit proves the plan
//     optimal for the true costs.
func (p *problem) solveILP(ctx context.Context) (*ilpResult, error) {
	iters := p.req.MaxIterations
	if iters <= 0 {
		iters = 30
	}
	lin := make([]int, len(p.decs))
	for j, d := range p.decs {
		best := 0
		for c, ch := range d.choices {
			if ch.keep > d.choices[best].keep || (ch.keep == d.choices[best].keep && ch.bits > d.choices[best].bits) {
				best = c
			}
		}
		lin[j] = best
	}
	tight := make([]float64, len(p.rows))
	res := &ilpResult{bound: math.NaN(), boundIsValid: true}
	for _, r := range p.rows {
		if r.res == budget.Latency {
			res.boundIsValid = false
		}
	}
	bestObj := math.Inf(1)
	var last []int
	for it := 0; it < iters; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prob, err := p.linearize(lin, tight)
		if err != nil {
			return nil, err
		}
		sol, err := ilp.Solve(ctx, prob, p.req.Settings)
		if err != nil {
			return nil, fmt.Errorf("prune: ILP: %w", err)
		}
		res.iterations++
		res.nodes += sol.Nodes
		res.elapsed += sol.Time
		if it == 0 {
			res.relaxation = sol
			if res.boundIsValid {
				switch {
				case sol.Status == ilp.Infeasible:
					res.relaxInfeas = true
				case !math.IsInf(sol.Bound, 0) && !math.IsNaN(sol.Bound):
					res.bound = sol.Bound
				}
			}
		}
		if sol.Choices == nil {
			break
		}
		keep, bits := p.assign(sol.Choices)
		truth, err := p.exact(keep, bits)
		if err != nil {
			return nil, err
		}
		if p.feasible(truth) {
			if obj := p.objective(sol.Choices); obj < bestObj-1e-15 || res.choices == nil {
				bestObj, res.choices, res.sol, res.predicted = obj, slices.Clone(sol.Choices), sol, predicted(prob, sol.Choices)
			}
			if slices.Equal(sol.Choices, last) {
				break
			}
		} else {
			for k, r := range p.rows {
				if over := truth[k] - r.limit; over > 0 {
					tight[k] += over
				}
			}
		}
		last = slices.Clone(sol.Choices)
		lin = slices.Clone(sol.Choices)
	}
	if res.relaxInfeas {
		res.proven = true
		return res, nil
	}
	if res.choices != nil {
		ch, err := p.localSearch(ctx, res.choices)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(ch, res.choices) {
			res.improvedBy = "local search"
			res.choices = ch
		}
	}
	best, proven, nodes, err := p.branchAndBound(ctx, res.choices, p.req.NodeLimit)
	if err != nil {
		return nil, err
	}
	res.searchNodes, res.proven = nodes, proven
	if best != nil && (res.choices == nil || p.objective(best) < p.objective(res.choices)-1e-12*math.Max(1, math.Abs(p.objective(best)))) {
		res.choices, res.improvedBy = best, "branch-and-bound"
	}
	if proven && res.choices != nil {
		res.bound = p.objective(res.choices)
	}
	if !res.boundIsValid && !proven {
		res.bound = math.NaN()
	}
	return res, nil
}

// branchAndBound searches the decisions depth-first with the true costs
// (see solveILP), starting from the incumbent (nil: none). It returns the
// best plan found, whether the search finished within limit nodes (0:
// 2,000,000), and the nodes visited.
func (p *problem) branchAndBound(ctx context.Context, incumbent []int, limit int) ([]int, bool, int, error) {
	if limit <= 0 {
		limit = 2_000_000
	}
	nd := len(p.decs)
	cheap := make([]int, nd)
	minOmega := make([]float64, nd+1) // suffix sums of the least Ω
	order := make([][]int, nd)
	for j, d := range p.decs {
		for c, ch := range d.choices {
			b := d.choices[cheap[j]]
			if ch.keep < b.keep || (ch.keep == b.keep && ch.bits < b.bits) {
				cheap[j] = c
			}
		}
		order[j] = make([]int, len(d.choices))
		for c := range order[j] {
			order[j][c] = c
		}
		sort.SliceStable(order[j], func(a, b int) bool { return d.choices[order[j][a]].omega() < d.choices[order[j][b]].omega() })
	}
	for j := nd - 1; j >= 0; j-- {
		minOmega[j] = minOmega[j+1] + p.decs[j].choices[order[j][0]].omega()
	}
	best := slices.Clone(incumbent)
	bestObj := math.Inf(1)
	if best != nil {
		bestObj = p.objective(best)
	}
	tol := func(o float64) float64 { return 1e-12 * math.Max(1, math.Abs(o)) }
	ch := slices.Clone(cheap)
	nodes := 0
	var err error
	var dfs func(j int, omega float64) bool
	dfs = func(j int, omega float64) bool {
		nodes++
		if nodes > limit {
			return false
		}
		if nodes%4096 == 0 {
			if err = ctx.Err(); err != nil {
				return false
			}
		}
		if omega+minOmega[j] >= bestObj-tol(bestObj) {
			return true
		}
		keep, bits := p.assign(ch)
		v, e := p.exact(keep, bits)
		if e != nil {
			err = e
			return false
		}
		if !p.feasible(v) {
			return true // even the cheapest completion overshoots
		}
		if j == nd {
			best, bestObj = slices.Clone(ch), omega
			return true
		}
		for _, c := range order[j] {
			ch[j] = c
			if !dfs(j+1, omega+p.decs[j].choices[c].omega()) {
				ch[j] = cheap[j]
				return false
			}
		}
		ch[j] = cheap[j]
		return true
	}
	done := dfs(0, 0)
	if err != nil {
		return nil, false, nodes, err
	}
	if math.IsInf(bestObj, 1) {
		best = nil
	}
	return best, done, nodes, nil
}

// localSearch improves a feasible assignment with exact costs: it applies
// the best single-decision change, else the best change of two decisions
// (when there are few enough choices), that lowers Ω and keeps every
// budget, until none does.
func (p *problem) localSearch(ctx context.Context, ch []int) ([]int, error) {
	cur := slices.Clone(ch)
	obj := p.objective(cur)
	try := func(cand []int) (bool, float64, error) {
		keep, bits := p.assign(cand)
		v, err := p.exact(keep, bits)
		if err != nil {
			return false, 0, err
		}
		return p.feasible(v), p.objective(cand), nil
	}
	pairs := 0
	for _, d := range p.decs {
		pairs += len(d.choices)
	}
	pairWork := pairs * pairs * len(p.decs) * len(p.decs)
	for round := 0; round < 1000; round++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var best []int
		bestObj := obj - 1e-12*math.Max(1, math.Abs(obj))
		for j, d := range p.decs {
			for c := range d.choices {
				if c == cur[j] || d.choices[c].omega() >= d.choices[cur[j]].omega() {
					continue
				}
				cand := slices.Clone(cur)
				cand[j] = c
				ok, o, err := try(cand)
				if err != nil {
					return nil, err
				}
				if ok && o < bestObj {
					best, bestObj = cand, o
				}
			}
		}
		if best == nil && pairWork <= 4_000_000 {
			for j := range p.decs {
				for l := j + 1; l < len(p.decs); l++ {
					for c := range p.decs[j].choices {
						for e := range p.decs[l].choices {
							if c == cur[j] || e == cur[l] {
								continue
							}
							if p.decs[j].choices[c].omega()+p.decs[l].choices[e].omega() >=
								p.decs[j].choices[cur[j]].omega()+p.decs[l].choices[cur[l]].omega() {
								continue
							}
							cand := slices.Clone(cur)
							cand[j], cand[l] = c, e
							ok, o, err := try(cand)
							if err != nil {
								return nil, err
							}
							if ok && o < bestObj {
								best, bestObj = cand, o
							}
						}
					}
				}
			}
		}
		if best == nil {
			return cur, nil
		}
		cur, obj = best, bestObj
	}
	return cur, nil
}

// removalOrder returns the channels in the order they are removed: by
// increasing score s; for a group of d > 1 directions (channel c of
// direction ⌊c/(C/d)⌋) in levels, level j holding the j-th lowest channel
// of every direction, so that the last D·n are the n highest of each
// direction: each direction is ranked by its own scores and keeps the same
// number.
func removalOrder(s []float64, d int) []int {
	byScore := func(ord []int) {
		sort.SliceStable(ord, func(a, b int) bool { return s[ord[a]] < s[ord[b]] })
	}
	h := len(s) / d
	dir := make([][]int, d)
	for i := range dir {
		dir[i] = make([]int, h)
		for k := range dir[i] {
			dir[i][k] = i*h + k
		}
		byScore(dir[i])
	}
	ord := make([]int, 0, len(s))
	for j := 0; j < h; j++ {
		level := make([]int, d)
		for i := range dir {
			level[i] = dir[i][j]
		}
		byScore(level)
		ord = append(ord, level...)
	}
	return ord
}

// dirs returns the group's direction count (Directions), at least 1.
func (g *Group) dirs() int { return max(g.Directions, 1) }

// keepSets returns, for counts keep per group, the kept channel indices
// (the keep[g] channels ranked highest), sorted.
func (p *problem) keepSets(keep []int) [][]int {
	sets := make([][]int, len(p.st.Groups))
	for g := range sets {
		ord := p.order[g]
		k := slices.Clone(ord[len(ord)-keep[g]:])
		slices.Sort(k)
		sets[g] = k
	}
	return sets
}

// threshold is HAP's global threshold: remove channels in increasing order
// of HAP importance over all prunable groups (each keeps at least one)
// until the true costs meet every budget. A group of D directions loses
// one channel of every direction at a time (the next level of its
// removal order), ranked by their mean importance.
func (p *problem) threshold() (sets [][]int, ok bool, err error) {
	type ch struct {
		g  int
		cs []int
		s  float64
	}
	var all []ch
	for _, g := range p.st.Groups {
		if !g.Prunable {
			continue
		}
		d, ord := g.dirs(), p.order[g.Index]
		for j := 0; j+d <= len(ord); j += d {
			x := ch{g: g.Index, cs: ord[j : j+d]}
			for _, c := range x.cs {
				x.s += p.hap[g.Index][c] / float64(d)
			}
			all = append(all, x)
		}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].s < all[b].s })
	keep := p.fullKeep()
	removed := make([]map[int]bool, len(p.st.Groups))
	for i := range removed {
		removed[i] = map[int]bool{}
	}
	bits := p.uniformBits(p.defBit)
	v, err := p.exact(keep, bits)
	if err != nil {
		return nil, false, err
	}
	ok = p.feasible(v)
	for _, x := range all {
		if ok {
			break
		}
		if keep[x.g] <= len(x.cs) {
			continue
		}
		keep[x.g] -= len(x.cs)
		for _, c := range x.cs {
			removed[x.g][c] = true
		}
		if v, err = p.exact(keep, bits); err != nil {
			return nil, false, err
		}
		ok = p.feasible(v)
	}
	sets = make([][]int, len(p.st.Groups))
	for g, grp := range p.st.Groups {
		for c := 0; c < grp.Channels; c++ {
			if !removed[g][c] {
				sets[g] = append(sets[g], c)
			}
		}
	}
	return sets, ok, nil
}

// magnitude is L1 filter pruning with one keep ratio r for every prunable
// group (keeping max(1, ⌈r·C⌉) channels of largest L1 norm): the largest r
// whose true costs meet every budget.
func (p *problem) magnitude() (sets [][]int, ok bool, err error) {
	var rs []float64
	for _, g := range p.st.Groups {
		if !g.Prunable {
			continue
		}
		for k := 1; k <= g.Channels; k++ {
			rs = append(rs, float64(k)/float64(g.Channels))
		}
	}
	rs = append(rs, 1)
	sort.Sort(sort.Reverse(sort.Float64Slice(rs)))
	rs = slices.Compact(rs)
	bits := p.uniformBits(p.defBit)
	keep := p.fullKeep()
	for _, r := range rs {
		for _, g := range p.st.Groups {
			if g.Prunable {
				d := g.dirs()
				keep[g.Index] = d * max(1, int(math.Ceil(r*float64(g.Channels/d)-1e-9)))
			}
		}
		v, err := p.exact(keep, bits)
		if err != nil {
			return nil, false, err
		}
		if p.feasible(v) {
			return p.keepSets(keep), true, nil
		}
	}
	return p.keepSets(keep), false, nil
}
