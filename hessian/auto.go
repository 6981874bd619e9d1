package hessian

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"
)

// Pilot reports the pilot sketch of Auto and the choice it made.
type Pilot struct {
	// Sketch is the number of pilot vectors k.
	Sketch int
	// Sketched reports whether the sketch Z' = H'Q was formed; it is
	// skipped (and Ritz, Captured and Residual left zero) when twice the
	// predicted Hutchinson probes is below 10·k, since Hutch++ could then
	// save little more than what the sketch costs.
	Sketched bool
	// Ritz holds the eigenvalues of QᵀHQ over the sketch's range Q, by
	// decreasing magnitude: how fast the spectrum decays.
	Ritz []float64
	// Captured estimates the fraction of ‖H‖_F² the sketch removes from
	// the residual, 1 − ‖P⊥HP⊥‖_F²/‖H‖_F² (0: a flat spectrum, 1: H lies in
	// the sketch's range).
	Captured float64
	// Hutchinson is the predicted number of Hutchinson probes for Tol on
	// every block; Residual the predicted number of residual probes of
	// adaptive Hutch++, Hutchinson·(1 − Captured).
	Hutchinson, Residual int
	// Choice is the estimator Auto ran: "hutchinson" or "a-hutch++".
	Choice string
	// Blocks holds, when Choice is "a-hutch++", every block's own choice
	// ("hutchinson" or "a-hutch++"), made from k residual probes by the
	// smaller sample variance of the two samples each probe gives (see
	// Auto).
	Blocks []string
}

// defaultPilot is Auto's pilot sketch size when Settings.Pilot is 0.
const defaultPilot = 10

// pilotGain: Auto sketches only when the predicted Hutchinson probes are
// at least pilotGain times the pilot size, so that the sketch's k extra
// products are at most 1/pilotGain of the Hutchinson run they might save.
const pilotGain = 10

// pilotUpper scales the pilot's n_H before that comparison: a variance
// from k = 10 probes is uncertain by a factor of about 2 (the 90 % upper
// bound of χ²₉/9 is 1.63, and per-probe samples of real networks are
// heavy-tailed, which makes small samples underestimate it).
const pilotUpper = 2

// pilotBatchSeed offsets the seed of the mini-batch schedules Auto uses
// after its pilot, so they are independent of the pilot's batches.
const pilotBatchSeed = 0x9e3779b97f4a7c15

// Auto estimates every block's trace to the tolerance of s, choosing the
// estimator from a pilot (Settings as for Hutchinson; Settings.Pilot sets
// the pilot size k, default 10, reduced to MaxProbes − 1 and to Dim; with
// room for fewer than 2 it runs Hutchinson):
//
//  1. Pilot: Y = HΩ for the first k Hutchinson probes Ω (each on its own
//     mini-batch when Settings.ProbeBatch is set), Q = orth(Y), and
//     Z' = H'Q with H' the full-data operator (or, with mini-batches, the
//     operator on one further batch).
//  2. Prediction. From the k pilot rows, the Hutchinson probes n_H for
//     Tol on every block (n·(worst/Tol)², see Hutchinson). If 2·n_H < 10·k,
//     Hutchinson continues at once (Hutch++ could save at most n_H − k
//     probes) and Z' is not formed; so it does when the time budget
//     (Settings.TimeBudget) is spent within the pilot or would be within
//     the sketch (timed as the pilot's k probes, times N/b with
//     mini-batches, whose sketch runs on all samples). From Y and Z',
//     the captured fraction c = (2‖H'Q‖_F² − ‖QᵀH'Q‖_F²)/(‖Y‖_F²/k), since
//     ‖P⊥HP⊥‖_F² = ‖H‖_F² − 2‖HQ‖_F² + ‖QᵀHQ‖_F² and E‖Hω‖² = ‖H‖_F²; the
//     residual probes of adaptive Hutch++ are predicted as n_R = (1−c)·n_H
//     (a probe's variance is about 2‖·‖_F² of the operator probed).
//  3. Choice by remaining cost in per-sample products (a full-data
//     product costs N, a mini-batch probe b): Hutchinson continues with
//     n_H − k probes, the pilot's k probes counted as its first; adaptive
//     Hutch++ needs n_R probes, plus k full-data products for Z = HQ when
//     Z' came from a mini-batch. The cheaper one runs.
//  4. Per block, when adaptive Hutch++ runs: each residual probe's one
//     product y = H_B P⊥ω gives two unbiased samples of every block,
//     adaptive Hutch++'s exact term plus ω_bᵀ(P⊥y)_b, and Hutchinson's
//     ω_bᵀ(y + ZQᵀω)_b (E over B and ω of ω_bᵀ(H_B P⊥ + HP)ω_b is
//     tr(H_bb) for the fixed Q, and with all samples it is exactly
//     Hutchinson's ω_bᵀ(Hω)_b). The first k residual probes (vectors
//     k…2k−1) compute both; every block keeps, for the whole run, the one
//     of smaller sample variance (Pilot.Blocks). A block that Hutch++'s
//     projection serves badly, such as a diagonally dominant one whose
//     Rademacher samples have almost no variance until P⊥ mixes its
//     coordinates, so stays with Hutchinson at no extra product. The
//     result's Method is "hutchinson" when every block chose Hutchinson.
//
// Adaptive Hutch++ (the Hutch++ split of Meyer et al. 2021 with the
// residual estimated adaptively, as in Persson, Cortinovis and Kressner,
// "Improved variants of the Hutch++ algorithm", SIMAX 2022) estimates
//
//	tr(H_bb) = tr(D_b(HP + PH − PHP)) + tr(D_b P⊥HP⊥),  P = QQᵀ,
//
// the first term exactly from Z = HQ on all samples (see HutchPP), the
// second by Hutchinson's rule on the operator P⊥HP⊥ (for the blocks that chose it
// in step 4) with fresh probes
// (vectors k, k+1, … of the Hutchinson stream, and fresh mini-batches from
// a schedule independent of the pilot's), so its mean, standard error,
// intervals and stopping are those of Hutchinson, conditional on Q, with
// every row shifted by the exact term. Mini-batch residual probes are
// sound because Q and the exact term are fixed before they are drawn.
//
// Cost bound. If Hutchinson is chosen, the pilot's products are its first
// k probes and only Z' is extra: the run is Hutchinson with the same seed,
// probe for probe, plus k products when Z' was formed, which happens only
// when Hutchinson was predicted to need at least 5·k probes (so the
// overhead is at most about 20 % of the predicted run). If
// adaptive Hutch++ is chosen, it was predicted cheaper; the prediction
// uses one ratio c for all blocks, so a block whose own curvature lies
// outside the sketch's range can need more residual probes than predicted.
//
// The result's Method is the choice and Pilot reports the pilot; Matvecs
// counts every product, the pilot's included. Errors are Hutchinson's.
func Auto(ctx context.Context, op Operator, s *Settings) (*TraceResult, error) {
	return auto(ctx, op, s, "")
}

// auto is Auto; force "a-hutch++" skips the choices (always a sketch,
// every block adaptive Hutch++), for the tests' comparisons.
func auto(ctx context.Context, op Operator, s *Settings, force string) (*TraceResult, error) {
	start := time.Now()
	if err := Validate(op); err != nil {
		return nil, err
	}
	set, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	dim, blocks := op.Dim(), op.Blocks()
	k := set.Pilot
	if k == 0 {
		k = defaultPilot
	}
	if k < 0 {
		return nil, fmt.Errorf("hessian: Settings.Pilot = %d, want ≥ 0 (0: %d)", k, defaultPilot)
	}
	k = min(k, dim, set.MaxProbes-1)
	if k < 2 {
		// No room for a pilot below MaxProbes: Hutchinson.
		res, err := hutchinson(ctx, op, set, hutchRun{start: start, batchSeed: set.Seed})
		if err != nil {
			return nil, err
		}
		res.Pilot = &Pilot{Choice: "hutchinson"}
		return res, nil
	}
	var (
		sop   Sampled
		sched BatchSchedule
		n     = 1 // samples of a full-data product, in units of a probe
		b     = 1
	)
	if set.Strata != nil {
		var ok bool
		if sop, ok = op.(Sampled); !ok {
			return nil, fmt.Errorf("hessian: Settings.Strata needs an operator over samples (hessian.Sampled), got %T", op)
		}
		if err := set.Strata.valid(sop.Samples()); err != nil {
			return nil, err
		}
		n, b = sop.Samples(), set.Strata.Size()
		// The schedules below only carry the seeds of the strata's draws.
		sched = BatchSchedule{Seed: set.Seed, Samples: n, Size: b}
	} else if set.ProbeBatch > 0 {
		var ok bool
		if sop, ok = op.(Sampled); !ok {
			return nil, fmt.Errorf("hessian: Settings.ProbeBatch = %d needs an operator over samples (hessian.Sampled), got %T", set.ProbeBatch, op)
		}
		if set.ProbeBatch < sop.Samples() {
			sched = BatchSchedule{Seed: set.Seed, Samples: sop.Samples(), Size: set.ProbeBatch}
			n, b = sop.Samples(), set.ProbeBatch
		} else {
			sop = nil
		}
	}
	// pick is the product of probe i of schedule bs: a mini-batch, or the
	// stratified product seeded like the schedule.
	pick := func(bs BatchSchedule, i int) (Operator, error) {
		if set.Strata != nil {
			return set.Strata.operator(sop, bs.Seed, i)
		}
		return sop.Subset(bs.Batch(i))
	}
	// 1. The pilot: Hutchinson's first k probes, with Hutchinson's
	// stopping rule (a run that converges within them is Hutchinson's).
	y := make([][]float64, 0, k)
	rows := make([][]float64, 0, k)
	pilot := &Pilot{Sketch: k}
	mean, m2 := make([]float64, max(1, len(blocks))), make([]float64, max(1, len(blocks)))
	worst := math.Inf(1)
	// With full-data products the pilot's k products run batched (one
	// forward pass shared per HVPBatch call); a run that converges within
	// them wastes at most the rest of the pilot.
	var pre [][]float64
	computed := 0
	if sop == nil {
		ws := make([][]float64, k)
		for j := range ws {
			ws[j] = make([]float64, dim)
			fillProbe(ws[j], set.Probe, set.Seed, streamHutchinson, j)
		}
		if pre, err = applyMany(ctx, op, 1, set.BatchSize, ws); err != nil {
			return nil, fmt.Errorf("hessian: Auto pilot: %w", err)
		}
		computed = k
	} else if set.Strata != nil && set.TimeBudget == 0 {
		// Stratified, likewise: their whole strata share one batched
		// product.
		ws := make([][]float64, k)
		pre = make([][]float64, k)
		for j := range ws {
			ws[j], pre[j] = make([]float64, dim), make([]float64, dim)
			fillProbe(ws[j], set.Probe, set.Seed, streamHutchinson, j)
		}
		if err := set.Strata.applyBatch(ctx, sop, sched.Seed, 0, pre, ws); err != nil {
			return nil, fmt.Errorf("hessian: Auto pilot: strata: %w", err)
		}
		computed = k
	}
	for j := range k {
		w, hw := make([]float64, dim), make([]float64, dim)
		fillProbe(w, set.Probe, set.Seed, streamHutchinson, j)
		if pre != nil {
			hw = pre[j]
		} else {
			pop, err := pick(sched, j)
			if err != nil {
				return nil, fmt.Errorf("hessian: Auto pilot probe %d: mini-batch: %w", j, err)
			}
			if err := apply(ctx, pop, hw, w); err != nil {
				return nil, fmt.Errorf("hessian: Auto pilot probe %d: %w", j, err)
			}
			computed++
		}
		row := probeSamples(w, hw, blocks)
		y, rows = append(y, hw), append(rows, row)
		for i := range mean {
			x := row[i]
			if len(blocks) == 0 {
				x = row[len(blocks)]
			}
			d := x - mean[i]
			mean[i] += d / float64(j+1)
			m2[i] += d * (x - mean[i])
		}
		worst, _ = worstRelErr(mean, m2, j+1, blocks, set)
		if j+1 >= set.MinProbes && worst <= set.Tol {
			break
		}
		if set.TimeBudget > 0 && j+1 >= 2 && time.Since(start) >= set.TimeBudget {
			break // Hutchinson reports the errors the pilot reached
		}
	}
	np := len(rows)
	if set.Check != nil && np >= set.MinProbes && np >= 2 && !(worst <= set.Tol) && force == "" {
		// The caller's rule may already be satisfied by the pilot's
		// Hutchinson probes: then no sketch is formed.
		nb := len(blocks)
		res := &TraceResult{Method: "hutchinson", Probes: np, Matvecs: computed, Confidence: set.Confidence,
			Elapsed: time.Since(start), ProbeBatch: sched.Size, Pilot: &Pilot{Sketch: k, Choice: "hutchinson"}}
		if sop != nil && set.Strata == nil {
			res.Epoch = sched.PerEpoch()
		}
		if set.Strata != nil {
			res.ProbeBatch, res.Strata = 0, set.Strata
		}
		for _, row := range rows {
			res.Samples = append(res.Samples, row[:nb:nb])
			res.TotalSamples = append(res.TotalSamples, row[nb])
		}
		why, err := res.check(set, blocks, dim)
		if err != nil {
			return nil, fmt.Errorf("hessian: stopping rule after the pilot's %d probes: %w", np, err)
		}
		if why != "" {
			res.Stop = why
			return res, nil
		}
	}
	nh := float64(np) * (worst / set.Tol) * (worst / set.Tol)
	if math.IsInf(worst, 0) || math.IsNaN(nh) {
		nh = float64(set.MaxProbes)
	}
	nh = max(nh, float64(set.MinProbes), float64(np))
	pilot.Hutchinson = int(min(math.Ceil(nh), math.MaxInt32))
	// The sketch's k products take about as long as the pilot's k probes
	// (longer with mini-batches, whose sketch runs on all samples).
	sketchTime := time.Since(start) * time.Duration(n/b)
	overBudget := set.TimeBudget > 0 && time.Since(start)+sketchTime >= set.TimeBudget
	if force == "" && (np < k || pilotUpper*nh < pilotGain*float64(k) || overBudget) {
		// Converged (or out of time) within the pilot, Hutch++ could
		// save at most n_H − k probes, which is not worth the sketch's
		// k products, or the sketch would not fit in the time budget.
		pilot.Choice = "hutchinson"
		res, err := hutchinson(ctx, op, set, hutchRun{start: start, pre: rows, batchSeed: set.Seed})
		if err != nil {
			return nil, err
		}
		res.Matvecs += computed
		res.Pilot = pilot
		return res, nil
	}
	matvecs := k
	pilot.Sketched = true
	q, _ := orth(y)
	qcols := denseToCols(q)
	zop := op
	if sop != nil {
		alt := BatchSchedule{Seed: set.Seed ^ pilotBatchSeed ^ 1, Samples: n, Size: b}
		if zop, err = pick(alt, 0); err != nil {
			return nil, fmt.Errorf("hessian: Auto pilot sketch: mini-batch: %w", err)
		}
	}
	zcols, err := applyMany(ctx, zop, 1, set.BatchSize, qcols)
	if err != nil {
		return nil, fmt.Errorf("hessian: Auto pilot sketch: %w", err)
	}
	matvecs += k

	// 2. The captured fraction.
	z := colsToDense(zcols)
	var c mat.Dense
	c.Mul(q.T(), z)
	symmetrize(&c)
	pilot.Ritz = ritzValues(&c)
	var f2, hq2, c2 float64
	for _, col := range y {
		f2 += dot(col, col)
	}
	f2 /= float64(k)
	for _, col := range zcols {
		hq2 += dot(col, col)
	}
	c2 = mat.Norm(&c, 2)
	c2 *= c2
	if f2 > 0 {
		pilot.Captured = min(1, max(0, (2*hq2-c2)/f2))
	}
	nr := max(nh*(1-pilot.Captured), float64(set.MinProbes))
	pilot.Residual = int(min(math.Ceil(nr), math.MaxInt32))

	// 3. The choice, by remaining per-sample products.
	costH := (nh - float64(k)) * float64(b)
	costPP := nr * float64(b)
	if sop != nil {
		costPP += float64(k * n)
	}
	var res *TraceResult
	if costH <= costPP && force == "" {
		pilot.Choice = "hutchinson"
		res, err = hutchinson(ctx, op, set, hutchRun{start: start, pre: rows, batchSeed: set.Seed})
		if err != nil {
			return nil, err
		}
	} else {
		if sop != nil {
			if zcols, err = applyMany(ctx, op, 1, set.BatchSize, qcols); err != nil {
				return nil, fmt.Errorf("hessian: Auto sketch: %w", err)
			}
			z = colsToDense(zcols)
			matvecs += k
		}
		exact, total := lowRankDiag(q, z)
		mx := &mixed{op: op, q: q, z: z}
		// 4. The per-block choice, from k residual probes (vectors k…2k−1
		// of the Hutchinson stream, on fresh batches) that give both
		// samples of every block from one product each.
		rsched := BatchSchedule{Seed: set.Seed ^ pilotBatchSeed, Samples: n, Size: b}
		rowsH, rowsPP := make([][]float64, 0, k), make([][]float64, 0, k)
		last := min(2*k, set.MaxProbes)
		var ys [][]float64 // full data or strata (as the pilot): the products H·P⊥ω, batched
		if (sop == nil || (set.Strata != nil && set.TimeBudget == 0)) && last > k {
			us := make([][]float64, last-k)
			for j := range us {
				w := make([]float64, dim)
				fillProbe(w, set.Probe, set.Seed, streamHutchinson, k+j)
				us[j] = projectOut(q, w)
			}
			if sop == nil {
				ys, err = applyMany(ctx, op, 1, set.BatchSize, us)
			} else {
				ys = make([][]float64, len(us))
				for j := range ys {
					ys[j] = make([]float64, dim)
				}
				err = set.Strata.applyBatch(ctx, sop, rsched.Seed, k, ys, us)
			}
			if err != nil {
				return nil, fmt.Errorf("hessian: Auto residual pilot: %w", err)
			}
		}
		for j := k; j < last; j++ {
			w := make([]float64, dim)
			fillProbe(w, set.Probe, set.Seed, streamHutchinson, j)
			var hOut, ppOut []float64
			if ys != nil {
				hOut, ppOut = mx.from(w, ys[j-k])
			} else {
				pop, err := pick(rsched, j)
				if err != nil {
					return nil, fmt.Errorf("hessian: Auto residual pilot probe %d: mini-batch: %w", j, err)
				}
				if hOut, ppOut, err = mx.both(ctx, pop, w); err != nil {
					return nil, fmt.Errorf("hessian: Auto residual pilot probe %d: %w", j, err)
				}
			}
			matvecs++
			rH, rPP := probeSamples(w, hOut, blocks), probeSamples(w, ppOut, blocks)
			for i, bl := range blocks {
				rPP[i] += sum(exact[bl.Offset:bl.End()])
			}
			rPP[len(blocks)] += total
			rowsH, rowsPP = append(rowsH, rH), append(rowsPP, rPP)
		}
		// Per block (the total when there are none) the sample of smaller
		// variance; the rows' total follows the blocks' choices.
		nb := len(blocks)
		choose := func(i int) bool { return force != "" || variance(rowsPP, i) < variance(rowsH, i) }
		mx.pp = make([]bool, dim)
		shift := make([]float64, nb+1)
		pilot.Blocks = make([]string, nb)
		anyPP := false
		for i, bl := range blocks {
			pilot.Blocks[i] = "hutchinson"
			if choose(i) {
				pilot.Blocks[i], anyPP = "a-hutch++", true
				for c := bl.Offset; c < bl.End(); c++ {
					mx.pp[c] = true
				}
				shift[i] = sum(exact[bl.Offset:bl.End()])
			}
		}
		if nb == 0 && choose(0) {
			anyPP = true
			for c := range mx.pp {
				mx.pp[c] = true
			}
		}
		var lowTotal float64
		for c, on := range mx.pp {
			if on {
				lowTotal += exact[c]
			}
		}
		shift[nb] = lowTotal
		pre := make([][]float64, len(rowsH))
		for r := range rowsH {
			row := make([]float64, nb+1)
			for i := range nb {
				row[i] = rowsH[r][i]
				if mx.pp[blocks[i].Offset] {
					row[i] = rowsPP[r][i]
				}
			}
			// The total: vᵀ(mixed product) + shift, from the two rows'
			// block parts and the coordinates outside every block (H).
			row[nb] = rowsH[r][nb]
			for i := range nb {
				row[nb] += row[i] - rowsH[r][i]
			}
			if nb == 0 && anyPP {
				row[nb] = rowsPP[r][nb]
			}
			pre[r] = row
		}
		pilot.Choice = "a-hutch++"
		method := "a-hutch++"
		if !anyPP {
			method = "hutchinson"
		}
		rset := set
		rset.MaxProbes = max(set.MinProbes, set.MaxProbes-k)
		res, err = hutchinson(ctx, mx, rset, hutchRun{start: start, first: k, pre: pre,
			batchSeed: set.Seed ^ pilotBatchSeed, shift: shift, method: method})
		if err != nil {
			return nil, err
		}
	}
	res.Matvecs += matvecs
	res.Pilot = pilot
	return res, nil
}

// ritzValues returns the eigenvalues of the symmetric matrix c by
// decreasing magnitude.
func ritzValues(c *mat.Dense) []float64 {
	n, _ := c.Dims()
	sym := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			sym.SetSym(i, j, c.At(i, j))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, false) {
		return nil
	}
	v := eig.Values(nil)
	slices.SortFunc(v, func(a, b float64) int {
		switch {
		case math.Abs(a) > math.Abs(b):
			return -1
		case math.Abs(a) < math.Abs(b):
			return 1
		}
		return 0
	})
	return v
}

// variance returns the sample variance of column i of rows.
func variance(rows [][]float64, i int) float64 {
	var mean, m2 float64
	for n, r := range rows {
		d := r[i] - mean
		mean += d / float64(n+1)
		m2 += d * (r[i] - mean)
	}
	if len(rows) < 2 {
		return math.Inf(1)
	}
	return m2 / float64(len(rows)-1)
}

// mixed is the operator of Auto's per-block adaptive Hutch++: from one
// product y = H'P⊥v (H' the full-data operator or a mini-batch's) it
// returns, on the coordinates of the blocks that chose adaptive Hutch++
// (pp), the residual P⊥y = P⊥H'P⊥v, and elsewhere y + Z Qᵀv with Z = HQ
// from all samples: a Hutchinson sample, since E[vᵀD_b(H'P⊥ + HP)v] =
// tr(D_b H) for any fixed Q (E[H'] = H). It is not symmetric; only the
// estimators' per-block samples vᵀD_b(·) are used.
type mixed struct {
	op   Operator
	q, z *mat.Dense
	pp   []bool // per coordinate
}

func (m *mixed) Dim() int        { return m.op.Dim() }
func (m *mixed) Blocks() []Block { return m.op.Blocks() }

// both returns (y + ZQᵀv, P⊥y) for y = op·P⊥v: the Hutchinson and the
// residual vectors of every coordinate, from one product of op.
func (m *mixed) both(ctx context.Context, op Operator, v []float64) (h, pp []float64, err error) {
	u := projectOut(m.q, v)
	y := make([]float64, len(v))
	if err := apply(ctx, op, y, u); err != nil {
		return nil, nil, err
	}
	h, pp = m.from(v, y)
	return h, pp, nil
}

// from returns (y + ZQᵀv, P⊥y) for a product y = H'·P⊥v already made.
func (m *mixed) from(v, y []float64) (h, pp []float64) {
	h = mulVec(m.z, mulTVec(m.q, v))
	for i := range h {
		h[i] += y[i]
	}
	return h, projectOut(m.q, y)
}

// with sets dst from the two vectors by the per-coordinate choice.
func (m *mixed) with(dst, h, pp []float64) {
	for i := range dst {
		if m.pp[i] {
			dst[i] = pp[i]
		} else {
			dst[i] = h[i]
		}
	}
}

// HVP sets dst to the mixed vector of v (one product of the operator).
func (m *mixed) HVP(ctx context.Context, dst, v []float64) error {
	h, pp, err := m.both(ctx, m.op, v)
	if err != nil {
		return err
	}
	m.with(dst, h, pp)
	return nil
}

// HVPBatch applies HVP to every vector, with one batched product of the
// underlying operator when it has one.
func (m *mixed) HVPBatch(ctx context.Context, dst, v [][]float64) error {
	u := make([][]float64, len(v))
	y := make([][]float64, len(v))
	for j := range v {
		u[j] = projectOut(m.q, v[j])
		y[j] = make([]float64, len(v[j]))
	}
	if err := applyBatch(ctx, m.op, y, u); err != nil {
		return err
	}
	for j := range dst {
		h, pp := m.from(v[j], y[j])
		m.with(dst[j], h, pp)
	}
	return nil
}

// Samples returns the samples of the underlying operator (0 when it is
// not Sampled; Hutchinson then refuses mini-batches).
func (m *mixed) Samples() int {
	if s, ok := m.op.(Sampled); ok {
		return s.Samples()
	}
	return 0
}

// Subset returns the mixed operator over a subset of the samples (Z stays
// the full-data HQ).
func (m *mixed) Subset(idx []int) (Operator, error) {
	s, ok := m.op.(Sampled)
	if !ok {
		return nil, fmt.Errorf("hessian: %T is not an operator over samples", m.op)
	}
	sub, err := s.Subset(idx)
	if err != nil {
		return nil, err
	}
	return &mixed{op: sub, q: m.q, z: m.z, pp: m.pp}, nil
}
