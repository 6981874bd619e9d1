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
	// wall time; both apply to Hutchinson and Auto only. Trace.Workers is
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
	if ts.ProbeBatch > 0 && ts.ProbeBatch < a.Data.Len() {
		// A mini-batch may be a single engine chunk, which the engine
		// runs on one goroutine: run probes in parallel.
		ts.Workers = runtime.GOMAXPROCS(0)
	}
	ss := hessian.SketchSettings{}
	if a.Sketch != nil {
		ss = *a.Sketch
	}
	ss.Workers = 1
	var res *hessian.TraceResult
	switch a.Method {
	case "", Hutchinson:
		res, err = hessian.Hutchinson(ctx, wop, &ts)
	case HutchPP:
		res, err = hessian.HutchPP(ctx, wop, &ss)
	case XTrace:
		res, err = hessian.XTrace(ctx, wop, &ss)
	case Auto:
		res, err = hessian.Auto(ctx, wop, &ts)
	case Exact:
		res, err = exactBlocks(ctx, wop)
	default:
		return nil, fmt.Errorf("plan: unknown trace method %q (want hutchinson, auto, hutch++, xtrace or exact)", a.Method)
	}
	if err != nil {
		return nil, fmt.Errorf("plan: trace estimation: %w", err)
	}
	cands := a.Candidates
	if cands == nil {
		cands = []sensitivity.Precision{{W: 4, A: 4}, {W: 8, A: 8}}
	}
	m := e.Model()
	t := &sensitivity.Table{Model: a.Model,
		Source: fmt.Sprintf("traces: %s, %d probes (%d Hessian-vector products) over %s; Δ²: %s", res.Method, res.Probes, res.Matvecs, describeSamples(res, a.Data.Len()), describeQuantizer(a.Quantizer))}
	for i, u := range units {
		w, err := e.Weights(u.Name)
		if err != nil {
			return nil, err
		}
		est := res.Blocks[i]
		n := float64(u.WeightSize)
		tr := est.Trace
		l := sensitivity.Layer{Name: u.Name, Params: n, AvgTrace: tr / n, AvgTraceStderr: est.StdErr / n,
			Trace: &tr, DeltaSq: map[string]float64{}, OutChannels: float64(u.OutChannels)}
		if mu := m.Unit(u.Name); mu != nil {
			l.MACs, l.InElems, l.OutElems = float64(mu.MACs), float64(mu.InElems), float64(mu.OutElems)
		}
		q := a.Quantizer
		for _, c := range cands {
			q.Bits = c.W
			d, err := q.DeltaSq(w, weightLayout(u))
			if err != nil {
				return nil, fmt.Errorf("plan: layer %s: %w", u.Name, err)
			}
			l.DeltaSq[c.String()] = d
		}
		t.Layers = append(t.Layers, l)
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

// weightLayout returns the output-channel layout of a unit's weight: axis 0
// for Conv (M×C/g×kh×kw) and Gemm with transB (N×K), axis 1 for a K×N
// weight (Gemm without transB, MatMul with the weight on the right).
func weightLayout(u nn.UnitLayout) sensitivity.Layout {
	axis := 0
	if len(u.WeightShape) == 2 && u.WeightShape[0] != u.OutChannels {
		axis = 1
	}
	return sensitivity.Layout{Shape: slices.Clone(u.WeightShape), Axis: axis}
}

// describeSamples says what each product averaged over, and why a
// Hutchinson run stopped short of its tolerance.
func describeSamples(res *hessian.TraceResult, n int) string {
	s := fmt.Sprintf("%d calibration samples", n)
	if res.ProbeBatch > 0 {
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
