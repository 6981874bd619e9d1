package hessian

import (
	"context"
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// hutchPPFor1Pct returns the smallest Hutch++ budget (a multiple of 6)
// whose RMS relative error of the whole trace over reps seeded runs is at
// most target, by doubling then bisection (as BenchmarkMatvecsFor1Pct).
func hutchPPFor1Pct(t *testing.T, op Operator, tr, target float64, reps int) int {
	rms := func(m int) float64 {
		var s float64
		for r := range reps {
			res, err := HutchPP(context.Background(), op, &SketchSettings{Seed: uint64(r), Matvecs: m, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			e := (res.Total.Trace - tr) / tr
			s += e * e
		}
		return math.Sqrt(s / float64(reps))
	}
	lo, hi := 0, 6
	for rms(hi) > target {
		lo, hi = hi, 2*hi
		if hi > 3*op.Dim() {
			return 3 * op.Dim()
		}
	}
	for hi-lo > 6 {
		mid := (lo + hi) / 12 * 6
		if rms(mid) > target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// TestAutoSpectra runs Auto for a 1 % standard error of the whole trace on
// the three synthetic spectra of the estimator benchmark (d = 1000) and
// compares its products with the better fixed method: adaptive Hutchinson
// to the same tolerance (capped at 1,000 probes), and Hutch++ at the smallest budget with a 1 % RMS
// error over 8 seeds. Auto must be within 1.2× of the better one on each
// spectrum, averaged over 3 seeds, and its estimates within 4 standard
// errors of the exact traces.
func TestAutoSpectra(t *testing.T) {
	if testing.Short() {
		t.Skip("d = 1000 matrices")
	}
	const seeds = 3
	for _, tm := range benchMatrices(1000) {
		op := Dense(tm.m, nil)
		tr := blockTrace(tm.m, wholeBlock(tm.m))
		pp := hutchPPFor1Pct(t, op, tr, 0.01, 8)
		var auto, hutch float64
		var choice string
		for seed := range seeds {
			set := &Settings{Seed: uint64(seed), Tol: 0.01, MinProbes: 5, MaxProbes: 100000, Workers: 1, BatchSize: 1}
			a, err := Auto(context.Background(), op, set)
			if err != nil {
				t.Fatal(err)
			}
			hs := *set
			hs.MaxProbes = 1000 // enough to know it is not the better one
			h, err := Hutchinson(context.Background(), op, &hs)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(a.Total.Trace-tr) > 4*a.Total.StdErr {
				t.Errorf("%s seed %d: auto (%s) %.6g ± %.3g, exact %.6g", tm.name, seed, a.Method, a.Total.Trace, a.Total.StdErr, tr)
			}
			// Products counted without those computed in flight and
			// discarded (they depend on scheduling): accepted probes, and
			// the sketch's products.
			cost := a.Probes
			if a.Pilot.Sketched {
				cost += a.Pilot.Sketch
				if a.Method == "a-hutch++" {
					cost += a.Pilot.Sketch
				}
			}
			auto += float64(cost) / seeds
			hutch += float64(h.Probes) / seeds
			choice += a.Method + " "
		}
		best := min(hutch, float64(pp))
		t.Logf("%s: auto %.1f matvecs (%s), Hutchinson %.1f, Hutch++ %d for 1%% RMS: ratio %.2f", tm.name, auto, choice, hutch, pp, auto/best)
		if auto > 1.2*best {
			t.Errorf("%s: auto needs %.1f matvecs, %.2f× the better fixed method (%.1f)", tm.name, auto, auto/best, best)
		}
	}
}

// TestAutoMiniBatch: with mini-batch probes on a low-rank-plus-noise
// operator over samples, Auto picks adaptive Hutch++ (its sketch products
// on all samples, its residual probes on mini-batches) and the mean of 200
// runs is within 4 standard errors of the exact block traces; with room
// for no pilot it runs Hutchinson.
func TestAutoMiniBatch(t *testing.T) {
	const d, seeds = 40, 200
	blocks := []Block{{"a", 0, 20}, {"b", 20, 20}}
	op := newSampledDense(perSampleMatrices(16, d, 0.01, 3), blocks)
	full := meanOf(op.per, nil)
	sum := make([]float64, len(blocks))
	sumSq := make([]float64, len(blocks))
	for seed := range seeds {
		res, err := Auto(context.Background(), op, &Settings{Seed: uint64(seed), Tol: 0.02, MaxProbes: 400, ProbeBatch: 4, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != "a-hutch++" || !res.Pilot.Sketched || res.ProbeBatch != 4 {
			t.Fatalf("seed %d: method %s, pilot %+v, batch %d", seed, res.Method, res.Pilot, res.ProbeBatch)
		}
		for j, e := range res.Blocks {
			sum[j] += e.Trace
			sumSq[j] += e.Trace * e.Trace
		}
	}
	for j, b := range blocks {
		want := blockTrace(full, b)
		mean := sum[j] / seeds
		sd := math.Sqrt((sumSq[j]/seeds - mean*mean) * seeds / (seeds - 1))
		if z := (mean - want) / (sd / math.Sqrt(seeds)); math.Abs(z) > 4 {
			t.Errorf("block %s: mean %.6g, exact %.6g (z = %.2f)", b.Name, mean, want, z)
		}
	}
	res, err := Auto(context.Background(), op.full, &Settings{MinProbes: 2, MaxProbes: 2})
	if err != nil || res.Method != "hutchinson" || res.Probes != 2 {
		t.Errorf("MaxProbes 2: %v %+v", err, res)
	}
	if _, err := Auto(context.Background(), op.full, &Settings{Pilot: -1}); err == nil {
		t.Error("negative Pilot accepted")
	}
}

// TestAutoPerBlock: on a block-diagonal operator whose first block is
// low rank plus noise (five eigenvalues 50·0.7^i, the rest N(0, 0.001²):
// Hutch++'s case) and whose second is diagonally dominant (Hutchinson's:
// its Rademacher samples have almost no variance, while the sketch's
// projection mixes its coordinates and adds some), Auto picks adaptive
// Hutch++ for the first block and Hutchinson for the second. Products for
// a 1 % relative standard error on both: no more than the better fixed
// choice, Hutchinson (extrapolated, SE ∝ 1/√n, past a 2,000-probe cap) or
// adaptive Hutch++ on every block; and the second block's standard error
// at the same probes is at most half of what adaptive Hutch++ gives it.
// Estimates within 4 standard errors of the exact traces.
func TestAutoPerBlock(t *testing.T) {
	const half, seeds = 300, 3
	rng := newTestRand(11)
	lam := make([]float64, half)
	for i := range lam {
		lam[i] = 0.001 * rng.NormFloat64()
		if i < 5 {
			lam[i] = 50 * math.Pow(0.7, float64(i))
		}
	}
	lr := fromSpectrum(lam, rng)
	dd := diagDominant(half, rng)
	m := mat.NewSymDense(2*half, nil)
	for i := range half {
		for j := i; j < half; j++ {
			m.SetSym(i, j, lr.At(i, j))
			m.SetSym(half+i, half+j, dd.At(i, j))
		}
	}
	blocks := []Block{{"lowrank", 0, half}, {"diagdominant", half, half}}
	op := Dense(m, blocks)
	const tol = 0.01
	cost := func(r *TraceResult) float64 {
		c := float64(r.Probes) // accepted probes, the pilot's included for Hutchinson
		if !r.Converged {
			var worst float64
			for _, e := range r.Blocks {
				worst = max(worst, e.RelErr())
			}
			c *= (worst / tol) * (worst / tol)
		}
		if r.Pilot != nil && r.Pilot.Sketched {
			c += float64(2 * r.Pilot.Sketch) // the pilot's probes and Z = HQ
		}
		return c
	}
	var a, h, pp float64
	for seed := range seeds {
		set := &Settings{Seed: uint64(seed), Tol: tol, MinProbes: 5, MaxProbes: 20000, Workers: 1, BatchSize: 1}
		ra, err := Auto(context.Background(), op, set)
		if err != nil {
			t.Fatal(err)
		}
		if got := ra.Pilot.Blocks; len(got) != 2 || got[0] != "a-hutch++" || got[1] != "hutchinson" {
			t.Errorf("seed %d: per-block choice %v, want [a-hutch++ hutchinson]", seed, got)
		}
		hs := *set
		hs.MaxProbes = 2000
		rh, err := Hutchinson(context.Background(), op, &hs)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := auto(context.Background(), op, set, "a-hutch++")
		if err != nil {
			t.Fatal(err)
		}
		if rp.Probes != ra.Probes {
			t.Fatalf("seed %d: %d and %d probes: the low-rank block should stop both", seed, rp.Probes, ra.Probes)
		}
		se, sePP := ra.Blocks[1].StdErr, rp.Blocks[1].StdErr
		t.Logf("seed %d: diagonally dominant block's standard error %.3g (own choice), %.3g (adaptive Hutch++), ratio %.2f", seed, se, sePP, sePP/se)
		if se > sePP/2 {
			t.Errorf("seed %d: diagonally dominant block: standard error %.3g with its own choice, %.3g with adaptive Hutch++", seed, se, sePP)
		}
		for _, r := range []*TraceResult{ra, rh, rp} {
			for j, b := range blocks {
				if want := blockTrace(m, b); math.Abs(r.Blocks[j].Trace-want) > 4*r.Blocks[j].StdErr {
					t.Errorf("seed %d: %s block %s %.6g ± %.3g, exact %.6g", seed, r.Method, b.Name, r.Blocks[j].Trace, r.Blocks[j].StdErr, want)
				}
			}
		}
		a += cost(ra) / seeds
		h += cost(rh) / seeds
		pp += cost(rp) / seeds
	}
	t.Logf("products for 1%% on both blocks: auto (per block) %.1f, Hutchinson %.1f, adaptive Hutch++ on every block %.1f", a, h, pp)
	if a > min(h, pp) {
		t.Errorf("auto needs %.1f products, the better fixed choice %.1f", a, min(h, pp))
	}
}
