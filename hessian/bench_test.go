package hessian

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// rademacherVariance returns the exact single-probe variance of
// Hutchinson's estimator with Rademacher probes, 2(‖A‖_F² − Σ_i A_ii²).
func rademacherVariance(a mat.Symmetric) float64 {
	n := a.SymmetricDim()
	var off float64
	for i := range n {
		for j := range n {
			if i != j {
				off += a.At(i, j) * a.At(i, j)
			}
		}
	}
	return 2 * off
}

// TestRademacherVariance: the sample variance of Hutchinson's per-probe
// samples matches the closed form 2(‖A‖_F² − Σ A_ii²) (the benchmark uses
// it to cost Hutchinson).
func TestRademacherVariance(t *testing.T) {
	for _, tm := range testMatrices() {
		res, err := Hutchinson(context.Background(), Dense(tm.m, nil), &Settings{MinProbes: 2000, MaxProbes: 2000, Seed: 8})
		if err != nil {
			t.Fatal(err)
		}
		got := math.Pow(res.Total.StdErr, 2) * 2000
		want := rademacherVariance(tm.m)
		// The sample variance of 2000 draws is within ~10 % here (its
		// relative SD is √(2/n + excess kurtosis/n) ≈ 4 %).
		if math.Abs(got-want) > 0.12*want {
			t.Errorf("%s: sample variance %.4g, closed form %.4g", tm.name, got, want)
		}
	}
}

// benchMatrices returns the three test matrix families at dimension d.
func benchMatrices(d int) []testMatrix {
	rng := rand.New(rand.NewPCG(2, 2))
	return []testMatrix{
		{"indefinite", fromSpectrum(indefiniteSpectrum(d, rng), rng)},
		{"lowrank", fromSpectrum(lowRankSpectrum(d, rng), rng)},
		{"diagdominant", diagDominant(d, rng)},
	}
}

// rmsRelErr returns the RMS relative error of the total trace over reps
// seeded runs of est with budget m.
func rmsRelErr(b *testing.B, est estimator, op Operator, tr float64, m, reps int) float64 {
	var s float64
	for r := range reps {
		res, err := est.run(context.Background(), op, uint64(r), m)
		if err != nil {
			b.Fatal(err)
		}
		e := (res.Total.Trace - tr) / tr
		s += e * e
	}
	return math.Sqrt(s / float64(reps))
}

// BenchmarkMatvecsFor1Pct reports, per estimator and matrix (d = 1000), the
// number of matvecs needed for a 1 % RMS relative error of the whole trace
// (metric "matvecs"). For Hutchinson it is exact: Var/(0.01·tr)² from the
// closed-form Rademacher variance. For the sketch estimators it is the
// smallest budget (multiple of 6) whose RMS error over 20 seeded runs is at
// most 1 %, found by doubling then bisection. ns/op times one estimate at
// that budget.
func BenchmarkMatvecsFor1Pct(b *testing.B) {
	const d, reps, target = 1000, 20, 0.01
	for _, tm := range benchMatrices(d) {
		op := Dense(tm.m, nil)
		tr := blockTrace(tm.m, wholeBlock(tm.m))
		for _, est := range estimators() {
			b.Run(tm.name+"/"+est.name, func(b *testing.B) {
				var m int
				if est.name == "hutchinson" {
					m = max(2, int(math.Ceil(rademacherVariance(tm.m)/math.Pow(target*tr, 2))))
				} else {
					lo, hi := 0, 6
					for rmsRelErr(b, est, op, tr, hi, reps) > target {
						lo, hi = hi, 2*hi
						if hi > 3*d {
							hi = 3 * d
							break
						}
					}
					for hi-lo > 6 {
						mid := (lo + hi) / 12 * 6
						if rmsRelErr(b, est, op, tr, mid, reps) > target {
							lo = mid
						} else {
							hi = mid
						}
					}
					m = hi
				}
				b.ResetTimer()
				for i := range b.N {
					if _, err := est.run(context.Background(), op, uint64(i), m); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(m), "matvecs")
			})
		}
	}
}

// lowRankPlusNoise returns a d×d matrix with ten dominant
// eigenvalues plus symmetric Gaussian noise, built without an O(d³)
// factorisation.
func lowRankPlusNoise(d int) *mat.SymDense {
	rng := rand.New(rand.NewPCG(5, 5))
	cols := make([][]float64, 10)
	for j := range cols {
		cols[j] = make([]float64, d)
		for i := range d {
			cols[j][i] = rng.NormFloat64()
		}
	}
	q, _ := orth(cols)
	a := mat.NewSymDense(d, nil)
	sd := 0.05 / math.Sqrt(float64(d))
	for i := range d {
		for j := i; j < d; j++ {
			v := sd * rng.NormFloat64()
			for k := range 10 {
				v += 50 * math.Pow(0.7, float64(k)) * q.At(i, k) * q.At(j, k)
			}
			a.SetSym(i, j, v)
		}
	}
	return a
}

var sink float64

// BenchmarkEstimate2000 times one estimate on a d = 2000 low-rank-plus-noise
// matrix (with 20 blocks of 100): trace estimators with 60 matvecs, Lanczos
// top-5 (Tol 1e-8), power iteration top-5 (Tol 1e-4) and a 4-run × 40-step
// density.
func BenchmarkEstimate2000(b *testing.B) {
	const d = 2000
	m := lowRankPlusNoise(d)
	var blocks []Block
	for i := range 20 {
		blocks = append(blocks, Block{fmt.Sprintf("l%d", i), 100 * i, 100})
	}
	op := Dense(m, blocks)
	ctx := context.Background()
	for _, est := range estimators() {
		b.Run(est.name, func(b *testing.B) {
			for i := range b.N {
				res, err := est.run(ctx, op, uint64(i), 60)
				if err != nil {
					b.Fatal(err)
				}
				sink += res.Total.Trace
			}
			b.ReportMetric(60, "matvecs")
		})
	}
	b.Run("lanczos-top5", func(b *testing.B) {
		var mv int
		for range b.N {
			res, err := Lanczos(ctx, op, &LanczosSettings{K: 5})
			if err != nil {
				b.Fatal(err)
			}
			mv = res.Matvecs
		}
		b.ReportMetric(float64(mv), "matvecs")
	})
	b.Run("power-top5", func(b *testing.B) {
		var mv int
		for range b.N {
			res, err := PowerIteration(ctx, op, &PowerSettings{K: 5, MaxIter: 1000})
			if err != nil {
				b.Fatal(err)
			}
			mv = res.Matvecs
		}
		b.ReportMetric(float64(mv), "matvecs")
	})
	b.Run("density", func(b *testing.B) {
		for range b.N {
			if _, err := Density(ctx, op, &DensitySettings{Runs: 4, Steps: 40}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(160, "matvecs")
	})
}

// BenchmarkOverhead2000 times the estimators' own work at d = 2000, 60
// matvecs, with a diagonal operator whose products cost O(d): what is left
// when HVPs are free (QR, projections, reorthogonalisation, statistics).
func BenchmarkOverhead2000(b *testing.B) {
	const d = 2000
	diag := make([]float64, d)
	for i := range diag {
		diag[i] = math.Sin(float64(i))
	}
	var blocks []Block
	for i := range 20 {
		blocks = append(blocks, Block{fmt.Sprintf("l%d", i), 100 * i, 100})
	}
	op := &Func{N: d, Parts: blocks, Multiply: func(_ context.Context, dst, v []float64) error {
		for i, x := range v {
			dst[i] = diag[i] * x
		}
		return nil
	}}
	ctx := context.Background()
	for _, est := range estimators() {
		b.Run(est.name, func(b *testing.B) {
			for i := range b.N {
				res, err := est.run(ctx, op, uint64(i), 60)
				if err != nil {
					b.Fatal(err)
				}
				sink += res.Total.Trace
			}
		})
	}
	b.Run("lanczos-60steps", func(b *testing.B) {
		for range b.N {
			if _, err := Lanczos(ctx, op, &LanczosSettings{K: 5, MaxSteps: 60, Tol: 1e-300}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
