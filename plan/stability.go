package plan

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/bitplan/bitplan/sensitivity"
)

// Stability reports how much a plan depends on the noise in its Hessian
// traces: the plan is re-solved on tables whose traces are resampled within
// their estimated error.
type Stability struct {
	// Runs is the number of resampled solves.
	Runs int `json:"runs"`
	// Unchanged counts the runs whose plan equals the nominal one.
	Unchanged int `json:"unchanged"`
	// Layers holds, per layer in table order, how often each candidate was
	// chosen.
	Layers []LayerStability `json:"layers"`
	// Method says how traces were resampled.
	Method string `json:"method"`
}

// LayerStability is one layer's choice frequencies.
type LayerStability struct {
	Name string `json:"name"`
	// Nominal is the choice of the nominal plan.
	Nominal string `json:"nominal"`
	// Freq maps candidate keys to the fraction of runs choosing them.
	Freq map[string]float64 `json:"freq"`
}

// Resampler replaces the average traces of t (a copy of the request's
// table, whose other fields it must not change, and whose layers' maps
// are shared with the request's: a resampler that changes one copies it
// first) with one random draw.
type Resampler func(rng *rand.Rand, t *sensitivity.Table)

// Resampling is how StabilityOf draws its tables: Draw, described by
// Method (Stability.Method). The default draws each average trace from
// N(mean, stderr²) (normalResampler); BootstrapResampler resamples the
// estimators' probes instead.
type Resampling struct {
	Draw   Resampler
	Method string
}

// parametric is the default Resampling.
var parametric = Resampling{Draw: normalResampler,
	Method: "parametric: avg_trace ~ N(mean, stderr²) and act_avg_trace ~ N(mean, stderr²) per layer, independently"}

// normalResampler is the parametric bootstrap: the Hutchinson mean is
// asymptotically normal with the reported standard error. The weight
// and activation traces come from independent probe runs: each is drawn
// on its own.
func normalResampler(rng *rand.Rand, t *sensitivity.Table) {
	hess := hessianOmega(t)
	for i := range t.Layers {
		l := &t.Layers[i]
		w := l.AvgTrace + rng.NormFloat64()*l.AvgTraceStderr
		a := l.ActAvgTrace + rng.NormFloat64()*l.ActAvgTraceStderr
		setTraces(l, hess, w, a)
	}
}

// hessianOmega reports whether t's Ω is HAWQ-V3's (with the activation
// term), whose Scores, when a layer has them, are the weight term plus
// an exact activation term (eval.ActivationSettings.Quadratic).
func hessianOmega(t *sensitivity.Table) bool {
	return t.Criterion == "" || t.Criterion == string(sensitivity.Hessian)
}

// setTraces sets weight layer l's average weight and activation traces
// to w and a. When l's Ω is in Scores and hess says they are HAWQ-V3's
// (the weight term AvgTrace · DeltaSq plus an exact activation term, or
// the trace term ActAvgTrace · ActDeltaSq), the scores move by the
// change of both terms (on a copy of the map). A layer of another Kind
// (a measured attention point) is left alone.
func setTraces(l *sensitivity.Layer, hess bool, w, a float64) {
	if l.Kind != "" {
		return
	}
	if l.Scores != nil && hess {
		sc := make(map[string]float64, len(l.Scores))
		for key, v := range l.Scores {
			sc[key] = v + (w-l.AvgTrace)*l.DeltaSq[key] + (a-l.ActAvgTrace)*l.ActDeltaSq[key]
		}
		l.Scores = sc
	}
	l.AvgTrace, l.ActAvgTrace = w, a
}

// StabilityOf re-solves req runs times with resampled traces (seeded, so
// reproducible) and reports per-layer choice frequencies and how often the
// whole plan is unchanged. nominal is the plan of req itself. A nil
// resample draws each weight and activation trace from a normal with the
// table's standard error (a parametric bootstrap; exact traces, stderr 0,
// never move; the Ω scores of another criterion than hessian do not
// move either, which Method says). Every solve runs req's verification,
// if any.
func StabilityOf(ctx context.Context, req *Request, nominal *Plan, runs int, seed uint64, resample *Resampling) (*Stability, error) {
	if runs <= 0 {
		return nil, fmt.Errorf("plan: stability needs at least one run, got %d", runs)
	}
	if nominal == nil || nominal.Objective == nil {
		return nil, fmt.Errorf("plan: stability needs a feasible nominal plan")
	}
	if resample == nil {
		resample = &parametric
		if !hessianOmega(req.Table) {
			// Only HAWQ-V3's Ω moves with the traces.
			resample = &Resampling{Draw: normalResampler, Method: parametric.Method + fmt.Sprintf("; the %s criterion's Ω scores fixed", req.Table.Criterion)}
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	st := &Stability{Runs: runs, Method: resample.Method}
	for _, l := range nominal.Layers {
		st.Layers = append(st.Layers, LayerStability{Name: l.Name, Nominal: l.Choice, Freq: map[string]float64{}})
	}
	orig := req.Table
	for r := 0; r < runs; r++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := *orig
		t.Layers = append([]sensitivity.Layer(nil), orig.Layers...)
		resample.Draw(rng, &t)
		sub := *req
		sub.Table = &t
		p, err := Solve(ctx, &sub)
		if err != nil {
			return nil, err
		}
		same := true
		for i, l := range p.Layers {
			st.Layers[i].Freq[l.Choice] += 1 / float64(runs)
			if l.Choice != nominal.Layers[i].Choice {
				same = false
			}
		}
		if same {
			st.Unchanged++
		}
	}
	return st, nil
}
