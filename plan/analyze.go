package plan

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// Method selects the trace estimator of an analysis.
type Method string

// The trace estimators (package hessian).
const (
	Hutchinson Method = "hutchinson" // adaptive, per-layer error bars (default)
	HutchPP    Method = "hutch++"    // fixed budget, variance-reduced
	XTrace     Method = "xtrace"     // fixed budget, variance-reduced
	Exact      Method = "exact"      // one product per parameter: ground truth for small models
	// Auto runs a pilot and continues with Hutchinson or adaptive
	// Hutch++, whichever the pilot predicts cheaper (hessian.Auto); it
	// takes the Hutchinson settings (tolerance, probes, mini-batches,
	// time budget).
	Auto Method = "auto"
)

// Analysis configures the sensitivity analysis of a model: per-layer
// Hessian traces on calibration data and quantization errors per candidate.
type Analysis struct {
	// Engine runs the model.
	Engine *nn.Engine
	// Data is the calibration set the Hessian is averaged over.
	Data data.Dataset
	// Model names the model in the table.
	Model string
	// Method is the trace estimator; "" means Hutchinson.
	Method Method
	// Trace tunes Hutchinson (nil: defaults, i.e. 2 % relative standard
	// error per layer, at most 500 probes, every product over all of
	// Data). Trace.ProbeBatch gives every probe its own mini-batch of
	// Data (hessian.Settings.ProbeBatch; probes then run in parallel on
	// GOMAXPROCS goroutines) and Trace.TimeBudget bounds the estimate's
	// wall time; both apply to Hutchinson and Auto only, as does
	// Trace.Strata (stratified products, probes in parallel). Trace.Workers is
	// ignored (the engine parallelises each product).
	Trace *hessian.Settings
	// Sketch tunes Hutch++ and XTrace (nil: defaults).
	Sketch *hessian.SketchSettings
	// Candidates are the precisions to price; nil means W4A4 and W8A8
	// (HAWQ-V3's pair).
	Candidates []sensitivity.Precision
	// Quantizer is the weight quantizer of Δ² (Bits is set per candidate);
	// the zero value is HAWQ's symmetric per-channel min/max.
	Quantizer sensitivity.Quantizer
	// TopEigen also estimates the Hessian's largest eigenvalue (Lanczos).
	TopEigen bool
	// Density, when not nil, also estimates the spectral density (SLQ).
	Density *hessian.DensitySettings
	// Groups says which units share one precision (nil: the automatic
	// groups of Grouping); the table records them as ties.
	Groups *Grouping
	// Diag also estimates, from the same Hutchinson probes, every layer's
	// diagonal-Hessian sensitivity Σ_j diag(H)_j ΔW_j² at every candidate
	// with its standard error (hessian.HutchinsonDiagonal), and stores it
	// as the table's Ω (criterion sensitivity.Diag). It needs Method
	// Hutchinson or Auto (Auto then runs Hutchinson: a sketch's products
	// do not give the diagonal).
	Diag bool
	// NoTraces skips the trace estimate: the table's avg_trace is 0 and
	// Traces holds zero estimates, for a criterion that needs no Hessian
	// (eval.Score sets its Ω afterwards). TopEigen and Density still run.
	NoTraces bool
}

// Sensitivity is the result of an analysis.
type Sensitivity struct {
	// Table is the sensitivity table (the input of the ILP).
	Table *sensitivity.Table
	// Traces is the estimator's result: per-layer estimates with intervals,
	// and the per-probe samples a bootstrap can resample.
	Traces *hessian.TraceResult
	// Diagonal holds, with Analysis.Diag, the diagonal-Hessian sums of
	// the table's Ω (Traces is its Traces): weighting i·len(candidates)+c,
	// named "unit@key", is unit i at candidate key, with its per-probe
	// samples. Nil without Diag.
	Diagonal *hessian.DiagonalResult
	// TopEigenvalue is the largest Hessian eigenvalue when asked for.
	TopEigenvalue *hessian.EigenResult
	// Density is the spectral density when asked for.
	Density *hessian.DensityResult
	// Groups are the unit groups recorded in Table as ties.
	Groups []UnitGroup
}

// Analyze estimates every unit's average Hessian trace over its weights,
// Tr(H_i)/n_i, on the calibration data and its quantization error
// ‖Q_b(W_i) − W_i‖² at every candidate, and returns them as a sensitivity
// table with params, MACs, activation sizes and trace standard errors.
func Analyze(ctx context.Context, a *Analysis) (*Sensitivity, error) {
	if a.Engine == nil || a.Data == nil {
		return nil, fmt.Errorf("plan: analysis needs an engine and calibration data")
	}
	e := a.Engine
	op, err := e.Operator(a.Data)
	if err != nil {
		return nil, err
	}
	units := e.Units()
	if len(units) == 0 {
		return nil, fmt.Errorf("plan: the model has no quantizable layers (Conv, Gemm, MatMul)")
	}
	// The estimators see H_WW, the Hessian over the units' weights only:
	// probes are zero on the biases (which stay in higher precision), so
	// the bias cross terms add no variance to the weight blocks, and the
	// total trace is the weights'.
	var blocks []hessian.Block
	for _, u := range units {
		blocks = append(blocks, hessian.Block{Name: u.Name, Offset: u.WeightOffset, Size: u.WeightSize})
	}
	wop, err := hessian.Restrict(op, blocks)
	if err != nil {
		return nil, err
	}
	// The engine parallelises inside each product (over samples), so the
	// estimators call it from one goroutine, several probes per call.
	ts := hessian.Settings{}
	if a.Trace != nil {
		ts = *a.Trace
	}
	ts.Workers = 1
	if (ts.ProbeBatch > 0 && ts.ProbeBatch < a.Data.Len()) || ts.Strata != nil {
		// A mini-batch may be a single engine chunk, which the engine
		// runs on one goroutine: run probes in parallel.
		ts.Workers = runtime.GOMAXPROCS(0)
	}
	ss := hessian.SketchSettings{}
	if a.Sketch != nil {
		ss = *a.Sketch
	}
	ss.Workers = 1
	cands := a.Candidates
	if cands == nil {
		cands = []sensitivity.Precision{{W: 4, A: 4}, {W: 8, A: 8}}
	}
	// Δ² per unit and candidate, and for Diag the weightings ΔW² over
	// each unit's weights.
	deltas := make([][]float64, len(units))
	var ws []hessian.Weighting
	for i, u := range units {
		w, err := e.Weights(u.Name)
		if err != nil {
			return nil, err
		}
		q := a.Quantizer
		deltas[i] = make([]float64, len(cands))
		for c, p := range cands {
			q.Bits = p.W
			dst := make([]float64, len(w))
			if _, err := q.Quantize(dst, w, weightLayout(u)); err != nil {
				return nil, fmt.Errorf("plan: layer %s: %w", u.Name, err)
			}
			// The table's Δ² is the quantizer's own (Kahan-summed) value.
			if deltas[i][c], err = q.DeltaSq(w, weightLayout(u)); err != nil {
				return nil, fmt.Errorf("plan: layer %s: %w", u.Name, err)
			}
			if a.Diag {
				for j := range dst {
					d := dst[j] - w[j]
					dst[j] = d * d
				}
				// Offsets in the restricted operator's coordinates.
				ws = append(ws, hessian.Weighting{Name: u.Name + "@" + p.String(), Offset: wop.Blocks()[i].Offset, W: dst})
			}
		}
	}
	var (
		res  *hessian.TraceResult
		diag *hessian.DiagonalResult
	)
	switch {
	case a.NoTraces && a.Diag:
		return nil, fmt.Errorf("plan: the diagonal-Hessian criterion needs the traces' probes (NoTraces is set)")
	case a.NoTraces:
		res = &hessian.TraceResult{Method: "none", Converged: true, Confidence: 1}
		for _, b := range wop.Blocks() {
			res.Blocks = append(res.Blocks, hessian.Estimate{Name: b.Name, Offset: b.Offset, Size: b.Size})
		}
	case a.Diag && a.Method != "" && a.Method != Hutchinson && a.Method != Auto:
		return nil, fmt.Errorf("plan: the diagonal-Hessian criterion needs Hutchinson probes (method hutchinson or auto), not %s", a.Method)
	case a.Diag:
		if diag, err = hessian.HutchinsonDiagonal(ctx, wop, &ts, ws); err == nil {
			res = diag.Traces
		}
	}
	switch {
	case a.NoTraces || a.Diag:
	case a.Method == "" || a.Method == Hutchinson:
		res, err = hessian.Hutchinson(ctx, wop, &ts)
	case a.Method == HutchPP:
		res, err = hessian.HutchPP(ctx, wop, &ss)
	case a.Method == XTrace:
		res, err = hessian.XTrace(ctx, wop, &ss)
	case a.Method == Auto:
		res, err = hessian.Auto(ctx, wop, &ts)
	case a.Method == Exact:
		res, err = exactBlocks(ctx, wop)
	default:
		return nil, fmt.Errorf("plan: unknown trace method %q (want hutchinson, auto, hutch++, xtrace or exact)", a.Method)
	}
	if err != nil {
		return nil, fmt.Errorf("plan: trace estimation: %w", err)
	}
	m := e.Model()
	t := &sensitivity.Table{Model: a.Model,
		Source: fmt.Sprintf("traces: %s, %d probes (%d Hessian-vector products) over %s; Δ²: %s", res.Method, res.Probes, res.Matvecs, describeSamples(res, a.Data.Len()), describeQuantizer(a.Quantizer))}
	if a.NoTraces {
		t.Source = "traces: not estimated; Δ²: " + describeQuantizer(a.Quantizer)
	}
	var scores, stderr []map[string]float64
	for i, u := range units {
		est := res.Blocks[i]
		n := float64(u.WeightSize)
		tr := est.Trace
		l := sensitivity.Layer{Name: u.Name, Params: n, AvgTrace: tr / n, AvgTraceStderr: est.StdErr / n,
			Trace: &tr, DeltaSq: map[string]float64{}, OutChannels: float64(scales(u))}
		if mu := m.Unit(u.Name); mu != nil {
			l.MACs, l.InElems, l.OutElems = float64(mu.MACs), float64(mu.InElems), float64(mu.OutElems)
		}
		for c, p := range cands {
			l.DeltaSq[p.String()] = deltas[i][c]
		}
		if diag != nil {
			sc, se := map[string]float64{}, map[string]float64{}
			for c, p := range cands {
				est := diag.Weighted[i*len(cands)+c]
				sc[p.String()], se[p.String()] = est.Trace, est.StdErr
			}
			scores, stderr = append(scores, sc), append(stderr, se)
		}
		t.Layers = append(t.Layers, l)
	}
	if diag != nil {
		if err := t.SetScores(sensitivity.Diag, scores, stderr); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		t.Source += "; Ω: Σ diag(H)·ΔW² from the same probes"
	}
	groups := FindGroups(m, a.Groups)
	GroupTable(t, groups, nil)
	out := &Sensitivity{Table: t, Traces: res, Diagonal: diag, Groups: groups}
	if a.TopEigen {
		ev, err := hessian.Lanczos(ctx, op, &hessian.LanczosSettings{K: 1, Seed: 1})
		if err != nil {
			return nil, fmt.Errorf("plan: top eigenvalue: %w", err)
		}
		out.TopEigenvalue = ev
	}
	if a.Density != nil {
		ds := *a.Density
		ds.Workers = 1
		d, err := hessian.Density(ctx, op, &ds)
		if err != nil {
			return nil, fmt.Errorf("plan: spectral density: %w", err)
		}
		out.Density = d
	}
	return out, nil
}

// exactBlocks computes every block's trace exactly from unit vectors (one
// product per weight), leaving the whole-operator trace as the blocks' sum.
func exactBlocks(ctx context.Context, op hessian.Operator) (*hessian.TraceResult, error) {
	res := &hessian.TraceResult{Method: "exact", Converged: true, Confidence: 1}
	var total float64
	for _, b := range op.Blocks() {
		d, err := hessian.ExactDiagonal(ctx, op, b, 1)
		if err != nil {
			return nil, err
		}
		var s float64
		for _, v := range d {
			s += v
		}
		total += s
		res.Matvecs += b.Size
		res.Blocks = append(res.Blocks, hessian.Estimate{Name: b.Name, Offset: b.Offset, Size: b.Size, Trace: s, Lo: s, Hi: s})
	}
	res.Total = hessian.Estimate{Name: "weights", Trace: total, Lo: total, Hi: total}
	return res, nil
}

// scales returns the number of per-channel scales of a unit's weight (the
// size of its channel axis): a per-channel quantizer stores that many,
// which is what the table's out_channels prices (a recurrent W has one per
// gate row, a ConvTranspose one per output channel of a group).
func scales(u nn.UnitLayout) int {
	if u.ChannelAxis < len(u.WeightShape) {
		return u.WeightShape[u.ChannelAxis]
	}
	return u.OutChannels
}

// weightLayout returns the output-channel layout of a unit's weight: its
// shape and the axis of its output channels (nn.UnitLayout.ChannelAxis,
// defined once per operator by the registry), so that plan prices Δ², eval
// simulates and the QDQ export stores the same per-channel scales.
func weightLayout(u nn.UnitLayout) sensitivity.Layout {
	return sensitivity.Layout{Shape: slices.Clone(u.WeightShape), Axis: u.ChannelAxis}
}

// describeSamples says what each product averaged over, and why a
// Hutchinson run stopped short of its tolerance.
func describeSamples(res *hessian.TraceResult, n int) string {
	s := fmt.Sprintf("%d calibration samples", n)
	switch st := res.Strata; {
	case st != nil && len(st.Samples) == 2:
		s = fmt.Sprintf("%d calibration samples in two strata by curvature: the %d largest whole in every product, %d of the other %d drawn per product", n, st.Take[0], st.Take[1], len(st.Samples[1]))
	case st != nil:
		s = fmt.Sprintf("%d calibration samples in %d strata, %d per product", n, len(st.Samples), st.Size())
	case res.ProbeBatch > 0:
		s = fmt.Sprintf("mini-batches of %d of %d calibration samples", res.ProbeBatch, n)
	}
	if res.Stop == hessian.StopTimeBudget {
		s += fmt.Sprintf(", stopped by the time budget after %.3g s", res.Elapsed.Seconds())
	}
	return s
}

func describeQuantizer(q sensitivity.Quantizer) string {
	s := "symmetric"
	if q.Asymmetric {
		s = "asymmetric"
	}
	if q.PerTensor {
		s += " per-tensor"
	} else {
		s += " per-channel"
	}
	if q.MSE {
		s += " MSE-clipped"
	} else {
		s += " min/max"
	}
	return s + " quantizer"
}

// Probes are the per-probe samples behind a table's Ω, what
// BootstrapResampler resamples (eval.ActivationResult.Probes fills them).
type Probes struct {
	// Analysis is the weight traces' analysis: its Traces, and for a
	// diag table (Analysis.Diag) its Diagonal.
	Analysis *Sensitivity
	// Activation is the activation traces' estimate
	// (eval.ActivationResult.Traces), whose block k is table layer
	// ActivationLayers[k]; nil without the activation term, or with its
	// exact quadratic form (whose layers ActivationLayers still lists).
	Activation       *hessian.TraceResult
	ActivationLayers []int
	// ActivationWidths and ActivationWeighted are, for a diag table, the
	// activation term's per-probe diagonal sums, one row per row of
	// Activation.Samples (eval.ActivationResult.Widths and
	// WeightedSamples: column k·len(ActivationWidths)+a is block k at
	// activation width ActivationWidths[a]).
	ActivationWidths   []int
	ActivationWeighted [][]float64
}

// BootstrapResampler returns a Resampling for StabilityOf that resamples
// the estimators' per-probe samples with replacement — the nonparametric
// bootstrap of the Hutchinson means (hessian.TraceResult.Resample) — of
// the weight traces (p.Analysis.Traces) and of the activation traces
// (p.Activation). The two are independent probe runs, so each replicate
// draws its rows of each on its own; within a run, all layers take the
// same rows, keeping their correlation. A layer's average trace is its
// replicate's block mean over its size. On a diag table (criterion diag)
// a layer's Ω at every candidate is rebuilt from the same rows: the
// weights' diagonal sum (p.Analysis.Diagonal) plus the activation
// term's (p.ActivationWeighted); without those samples the diag scores
// stay fixed. The tables StabilityOf draws must have the layers of
// p.Analysis.Table (matched by name).
//
// Rows must be independent with a common mean (hessian's Resample says
// why that covers the activation estimate's full-data pilot rows followed
// by Horvitz–Thompson rows): Hutchinson's, and adaptive Hutch++'s, i.i.d.
// given its sketch. Weight traces of another method (Hutch++, XTrace) are
// drawn from N(mean, stderr²) instead, exact ones stay fixed; an
// activation term without rows (the exact quadratic form of
// --act-quadratic, whose Ω the table holds in Scores: only the weight
// term moves there) stays fixed. When neither has rows to resample it
// returns nil, which selects the parametric resampler for both.
//
// Weight and activation rows are independent when the activation probes
// are importance-sampled or over all samples (the default up to
// eval.ImportanceUpTo calibration samples); activation probes on
// mini-batches share weight probe i's batch, and resampling the two
// runs independently then leaves out that (positive) correlation.
func BootstrapResampler(p Probes) *Resampling {
	var res *hessian.TraceResult
	if p.Analysis != nil {
		res = p.Analysis.Traces
	}
	act, actLayers := p.Activation, p.ActivationLayers
	wRows := res != nil && (res.Method == "hutchinson" || res.Method == "a-hutch++") && len(res.Samples) >= 2
	aRows := act != nil && len(act.Samples) >= 2 && len(act.Blocks) == len(actLayers)
	diag := diagColumns(p, wRows, aRows)
	if !wRows && !aRows {
		return nil
	}
	var how []string
	switch {
	case wRows:
		how = append(how, fmt.Sprintf("weight traces: bootstrap over their %d probes", len(res.Samples)))
	case res != nil && res.Method == "exact":
		how = append(how, "weight traces: exact, fixed")
	default:
		how = append(how, "weight traces: N(mean, stderr²) per layer")
	}
	switch {
	case aRows:
		how = append(how, fmt.Sprintf("activation traces: bootstrap over their %d probes, independently", len(act.Samples)))
	case act == nil && len(actLayers) > 0:
		how = append(how, "activation term: exact quadratic form, fixed")
	case act != nil:
		how = append(how, "activation traces: fixed (too few probes to resample)")
	}
	if diag != nil {
		how = append(how, "diag Ω from the same rows")
	}
	var block map[string]int
	if wRows {
		block = make(map[string]int, len(res.Blocks))
		for j, b := range res.Blocks {
			block[b.Name] = j
		}
	}
	draw := func(rng *rand.Rand, t *sensitivity.Table) {
		hess := hessianOmega(t)
		w := make([]float64, len(t.Layers))
		a := make([]float64, len(t.Layers))
		for i, l := range t.Layers {
			w[i], a[i] = l.AvgTrace, l.ActAvgTrace
		}
		var wm, am, wd, ad []float64
		if wRows {
			idx := hessian.ResampleRows(rng, len(res.Samples))
			wm = hessian.ColumnMeans(res.Samples, idx)
			if diag != nil {
				wd = hessian.ColumnMeans(p.Analysis.Diagonal.Samples, idx)
			}
			for i, l := range t.Layers {
				if j, ok := block[l.Name]; ok && l.Kind == "" && l.Params > 0 {
					w[i] = wm[j] / l.Params
				}
			}
		} else {
			for i, l := range t.Layers {
				w[i] += rng.NormFloat64() * l.AvgTraceStderr
			}
		}
		if aRows {
			idx := hessian.ResampleRows(rng, len(act.Samples))
			am = hessian.ColumnMeans(act.Samples, idx)
			if diag != nil && diag.act {
				ad = hessian.ColumnMeans(p.ActivationWeighted, idx)
			}
			for k, i := range actLayers {
				if n := act.Blocks[k].Size; n > 0 && i >= 0 && i < len(t.Layers) {
					a[i] = am[k] / float64(n)
				}
			}
		}
		for i := range t.Layers {
			l := &t.Layers[i]
			setTraces(l, hess, w[i], a[i])
			if c, ok := diag.of(l.Name); ok && l.Kind == "" {
				sc := make(map[string]float64, len(c))
				for key, col := range c {
					v := l.Scores[key]
					if col.w >= 0 {
						v += wd[col.w] - diag.wNom[col.w]
					}
					if col.a >= 0 {
						v += ad[col.a] - diag.aNom[col.a]
					}
					sc[key] = v
				}
				l.Scores = sc
			}
		}
	}
	return &Resampling{Draw: draw, Method: strings.Join(how, "; ")}
}

// diagCols are the columns of a diag table's bootstrap: per layer name and
// candidate key, the weights' diagonal-sum column in Diagonal.Samples and
// the activation term's in ActivationWeighted (−1: none, or not
// resampled). A replicate moves a score by each term's change from its
// estimate, the column mean over all rows (wNom, aNom).
type diagCols struct {
	cols       map[string]map[string]struct{ w, a int }
	act        bool // the activation sums are resampled
	wNom, aNom []float64
}

func (d *diagCols) of(name string) (map[string]struct{ w, a int }, bool) {
	if d == nil {
		return nil, false
	}
	c, ok := d.cols[name]
	return c, ok
}

// diagColumns returns the columns of p's diag table, or nil when the table
// is not a diag one or its weight sums cannot be resampled (then its
// scores stay fixed).
func diagColumns(p Probes, wRows, aRows bool) *diagCols {
	if p.Analysis == nil || p.Analysis.Table == nil || p.Analysis.Table.Criterion != string(sensitivity.Diag) ||
		p.Analysis.Diagonal == nil || !wRows || len(p.Analysis.Diagonal.Samples) != len(p.Analysis.Traces.Samples) {
		return nil
	}
	wcol := map[string]int{}
	for j, e := range p.Analysis.Diagonal.Weighted {
		wcol[e.Name] = j
	}
	tab := p.Analysis.Table
	actOf := map[int]int{} // table layer → activation block
	act := aRows && len(p.ActivationWidths) > 0 && len(p.ActivationWeighted) == len(p.Activation.Samples)
	if act {
		for k, i := range p.ActivationLayers {
			actOf[i] = k
		}
	}
	d := &diagCols{cols: map[string]map[string]struct{ w, a int }{}, act: act,
		wNom: hessian.ColumnMeans(p.Analysis.Diagonal.Samples, allRows(len(p.Analysis.Diagonal.Samples)))}
	if act {
		d.aNom = hessian.ColumnMeans(p.ActivationWeighted, allRows(len(p.ActivationWeighted)))
	}
	for i, l := range tab.Layers {
		if l.Kind != "" || l.Scores == nil {
			continue
		}
		c := map[string]struct{ w, a int }{}
		for key := range l.Scores {
			col := struct{ w, a int }{-1, -1}
			if j, ok := wcol[l.Name+"@"+key]; ok {
				col.w = j
			}
			if k, ok := actOf[i]; ok && act {
				if pr, err := sensitivity.ParsePrecision(key); err == nil {
					if x := slices.Index(p.ActivationWidths, pr.A); x >= 0 {
						col.a = k*len(p.ActivationWidths) + x
					}
				}
			}
			c[key] = col
		}
		d.cols[l.Name] = c
	}
	return d
}

// allRows returns 0..n−1.
func allRows(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}
