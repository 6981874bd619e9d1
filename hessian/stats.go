package hessian

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Estimate is a trace estimate for one block (or for the whole operator)
// with its uncertainty.
type Estimate struct {
	Name   string
	Offset int
	Size   int

	// Trace is the estimate of tr(H_bb), the mean of the per-probe samples.
	Trace float64
	// StdErr is the standard error of Trace: the sample standard deviation
	// of the per-probe samples over √n (0 for exact traces).
	StdErr float64
	// Lo and Hi bound the two-sided confidence interval
	// Trace ± t_{n−1, (1+c)/2}·StdErr at confidence c (Student t with n−1
	// degrees of freedom; the samples are i.i.d. with finite variance, so
	// the interval is asymptotically exact by the central limit theorem).
	Lo, Hi float64
}

// AvgTrace returns Trace/Size, HAWQ's per-parameter sensitivity
// Tr(H_i)/n_i, or 0 for an empty block.
func (e Estimate) AvgTrace() float64 {
	if e.Size == 0 {
		return 0
	}
	return e.Trace / float64(e.Size)
}

// RelErr returns StdErr/|Trace| (+Inf when Trace is 0 and StdErr is not).
func (e Estimate) RelErr() float64 {
	if e.StdErr == 0 {
		return 0
	}
	return e.StdErr / math.Abs(e.Trace)
}

// Summarize returns the mean, standard error and Student-t confidence
// interval at the given confidence level (in (0, 1)) of i.i.d. samples. It
// needs at least two samples; the Name, Offset and Size fields are left
// zero. It is exported so callers can summarise bootstrap resamples of
// TraceResult.Samples the same way the estimators do.
func Summarize(samples []float64, confidence float64) (Estimate, error) {
	n := len(samples)
	if n < 2 {
		return Estimate{}, fmt.Errorf("hessian: %d samples, need at least 2 for a standard error", n)
	}
	if !(confidence > 0 && confidence < 1) {
		return Estimate{}, fmt.Errorf("hessian: confidence %v, want a value in (0, 1)", confidence)
	}
	mean, sd := stat.MeanStdDev(samples, nil)
	se := sd / math.Sqrt(float64(n))
	h := tQuantile(confidence, n-1) * se
	return Estimate{Trace: mean, StdErr: se, Lo: mean - h, Hi: mean + h}, nil
}

// tQuantile returns the (1+c)/2 quantile of Student's t with nu degrees of
// freedom.
func tQuantile(c float64, nu int) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(nu)}.Quantile((1 + c) / 2)
}

// Why Hutchinson stopped (TraceResult.Stop).
const (
	StopTolerance  = "tolerance"   // every block met the tolerance
	StopMaxProbes  = "max probes"  // Settings.MaxProbes reached first
	StopTimeBudget = "time budget" // Settings.TimeBudget spent first
)

// TraceResult is the outcome of a trace estimator.
type TraceResult struct {
	// Method names the estimator ("hutchinson", "hutch++", "na-hutch++",
	// "xtrace", "exact", or "a-hutch++", Auto's adaptive Hutch++).
	Method string
	// Total estimates the trace of the whole operator (all Dim
	// coordinates, including those outside every block).
	Total Estimate
	// Blocks holds one estimate per block of the operator, in order.
	Blocks []Estimate
	// Probes is the number of per-probe samples the estimates average.
	Probes int
	// Matvecs is the number of Hessian-vector products performed,
	// including any computed in flight and discarded by adaptive stopping.
	Matvecs int
	// Converged reports whether adaptive stopping met its tolerance (always
	// true for fixed-budget and exact methods).
	Converged bool
	// Stop says why Hutchinson stopped: StopTolerance, StopMaxProbes or
	// StopTimeBudget ("" for the other methods).
	Stop string
	// ProbeBatch is the mini-batch size of every product when Hutchinson
	// ran with mini-batch probes (Settings.ProbeBatch), 0 when every
	// product averaged over all samples.
	ProbeBatch int
	// Elapsed is Hutchinson's wall time (0 for the other methods).
	Elapsed time.Duration
	// Pilot reports Auto's pilot and choice (nil for the other methods).
	Pilot *Pilot
	// Confidence is the level of the [Lo, Hi] intervals.
	Confidence float64
	// Samples[i][j] is probe i's sample for block j, and TotalSamples[i] its
	// sample for the whole trace; each estimate is the mean of its column.
	// For Hutchinson the rows are i.i.d., so resampling rows (bootstrap)
	// gives the joint sampling distribution of all blocks. For Hutch++ they
	// are i.i.d. only conditionally on the low-rank sketch; for XTrace they
	// are exchangeable but dependent. Nil for exact results.
	Samples      [][]float64
	TotalSamples []float64
}

// summarize fills res.Total and res.Blocks from res.Samples and
// res.TotalSamples.
func (res *TraceResult) summarize(blocks []Block, dim int) error {
	col := make([]float64, len(res.Samples))
	res.Blocks = make([]Estimate, len(blocks))
	for j, b := range blocks {
		for i, row := range res.Samples {
			col[i] = row[j]
		}
		e, err := Summarize(col, res.Confidence)
		if err != nil {
			return err
		}
		e.Name, e.Offset, e.Size = b.Name, b.Offset, b.Size
		res.Blocks[j] = e
	}
	e, err := Summarize(res.TotalSamples, res.Confidence)
	if err != nil {
		return err
	}
	e.Size = dim
	res.Total = e
	return nil
}

// Resample returns a bootstrap replicate of res (Efron 1979): Probes rows of
// Samples (with the matching TotalSamples) drawn uniformly with
// replacement using rng, summarised like the original. Plan-stability
// analyses re-solve the plan on many replicates. Rows are resampled whole,
// so the correlation between blocks (they share probes) is preserved. It
// fails for results without samples (exact ones) or with fewer than two.
func (res *TraceResult) Resample(rng *rand.Rand) (*TraceResult, error) {
	n := len(res.Samples)
	if n < 2 || len(res.TotalSamples) != n {
		return nil, fmt.Errorf("hessian: Resample needs at least 2 per-probe samples, result %q has %d", res.Method, n)
	}
	out := &TraceResult{Method: res.Method, Probes: n, Matvecs: res.Matvecs, Converged: res.Converged, Confidence: res.Confidence,
		Stop: res.Stop, ProbeBatch: res.ProbeBatch, Elapsed: res.Elapsed}
	out.Samples = make([][]float64, n)
	out.TotalSamples = make([]float64, n)
	for i := range n {
		j := rng.IntN(n)
		out.Samples[i] = res.Samples[j]
		out.TotalSamples[i] = res.TotalSamples[j]
	}
	blocks := make([]Block, len(res.Blocks))
	for j, e := range res.Blocks {
		blocks[j] = Block{Name: e.Name, Offset: e.Offset, Size: e.Size}
	}
	if err := out.summarize(blocks, res.Total.Size); err != nil {
		return nil, err
	}
	return out, nil
}
