package hessian

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"testing"

	"gonum.org/v1/gonum/mat"
)

var updateIntervals = flag.Bool("update-intervals", false, "rewrite ../testdata/intervals/hall.json (samples and the intervals computed from them)")

// intervalCase is one run's per-probe samples and the intervals the
// estimators report for them; python/tests/test_stats.py checks that
// bitplan_torch computes the same intervals from the same samples.
type intervalCase struct {
	Name         string      `json:"name"`
	Confidence   float64     `json:"confidence"`
	Blocks       []string    `json:"blocks"`
	Sizes        []int       `json:"sizes"`
	Samples      [][]float64 `json:"samples"`
	TotalSamples []float64   `json:"total_samples"`
	Trace        []float64   `json:"trace"`
	StdErr       []float64   `json:"stderr"`
	Lo           []float64   `json:"lo"`
	Hi           []float64   `json:"hi"`
	// The whole operator's estimate.
	TotalLo float64 `json:"total_lo"`
	TotalHi float64 `json:"total_hi"`
}

const intervalsFile = "../testdata/intervals/hall.json"

// intervalRuns makes the committed samples: Hutchinson on skewedOperator
// (right-skewed samples, 10 and 30 probes), on its negative (left-skewed),
// and on a flat indefinite spectrum (little skewness), at 95 % and 99 %.
func intervalRuns(t *testing.T) []intervalCase {
	m, blocks := skewedOperator()
	var neg mat.SymDense
	neg.ScaleSym(-1, m)
	flat := fromSpectrum(indefiniteSpectrum(30, newTestRand(5)), newTestRand(6))
	runs := []struct {
		name  string
		m     mat.Symmetric
		n     int
		seed  uint64
		level float64
	}{
		{"skewed-10", m, 10, 1, 0.95},
		{"skewed-30", m, 30, 2, 0.95},
		{"skewed-10-99", m, 10, 3, 0.99},
		{"negative-12", &neg, 12, 4, 0.95},
		{"flat-20", flat, 20, 5, 0.95},
	}
	var out []intervalCase
	for _, r := range runs {
		res, err := Hutchinson(context.Background(), Dense(r.m, blocks), &Settings{Seed: r.seed, MinProbes: r.n, MaxProbes: r.n, Confidence: r.level})
		if err != nil {
			t.Fatal(err)
		}
		c := intervalCase{Name: r.name, Confidence: r.level, Samples: res.Samples, TotalSamples: res.TotalSamples,
			TotalLo: res.Total.Lo, TotalHi: res.Total.Hi}
		for _, b := range res.Blocks {
			c.Blocks, c.Sizes = append(c.Blocks, b.Name), append(c.Sizes, b.Size)
			c.Trace, c.StdErr = append(c.Trace, b.Trace), append(c.StdErr, b.StdErr)
			c.Lo, c.Hi = append(c.Lo, b.Lo), append(c.Hi, b.Hi)
		}
		out = append(out, c)
	}
	return out
}

// TestIntervalsGolden recomputes the intervals of the committed samples
// (testdata/intervals/hall.json) with AtConfidence and compares them with
// the committed ones, which the PyTorch reference implementation's test
// compares its own with: both implementations agree through this file.
// Regenerate with go test ./hessian -run IntervalsGolden -update-intervals.
func TestIntervalsGolden(t *testing.T) {
	if *updateIntervals {
		raw, err := json.MarshalIndent(intervalRuns(t), "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll("../testdata/intervals", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(intervalsFile, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(intervalsFile)
	if err != nil {
		t.Fatalf("%v (regenerate with go test ./hessian -run IntervalsGolden -update-intervals)", err)
	}
	var cases []intervalCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("%s: %v", intervalsFile, err)
	}
	if len(cases) < 5 {
		t.Fatalf("%s: %d cases, want 5", intervalsFile, len(cases))
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*max(1, math.Abs(b)) }
	skewed := 0
	for _, c := range cases {
		res := &TraceResult{Method: "hutchinson", Samples: c.Samples, TotalSamples: c.TotalSamples, Confidence: 0.5}
		for j, name := range c.Blocks {
			res.Blocks = append(res.Blocks, Estimate{Name: name, Size: c.Sizes[j]})
		}
		got, err := res.AtConfidence(c.Confidence)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for j, b := range got.Blocks {
			if !near(b.Trace, c.Trace[j]) || !near(b.StdErr, c.StdErr[j]) || !near(b.Lo, c.Lo[j]) || !near(b.Hi, c.Hi[j]) {
				t.Errorf("%s block %s: %v ± %v [%v, %v], committed %v ± %v [%v, %v]", c.Name, b.Name,
					b.Trace, b.StdErr, b.Lo, b.Hi, c.Trace[j], c.StdErr[j], c.Lo[j], c.Hi[j])
			}
			// A skewed run's interval is asymmetric about the mean.
			if math.Abs((b.Hi-b.Trace)-(b.Trace-b.Lo)) > 0.05*(b.Hi-b.Lo) {
				skewed++
			}
		}
		if !near(got.Total.Lo, c.TotalLo) || !near(got.Total.Hi, c.TotalHi) {
			t.Errorf("%s total: [%v, %v], committed [%v, %v]", c.Name, got.Total.Lo, got.Total.Hi, c.TotalLo, c.TotalHi)
		}
	}
	// The file must exercise the skewness correction, not only Student's t.
	if skewed < 6 {
		t.Errorf("only %d block intervals are visibly asymmetric: the committed samples do not test the correction", skewed)
	}
}
