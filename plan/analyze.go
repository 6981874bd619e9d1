package plan

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"

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
	out := &Sensitivity{Table: t, Traces: res, Groups: groups}
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

// BootstrapResampler returns a Resampler for StabilityOf that resamples the
// estimator's per-probe samples with replacement (all layers from the same
// probes, keeping their correlation) — the nonparametric bootstrap of the
// Hutchinson means. It needs i.i.d. rows (Hutchinson, and adaptive Hutch++
// whose rows are i.i.d. given its sketch); for other methods or exact
// traces it returns nil, which selects the parametric resampler.
func BootstrapResampler(s *Sensitivity) Resampler {
	res := s.Traces
	if res == nil || (res.Method != "hutchinson" && res.Method != "a-hutch++") || len(res.Samples) < 2 {
		return nil
	}
	n := len(res.Samples)
	return func(rng *rand.Rand, t *sensitivity.Table) {
		sums := make([]float64, len(t.Layers))
		for k := 0; k < n; k++ {
			row := res.Samples[rng.IntN(n)]
			for j := range sums {
				sums[j] += row[j]
			}
		}
		for j := range t.Layers {
			if t.Layers[j].Params > 0 {
				t.Layers[j].AvgTrace = sums[j] / float64(n) / t.Layers[j].Params
			}
		}
	}
}
