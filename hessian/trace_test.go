package hessian

import (
	"context"
	"fmt"
	"math"
	"testing"

	"gonum.org/v1/gonum/stat"
)

type estimator struct {
	name string
	run  func(ctx context.Context, op Operator, seed uint64, matvecs int) (*TraceResult, error)
}

func estimators() []estimator {
	sk := func(f func(context.Context, Operator, *SketchSettings) (*TraceResult, error)) func(context.Context, Operator, uint64, int) (*TraceResult, error) {
		return func(ctx context.Context, op Operator, seed uint64, m int) (*TraceResult, error) {
			return f(ctx, op, &SketchSettings{Matvecs: m, Seed: seed, Workers: 1})
		}
	}
	return []estimator{
		{"hutchinson", func(ctx context.Context, op Operator, seed uint64, m int) (*TraceResult, error) {
			return Hutchinson(ctx, op, &Settings{Seed: seed, MinProbes: m, MaxProbes: m, Workers: 1})
		}},
		{"hutch++", sk(HutchPP)},
		{"na-hutch++", sk(NAHutchPP)},
		{"xtrace", sk(XTrace)},
	}
}

// TestUnbiased checks, for every estimator and test matrix, that the mean
// of 200 seeded estimates lies within 4 standard errors of the true trace,
// for the whole operator and for every block.
func TestUnbiased(t *testing.T) {
	const reps, budget = 200, 24
	ctx := context.Background()
	for _, tm := range testMatrices() {
		op := Dense(tm.m, testBlocks())
		for _, est := range estimators() {
			t.Run(tm.name+"/"+est.name, func(t *testing.T) {
				nb := len(testBlocks())
				vals := make([][]float64, nb+1)
				for s := range reps {
					res, err := est.run(ctx, op, uint64(s), budget)
					if err != nil {
						t.Fatal(err)
					}
					for j, e := range res.Blocks {
						vals[j] = append(vals[j], e.Trace)
					}
					vals[nb] = append(vals[nb], res.Total.Trace)
				}
				for j := range vals {
					want := blockTrace(tm.m, wholeBlock(tm.m))
					name := "total"
					if j < nb {
						want, name = blockTrace(tm.m, testBlocks()[j]), testBlocks()[j].Name
					}
					mean, sd := stat.MeanStdDev(vals[j], nil)
					se := sd / math.Sqrt(reps)
					if math.Abs(mean-want) > 4*se+1e-9*math.Abs(want) {
						t.Errorf("%s: mean %.6g, want %.6g (|diff| = %.3g SE)", name, mean, want, math.Abs(mean-want)/se)
					}
				}
			})
		}
	}
}

// TestCoverage checks that Hutchinson's 95 % t-intervals cover the truth in
// 93–97 % of 1,000 seeded repeats (binomial SD 0.7 %).
func TestCoverage(t *testing.T) {
	const reps = 1000
	ctx := context.Background()
	for _, tm := range testMatrices() {
		t.Run(tm.name, func(t *testing.T) {
			op := Dense(tm.m, testBlocks())
			bl := append(testBlocks(), wholeBlock(tm.m))
			hits := make([]int, len(bl))
			for s := range reps {
				res, err := Hutchinson(ctx, op, &Settings{Seed: uint64(s), MinProbes: 30, MaxProbes: 30, Workers: 1})
				if err != nil {
					t.Fatal(err)
				}
				ests := append(res.Blocks, res.Total)
				for j, b := range bl {
					tr := blockTrace(tm.m, b)
					if ests[j].Lo <= tr && tr <= ests[j].Hi {
						hits[j]++
					}
				}
			}
			for j, b := range bl {
				c := float64(hits[j]) / reps
				t.Logf("%s coverage %.3f", b.Name, c)
				if c < 0.93 || c > 0.97 {
					t.Errorf("block %s: coverage %.3f, want in [0.93, 0.97]", b.Name, c)
				}
			}
		})
	}
}

// TestVarianceReduction checks that at equal matvecs Hutch++, NA-Hutch++
// and XTrace have a smaller RMS error than Hutchinson on the
// low-rank-dominated matrix, for the total and every block.
func TestVarianceReduction(t *testing.T) {
	const reps, budget = 50, 60
	ctx := context.Background()
	tm := testMatrices()[1]
	op := Dense(tm.m, testBlocks())
	bl := append(testBlocks(), wholeBlock(tm.m))
	rms := map[string][]float64{}
	for _, est := range estimators() {
		se := make([]float64, len(bl))
		for s := range reps {
			res, err := est.run(ctx, op, uint64(1000+s), budget)
			if err != nil {
				t.Fatal(err)
			}
			if res.Matvecs != budget {
				t.Errorf("%s used %d matvecs, want %d", est.name, res.Matvecs, budget)
			}
			ests := append(res.Blocks, res.Total)
			for j, b := range bl {
				d := ests[j].Trace - blockTrace(tm.m, b)
				se[j] += d * d / reps
			}
		}
		for j := range se {
			se[j] = math.Sqrt(se[j])
		}
		rms[est.name] = se
		t.Logf("%-10s RMS error per block %v", est.name, fmtSlice(se))
	}
	for _, name := range []string{"hutch++", "na-hutch++", "xtrace"} {
		for j, b := range bl {
			if rms[name][j] >= rms["hutchinson"][j] {
				t.Errorf("%s block %s: RMS %.4g not below Hutchinson's %.4g", name, b.Name, rms[name][j], rms["hutchinson"][j])
			}
		}
	}
}

func fmtSlice(x []float64) string {
	s := "["
	for i, v := range x {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.3g", v)
	}
	return s + "]"
}

// TestSketchExactOnLowRank: when rank(H) is below the sketch size, the
// low-rank part captures H and every sketch estimator returns the exact
// block traces (residual zero up to rounding). This checks the block
// formulas independently of any statistics.
func TestSketchExactOnLowRank(t *testing.T) {
	rng := newTestRand(7)
	m := exactLowRank(testDim, 5, rng)
	op := Dense(m, testBlocks())
	ctx := context.Background()
	for _, est := range estimators()[1:] {
		res, err := est.run(ctx, op, 3, 60)
		if err != nil {
			t.Fatal(err)
		}
		for j, b := range testBlocks() {
			if want := blockTrace(m, b); math.Abs(res.Blocks[j].Trace-want) > 1e-9 {
				t.Errorf("%s block %s: %.12g, want %.12g", est.name, b.Name, res.Blocks[j].Trace, want)
			}
		}
		if want := blockTrace(m, wholeBlock(m)); math.Abs(res.Total.Trace-want) > 1e-9 {
			t.Errorf("%s total: %.12g, want %.12g", est.name, res.Total.Trace, want)
		}
	}
}

// TestBlocksSumToTotal: when blocks cover every coordinate, per-sample block
// values add up to the total sample for every estimator.
func TestBlocksSumToTotal(t *testing.T) {
	tm := testMatrices()[0]
	blocks := []Block{{"x", 0, 50}, {"y", 50, 1}, {"z", 51, 69}}
	op := Dense(tm.m, blocks)
	for _, est := range estimators() {
		res, err := est.run(context.Background(), op, 11, 30)
		if err != nil {
			t.Fatal(err)
		}
		for i, row := range res.Samples {
			if s := sum(row); math.Abs(s-res.TotalSamples[i]) > 1e-9*(1+math.Abs(s)) {
				t.Errorf("%s sample %d: blocks sum to %.12g, total %.12g", est.name, i, s, res.TotalSamples[i])
			}
		}
	}
}
