package plan

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/sensitivity"
)

// Robustness is the outcome of RobustWithin: how much the nominal plan can
// lose against the best plan when the layers' average traces move within
// a box.
type Robustness struct {
	// Regret is a proven upper bound on the largest regret of the nominal
	// plan over the box, max over traces a in the box of Ω(nominal; a) −
	// min over feasible plans p of Ω(p; a) (≥ 0 up to rounding; +Inf when
	// the solve proved no bound).
	Regret float64
	// Tolerance is the regret accepted as none: the request's relative
	// ILP gap times |Ω(nominal)| at the table's traces.
	Tolerance float64
	// Stable reports Regret ≤ Tolerance: for every trace vector in the
	// box, the nominal plan is optimal (within the ILP's gap).
	Stable bool
	// Rival, when not Stable, is the plan that attains the regret: the
	// choices (candidate keys, in table order) that beat the nominal plan
	// for some traces in the box.
	Rival []string
}

// Box bounds the traces of every layer of a table (indices as in
// Table.Layers): the average weight trace in [Lo[i], Hi[i]] and, when
// ActLo and ActHi are given, the average activation trace (ActAvgTrace)
// in [ActLo[i], ActHi[i]]; nil ActLo and ActHi hold the activation traces
// at the table's values.
type Box struct {
	Lo, Hi       []float64
	ActLo, ActHi []float64
}

// RobustWithin decides whether the nominal plan of req (the plan Solve
// returned for it) stays optimal for every table whose layers' traces lie
// anywhere in box (all else equal), by one more ILP with the same budgets
// (Verify is not run).
//
// For a fixed plan p and traces a, Ω(p; a) − Ω(nominal; a) is a sum over
// layers of d_i(a_i) = Ω_i(p_i; a_i) − Ω_i(nominal_i; a_i), each affine
// in its own layer's traces (weight and activation: Layer.Omega), so its
// minimum over the box is Σ_i of the minimum of d_i over the corners of
// layer i's box. The ILP over plans p with those per-layer values is
// therefore min over p and over the box together: its optimum is minus
// the nominal plan's largest regret, 0 exactly when the nominal plan is
// optimal for every trace vector of the box (the nominal plan itself
// scores 0). The proven bound of that solve gives Regret. A layer with
// Scores (measured attention points, another criterion) keeps its Ω
// whatever its bounds: give them only when its Scores do not depend on a
// trace.
func RobustWithin(ctx context.Context, req *Request, nominal *Plan, b Box) (*Robustness, error) {
	t := req.Table
	if t == nil || nominal == nil || nominal.Objective == nil {
		return nil, fmt.Errorf("plan: robustness needs a table and a feasible nominal plan")
	}
	nl := len(t.Layers)
	if len(b.Lo) != nl || len(b.Hi) != nl || len(nominal.Layers) != nl {
		return nil, fmt.Errorf("plan: robustness: %d layers, %d lower and %d upper bounds, nominal plan of %d layers", nl, len(b.Lo), len(b.Hi), len(nominal.Layers))
	}
	act := b.ActLo != nil || b.ActHi != nil
	if act && (len(b.ActLo) != nl || len(b.ActHi) != nl) {
		return nil, fmt.Errorf("plan: robustness: %d layers, %d lower and %d upper activation bounds", nl, len(b.ActLo), len(b.ActHi))
	}
	box := *t
	box.Layers = make([]sensitivity.Layer, nl)
	for i := range t.Layers {
		l := t.Layers[i]
		if nominal.Layers[i].Name != l.Name {
			return nil, fmt.Errorf("plan: robustness: nominal plan's layer %d is %q, the table's %q", i, nominal.Layers[i].Name, l.Name)
		}
		ws := []float64{b.Lo[i], b.Hi[i]}
		as := []float64{l.ActAvgTrace}
		if act {
			as = []float64{b.ActLo[i], b.ActHi[i]}
		}
		if !(ws[0] <= ws[1]) || !(as[0] <= as[len(as)-1]) {
			return nil, fmt.Errorf("plan: robustness: layer %q: an interval is empty (weights [%v, %v], activations %v)", l.Name, ws[0], ws[1], as)
		}
		nom := nominal.Layers[i].Choice
		scores := make(map[string]float64, len(l.DeltaSq))
		for k := range l.DeltaSq {
			d := math.Inf(1)
			for _, w := range ws {
				for _, a := range as {
					l.AvgTrace, l.ActAvgTrace = w, a
					d = min(d, l.Omega(k)-l.Omega(nom))
				}
			}
			scores[k] = d
		}
		scores[nom] = 0
		l = t.Layers[i]
		l.Scores, l.ScoreStderr = scores, nil
		box.Layers[i] = l
	}
	box.Criterion = "regret"
	gap := 1e-9
	sub := *req
	sub.Table, sub.Verify = &box, nil
	if req.Settings != nil {
		s := *req.Settings
		if s.RelGap > 0 {
			gap = s.RelGap
		}
		s.Progress = nil
		sub.Settings = &s
	} else {
		sub.Settings = &ilp.Settings{}
	}
	r := &Robustness{Tolerance: gap * math.Abs(*nominal.Objective)}
	// The box problem's optimum is near 0, where a relative gap means
	// nothing: stop on the absolute tolerance instead.
	sub.Settings.AbsGap = r.Tolerance / 2
	p, err := Solve(ctx, &sub)
	if err != nil {
		return nil, err
	}
	r.Regret = math.Inf(1)
	if p.Bound != nil {
		r.Regret = max(0, -*p.Bound)
	}
	r.Stable = r.Regret <= r.Tolerance
	if !r.Stable && p.Objective != nil && *p.Objective < -r.Tolerance {
		for _, l := range p.Layers {
			r.Rival = append(r.Rival, l.Choice)
		}
	}
	return r, nil
}

// StopPlanStable is the hessian.TraceResult.Stop of an estimate that
// StableStop ended.
const StopPlanStable = "plan stable"

// StableStop is a stopping rule for the trace estimate of a plan
// (hessian.Settings.Check, through Rule): the estimate ends once the plan
// the ILP chooses from the traces so far cannot change for any trace
// vector in the box of the layers' confidence intervals, each at level
// 1 − α/L for L layers and α = 1 − Confidence (Bonferroni), so that the
// box holds all true traces at once with probability at least Confidence
// when every interval has its nominal coverage. RobustWithin decides this
// exactly, so at the stop the plan is optimal, within the ILP's gap, for
// every trace vector in the box.
//
// What is not guaranteed: the intervals' coverage is approximate at a
// few probes (measured in docs/probes.md), and stopping at the first
// stable look of a sequence is a sequential test, whose joint coverage at
// the stop is below that of the same intervals at a fixed number of
// probes. The rate at which the stopped plan differs from the plan of the
// exact traces was measured (docs/probes.md) rather than proven.
type StableStop struct {
	// Table is the analysis's table (Δ², costs, ties): each check copies
	// it with the traces so far. A layer takes the estimate's block of its
	// name (Params its size); a layer without one must have Ω scores,
	// which stay as they are (attention points, eval.AddAttention).
	Table *sensitivity.Table
	// Request holds the budgets, devices, resources and ILP settings
	// (Table and Verify are ignored).
	Request Request
	// Confidence is the box's joint confidence (default 0.95).
	Confidence float64
	// Activation, when the table's Ω has the activation term, is the
	// estimate of the activation traces (eval.ActivationTerm's Traces),
	// whose block k is layer ActivationLayers[k] of Table: their
	// intervals join the box (and its Bonferroni count). Nil: the
	// activation traces are held at the table's values.
	Activation       *hessian.TraceResult
	ActivationLayers []int
	// Weights, when not nil, turns the rule around: the weight traces
	// are this fixed estimate, and the estimate the rule stops is the
	// activation traces' (blocks as Activation's, which is then ignored).
	Weights *hessian.TraceResult
	// Overhead, if positive, skips checks until the time since the last
	// one is at least its cost over Overhead, so that checking takes at
	// most about that fraction of the estimate's wall time (0: every
	// call checks, reproducibly).
	Overhead float64

	// Checks counts the robustness checks made.
	Checks int
	// Status describes the last check that did not stop ("" before one):
	// the layers whose choice could still change.
	Status string
	// Level is the per-layer interval level of the last check.
	Level float64
	// Certificate is the check that stopped the estimate (nil if none
	// did, or the budgets were infeasible whatever the traces).
	Certificate *Robustness

	last time.Time
	cost time.Duration
}

// Rule returns the hessian.Settings.Check of s; ctx bounds its ILP solves.
func (s *StableStop) Rule(ctx context.Context) func(*hessian.TraceResult) (string, error) {
	return func(res *hessian.TraceResult) (string, error) {
		if s.Overhead > 0 && s.Checks > 0 && time.Since(s.last) < time.Duration(float64(s.cost)/s.Overhead) {
			return "", nil
		}
		start := time.Now()
		defer func() { s.cost, s.last = time.Since(start), time.Now() }()
		return s.check(ctx, res)
	}
}

func (s *StableStop) check(ctx context.Context, res *hessian.TraceResult) (string, error) {
	s.Checks++
	// The weight traces and the activation traces: res is the one being
	// estimated, the other is fixed.
	w, act := res, s.Activation
	if s.Weights != nil {
		w, act = s.Weights, res
	}
	nl := len(s.Table.Layers)
	block := make(map[string]int, len(w.Blocks))
	for j, b := range w.Blocks {
		block[b.Name] = j
	}
	for _, l := range s.Table.Layers {
		if _, ok := block[l.Name]; !ok && l.Scores == nil {
			return "", fmt.Errorf("plan: stable stop: layer %q has neither a trace block in the estimate nor Ω scores", l.Name)
		}
	}
	c := s.Confidence
	if c == 0 {
		c = 0.95
	}
	if !(c > 0 && c < 1) {
		return "", fmt.Errorf("plan: stable stop: confidence %v, want a value in (0, 1)", c)
	}
	count := len(w.Blocks)
	if act != nil {
		if len(act.Blocks) != len(s.ActivationLayers) {
			return "", fmt.Errorf("plan: stable stop: %d activation blocks for %d layers", len(act.Blocks), len(s.ActivationLayers))
		}
		count += len(act.Blocks)
	}
	s.Level = 1 - (1-c)/float64(count)
	box, err := w.AtConfidence(s.Level)
	if err != nil {
		return "", err
	}
	t := *s.Table
	t.Layers = append([]sensitivity.Layer(nil), s.Table.Layers...)
	lo, hi := make([]float64, nl), make([]float64, nl)
	for i := range t.Layers {
		l := &t.Layers[i]
		j, ok := block[l.Name]
		if !ok {
			// Ω scores (a measured attention point): fixed.
			lo[i], hi[i] = l.AvgTrace, l.AvgTrace
			continue
		}
		n := l.Params
		l.AvgTrace, l.AvgTraceStderr = w.Blocks[j].Trace/n, w.Blocks[j].StdErr/n
		lo[i], hi[i] = box.Blocks[j].Lo/n, box.Blocks[j].Hi/n
	}
	b := Box{Lo: lo, Hi: hi}
	if act != nil {
		ab, err := act.AtConfidence(s.Level)
		if err != nil {
			return "", err
		}
		b.ActLo, b.ActHi = make([]float64, nl), make([]float64, nl)
		for i, l := range t.Layers {
			b.ActLo[i], b.ActHi[i] = l.ActAvgTrace, l.ActAvgTrace
		}
		for k, i := range s.ActivationLayers {
			if i < 0 || i >= nl {
				return "", fmt.Errorf("plan: stable stop: activation layer index %d outside the table's %d layers", i, nl)
			}
			if e := ab.Blocks[k]; e.Size > 0 {
				n := float64(e.Size)
				l := &t.Layers[i]
				l.ActAvgTrace, l.ActAvgTraceStderr = act.Blocks[k].Trace/n, act.Blocks[k].StdErr/n
				b.ActLo[i], b.ActHi[i] = e.Lo/n, e.Hi/n
			}
		}
	}
	req := s.Request
	req.Table, req.Verify = &t, nil
	nominal, err := Solve(ctx, &req)
	if err != nil {
		return "", err
	}
	if nominal.Objective == nil {
		// Infeasible budgets: no trace changes that, and the final
		// solve reports it.
		return StopPlanStable, nil
	}
	r, err := RobustWithin(ctx, &req, nominal, b)
	if err != nil {
		return "", err
	}
	if r.Stable {
		s.Certificate = r
		return StopPlanStable, nil
	}
	var moved []string
	for i, ch := range r.Rival {
		if ch != nominal.Layers[i].Choice {
			moved = append(moved, fmt.Sprintf("%s %s→%s", t.Layers[i].Name, nominal.Layers[i].Choice, ch))
		}
	}
	s.Status = "plan not yet stable"
	if len(moved) > 0 {
		s.Status += " (could change: " + strings.Join(moved, ", ") + ")"
	}
	return "", nil
}

// Describe says how the estimate res ended when s stopped it ("" when it
// did not), for the table's source.
func (s *StableStop) Describe(res *hessian.TraceResult) string {
	if res.Stop != StopPlanStable || s.Certificate == nil {
		return ""
	}
	c := s.Confidence
	if c == 0 {
		c = 0.95
	}
	return fmt.Sprintf("stopped after %d probes: the plan is optimal for every trace vector in the box of the layers' %.4g %% intervals (jointly ≥ %.4g %% by Bonferroni; %d robustness checks)",
		res.Probes, 100*s.Level, 100*c, s.Checks)
}
