package plan

import (
	"context"
	"math"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/sensitivity"
)

// TestAnalyzeDiagAgainstExact checks the diag criterion on a real model:
// rescnn on 4 of its reference samples. The exact Σ_j H_jj ΔW_j² of its
// smallest layers (stem, depthwise: 432 weights) comes from unit-vector
// products (hessian.ExactDiagonal); over 8 fixed seeds of 16 probes
// each, the estimate's 95 % Student-t intervals must cover it at the
// stated rate (at least 85 % of the 8 × 2 layers × 3 candidates = 48
// intervals: a 95 % interval misses 2.4 of them on average, and 8 misses
// have a binomial probability of about 0.3 %), the pooled estimate
// must lie within 4 standard errors, and the traces of the same run must
// equal plain Hutchinson's.
func TestAnalyzeDiagAgainstExact(t *testing.T) {
	e, all := loadRef(t, "rescnn")
	ds := data.Head(all, 4)
	ctx := context.Background()
	op, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	cands := []sensitivity.Precision{{W: 2, A: 8}, {W: 4, A: 8}, {W: 8, A: 8}}
	small := map[string]bool{"/stem/Conv": true, "/dw/Conv": true}
	exact := map[string]map[string]float64{}
	for _, u := range e.Units() {
		if !small[u.Name] {
			continue
		}
		d, err := hessian.ExactDiagonal(ctx, op, hessian.Block{Name: u.Name, Offset: u.WeightOffset, Size: u.WeightSize}, 1)
		if err != nil {
			t.Fatal(err)
		}
		w, err := e.Weights(u.Name)
		if err != nil {
			t.Fatal(err)
		}
		exact[u.Name] = map[string]float64{}
		for _, c := range cands {
			q := sensitivity.Quantizer{Bits: c.W}
			qw := make([]float64, len(w))
			if _, err := q.Quantize(qw, w, weightLayout(u)); err != nil {
				t.Fatal(err)
			}
			s := 0.0
			for j := range w {
				s += d[j] * (qw[j] - w[j]) * (qw[j] - w[j])
			}
			exact[u.Name][c.String()] = s
		}
	}
	if len(exact) != len(small) {
		t.Fatalf("found %d of the layers %v", len(exact), small)
	}
	const seeds, probes = 8, 16
	covered, total := 0, 0
	sum := map[string]float64{}
	sumSE2 := map[string]float64{}
	for seed := uint64(1); seed <= seeds; seed++ {
		set := hessian.Settings{Seed: seed, MinProbes: probes, MaxProbes: probes}
		s, err := Analyze(ctx, &Analysis{Engine: e, Data: ds, Method: Hutchinson, Trace: &set, Candidates: cands, Diag: true})
		if err != nil {
			t.Fatal(err)
		}
		if s.Table.Criterion != string(sensitivity.Diag) {
			t.Fatalf("table criterion %q, want diag", s.Table.Criterion)
		}
		if seed == 1 {
			plain, err := Analyze(ctx, &Analysis{Engine: e, Data: ds, Method: Hutchinson, Trace: &set, Candidates: cands})
			if err != nil {
				t.Fatal(err)
			}
			for i := range plain.Table.Layers {
				if a, b := plain.Table.Layers[i].AvgTrace, s.Table.Layers[i].AvgTrace; a != b {
					t.Errorf("layer %s: diag run's avg trace %v, Hutchinson's %v (the probes must be the same)", plain.Table.Layers[i].Name, b, a)
				}
			}
		}
		for _, l := range s.Table.Layers {
			ex, ok := exact[l.Name]
			if !ok {
				continue
			}
			for k, want := range ex {
				est, se := l.Scores[k], l.ScoreStderr[k]
				h := 2.131 * se // t quantile, 15 degrees of freedom
				total++
				if math.Abs(est-want) <= h {
					covered++
				}
				sum[l.Name+k] += est
				sumSE2[l.Name+k] += se * se
				if l.Omega(k) != est {
					t.Fatalf("layer %s: Omega(%s) = %v, want the diag score %v", l.Name, k, l.Omega(k), est)
				}
			}
		}
	}
	t.Logf("diag: 95%% intervals covered the exact value %d of %d times", covered, total)
	if float64(covered) < 0.85*float64(total) {
		t.Errorf("95%% intervals covered the exact Σ diag(H)·ΔW² only %d of %d times", covered, total)
	}
	for name, ex := range exact {
		for k, want := range ex {
			m := sum[name+k] / seeds
			se := math.Sqrt(sumSE2[name+k]) / seeds
			if math.Abs(m-want) > 4*se {
				t.Errorf("%s at %s: mean estimate %.6g ± %.2g over %d seeds, exact %.6g", name, k, m, se, seeds, want)
			}
		}
	}
}
