package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/profiles"
)

var hawqPath = filepath.Join("..", "..", "..", "testdata", "hawq_resnet18.json")

// TestSpearman checks the rank correlation against the textbook formula
// 1 − 6Σd²/(n(n²−1)), valid without ties, and a hand-computed tie case.
func TestSpearman(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 200; trial++ {
		n := 3 + rng.IntN(30)
		x, y := make([]float64, n), make([]float64, n)
		for i := range x {
			x[i], y[i] = rng.Float64(), rng.Float64()
		}
		rx, ry := rank(x), rank(y)
		var d2 float64
		for i := range rx {
			d2 += (rx[i] - ry[i]) * (rx[i] - ry[i])
		}
		want := 1 - 6*d2/float64(n*(n*n-1))
		if got := spearman(x, y); math.Abs(got-want) > 1e-12 {
			t.Fatalf("n=%d: spearman %g, formula %g", n, got, want)
		}
	}
	// Ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4]: ρ = 4.5/√(4.5·5).
	if got, want := spearman([]float64{1, 2, 2, 3}, []float64{10, 20, 30, 40}), 4.5/math.Sqrt(4.5*5); math.Abs(got-want) > 1e-12 {
		t.Errorf("ties: %g, want %g", got, want)
	}
}

func TestLayersDerived(t *testing.T) {
	h, err := loadHAWQ(hawqPath)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := h.layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 19 || ls[0].InElems != 64*56*56 || ls[18].OutElems != 512*7*7 {
		t.Errorf("layers %+v", ls)
	}
	h.Layers[3].Kernel = 1
	if _, err := h.layers(); err == nil || !strings.Contains(err.Error(), h.Layers[3].Name) {
		t.Errorf("inconsistent shape: %v", err)
	}
	gs, err := h.groups()
	if err != nil || len(gs) != 16 {
		t.Fatalf("groups %v, %v", gs, err)
	}
}

// TestReproducesHAWQ checks that the enumeration finds HAWQ's published
// optimum for each of its nine schemes, and that the measured-table plans
// equal the plans solved with the measured table as a profiles.Table.
func TestReproducesHAWQ(t *testing.T) {
	h, err := loadHAWQ(hawqPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Builtin("t4")
	if err != nil {
		t.Fatal(err)
	}
	r, err := analyse(h, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.schemes) != 9 {
		t.Fatalf("%d schemes", len(r.schemes))
	}
	for _, s := range r.schemes {
		if !s.publishedOK || math.Abs(s.optimum-s.published) > 1e-9*s.published {
			t.Errorf("%s: enumerated %g, HAWQ %g (feasible %v)", s.name, s.optimum, s.published, s.publishedOK)
		}
	}
	// ilp.Solve agrees with the enumeration on every budget.
	if r.ilpErr != nil || r.ilpN != 45 || r.ilpWorst > 1e-9 {
		t.Errorf("ilp.Solve cross-check: %d budgets, worst %g, err %v", r.ilpN, r.ilpWorst, r.ilpErr)
	}
	// The measured table read through profiles.LoadTable overrides the
	// roofline with exactly HAWQ's numbers.
	tb, err := profiles.LoadTable(hawqPath)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := h.layers()
	cs, err := p.CostAll(ls, []profiles.Precision{profiles.W4A4, profiles.W8A8}, &profiles.Options{Batch: batch, Table: tb})
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range cs.Costs {
		for j, c := range row {
			if c.Bound != profiles.Measured || math.Abs(c.Latency*1e3-r.rows[i].measured[j]) > 1e-12 {
				t.Errorf("%s %s: %g ms (%s), want measured %g", c.Layer, c.Requested, c.Latency*1e3, c.Bound, r.rows[i].measured[j])
			}
		}
	}
}

// TestCalibrationHeldOut: the profile fitted on the even layers predicts the
// odd layers, which the fit never saw, within the 25 % target, and the
// training table holds only even layers.
func TestCalibrationHeldOut(t *testing.T) {
	h, err := loadHAWQ(hawqPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Builtin("t4")
	if err != nil {
		t.Fatal(err)
	}
	r, err := analyse(h, p)
	if err != nil {
		t.Fatal(err)
	}
	c := r.calib
	if len(c.train) != 10 || len(c.test) != 9 || len(c.cal.Points) != 20 {
		t.Fatalf("split %d/%d, %d points", len(c.train), len(c.test), len(c.cal.Points))
	}
	for _, pt := range c.cal.Points {
		for _, i := range c.test {
			if pt.Layer == h.Layers[i].Name {
				t.Errorf("held-out layer %s in the training table", pt.Layer)
			}
		}
	}
	if c.before.medianAbs < 0.5 || c.after.medianAbs > 0.25 {
		t.Errorf("held-out median |error| %.3f before, %.3f after; want the datasheet roofline far off and the calibrated within 25%%", c.before.medianAbs, c.after.medianAbs)
	}
}

// TestDocUpToDate regenerates docs/profiles-validation.md and compares.
func TestDocUpToDate(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(&out, &errb, []string{"-in", hawqPath, "-out", "-"}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "profiles-validation.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Error("docs/profiles-validation.md is stale: run go run ./profiles/internal/validate from the repository root")
	}
}

func TestRunErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(&out, &errb, []string{"extra"}); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("extra argument: %v", err)
	}
	if err := run(&out, &errb, []string{"-in", hawqPath, "-profile", "nosuch", "-out", "-"}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("bad profile: %v", err)
	}
	if err := run(&out, &errb, []string{"-in", "missing.json"}); err == nil {
		t.Error("missing input: no error")
	}
}
