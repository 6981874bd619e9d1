package hessian

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// sampledDense is a Sampled operator over explicit per-sample matrices:
// H = (1/N) Σ_n H_n.
type sampledDense struct {
	per    []*mat.SymDense
	blocks []Block
	full   Operator
	calls  int // subsets formed (not concurrent-safe; tests use Workers 1)
}

func newSampledDense(per []*mat.SymDense, blocks []Block) *sampledDense {
	return &sampledDense{per: per, blocks: blocks, full: Dense(meanOf(per, nil), blocks)}
}

func meanOf(per []*mat.SymDense, idx []int) *mat.SymDense {
	if idx == nil {
		idx = make([]int, len(per))
		for i := range idx {
			idx[i] = i
		}
	}
	d := per[0].SymmetricDim()
	m := mat.NewSymDense(d, nil)
	for _, n := range idx {
		m.AddSym(m, per[n])
	}
	m.ScaleSym(1/float64(len(idx)), m)
	return m
}

func (s *sampledDense) Dim() int        { return s.full.Dim() }
func (s *sampledDense) Blocks() []Block { return s.blocks }
func (s *sampledDense) Samples() int    { return len(s.per) }
func (s *sampledDense) HVP(ctx context.Context, dst, v []float64) error {
	return s.full.HVP(ctx, dst, v)
}
func (s *sampledDense) Subset(idx []int) (Operator, error) {
	s.calls++
	for i, n := range idx {
		if n < 0 || n >= len(s.per) || (i > 0 && idx[i-1] >= n) {
			return nil, errors.New("bad subset")
		}
	}
	return Dense(meanOf(s.per, idx), s.blocks), nil
}

// perSampleMatrices returns n per-sample matrices H_n = A + noise·E_n + t_n·I
// (d×d): a shared part A, a per-sample symmetric perturbation and a
// per-sample shift of the diagonal, so per-sample traces differ (data
// noise) as well as the off-diagonal structure (probe noise).
func perSampleMatrices(n, d int, noise float64, seed uint64) []*mat.SymDense {
	rng := newTestRand(seed)
	a := fromSpectrum(lowRankSpectrum(d, rng), rng)
	out := make([]*mat.SymDense, n)
	for k := range out {
		m := mat.NewSymDense(d, nil)
		shift := noise * 3 * rng.NormFloat64()
		for i := range d {
			for j := i; j < d; j++ {
				v := a.At(i, j) + noise*rng.NormFloat64()
				if i == j {
					v += shift
				}
				m.SetSym(i, j, v)
			}
		}
		out[k] = m
	}
	return out
}

// TestBatchSchedule: batches have the asked size, are sorted and distinct,
// disjoint within an epoch, reproducible, independent of how they are
// drawn, and cover every sample about equally often.
func TestBatchSchedule(t *testing.T) {
	s := BatchSchedule{Seed: 3, Samples: 50, Size: 8} // 6 per epoch, 2 left out
	if s.PerEpoch() != 6 {
		t.Fatalf("PerEpoch %d", s.PerEpoch())
	}
	count := make([]int, s.Samples)
	var bt batcher
	const epochs = 400
	for e := range epochs {
		seen := map[int]bool{}
		for k := range s.PerEpoch() {
			i := e*s.PerEpoch() + k
			b := bt.batch(s, i)
			if len(b) != s.Size || !slices.IsSorted(b) || !slices.Equal(b, s.Batch(i)) {
				t.Fatalf("probe %d: batch %v (fresh %v)", i, b, s.Batch(i))
			}
			for _, n := range b {
				if n < 0 || n >= s.Samples || seen[n] {
					t.Fatalf("epoch %d: sample %d out of range or repeated", e, n)
				}
				seen[n] = true
				count[n]++
			}
		}
	}
	// Each sample is in 48 of 50 positions of an epoch: expected count
	// 400·48/50 = 384, binomial SD ≈ 3.9.
	for n, c := range count {
		if math.Abs(float64(c)-384) > 20 {
			t.Errorf("sample %d drawn %d times, want about 384", n, c)
		}
	}
	if slices.Equal(s.Batch(0), BatchSchedule{Seed: 4, Samples: 50, Size: 8}.Batch(0)) {
		t.Error("seed does not change the batches")
	}
	if err := (BatchSchedule{Samples: 4, Size: 5}).valid(); err == nil {
		t.Error("size above samples accepted")
	}
}

// TestMiniBatchUnbiasedCoverage is the fixed-seed statistical test of
// mini-batch probes against the exact full-data traces: over 1,000 seeds
// of a 20-probe estimate with batches of 4 of 24 samples, the mean
// estimate of every block lies within 4 standard errors (of that mean) of
// the exact trace, and the 95 % intervals cover it in 93–98 % of the runs
// (the design makes them conservative, see Hutchinson; binomial SD 0.7 %).
func TestMiniBatchUnbiasedCoverage(t *testing.T) {
	const d, nSamples, seeds, probes = 30, 24, 1000, 20
	blocks := []Block{{"a", 0, 10}, {"b", 10, 12}, {"c", 22, 8}}
	op := newSampledDense(perSampleMatrices(nSamples, d, 0.3, 1), blocks)
	full := meanOf(op.per, nil)
	var want []float64
	for _, b := range blocks {
		want = append(want, blockTrace(full, b))
	}
	sum := make([]float64, len(blocks))
	sumSq := make([]float64, len(blocks))
	cover := make([]int, len(blocks))
	for seed := range seeds {
		res, err := Hutchinson(context.Background(), op, &Settings{Seed: uint64(seed), MinProbes: probes, MaxProbes: probes, ProbeBatch: 4, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if res.ProbeBatch != 4 || res.Probes != probes || res.Stop != StopMaxProbes {
			t.Fatalf("result %+v", res)
		}
		for j, e := range res.Blocks {
			sum[j] += e.Trace
			sumSq[j] += e.Trace * e.Trace
			if e.Lo <= want[j] && want[j] <= e.Hi {
				cover[j]++
			}
		}
	}
	for j, b := range blocks {
		mean := sum[j] / seeds
		sd := math.Sqrt((sumSq[j]/seeds - mean*mean) * seeds / (seeds - 1))
		if z := (mean - want[j]) / (sd / math.Sqrt(seeds)); math.Abs(z) > 4 {
			t.Errorf("block %s: mean estimate %.6g, exact %.6g (z = %.2f): biased", b.Name, mean, want[j], z)
		}
		rate := float64(cover[j]) / seeds
		t.Logf("block %s: exact %.5g, mean %.5g, 95%% coverage %.1f%%", b.Name, want[j], mean, 100*rate)
		if rate < 0.93 || rate > 0.98 {
			t.Errorf("block %s: 95%% intervals cover the exact trace in %.1f%% of %d runs, want 93–98%%", b.Name, 100*rate, seeds)
		}
	}
}

// TestMiniBatchSettings: a ProbeBatch of all samples is the full-data
// estimate; an operator that is not Sampled is refused; a failing Subset
// is reported; the result does not depend on the worker count.
func TestMiniBatchSettings(t *testing.T) {
	blocks := []Block{{"a", 0, 10}, {"b", 10, 10}}
	op := newSampledDense(perSampleMatrices(12, 20, 0.2, 2), blocks)
	ctx := context.Background()
	full, err := Hutchinson(ctx, op.full, &Settings{Seed: 1, MinProbes: 30, MaxProbes: 30})
	if err != nil {
		t.Fatal(err)
	}
	all, err := Hutchinson(ctx, op, &Settings{Seed: 1, MinProbes: 30, MaxProbes: 30, ProbeBatch: 12, Workers: 1})
	if err != nil || all.ProbeBatch != 0 || op.calls != 0 {
		t.Fatalf("ProbeBatch = N: %v, batch %d, %d subsets", err, all.ProbeBatch, op.calls)
	}
	for j := range full.Blocks {
		if math.Abs(full.Blocks[j].Trace-all.Blocks[j].Trace) > 1e-9*math.Abs(full.Blocks[j].Trace) {
			t.Errorf("ProbeBatch = N differs from full data: %v vs %v", all.Blocks[j], full.Blocks[j])
		}
	}
	if _, err := Hutchinson(ctx, op.full, &Settings{ProbeBatch: 4}); err == nil || !strings.Contains(err.Error(), "ProbeBatch") {
		t.Errorf("non-sampled operator: %v", err)
	}
	if _, err := Hutchinson(ctx, op, &Settings{ProbeBatch: -1}); err == nil {
		t.Error("negative ProbeBatch accepted")
	}
	bad := &badSubset{op}
	if _, err := Hutchinson(ctx, bad, &Settings{ProbeBatch: 4}); err == nil || !strings.Contains(err.Error(), "mini-batch") {
		t.Errorf("failing Subset: %v", err)
	}
	a, err1 := Hutchinson(ctx, op, &Settings{Seed: 5, Tol: 0.05, ProbeBatch: 3, Workers: 1})
	b, err2 := Hutchinson(ctx, &lockedSampled{s: op}, &Settings{Seed: 5, Tol: 0.05, ProbeBatch: 3, Workers: 3})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if a.Probes != b.Probes || !slices.EqualFunc(a.Blocks, b.Blocks, func(x, y Estimate) bool { return x == y }) {
		t.Errorf("workers change the mini-batch result: %d vs %d probes", a.Probes, b.Probes)
	}
}

type badSubset struct{ *sampledDense }

func (b *badSubset) Subset([]int) (Operator, error) { return nil, errors.New("disk gone") }

// lockedSampled serialises Subset for concurrent workers.
type lockedSampled struct {
	s  *sampledDense
	mu sync.Mutex
}

func (l *lockedSampled) Dim() int        { return l.s.Dim() }
func (l *lockedSampled) Blocks() []Block { return l.s.Blocks() }
func (l *lockedSampled) Samples() int    { return l.s.Samples() }
func (l *lockedSampled) HVP(ctx context.Context, dst, v []float64) error {
	return l.s.HVP(ctx, dst, v)
}
func (l *lockedSampled) Subset(idx []int) (Operator, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Subset(idx)
}

// TestTimeBudget: a spent budget stops after two probes with Stop "time
// budget" and the errors reached; Progress reports elapsed time and an
// ETA consistent with Needed.
func TestTimeBudget(t *testing.T) {
	tm := testMatrices()[0]
	slow := &Func{N: testDim, Parts: testBlocks(), Multiply: func(ctx context.Context, dst, v []float64) error {
		time.Sleep(2 * time.Millisecond)
		return Dense(tm.m, nil).HVP(ctx, dst, v)
	}}
	var last Progress
	res, err := Hutchinson(context.Background(), slow, &Settings{Tol: 1e-6, MaxProbes: 100000, TimeBudget: 60 * time.Millisecond, Workers: 1,
		Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != StopTimeBudget || res.Converged || res.Probes < 2 || res.Probes > 60 || res.Blocks[0].StdErr <= 0 {
		t.Fatalf("stop %q converged %v probes %d", res.Stop, res.Converged, res.Probes)
	}
	if res.Elapsed < 60*time.Millisecond || last.Elapsed <= 0 || last.Needed <= last.Probes || last.ETA <= 0 {
		t.Errorf("elapsed %v, last progress %+v", res.Elapsed, last)
	}
	// ETA = elapsed/n · (Needed − n).
	want := time.Duration(float64(last.Elapsed) / float64(last.Probes) * float64(last.Needed-last.Probes))
	if d := last.ETA - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("ETA %v, want %v", last.ETA, want)
	}
	if _, err := Hutchinson(context.Background(), slow, &Settings{TimeBudget: -1}); err == nil {
		t.Error("negative TimeBudget accepted")
	}
}

// TestMiniBatchClusteredSE is the fixed-seed statistical test of the
// epoch-clustered standard error: 8 per-sample matrices whose traces
// differ much (data noise), batches of 4 (two per epoch, which partition
// the samples, so each epoch's data noise cancels), 30 probes (15 epochs),
// 600 seeds against the exact traces. The clustered 95 % intervals must
// cover every block in 92.3–97.7 % of the runs (± 3 binomial standard
// deviations of 0.89 %) and their mean SE² must be within 0.8–1.25 of the
// variance of the estimates; the i.i.d. standard error on the same samples
// must overstate that variance by at least 1.5× (else the test would not
// test the clustering).
func TestMiniBatchClusteredSE(t *testing.T) {
	const d, nSamples, seeds, probes = 20, 8, 600, 30
	blocks := []Block{{"a", 0, 8}, {"b", 8, 12}}
	// Per-sample matrices s_n·I + 0.1·E_n (E_n symmetric standard normal):
	// the traces differ much from sample to sample (data noise), the
	// off-diagonal entries give the probe noise.
	rng := newTestRand(9)
	per := make([]*mat.SymDense, nSamples)
	for k := range per {
		m := mat.NewSymDense(d, nil)
		s := 2 * rng.Float64()
		for i := range d {
			for j := i; j < d; j++ {
				v := 0.1 * rng.NormFloat64()
				if i == j {
					v += s
				}
				m.SetSym(i, j, v)
			}
		}
		per[k] = m
	}
	op := newSampledDense(per, blocks)
	full := meanOf(op.per, nil)
	nb := len(blocks)
	want := make([]float64, nb)
	for j, b := range blocks {
		want[j] = blockTrace(full, b)
	}
	var est, se2, iid2 [2][]float64
	cover, coverIID := make([]int, nb), make([]int, nb)
	for seed := range seeds {
		res, err := Hutchinson(context.Background(), op, &Settings{Seed: uint64(seed), MinProbes: probes, MaxProbes: probes, ProbeBatch: 4, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Epoch != 2 || res.epochs() != 15 {
			t.Fatalf("epoch %d, %d epochs; want 2 probes per epoch, 15 epochs", res.Epoch, res.epochs())
		}
		flat := *res
		flat.Epoch = 0
		iid, err := flat.AtConfidence(0.95)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range res.Blocks {
			est[j] = append(est[j], e.Trace)
			se2[j] = append(se2[j], e.StdErr*e.StdErr)
			iid2[j] = append(iid2[j], iid.Blocks[j].StdErr*iid.Blocks[j].StdErr)
			if e.Lo <= want[j] && want[j] <= e.Hi {
				cover[j]++
			}
			if i := iid.Blocks[j]; i.Lo <= want[j] && want[j] <= i.Hi {
				coverIID[j]++
			}
		}
	}
	for j, b := range blocks {
		v := stat.Variance(est[j], nil)
		r, ri := stat.Mean(se2[j], nil)/v, stat.Mean(iid2[j], nil)/v
		rate := float64(cover[j]) / seeds
		t.Logf("block %s: mean SE²/variance %.2f clustered, %.2f i.i.d.; 95%% coverage %.1f%% clustered, %.1f%% i.i.d.",
			b.Name, r, ri, 100*rate, 100*float64(coverIID[j])/seeds)
		if rate < 0.923 || rate > 0.977 {
			t.Errorf("block %s: clustered intervals cover in %.1f%% of %d runs, want 92.3–97.7%%", b.Name, 100*rate, seeds)
		}
		if r < 0.8 || r > 1.25 {
			t.Errorf("block %s: clustered mean SE² / variance of the estimates %.2f, want 0.8–1.25", b.Name, r)
		}
		if ri < 1.5 {
			t.Errorf("block %s: the i.i.d. SE² overstates the variance only %.2f×: the case does not test the clustering", b.Name, ri)
		}
	}
}
