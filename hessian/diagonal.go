package hessian

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Weighting is a weighted sum of diagonal entries of H over one range of
// coordinates: Σ_j W[j]·H_{o+j,o+j} for o = Offset, j < len(W). With W the
// squared quantization errors ΔW_j² of a layer it is the diagonal-Hessian
// sensitivity Σ_j diag(H)_j ΔW_j²; with W all ones, the block's trace.
type Weighting struct {
	Name   string
	Offset int
	W      []float64
}

// DiagonalResult is the outcome of HutchinsonDiagonal.
type DiagonalResult struct {
	// Traces is the Hutchinson result of the same run: per-block traces,
	// standard errors and per-probe samples, identical to what Hutchinson
	// returns with the same operator and settings.
	Traces *TraceResult
	// Weighted holds one estimate per weighting, in order: Trace is the
	// estimate of Σ_j W[j]·H_jj, StdErr its standard error and Lo, Hi its
	// Student-t interval at Traces.Confidence (Name, Offset and Size
	// from the weighting).
	Weighted []Estimate
	// Samples holds, per accepted probe, one sample per weighting.
	Samples [][]float64
}

// HutchinsonDiagonal runs Hutchinson(ctx, op, s) and, from the same
// products, estimates weighted sums of the Hessian's diagonal (Bekas,
// Kokiopoulou and Saad, "An estimator for the diagonal of a matrix",
// Applied Numerical Mathematics 57, 2007):
//
//	E[v ⊙ Hv] = diag H   for probes with E[v vᵀ] = I,
//	x_i(w)    = Σ_j w_j (v_i)_j (H v_i)_j,   E[x_i(w)] = Σ_j w_j H_jj,
//
// (for Rademacher probes (v_j)² = 1, so x_i(w) = Σ_j w_j H_jj plus the
// off-diagonal terms Σ_{j≠k} w_j H_jk v_j v_k, which have mean zero). The
// samples of one weighting are i.i.d. over probes, so the estimate is
// their mean with standard error sd/√n and a Student-t interval, as for
// the traces; with mini-batch probes (Settings.ProbeBatch) they are
// unbiased for the full-data diagonal as the traces are. The probes, the
// stopping rule (on the block traces) and the traces are exactly those of
// Hutchinson with the same settings: the weighted sums cost no extra
// products, only O(Σ len(W)) work per probe. Weightings must lie inside
// [0, op.Dim()); the error names one that does not.
func HutchinsonDiagonal(ctx context.Context, op Operator, s *Settings, ws []Weighting) (*DiagonalResult, error) {
	start := time.Now()
	if err := Validate(op); err != nil {
		return nil, err
	}
	for i, w := range ws {
		if w.Offset < 0 || w.Offset+len(w.W) > op.Dim() {
			return nil, fmt.Errorf("hessian: weighting %d (%q): range [%d, %d) outside [0, %d)", i, w.Name, w.Offset, w.Offset+len(w.W), op.Dim())
		}
		for j, x := range w.W {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("hessian: weighting %d (%q): weight %d is %v", i, w.Name, j, x)
			}
		}
	}
	set, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	var extra [][]float64
	run := hutchRun{start: start, batchSeed: set.Seed, extra: &extra,
		observe: func(v, hv []float64) []float64 {
			out := make([]float64, len(ws))
			for k, w := range ws {
				var x float64
				vv, hh := v[w.Offset:w.Offset+len(w.W)], hv[w.Offset:w.Offset+len(w.W)]
				for j, c := range w.W {
					x += c * vv[j] * hh[j]
				}
				out[k] = x
			}
			return out
		}}
	tr, err := hutchinson(ctx, op, set, run)
	if err != nil {
		return nil, err
	}
	res := &DiagonalResult{Traces: tr, Samples: extra, Weighted: make([]Estimate, len(ws))}
	col := make([]float64, len(extra))
	for k, w := range ws {
		for i, row := range extra {
			col[i] = row[k]
		}
		e := Estimate{Trace: mean(col)}
		if len(col) >= 2 {
			if e, err = Summarize(col, tr.Confidence); err != nil {
				return nil, err
			}
		}
		e.Name, e.Offset, e.Size = w.Name, w.Offset, len(w.W)
		res.Weighted[k] = e
	}
	return res, nil
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	if len(x) == 0 {
		return 0
	}
	return s / float64(len(x))
}
