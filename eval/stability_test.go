package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
	"gonum.org/v1/gonum/stat"
)

// TestBootstrapActivationRows: plan.BootstrapResampler draws the table's
// activation traces from the rows ActivationTerm keeps, with their real
// structure (LeNet, 32 samples: a pilot of 5 probes, the first 4 over all
// samples and then Horvitz–Thompson rows of the importance design,
// continued to 16 probes as bitplan plan continues its pilot). Over 3,000
// replicates (fixed seeds) every layer's ActAvgTrace has mean
// ActAvgTrace and variance (n−1)/n · ActAvgTraceStderr² (the bootstrap
// variance of a mean of n rows given the rows, hessian's Resample), both
// within 4.5 Monte-Carlo standard errors (the variance's from the rows'
// kurtosis): false failures have probability about 7·10⁻⁶ per check, 10
// checks. The weight traces have no rows here and, with no standard
// error, stay fixed.
func TestBootstrapActivationRows(t *testing.T) {
	e, _, tbl := actCase(t)
	dir := filepath.Join("..", "testdata", "ref", "lenet")
	ds, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := hessian.Settings{Seed: 3, MinProbes: 5, MaxProbes: 5}
	pilot, err := ActivationTerm(ctx, e, ds, clone(tbl), &ActivationSettings{Trace: &set})
	if err != nil {
		t.Fatal(err)
	}
	if pilot.Design == nil {
		t.Fatalf("the pilot chose no importance design (gain %.3g): the case has no Horvitz–Thompson rows", pilot.Gain)
	}
	set.MinProbes, set.MaxProbes = 16, 16
	tb := clone(tbl)
	res, err := ActivationTerm(ctx, e, ds, tb, &ActivationSettings{Trace: &set, Continue: pilot})
	if err != nil {
		t.Fatal(err)
	}
	rows := res.Traces.Samples
	if len(rows) != 16 || !slices.Equal(rows[0], pilot.Traces.Samples[0]) || !slices.Equal(rows[4], pilot.Traces.Samples[4]) {
		t.Fatalf("continued estimate: %d rows, first ones not the pilot's", len(rows))
	}
	rs := plan.BootstrapResampler(res.Probes(&plan.Sensitivity{Table: tb}))
	if rs == nil {
		t.Fatal("no resampler for activation rows")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const reps = 3000
	draws := make([][]float64, len(res.Layers))
	for range reps {
		c := *tb
		c.Layers = slices.Clone(tb.Layers)
		rs.Draw(rng, &c)
		for k, i := range res.Layers {
			if c.Layers[i].AvgTrace != tb.Layers[i].AvgTrace {
				t.Fatalf("layer %s: weight trace moved without rows or a standard error", c.Layers[i].Name)
			}
			draws[k] = append(draws[k], c.Layers[i].ActAvgTrace)
		}
	}
	n := float64(len(rows))
	for k, i := range res.Layers {
		l := tb.Layers[i]
		size := float64(res.Traces.Blocks[k].Size)
		var m2, m4 float64
		for _, r := range rows {
			d := r[k]/size - l.ActAvgTrace
			m2 += d * d / n
			m4 += d * d * d * d / n
		}
		v := m2 / n
		if want := (n - 1) / n * l.ActAvgTraceStderr * l.ActAvgTraceStderr; math.Abs(v-want) > 1e-9*want {
			t.Fatalf("layer %s: (1/n²)Σ(x−x̄)² = %v, (n−1)/n·stderr² = %v", l.Name, v, want)
		}
		mean, sd := stat.MeanStdDev(draws[k], nil)
		if z := (mean - l.ActAvgTrace) / math.Sqrt(v/reps); math.Abs(z) > 4.5 {
			t.Errorf("layer %s: replicates' act_avg_trace %.6g, estimate %.6g (z = %.2f)", l.Name, mean, l.ActAvgTrace, z)
		}
		kurt := m4/(m2*m2)/n - 3/n
		if z := (sd*sd - v) / (v * math.Sqrt(2/float64(reps-1)+kurt/reps)); math.Abs(z) > 4.5 {
			t.Errorf("layer %s: replicates' variance %.6g, want (n−1)/n·stderr² = %.6g (z = %.2f)", l.Name, sd*sd, v, z)
		}
	}
	// Ω follows the drawn traces (the table's own terms, not Scores).
	c := *tb
	c.Layers = slices.Clone(tb.Layers)
	rs.Draw(rng, &c)
	if l := c.Layers[res.Layers[0]]; l.Omega("4") != l.AvgTrace*l.DeltaSq["4"]+l.ActAvgTrace*l.ActDeltaSq["4"] || l.Scores != nil {
		t.Errorf("Ω after a draw: %+v", l)
	}
}

// TestBootstrapDiagScores: on a diag table (LeNet, 32 samples, 12 weight
// and 12 activation probes), plan.BootstrapResampler rebuilds every
// layer's Ω at every candidate from the resampled rows: the weights'
// diagonal sums (plan.Sensitivity.Diagonal) plus the activation term's
// (ActivationResult.WeightedSamples), each run's rows drawn on its own.
// Over 2,000 replicates each score's mean is its estimate within 4.5
// Monte-Carlo standard errors (false failure about 7·10⁻⁶ per check, 15
// checks; a wrong column, another width's or layer's, moves the mean by
// far more) and its variance is the two runs' bootstrap variances
// (1/n²)Σ(x − x̄)² added, within 20 % (7 Monte-Carlo standard deviations
// of a variance from 2,000 draws, 2.6 %·√(1 + κ/2), at the rows'
// kurtosis).
func TestBootstrapDiagScores(t *testing.T) {
	e, _, _ := actCase(t)
	dir := filepath.Join("..", "testdata", "ref", "lenet")
	ds, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := hessian.Settings{Seed: 2, MinProbes: 12, MaxProbes: 12}
	s, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: ds, Method: plan.Hutchinson, Trace: &set, Diag: true,
		Candidates: []sensitivity.Precision{{W: 4, A: 4}, {W: 4, A: 8}, {W: 8, A: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Diagonal == nil {
		t.Fatal("Analyze with Diag kept no diagonal sums")
	}
	res, err := ActivationTerm(ctx, e, ds, s.Table, &ActivationSettings{Trace: &set})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.WeightedSamples) != len(res.Traces.Samples) {
		t.Fatalf("%d weighted rows for %d trace rows", len(res.WeightedSamples), len(res.Traces.Samples))
	}
	rs := plan.BootstrapResampler(res.Probes(s))
	if rs == nil || !strings.Contains(rs.Method, "diag Ω from the same rows") {
		t.Fatalf("resampling %+v", rs)
	}
	tb := s.Table
	rng := rand.New(rand.NewPCG(7, 8))
	const reps = 2000
	keys := []string{"4", "w4a8", "8"}
	draws := map[string][]float64{}
	for range reps {
		c := *tb
		c.Layers = slices.Clone(tb.Layers)
		rs.Draw(rng, &c)
		for _, l := range c.Layers {
			for _, key := range keys {
				draws[l.Name+"@"+key] = append(draws[l.Name+"@"+key], l.Scores[key])
			}
		}
	}
	// The bootstrap variance of a column mean given its rows.
	bootVar := func(rows [][]float64, col int) (v, kurt float64) {
		n := float64(len(rows))
		var m, m2, m4 float64
		for _, r := range rows {
			m += r[col] / n
		}
		for _, r := range rows {
			d := r[col] - m
			m2 += d * d / n
			m4 += d * d * d * d / n
		}
		return m2 / n, m4 / (m2 * m2)
	}
	wcol := map[string]int{}
	for j, w := range s.Diagonal.Weighted {
		wcol[w.Name] = j
	}
	for k, i := range res.Layers {
		l := tb.Layers[i]
		for _, key := range keys {
			p, _ := sensitivity.ParsePrecision(key)
			vw, kw := bootVar(s.Diagonal.Samples, wcol[l.Name+"@"+key])
			va, ka := bootVar(res.WeightedSamples, k*len(res.Widths)+slices.Index(res.Widths, p.A))
			v := vw + va
			d := draws[l.Name+"@"+key]
			mean, sd := stat.MeanStdDev(d, nil)
			if z := (mean - l.Scores[key]) / math.Sqrt(v/reps); math.Abs(z) > 4.5 {
				t.Errorf("%s at %s: replicates' Ω %.6g, estimate %.6g (z = %.2f)", l.Name, key, mean, l.Scores[key], z)
			}
			if r := sd * sd / v; math.Abs(r-1) > 0.2 {
				t.Errorf("%s at %s: replicates' variance %.4g, weight + activation bootstrap variances %.4g (ratio %.3f; row kurtosis %.1f, %.1f)", l.Name, key, sd*sd, v, r, kw, ka)
			}
		}
	}
}
