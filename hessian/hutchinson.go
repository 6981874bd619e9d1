package hessian

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Settings configures Hutchinson. The zero value (or a nil *Settings) means
// all defaults.
type Settings struct {
	// Seed selects the probes: probe i depends only on Seed and i, so
	// results are reproducible whatever Workers and BatchSize are.
	Seed uint64
	// Probe is the probe distribution (default Rademacher).
	Probe Distribution
	// MinProbes is the number of probes before adaptive stopping is
	// considered (default 10, at least 2).
	MinProbes int
	// MaxProbes caps the number of probes (default 500). Setting
	// MinProbes = MaxProbes gives a fixed budget.
	MaxProbes int
	// Tol is the target relative standard error of every block (default
	// 0.02); see Hutchinson for the rule applied to near-zero traces.
	Tol float64
	// AbsTol, if positive, is an absolute standard-error target for every
	// block's trace that also counts as converged (see Hutchinson).
	AbsTol float64
	// NearZero sets when a block's trace counts as near zero: when its
	// average |Tr_b|/n_b is below NearZero times the size-weighted mean of
	// |Tr_c|/n_c over all blocks (default 0.1; a negative value disables
	// the rule). See Hutchinson.
	NearZero float64
	// Confidence is the level of the reported intervals (default 0.95).
	Confidence float64
	// Workers is the number of goroutines evaluating probes (default
	// GOMAXPROCS). HVP, and HVPBatch for a BatchOperator, are called
	// concurrently when Workers > 1.
	Workers int
	// BatchSize is the number of probes per HVPBatch call when the
	// operator is a BatchOperator (default 8; ignored otherwise), and
	// with Strata the number of probes whose whole strata share one
	// batched product (default 4, whatever the operator).
	BatchSize int
	// Progress, if not nil, is called after each accepted probe, in probe
	// order and from a single goroutine.
	Progress func(Progress)

	// Strata, if not nil, makes every probe's product a stratified one
	// (see Strata) over the operator's samples, which must implement
	// Sampled; ProbeBatch is then ignored. Rows stay i.i.d. (no epochs),
	// so the plain standard error applies. Auto uses it for every
	// product but the exact term of its sketch, which runs on all
	// samples; its pilot's and residual pilot's k stratified products
	// each run at once (their whole strata in one batched product)
	// unless TimeBudget is set.
	Strata *Strata

	// ProbeBatch, if positive, gives every probe its own mini-batch of
	// ProbeBatch samples: probe i's sample is v_iᵀ H_{B_i} v_i with B_i
	// the i-th batch of BatchSchedule{Seed, N, ProbeBatch} and H_B the
	// mean of the per-sample Hessians over B (Sampled.Subset). The
	// operator must implement Sampled; a ProbeBatch of N or more means
	// the full data (the default, 0). See Hutchinson for the statistics.
	ProbeBatch int
	// TimeBudget, if positive, stops the estimate once this much wall time
	// has passed since the call began and at least two probes (MinProbes
	// is not waited for) are accepted; the result then reports the errors
	// reached, with Converged false unless the tolerance was met and Stop
	// "time budget". Products already running finish first, so the budget
	// can be overrun by about one product per worker. A run that stops on
	// the budget is not reproducible (the number of probes depends on the
	// machine), but its probes are those of any other run with the seed.
	TimeBudget time.Duration
	// Pilot is the number of pilot vectors of Auto (default 10; at most
	// MaxProbes − 1 are used); Hutchinson ignores it.
	Pilot int
	// Check, if not nil, is a caller's stopping rule: after every accepted
	// probe from MinProbes on, below MaxProbes, that did not meet the
	// tolerance, it is
	// called (from the collecting goroutine, in probe order) with the
	// estimate so far, summarised as the final result would be (estimates,
	// standard errors, intervals at Confidence, Samples; no Pilot). A
	// non-empty reason stops the estimate with Stop set to it and
	// Converged false; an error aborts it. The result and its Samples must
	// not be kept or changed after Check returns. Products keep running
	// while Check does, so a slow rule costs little but should skip calls
	// itself (see plan-stability stopping in cmd/bitplan).
	Check func(res *TraceResult) (reason string, err error)
}

// Progress reports the state of an adaptive estimate.
type Progress struct {
	Probes int // probes accepted so far
	// WorstRelErr is the largest block's effective relative standard
	// error (see Hutchinson); +Inf before two probes.
	WorstRelErr float64
	// Worst is the index of that block (−1 when the operator has no blocks
	// and the whole trace is tracked).
	Worst int
	// Elapsed is the wall time since the call began.
	Elapsed time.Duration
	// Needed is the number of probes at which the worst block is expected
	// to reach Tol, n·(WorstRelErr/Tol)² (the standard error falls like
	// 1/√n), at least MinProbes; 0 before two probes. It can exceed
	// MaxProbes.
	Needed int
	// ETA is the expected wall time until Needed probes are accepted, at
	// the average rate so far (0 once Needed is reached, −1 before two
	// probes).
	ETA time.Duration
}

const (
	defaultMinProbes  = 10
	defaultMaxProbes  = 500
	defaultTol        = 0.02
	defaultConfidence = 0.95
	defaultNearZero   = 0.1
)

func (s *Settings) withDefaults() (Settings, error) {
	var c Settings
	if s != nil {
		c = *s
	}
	if c.MinProbes == 0 {
		c.MinProbes = defaultMinProbes
	}
	if c.MaxProbes == 0 {
		c.MaxProbes = max(defaultMaxProbes, c.MinProbes)
	}
	if c.Tol == 0 {
		c.Tol = defaultTol
	}
	if c.Confidence == 0 {
		c.Confidence = defaultConfidence
	}
	switch {
	case c.NearZero == 0:
		c.NearZero = defaultNearZero
	case c.NearZero < 0:
		c.NearZero = 0
	}
	switch {
	case math.IsNaN(c.NearZero) || math.IsInf(c.NearZero, 0):
		return c, fmt.Errorf("hessian: Settings.NearZero = %v, want a finite value", c.NearZero)
	case c.MinProbes < 2:
		return c, fmt.Errorf("hessian: Settings.MinProbes = %d, want at least 2", c.MinProbes)
	case c.MaxProbes < c.MinProbes:
		return c, fmt.Errorf("hessian: Settings.MaxProbes = %d is below MinProbes = %d", c.MaxProbes, c.MinProbes)
	case !(c.Tol > 0) || math.IsInf(c.Tol, 0):
		return c, fmt.Errorf("hessian: Settings.Tol = %v, want a positive finite value", c.Tol)
	case c.AbsTol < 0 || math.IsNaN(c.AbsTol) || math.IsInf(c.AbsTol, 0):
		return c, fmt.Errorf("hessian: Settings.AbsTol = %v, want a finite value >= 0", c.AbsTol)
	case !(c.Confidence > 0 && c.Confidence < 1):
		return c, fmt.Errorf("hessian: Settings.Confidence = %v, want a value in (0, 1)", c.Confidence)
	case c.BatchSize < 0:
		return c, fmt.Errorf("hessian: Settings.BatchSize = %d, want >= 0", c.BatchSize)
	case c.ProbeBatch < 0:
		return c, fmt.Errorf("hessian: Settings.ProbeBatch = %d, want >= 0 (0: every probe over all samples)", c.ProbeBatch)
	case c.TimeBudget < 0:
		return c, fmt.Errorf("hessian: Settings.TimeBudget = %v, want >= 0 (0: none)", c.TimeBudget)
	}
	return c, c.Probe.valid()
}

// Hutchinson estimates the trace of op and of each of its blocks with
// Hutchinson's estimator (Hutchinson 1990; Avron and Toledo 2011):
//
//	tr(H)    ≈ (1/n) Σ_i v_iᵀ H v_i
//	tr(H_bb) ≈ (1/n) Σ_i (v_i)_bᵀ (H v_i)_b
//
// where v_i are i.i.d. probes with E[v vᵀ] = I. One product H·v_i gives the
// samples of every block at once; all are unbiased, also for indefinite H,
// and the cross-block entries of H add variance but no bias.
//
// Adaptive stopping. After MinProbes probes, and after every probe from then
// on, the estimate stops when every block b satisfies
//
//	SE_b ≤ Tol·max(|t_b|, s_b, AbsTol/Tol),
//	s_b = NearZero·Size_b·(Σ_c |t_c|)/(Σ_c Size_c),
//
// where t_b is the block's running mean and SE_b its standard error. So a
// block's relative standard error must be below Tol, unless its trace is
// near zero (cancelling positive and negative curvature, or simply a
// block far flatter than the rest): when its per-parameter average
// |t_b|/Size_b is below NearZero (default 0.1) times the size-weighted
// mean per-parameter |trace| of all blocks, its error is measured against
// that threshold s_b instead. A relative target on a trace of zero could
// never be met, while an error small against the typical per-parameter
// trace cannot change a HAWQ sensitivity ranking. The effective relative
// error reported to Progress is SE_b / max(|t_b|, s_b, AbsTol/Tol). With
// no blocks the whole trace is tracked with a purely relative target. Unlike PyHessian's relative-change rule,
// this bounds the standard error; stopping at a data-dependent n makes the
// intervals approximate, so use MinProbes = MaxProbes when exact coverage
// matters.
//
// Mini-batch probes. With Settings.ProbeBatch = b below the operator's N
// samples (see Sampled), probe i multiplies by H_{B_i}, the mean of the
// per-sample Hessians over its own mini-batch B_i (BatchSchedule), so it
// costs b/N of a full-data product. Its sample
//
//	x_i = (v_i)_bᵀ (H_{B_i} v_i)_b,   E[x_i] = E_B[tr((H_B)_bb)] = tr(H_bb)
//
// is still unbiased for the full-data trace, because every batch is a
// uniformly random b-subset and v_i is independent of B_i. Its variance
// adds the data term Var_B(tr (H_B)_bb) to the probe term: the per-probe
// standard deviation, hence the standard error, the intervals and the
// stopping rule above, measure both, unchanged in form. Batches are
// disjoint within an epoch of ⌊N/b⌋ probes (sampling without
// replacement), which makes the data terms of one epoch negatively
// correlated: the variance of the mean is at most the i.i.d. value.
// The stopping rule uses the i.i.d. standard error (conservative: it can
// stop later than needed); the reported standard errors and intervals are
// clustered by epoch once the samples span ten epochs (see
// TraceResult.Epoch). Mini-batch probes are evaluated one per product (batches differ, so no
// forward pass is shared); BatchSize is ignored.
//
// Time budget. With Settings.TimeBudget the estimate also stops when the
// budget is spent (after at least two probes), reporting the errors
// reached; Progress carries the elapsed time and the time expected to
// reach Tol.
//
// Probes are evaluated by Settings.Workers goroutines, but accepted in index
// order, so the result (including where adaptive stopping halts) is
// identical for any worker count. Errors: invalid operator or settings, a
// ProbeBatch for an operator that is not Sampled, failing or non-finite
// products, and context cancellation.
func Hutchinson(ctx context.Context, op Operator, s *Settings) (*TraceResult, error) {
	start := time.Now()
	if err := Validate(op); err != nil {
		return nil, err
	}
	set, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	return hutchinson(ctx, op, set, hutchRun{start: start, batchSeed: set.Seed})
}

// HutchinsonRows runs Hutchinson's adaptive estimate — its stopping rule
// on the block traces, probe ordering, intervals, Progress and time
// budget, with settings s — over samples the caller computes, for
// products the Operator interface cannot express (a Hessian with respect
// to activations, whose dimension grows with the data). row(ctx, i)
// returns probe i's sample of every block, x_{i,b} = (v_i)_bᵀ(H v_i)_b
// for a probe v_i with E[v vᵀ] = I (len(blocks) values), followed by any
// number of extra values (weighted diagonal sums, as in
// HutchinsonDiagonal), which are returned per accepted probe in the second
// result and do not enter the stopping rule. Probe i must depend only on
// s.Seed and i (and its mini-batch, when the caller draws one per probe:
// BatchSchedule{s.Seed, N, s.ProbeBatch} gives the batches Hutchinson
// uses, so the two estimates can share them). blocks must satisfy
// ValidateBlocks over their total size (Offset is used only for that);
// Workers goroutines call row concurrently; Probe and BatchSize are
// ignored, and ProbeBatch is only reported. The total's samples are the
// sums of the block samples.
func HutchinsonRows(ctx context.Context, blocks []Block, s *Settings, row func(ctx context.Context, i int) ([]float64, error)) (*TraceResult, [][]float64, error) {
	return HutchinsonRowsFrom(ctx, blocks, s, nil, nil, row)
}

// HutchinsonRowsFrom is HutchinsonRows continuing an earlier estimate
// over the same blocks and probes: prev's accepted probes (its Samples,
// with extra[i] the extra values of probe i, nil when the rows had none)
// are this estimate's probes 0..prev.Probes−1, seen by the stopping rule,
// Check and Progress like any other, and row is called from probe
// prev.Probes on. So a pilot of a few probes is not recomputed when the
// estimate goes on (with another stopping rule, say). The result is the
// one HutchinsonRows would return for rows that give prev's samples
// first; Matvecs counts the rows computed in this call only. A nil prev
// is HutchinsonRows. prev's rows beyond s.MaxProbes are dropped.
func HutchinsonRowsFrom(ctx context.Context, blocks []Block, s *Settings, prev *TraceResult, extra [][]float64, row func(ctx context.Context, i int) ([]float64, error)) (*TraceResult, [][]float64, error) {
	start := time.Now()
	dim := 0
	for _, b := range blocks {
		dim = max(dim, b.End())
	}
	if err := ValidateBlocks(dim, blocks); err != nil {
		return nil, nil, err
	}
	if len(blocks) == 0 {
		return nil, nil, fmt.Errorf("hessian: HutchinsonRows needs at least one block")
	}
	set, err := s.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	var pre [][]float64
	if prev != nil {
		if len(prev.Samples) != prev.Probes || len(prev.TotalSamples) != prev.Probes || (extra != nil && len(extra) != prev.Probes) {
			return nil, nil, fmt.Errorf("hessian: HutchinsonRowsFrom: the earlier estimate has %d probes, %d sample rows, %d totals and %d extra rows", prev.Probes, len(prev.Samples), len(prev.TotalSamples), len(extra))
		}
		pre = make([][]float64, prev.Probes)
		for i, r := range prev.Samples {
			if len(r) != len(blocks) {
				return nil, nil, fmt.Errorf("hessian: HutchinsonRowsFrom: the earlier estimate's probe %d has %d block samples, want %d", i, len(r), len(blocks))
			}
			pre[i] = append(append(slices.Clone(r), prev.TotalSamples[i]), extraRow(extra, i)...)
		}
	}
	var out [][]float64
	res, err := hutchinson(ctx, nil, set, hutchRun{start: start, pre: pre, batchSeed: set.Seed, extra: &out, rows: row, dim: dim, blocks: blocks})
	if err != nil {
		return nil, nil, err
	}
	return res, out, nil
}

// extraRow is extra[i], or nil without extras.
func extraRow(extra [][]float64, i int) []float64 {
	if extra == nil {
		return nil
	}
	return extra[i]
}

// hutchRun holds what the adaptive estimator in Auto changes in a
// Hutchinson run.
type hutchRun struct {
	start time.Time
	// pre holds rows (block samples, then the total) already computed for
	// probes 0..len(pre)−1; the workers start at probe len(pre).
	pre [][]float64
	// first is added to a probe's index to pick its vector (probe i uses
	// vector first+i of the Hutchinson stream) and its mini-batch.
	first int
	// batchSeed seeds the mini-batch schedule.
	batchSeed uint64
	// shift is added to every row (length blocks+1), and method names the
	// result ("" means hutchinson).
	shift  []float64
	method string
	// observe, when not nil, adds its values to every probe's row after
	// the total (from the worker, with the probe v and the product Hv),
	// and the accepted probes' values are appended to *extra in probe
	// order (HutchinsonDiagonal).
	observe func(v, hv []float64) []float64
	extra   *[][]float64
	// rows, when not nil, computes probe i's row itself (block samples,
	// then extras appended to *extra) in place of products with the
	// operator, which is then nil; dim and blocks describe the blocks
	// (HutchinsonRows).
	rows   func(ctx context.Context, i int) ([]float64, error)
	dim    int
	blocks []Block
}

func hutchinson(ctx context.Context, op Operator, set Settings, run hutchRun) (*TraceResult, error) {
	start := run.start
	var (
		dim    int
		blocks []Block
	)
	if run.rows != nil {
		dim, blocks = run.dim, run.blocks
	} else {
		dim, blocks = op.Dim(), op.Blocks()
	}
	batch := 1
	if _, ok := op.(BatchOperator); ok {
		batch = defaultBatch
		if set.BatchSize > 0 {
			batch = set.BatchSize
		}
	}
	var (
		sop   Sampled
		sched BatchSchedule
	)
	var strata *Strata
	if set.Strata != nil && run.rows == nil {
		var ok bool
		if sop, ok = op.(Sampled); !ok {
			return nil, fmt.Errorf("hessian: Settings.Strata needs an operator over samples (hessian.Sampled), got %T", op)
		}
		if err := set.Strata.valid(sop.Samples()); err != nil {
			return nil, err
		}
		strata, batch = set.Strata, strataBatch
		if set.BatchSize > 0 {
			batch = set.BatchSize
		}
	} else if set.ProbeBatch > 0 && run.rows == nil {
		var ok bool
		if sop, ok = op.(Sampled); !ok {
			return nil, fmt.Errorf("hessian: Settings.ProbeBatch = %d needs an operator over samples (hessian.Sampled), got %T", set.ProbeBatch, op)
		}
		if n := sop.Samples(); set.ProbeBatch < n {
			sched = BatchSchedule{Seed: run.batchSeed, Samples: n, Size: set.ProbeBatch}
			batch = 1
		} else {
			sop = nil // a batch of all samples is the full data
		}
	}

	type result struct {
		i   int
		row []float64 // block samples followed by the total sample
		err error
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(run.pre) >= set.MaxProbes {
		run.pre = run.pre[:set.MaxProbes]
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		results = make(chan result, 2*set.Workers+2*batch)
		nw      = workerCount(set.Workers, (set.MaxProbes+batch-1)/batch)
		done    atomic.Int64 // products performed
	)
	next.Store(int64(len(run.pre)))
	// The workers start once the collector has taken the precomputed
	// rows without stopping on them: a stop there wastes no product.
	preDone := make(chan struct{})
	if len(run.pre) == 0 {
		close(preDone)
	}
	for range nw {
		wg.Go(func() {
			select {
			case <-preDone:
			case <-wctx.Done():
				return
			}
			in := make([][]float64, batch)
			out := make([][]float64, batch)
			for j := range in {
				if run.rows != nil {
					break // the caller's rows need no vectors here
				}
				in[j] = make([]float64, dim)
				out[j] = make([]float64, dim)
			}
			var bt batcher
			for {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= set.MaxProbes || wctx.Err() != nil {
					return
				}
				hi := min(lo+batch, set.MaxProbes)
				if run.rows != nil {
					// batch == 1: one probe, computed by the caller.
					r := result{i: lo}
					var row []float64
					if row, r.err = run.rows(wctx, run.first+lo); r.err == nil {
						if len(row) < len(blocks) {
							r.err = fmt.Errorf("probe row has %d values for %d blocks", len(row), len(blocks))
						} else {
							done.Add(1)
							var total float64
							for _, x := range row[:len(blocks)] {
								total += x
							}
							r.row = append(append(slices.Clone(row[:len(blocks)]), total), row[len(blocks):]...)
							for k, x := range run.shift {
								r.row[k] += x
							}
						}
					}
					select {
					case results <- r:
					case <-wctx.Done():
						return
					}
					if r.err != nil {
						return
					}
					continue
				}
				for j := lo; j < hi; j++ {
					fillProbe(in[j-lo], set.Probe, set.Seed, streamHutchinson, run.first+j)
				}
				pop, err := op, error(nil)
				switch {
				case strata != nil:
					// Every probe its own stratified product, the whole
					// strata's batched.
					if err = strata.applyBatch(wctx, sop, run.batchSeed, run.first+lo, out[:hi-lo], in[:hi-lo]); err != nil {
						err = fmt.Errorf("strata: %w", err)
					}
				case sop != nil:
					// hi == lo+1: one probe, on its own mini-batch.
					if pop, err = sop.Subset(bt.batch(sched, run.first+lo)); err != nil {
						err = fmt.Errorf("mini-batch: %w", err)
					}
				}
				if err == nil && strata == nil {
					err = applyBatch(wctx, pop, out[:hi-lo], in[:hi-lo])
				}
				if err == nil {
					done.Add(int64(hi - lo))
				}
				for j := lo; j < hi; j++ {
					r := result{i: j, err: err}
					if err == nil {
						r.row = probeSamples(in[j-lo], out[j-lo], blocks)
						if run.observe != nil {
							r.row = append(r.row, run.observe(in[j-lo], out[j-lo])...)
						}
						for k, x := range run.shift {
							r.row[k] += x
						}
					}
					select {
					case results <- r:
					case <-wctx.Done():
						return
					}
					if err != nil {
						return
					}
				}
			}
		})
	}
	go func() {
		// The precomputed rows go first, from this goroutine, so the
		// collector below sees them like any other probe.
		for i, row := range run.pre {
			select {
			case results <- result{i: i, row: row}:
			case <-wctx.Done():
			}
		}
		wg.Wait()
		close(results)
	}()

	res := &TraceResult{Method: "hutchinson", Confidence: set.Confidence}
	if run.method != "" {
		res.Method = run.method
	}
	nb := len(blocks)
	tracked := nb
	if nb == 0 {
		tracked = 1 // track the total
	}
	mean := make([]float64, tracked)
	m2 := make([]float64, tracked)
	pending := map[int][]float64{}
	var firstErr error
	n := 0
	for r := range results {
		if firstErr != nil || res.Stop != "" {
			continue // drain
		}
		if r.err != nil {
			if r.i >= n { // an error on a probe we still need
				firstErr = fmt.Errorf("hessian: Hutchinson probe %d: %w", r.i, r.err)
				cancel()
			}
			continue
		}
		pending[r.i] = r.row
		for {
			row, ok := pending[n]
			if !ok {
				break
			}
			delete(pending, n)
			res.Samples = append(res.Samples, row[:nb:nb])
			res.TotalSamples = append(res.TotalSamples, row[nb])
			if run.extra != nil {
				*run.extra = append(*run.extra, row[nb+1:])
			}
			n++
			// Welford's running mean and sum of squared deviations.
			for j := range tracked {
				x := row[j]
				if nb == 0 {
					x = row[nb]
				}
				d := x - mean[j]
				mean[j] += d / float64(n)
				m2[j] += d * (x - mean[j])
			}
			worst, wi := worstRelErr(mean, m2, n, blocks, set)
			elapsed := time.Since(start)
			if set.Progress != nil {
				set.Progress(progressAt(n, worst, wi, elapsed, set))
			}
			if n >= set.MinProbes && worst <= set.Tol {
				res.Converged, res.Stop = true, StopTolerance
			}
			if !res.Converged && set.Check != nil && n >= set.MinProbes && n >= 2 && n < set.MaxProbes {
				snap := &TraceResult{Method: res.Method, Samples: res.Samples, TotalSamples: res.TotalSamples,
					Probes: n, Matvecs: int(done.Load()), Confidence: set.Confidence, Elapsed: elapsed}
				if sop != nil && strata == nil {
					snap.ProbeBatch, snap.Epoch, snap.EpochStart = sched.Size, sched.PerEpoch(), run.first
				}
				why, err := snap.check(set, blocks, dim)
				if err != nil {
					firstErr = fmt.Errorf("hessian: stopping rule after %d probes: %w", n, err)
					cancel()
					break
				}
				res.Stop = why
			}
			if res.Stop == "" && !res.Converged && set.TimeBudget > 0 && elapsed >= set.TimeBudget && n >= 2 {
				res.Stop = StopTimeBudget
			}
			if res.Stop == "" && n >= set.MaxProbes {
				res.Stop = StopMaxProbes
			}
			if res.Stop != "" {
				cancel()
				break
			}
			if n == len(run.pre) {
				close(preDone)
			}
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if res.Stop == "" {
		// The workers stopped early without an error of ours: the
		// caller's context was cancelled.
		err := ctx.Err()
		if err == nil {
			err = context.Canceled
		}
		return nil, fmt.Errorf("hessian: Hutchinson stopped after %d probes: %w", n, err)
	}
	res.Probes = n
	res.Matvecs = int(done.Load())
	if sop != nil && strata == nil {
		res.ProbeBatch, res.Epoch, res.EpochStart = sched.Size, sched.PerEpoch(), run.first
	}
	if strata != nil {
		res.Strata = strata
	}
	if run.rows != nil && set.ProbeBatch > 0 {
		res.ProbeBatch = set.ProbeBatch
	}
	res.Elapsed = time.Since(start)
	if err := res.summarize(blocks, dim); err != nil {
		return nil, err
	}
	return res, nil
}

// check summarises the partial result res and asks set.Check whether to
// stop.
func (res *TraceResult) check(set Settings, blocks []Block, dim int) (string, error) {
	if err := res.summarize(blocks, dim); err != nil {
		return "", err
	}
	return set.Check(res)
}

// probeSamples returns v_bᵀ(Hv)_b for every block followed by vᵀHv.
func probeSamples(v, hv []float64, blocks []Block) []float64 {
	row := make([]float64, len(blocks)+1)
	for j, b := range blocks {
		row[j] = dot(v[b.Offset:b.End()], hv[b.Offset:b.End()])
	}
	row[len(blocks)] = dot(v, hv)
	return row
}

// dot returns xᵀy.
func dot(x, y []float64) float64 {
	var s float64
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// worstRelErr returns the largest effective relative standard error (see
// Hutchinson) over the tracked quantities and its index (−1 for the total).
func worstRelErr(mean, m2 []float64, n int, blocks []Block, set Settings) (float64, int) {
	if n < 2 {
		return math.Inf(1), 0
	}
	var sumAbs, sumSize float64
	for j, b := range blocks {
		sumAbs += math.Abs(mean[j])
		sumSize += float64(b.Size)
	}
	worst, wi := 0.0, 0
	if len(blocks) == 0 {
		wi = -1
	}
	for j := range mean {
		se := math.Sqrt(m2[j] / float64(n-1) / float64(n))
		scale := math.Abs(mean[j])
		if len(blocks) > 0 {
			scale = max(scale, set.NearZero*float64(blocks[j].Size)*sumAbs/sumSize)
		}
		scale = max(scale, set.AbsTol/set.Tol)
		var r float64
		switch {
		case se == 0:
			r = 0
		case scale == 0:
			r = math.Inf(1)
		default:
			r = se / scale
		}
		if r > worst || (j == 0 && r == worst) {
			worst = r
			if len(blocks) > 0 {
				wi = j
			}
		}
	}
	return worst, wi
}

// progressAt assembles the Progress after n accepted probes.
func progressAt(n int, worst float64, wi int, elapsed time.Duration, set Settings) Progress {
	p := Progress{Probes: n, WorstRelErr: worst, Worst: wi, Elapsed: elapsed, ETA: -1}
	if n < 2 || math.IsInf(worst, 0) || math.IsNaN(worst) {
		return p
	}
	need := float64(n) * (worst / set.Tol) * (worst / set.Tol)
	p.Needed = set.MinProbes
	if need > float64(p.Needed) {
		p.Needed = int(min(math.Ceil(need), math.MaxInt32))
	}
	p.ETA = 0
	if p.Needed > n {
		p.ETA = time.Duration(float64(elapsed) / float64(n) * float64(p.Needed-n))
	}
	return p
}
