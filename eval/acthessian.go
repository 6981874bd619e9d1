package eval

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// ActivationSettings tunes ActivationTerm. The zero value (or nil) means
// defaults.
type ActivationSettings struct {
	// Calibration chooses the activation ranges, as Settings.Calibration
	// does for Apply (zero value: min/max over the calibration data).
	Calibration Calibration
	// Trace tunes the Hutchinson estimate of the activation traces (nil:
	// the defaults of hessian.Settings, every probe over all of the
	// calibration data). Seed, Tol, AbsTol, NearZero, MinProbes,
	// MaxProbes, Confidence, TimeBudget, Progress, Workers (default
	// GOMAXPROCS when ProbeBatch is set, else 1: the engine parallelises
	// a full-data product itself) and ProbeBatch apply: with ProbeBatch
	// = b, probe i runs on mini-batch i of hessian.BatchSchedule{Seed, N,
	// b}, the batches the weight traces' probe i uses with the same
	// settings. Probes are Rademacher.
	Trace *hessian.Settings
	// Quadratic replaces the isotropic term by the exact second-order term
	// along the quantizer's error itself,
	//
	//	(1/N) Σ_s Δa_sᵀ H_a,s Δa_s,   Δa_s = Q_A(a_s) − a_s,
	//
	// one R-pass per layer and activation width over all of the
	// calibration data (no probes, no standard error; Trace is not used).
	// It sees what the trace cannot: rounding errors that are coherent
	// with the curvature (a post-ReLU input whose small values all round
	// to 0 at 4 bits). The table then carries Ω in Scores: the weight term
	// (AvgTrace · DeltaSq, or diag's scores) plus this term; ActDeltaSq is
	// set for the record and ActAvgTrace left 0.
	Quadratic bool
	// Continue, when not nil, is an earlier result of ActivationTerm on
	// the same engine, calibration data and table layers with the same
	// Trace settings but fewer probes (a pilot, say): its probes are this
	// estimate's first ones and are not recomputed, nor are its
	// quantizers calibrated again; the estimate goes on from there with
	// this call's stopping rule (Trace.Check, Tol, MaxProbes). Not with
	// Quadratic.
	Continue *ActivationResult
	// NoImportance keeps every probe over all samples (or on
	// Trace.ProbeBatch's mini-batches). By default, for calibration sets
	// of 2 to ImportanceUpTo samples and more than 4 probes, the first 4
	// probes run over all samples and record every sample's values, and
	// the others on importance-sampled batches (hessian.ImportanceDesign:
	// a sample is drawn with a probability that grows with its pilot
	// curvature, and weighted by its inverse, so the estimate stays
	// unbiased) when the pilot predicts a gain; Trace.ProbeBatch is then
	// not used.
	NoImportance bool
}

// ImportanceUpTo is the largest calibration set whose activation probes
// are importance-sampled (ActivationSettings.NoImportance): the pilot
// runs 4 probes over all of it.
const ImportanceUpTo = 4096

// importancePilot is the number of full-data probes whose per-sample
// values choose the importance design.
const importancePilot = 4

// ActivationResult is what ActivationTerm estimated.
type ActivationResult struct {
	// Layers are the indices in the table of the layers that have an
	// activation term (weight layers whose unit has a data input; layers
	// of another Kind are left alone), in table order.
	Layers []int
	// Traces has one block per entry of Layers: the estimate of Tr(H_a),
	// the per-sample Hessian trace of the loss with respect to that
	// layer's input averaged over the calibration samples (Size n_a, the
	// input's elements per sample).
	Traces *hessian.TraceResult
	// DeltaSq[k][key] is E‖Q(a) − a‖² of Layers[k] at candidate key (the
	// mean over the calibration samples), and Weighted[k][key] the
	// estimate of E_s Σ_j diag(H_a,s)_j (Q(a_sj) − a_sj)², the
	// diagonal-Hessian activation term, from the same probes.
	DeltaSq  []map[string]float64
	Weighted []map[string]hessian.Estimate
	// Widths are the activation widths of the candidates, increasing,
	// and WeightedSamples[i][k·len(Widths)+a] is probe i's sample (one
	// row per row of Traces.Samples, from the same probe) of the
	// diagonal sum Weighted[k][key] for the candidates key of width
	// Widths[a]: what a bootstrap of the diag criterion resamples with
	// the traces' rows (plan.BootstrapResampler). Nil with Quadratic.
	Widths          []int
	WeightedSamples [][]float64
	// Quadratic[k][key] is the exact quadratic form of
	// ActivationSettings.Quadratic (nil without it; Traces and Weighted
	// are then nil).
	Quadratic []map[string]float64

	// Design is the Poisson design of the probes after the first 4 (nil
	// when every probe ran over all samples or Trace.ProbeBatch's
	// mini-batches), and Gain the pilot's predicted gain in variance ×
	// cost of the best design over full-data probes (0 without a pilot).
	Design *hessian.Poisson
	Gain   float64
	// SampleScores, after such a pilot, holds every calibration sample's
	// importance score (hessian.SamplePilot.Scores: its root mean square
	// activation-trace sample relative to each layer's trace), a measure
	// of its share of the curvature.
	SampleScores []float64

	// What Continue needs besides Widths and WeightedSamples: the
	// layers' names, their quantizers, squared errors and input sizes,
	// and the settings.
	names        []string
	noImportance bool
	qs           [][]ActQuantizer
	sq           [][]float64
	size         []int
	set          hessian.Settings
}

// ActivationTerm adds to the Hessian criteria of table t (plan.Analyze's
// output for the model engine e runs) the second-order loss increase of
// quantizing every layer's input activation at the candidate's activation
// width A, so that a candidate's Ω is the weight term plus
//
//	Tr(H_a)/n_a · E‖Q_A(a) − a‖²            (hessian)
//	E_s Σ_j diag(H_a,s)_j · (Q_A(a_sj) − a_sj)²   (diag)
//
// with H_a the Hessian of the loss with respect to the layer's input a as
// the layer reads it (nn.Engine.InputHVP: exact R-operator products, the
// perturbation seen by that layer only, not by a residual branch reading
// the same tensor), per calibration sample, n_a the input's elements per
// sample, Q_A the activation quantizer Apply simulates (ActQuantizer, per
// tensor, range calibrated on calib at width A) and the expectation the
// mean over the calibration samples of the squared errors of that
// quantizer measured on their activations (clipping included), not a
// uniform-noise model. Tr(H_a) is estimated by Hutchinson with
// Rademacher probes, one per layer on that layer's input (the layers'
// inputs are strongly coupled — a perturbation of one flows through the
// next — so a joint probe's cross terms would dominate the variance),
// sharing each probe's value and adjoint passes, with the stopping rule
// and intervals of hessian.Hutchinson (HutchinsonRows); the diagonal sums
// come from the same probes (E[v ⊙ Hv] = diag H). Both carry standard
// errors. A probe costs one R-forward and R-backward pass per layer, from
// that layer on.
//
// HAWQ-V3's Ω has the weight term only, so W4A4 and W4A8 tie; this term
// is our extension (the activation-Hessian idea of pricing activation
// quantization by second-order loss; no cited paper's exact formula).
// Like the weight term it omits the ½ of the Taylor expansion and the
// first-order term (the gradient at a trained model is small, and the
// rounding error's mean is near zero).
//
// On t it sets every such layer's ActAvgTrace, ActAvgTraceStderr and
// ActDeltaSq (Ω then adds their product, see sensitivity.Layer.Omega);
// when t is a diag table (Criterion diag, with Scores) it also adds the
// diagonal term to Scores and combines the standard errors (as
// independent: √(se_W² + se_a²)). A table of another criterion is an
// error. The engine must be the table's model at float weights; its input
// quantizers are removed.
func ActivationTerm(ctx context.Context, e *nn.Engine, calib data.Dataset, t *sensitivity.Table, s *ActivationSettings) (*ActivationResult, error) {
	var set ActivationSettings
	if s != nil {
		set = *s
	}
	diag := t.Criterion == string(sensitivity.Diag)
	quad := t.Criterion == string(sensitivity.Quadratic)
	if quad && !set.Quadratic {
		return nil, fmt.Errorf("eval: the quadratic criterion's activation term is the exact quadratic form (ActivationSettings.Quadratic), not a trace")
	}
	if t.Criterion != "" && t.Criterion != string(sensitivity.Hessian) && !diag && !quad {
		return nil, fmt.Errorf("eval: the activation term extends the hessian, diag and quadratic criteria, not %s", t.Criterion)
	}
	if calib == nil || calib.Len() == 0 {
		return nil, fmt.Errorf("eval: the activation term needs calibration data")
	}
	units := map[string]nn.UnitLayout{}
	for _, u := range e.Units() {
		units[u.Name] = u
	}
	res := &ActivationResult{}
	var names []string
	widths := map[int]bool{}
	for i, l := range t.Layers {
		if l.Kind != "" {
			continue // an attention point or non-linearity: its Ω is measured
		}
		u, ok := units[l.Name]
		if !ok {
			return nil, fmt.Errorf("eval: table layer %q is not a quantizable layer of the model", l.Name)
		}
		if !u.HasInput {
			continue
		}
		if (diag || quad) && l.Scores == nil {
			return nil, fmt.Errorf("eval: %s table layer %q has no scores", t.Criterion, l.Name)
		}
		ps, _ := l.Candidates()
		for _, p := range ps {
			if p.A > MaxBits {
				return nil, fmt.Errorf("eval: layer %q: activation bits %d out of range [1, %d]", l.Name, p.A, MaxBits)
			}
			widths[p.A] = true
		}
		res.Layers = append(res.Layers, i)
		names = append(names, l.Name)
	}
	if len(names) == 0 {
		return res, nil
	}
	var ws []int
	for a := range widths {
		ws = append(ws, a)
	}
	sort.Ints(ws)
	var (
		qs   [][]ActQuantizer
		sq   [][]float64
		size []int
		err  error
	)
	if c := set.Continue; c != nil {
		if set.Quadratic || c.Traces == nil {
			return nil, fmt.Errorf("eval: the activation term continues a Hutchinson estimate, not the exact quadratic form")
		}
		if !slices.Equal(c.names, names) || !slices.Equal(c.Widths, ws) || !slices.Equal(c.Layers, res.Layers) {
			return nil, fmt.Errorf("eval: the activation term to continue is over layers %v at activation widths %v, this table's are %v at %v", c.names, c.Widths, names, ws)
		}
		qs, sq, size = c.qs, c.sq, c.size
	} else if qs, sq, size, err = actQuantizers(ctx, e, calib, set.Calibration, names, ws); err != nil {
		return nil, err
	}
	if set.Quadratic {
		quad, err := quadraticTerm(ctx, e, calib, names, qs)
		if err != nil {
			return nil, err
		}
		res.DeltaSq, res.Quadratic = make([]map[string]float64, len(names)), make([]map[string]float64, len(names))
		for k, li := range res.Layers {
			l := &t.Layers[li]
			_, keys := l.Candidates()
			res.DeltaSq[k], res.Quadratic[k] = map[string]float64{}, map[string]float64{}
			if l.Scores == nil {
				l.Scores, l.ScoreStderr = map[string]float64{}, map[string]float64{}
				for _, key := range keys {
					l.Scores[key] = l.AvgTrace * l.DeltaSq[key]
					l.ScoreStderr[key] = l.AvgTraceStderr * l.DeltaSq[key]
				}
			}
			l.ActDeltaSq = map[string]float64{} // for the record: Ω is in Scores
			for _, key := range keys {
				p, _ := sensitivity.ParsePrecision(key)
				a := slices.Index(ws, p.A)
				res.DeltaSq[k][key], res.Quadratic[k][key] = sq[k][a], quad[k][a]
				l.ActDeltaSq[key] = sq[k][a]
				l.Scores[key] += quad[k][a]
			}
		}
		if t.Criterion == "" {
			t.Criterion = string(sensitivity.Hessian)
		}
		t.Source += fmt.Sprintf("; activation term (1/N) Σ Δaᵀ H_a Δa along the quantizer's error, exact over all %d calibration samples, activation ranges %s", calib.Len(), set.Calibration)
		return res, nil
	}

	if !diag {
		// The activation errors first: a stopping rule (Trace.Check)
		// that reads t during the estimate sees Ω's activation term
		// with the traces it estimates.
		for k, li := range res.Layers {
			l := &t.Layers[li]
			_, keys := l.Candidates()
			l.ActDeltaSq = map[string]float64{}
			for _, key := range keys {
				p, _ := sensitivity.ParsePrecision(key)
				l.ActDeltaSq[key] = sq[k][slices.Index(ws, p.A)]
			}
		}
	}
	ts := hessian.Settings{}
	if set.Trace != nil {
		ts = *set.Trace
	}
	n := calib.Len()
	var sched *hessian.BatchSchedule
	if ts.ProbeBatch > 0 && ts.ProbeBatch < n {
		sched = &hessian.BatchSchedule{Seed: ts.Seed, Samples: n, Size: ts.ProbeBatch}
		if ts.Workers == 0 {
			ts.Workers = runtime.GOMAXPROCS(0)
		}
	} else {
		ts.ProbeBatch = 0
		ts.Workers = 1
	}
	given := ts // what Continue compares
	blocks := make([]hessian.Block, len(names))
	off := 0
	for k := range names {
		blocks[k] = hessian.Block{Name: names[k], Offset: off, Size: size[k]}
		off += size[k]
	}
	bs := e.BatchSize()
	// One direction per layer, on that layer's input only: samples of
	// each diagonal block without the cross terms' variance.
	dirs := make([]int, len(names))
	for k := range dirs {
		dirs[k] = k
	}
	nv := len(names) * (1 + len(ws))
	// probe computes probe i's row on ds, whose sample j is calibration
	// sample idx[j] (idx nil: ds is calib) and counts with weight w[j]
	// times the engine's mean over ds (w nil: 1); record, when not nil,
	// sees every sample's trace samples as per-sample values x_{s,k}
	// (the full-data row is their mean).
	probe := func(ctx context.Context, i int, ds data.Dataset, idx []int, w []float64, record func(s int, x []float64)) ([]float64, error) {
		// Per chunk (in chunk order, so sums do not depend on the
		// workers): the trace samples, then per layer and width the
		// weighted sums.
		parts := make([][]float64, (ds.Len()+bs-1)/bs)
		var mu sync.Mutex
		err := e.InputHVP(ctx, ds, names, dirs, func(c *nn.InputChunk) {
			for k := range names {
				per := len(c.X[k]) / c.N
				for j := 0; j < c.N; j++ {
					probeSigns(c.V[k][k][j*per:(j+1)*per], ts.Seed, i, k, c.Start+j)
				}
			}
		}, func(c *nn.InputChunk) error {
			out := make([]float64, nv)
			buf := make([]float64, 0)
			xs := make([]float64, len(names))
			for j := 0; j < c.N; j++ {
				wj := 1.0
				if w != nil {
					wj = w[c.Start+j]
				}
				for k := range names {
					per := len(c.X[k]) / c.N
					lo, hi := j*per, (j+1)*per
					v, hv, x := c.V[k][k][lo:hi], c.HV[k][k][lo:hi], c.X[k][lo:hi]
					var tr float64
					for q := range v {
						tr += v[q] * hv[q]
					}
					out[k] += wj * tr
					xs[k] = tr * float64(ds.Len())
					buf = append(buf[:0], x...)
					for a := range ws {
						copy(buf, x)
						qs[k][a].Quantize(buf)
						var wt float64
						for q := range v {
							d := buf[q] - x[q]
							wt += d * d * v[q] * hv[q]
						}
						out[len(names)+k*len(ws)+a] += wj * wt
					}
				}
				if record != nil {
					s := c.Start + j
					if idx != nil {
						s = idx[s]
					}
					record(s, xs)
				}
			}
			mu.Lock()
			parts[c.Start/bs] = out
			mu.Unlock()
			return nil
		})
		if err != nil {
			return nil, err
		}
		sum := make([]float64, nv)
		for _, p := range parts {
			for j, x := range p {
				sum[j] += x
			}
		}
		return sum, nil
	}
	row := func(ctx context.Context, i int) ([]float64, error) {
		if sched == nil {
			return probe(ctx, i, calib, nil, nil, nil)
		}
		idx := sched.Batch(i)
		ds, err := data.Rows(calib, idx)
		if err != nil {
			return nil, err
		}
		return probe(ctx, i, ds, idx, nil, nil)
	}
	var (
		prev      *hessian.TraceResult
		prevExtra [][]float64
		design    *hessian.Poisson
	)
	if c := set.Continue; c != nil {
		if c.set.Seed != ts.Seed || c.set.ProbeBatch != ts.ProbeBatch || c.noImportance != set.NoImportance {
			return nil, fmt.Errorf("eval: the activation term to continue has seed %d, probe batch %d and importance sampling %v, this estimate %d, %d and %v", c.set.Seed, c.set.ProbeBatch, !c.noImportance, ts.Seed, ts.ProbeBatch, !set.NoImportance)
		}
		prev, prevExtra, design = c.Traces, c.WeightedSamples, c.Design
	} else if !set.NoImportance && n >= 2 && n <= ImportanceUpTo && max(ts.MaxProbes, ts.MinProbes) > importancePilot {
		// The pilot over all samples, recording every sample's values.
		second := make([][]float64, n)
		for s := range second {
			second[s] = make([]float64, len(names))
		}
		var mu sync.Mutex
		ps := ts
		ps.MinProbes, ps.MaxProbes, ps.Check, ps.Tol, ps.ProbeBatch, ps.Workers = importancePilot, importancePilot, nil, 0, 0, 1
		pilot, pe, err := hessian.HutchinsonRows(ctx, blocks, &ps, func(ctx context.Context, i int) ([]float64, error) {
			return probe(ctx, i, calib, nil, nil, func(s int, x []float64) {
				mu.Lock()
				for k, v := range x {
					second[s][k] += v * v
				}
				mu.Unlock()
			})
		})
		if err != nil {
			return nil, fmt.Errorf("eval: activation traces: %w", err)
		}
		np := float64(pilot.Probes) // below importancePilot if the time budget ran out
		for _, r := range second {
			for k := range r {
				r[k] /= np
			}
		}
		sp := hessian.SamplePilot{Second: second, Trace: make([]float64, len(names)), RowVar: make([]float64, len(names))}
		for k, b := range pilot.Blocks {
			sp.Trace[k], sp.RowVar[k] = b.Trace, b.StdErr*b.StdErr*np
		}
		if ts.TimeBudget > 0 {
			ts.TimeBudget = max(ts.TimeBudget-pilot.Elapsed, 1)
		}
		d, gain, ok := hessian.ImportanceDesign(ts.Seed, sp, 1)
		res.Gain, res.SampleScores = gain, sp.Scores()
		if ok {
			design = &d
		}
		prev, prevExtra = pilot, pe
	}
	if design != nil {
		ts.ProbeBatch, ts.Workers = 0, runtime.GOMAXPROCS(0)
		row = func(ctx context.Context, i int) ([]float64, error) {
			idx, w := design.Draw(i)
			if len(idx) == 0 {
				return make([]float64, nv), nil // no sample drawn: the estimate is 0
			}
			ds, err := data.Rows(calib, idx)
			if err != nil {
				return nil, err
			}
			// The engine's mean over the batch, reweighted to
			// (1/N) Σ x_s/π_s.
			for j := range w {
				w[j] *= float64(len(idx)) / float64(n)
			}
			return probe(ctx, i, ds, idx, w, nil)
		}
	}
	tr, extra, err := hessian.HutchinsonRowsFrom(ctx, blocks, &ts, prev, prevExtra, row)
	if err != nil {
		return nil, fmt.Errorf("eval: activation traces: %w", err)
	}
	res.Traces, res.Design = tr, design
	if c := set.Continue; c != nil {
		res.Gain, res.SampleScores = c.Gain, c.SampleScores
	}
	res.names, res.qs, res.sq, res.size, res.set, res.noImportance = names, qs, sq, size, given, set.NoImportance
	res.Widths, res.WeightedSamples = ws, extra
	res.DeltaSq = make([]map[string]float64, len(names))
	res.Weighted = make([]map[string]hessian.Estimate, len(names))
	col := make([]float64, len(extra))
	for k, li := range res.Layers {
		l := &t.Layers[li]
		_, keys := l.Candidates()
		res.DeltaSq[k], res.Weighted[k] = map[string]float64{}, map[string]hessian.Estimate{}
		est := map[int]hessian.Estimate{}
		for a, w := range ws {
			for p, r := range extra {
				col[p] = r[k*len(ws)+a] // extras follow the block samples
			}
			var e hessian.Estimate
			if len(col) >= 2 {
				if e, err = hessian.Summarize(col, tr.Confidence); err != nil {
					return nil, err
				}
			} else {
				e.Trace = col[0]
			}
			e.Name = fmt.Sprintf("%s@a%d", names[k], w)
			est[w] = e
		}
		l.ActAvgTrace = tr.Blocks[k].Trace / float64(size[k])
		l.ActAvgTraceStderr = tr.Blocks[k].StdErr / float64(size[k])
		l.ActDeltaSq = map[string]float64{}
		for _, key := range keys {
			p, _ := sensitivity.ParsePrecision(key)
			a := slices.Index(ws, p.A)
			l.ActDeltaSq[key] = sq[k][a]
			res.DeltaSq[k][key] = sq[k][a]
			res.Weighted[k][key] = est[p.A]
			if diag {
				l.Scores[key] += est[p.A].Trace
				if l.ScoreStderr != nil {
					l.ScoreStderr[key] = math.Hypot(l.ScoreStderr[key], est[p.A].StdErr)
				}
			}
		}
	}
	how := fmt.Sprintf("all %d calibration samples", n)
	switch {
	case design != nil:
		how = fmt.Sprintf("all %d calibration samples for the first %d, then importance-sampled batches of %.1f samples on average (Poisson, Horvitz–Thompson weights; predicted %.1f× less variance × cost)", n, importancePilot, design.Expected(), res.Gain)
	case sched != nil:
		how = fmt.Sprintf("mini-batches of %d of %d calibration samples", ts.ProbeBatch, n)
	}
	term := "Tr(H_a)/n_a · E‖Δa‖²"
	if diag {
		term = "Σ diag(H_a)·Δa²"
	}
	t.Source += fmt.Sprintf("; activation term %s: Hutchinson, %d probes over %s, activation ranges %s", term, tr.Probes, how, set.Calibration)
	return res, nil
}

// quadraticTerm returns, per layer and activation width, the mean over ds
// of Δa_sᵀ H_a,s Δa_s along the quantizer's error (one direction per
// layer and width, each on its layer only).
func quadraticTerm(ctx context.Context, e *nn.Engine, ds data.Dataset, names []string, qs [][]ActQuantizer) ([][]float64, error) {
	nw := len(qs[0])
	dirs := make([]int, 0, len(names)*nw)
	for k := range names {
		for range nw {
			dirs = append(dirs, k)
		}
	}
	bs := e.BatchSize()
	parts := make([][]float64, (ds.Len()+bs-1)/bs)
	var mu sync.Mutex
	err := e.InputHVP(ctx, ds, names, dirs, func(c *nn.InputChunk) {
		for k := range names {
			for a := range nw {
				v := c.V[k*nw+a][k]
				copy(v, c.X[k])
				qs[k][a].Quantize(v)
				for j, x := range c.X[k] {
					v[j] -= x
				}
			}
		}
	}, func(c *nn.InputChunk) error {
		out := make([]float64, len(dirs))
		for j, k := range dirs {
			for q, v := range c.V[j][k] {
				out[j] += v * c.HV[j][k][q]
			}
		}
		mu.Lock()
		parts[c.Start/bs] = out
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("eval: activation quadratic form: %w", err)
	}
	quad := make([][]float64, len(names))
	for k := range quad {
		quad[k] = make([]float64, nw)
	}
	for _, p := range parts {
		for j, x := range p {
			quad[j/nw][j%nw] += x
		}
	}
	return quad, nil
}

// probeSigns fills v with the Rademacher signs of probe i on layer k's
// input of sample j of the probe's data: a function of the seed and these
// indices only, so products do not depend on how samples are chunked.
func probeSigns(v []float64, seed uint64, i, k, j int) {
	r := rand.New(rand.NewPCG(seed^0xac7a_7e5e, uint64(i)<<40^uint64(k)<<24^uint64(j)))
	var bits uint64
	for q := range v {
		if q%64 == 0 {
			bits = r.Uint64()
		}
		if bits&1 == 1 {
			v[q] = 1
		} else {
			v[q] = -1
		}
		bits >>= 1
	}
}

// actQuantizers calibrates the named layers' input quantizers at every
// width of ws on ds (as Apply would: CalibrateWith with that width for
// every layer) and measures, in one more pass, the mean over samples of
// each quantizer's squared error sq[k][a] and the inputs' elements per
// sample.
func actQuantizers(ctx context.Context, e *nn.Engine, ds data.Dataset, c Calibration, names []string, ws []int) (qs [][]ActQuantizer, sq [][]float64, size []int, err error) {
	qs = make([][]ActQuantizer, len(names))
	for k := range qs {
		qs[k] = make([]ActQuantizer, len(ws))
	}
	var ranges map[string]Range
	for a, w := range ws {
		if a == 0 || c.Method == MSE {
			bits := map[string]int{}
			for _, u := range e.Units() {
				bits[u.Name] = w
			}
			e.ClearInputQuantizers()
			if ranges, err = CalibrateWith(ctx, e, ds, c, bits); err != nil {
				return nil, nil, nil, err
			}
		}
		for k, name := range names {
			r, ok := ranges[name]
			if !ok {
				return nil, nil, nil, fmt.Errorf("eval: no calibrated range for layer %q", name)
			}
			if qs[k][a], err = NewActQuantizer(w, r); err != nil {
				return nil, nil, nil, fmt.Errorf("eval: layer %q: %w", name, err)
			}
		}
	}
	sq = make([][]float64, len(names))
	elems := make([]int, len(names))
	var mu sync.Mutex
	e.ClearInputQuantizers()
	defer e.ClearInputQuantizers()
	for k, name := range names {
		sq[k] = make([]float64, len(ws))
		if err := e.SetInputQuantizer(name, func(x []float64) {
			q := make([]float64, len(x))
			s := make([]float64, len(ws))
			for a := range ws {
				copy(q, x)
				qs[k][a].Quantize(q)
				for j, v := range q {
					d := v - x[j]
					s[a] += d * d
				}
			}
			mu.Lock()
			elems[k] += len(x)
			for a := range ws {
				sq[k][a] += s[a]
			}
			mu.Unlock()
		}); err != nil {
			return nil, nil, nil, err
		}
	}
	if _, err := e.Evaluate(ctx, ds); err != nil {
		return nil, nil, nil, fmt.Errorf("eval: activation errors: %w", err)
	}
	n := float64(ds.Len())
	size = make([]int, len(names))
	for k := range names {
		size[k] = elems[k] / ds.Len()
		for a := range ws {
			sq[k][a] /= n
		}
	}
	return qs, sq, size, nil
}

// Probes returns the per-probe samples behind the Ω of s's table with
// r's activation term, for plan.BootstrapResampler: s's weight traces
// (and diagonal sums) and r's activation rows. r may be nil (no
// activation term); with Quadratic it has no rows, and only its layers
// are passed (the term is exact).
func (r *ActivationResult) Probes(s *plan.Sensitivity) plan.Probes {
	p := plan.Probes{Analysis: s}
	if r != nil {
		p.Activation, p.ActivationLayers = r.Traces, r.Layers
		p.ActivationWidths, p.ActivationWeighted = r.Widths, r.WeightedSamples
	}
	return p
}
