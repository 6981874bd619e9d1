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
// table, whose other fields it must not change) with one random draw. The
// default draws each from N(avg_trace, avg_trace_stderr²);
// BootstrapResampler resamples the estimator's probes instead.
type Resampler func(rng *rand.Rand, t *sensitivity.Table)

// normalResampler is the parametric bootstrap: the Hutchinson mean is
// asymptotically normal with the reported standard error.
func normalResampler(rng *rand.Rand, t *sensitivity.Table) {
	for i := range t.Layers {
		l := &t.Layers[i]
		l.AvgTrace += rng.NormFloat64() * l.AvgTraceStderr
	}
}

// StabilityOf re-solves req runs times with resampled traces (seeded, so
// reproducible) and reports per-layer choice frequencies and how often the
// whole plan is unchanged. nominal is the plan of req itself. A nil
// resample draws each trace from a normal with the table's standard error
// (a parametric bootstrap; exact traces, stderr 0, never move).
func StabilityOf(ctx context.Context, req *Request, nominal *Plan, runs int, seed uint64, resample Resampler) (*Stability, error) {
	if runs <= 0 {
		return nil, fmt.Errorf("plan: stability needs at least one run, got %d", runs)
	}
	if nominal == nil || nominal.Objective == nil {
		return nil, fmt.Errorf("plan: stability needs a feasible nominal plan")
	}
	method := "bootstrap over probes"
	if resample == nil {
		resample = normalResampler
		method = "parametric: avg_trace ~ N(mean, stderr²) per layer"
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	st := &Stability{Runs: runs, Method: method}
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
		resample(rng, &t)
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
