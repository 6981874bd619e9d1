package plan

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/budget"
)

func TestSweepMonotone(t *testing.T) {
	tab, _ := loadHAWQ(t)
	req := &Request{Table: tab}
	f, err := Sweep(context.Background(), req, "bops", Fractions(0, 1, 11))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Points) != 11 {
		t.Fatalf("%d points", len(f.Points))
	}
	prev := 1e300
	for _, pt := range f.Points {
		if pt.Plan.Status != "optimal" {
			t.Fatalf("fraction %v: %s", pt.Fraction, pt.Plan.Status)
		}
		obj := *pt.Plan.Objective
		if obj > prev*(1+1e-12) {
			t.Errorf("fraction %v: Ω %v rose above %v with a looser budget", pt.Fraction, obj, prev)
		}
		prev = obj
		if s := pt.Plan.Usage["bops"].ShadowPrice; s == nil || *s < 0 {
			t.Errorf("fraction %v: shadow price %v", pt.Fraction, s)
		}
	}
	// All-8 at 100 %, all-4 at 0 %.
	if mix(f.Points[10].Plan) != "8×19" || mix(f.Points[0].Plan) != "4×19" {
		t.Errorf("ends: %q, %q", mix(f.Points[0].Plan), mix(f.Points[10].Plan))
	}
	var buf bytes.Buffer
	for _, fm := range []Format{Text, Markdown, CSV, JSON} {
		buf.Reset()
		if err := f.Write(&buf, fm); err != nil || buf.Len() == 0 {
			t.Errorf("format %s: %v", fm, err)
		}
	}
	svg := filepath.Join(t.TempDir(), "f.svg")
	if err := f.Plot(svg, "ResNet18"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(svg); !strings.Contains(string(b), "<svg") {
		t.Errorf("no SVG written")
	}
	if err := f.Plot(filepath.Join(t.TempDir(), "f.bmpx"), "x"); err == nil {
		t.Errorf("unknown image extension accepted")
	}
	if _, err := Sweep(context.Background(), req, "energy", []float64{0.5}); err == nil {
		t.Errorf("sweep of a missing resource accepted")
	}
}

func TestStability(t *testing.T) {
	tab, _ := loadHAWQ(t)
	spec, _ := budget.Parse(budget.BOPS, "50%")
	req := &Request{Table: tab, Budgets: []Budget{{"bops", spec}}}
	nominal, err := Solve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// Exact traces (stderr 0) never move the plan.
	st, err := StabilityOf(context.Background(), req, nominal, 20, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unchanged != 20 {
		t.Errorf("exact traces: %d/20 unchanged", st.Unchanged)
	}
	// 30 % relative error moves some layers; seeded runs repeat exactly.
	noisy := *tab
	noisy.Layers = append(noisy.Layers[:0:0], tab.Layers...)
	for i := range noisy.Layers {
		noisy.Layers[i].AvgTraceStderr = 0.3 * noisy.Layers[i].AvgTrace
	}
	req.Table = &noisy
	a, err := StabilityOf(context.Background(), req, nominal, 50, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := StabilityOf(context.Background(), req, nominal, 50, 7, nil)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different results")
	}
	if a.Unchanged == 50 || a.Unchanged == 0 {
		t.Errorf("30%% noise: %d/50 unchanged; expected some but not all plans to change", a.Unchanged)
	}
	for _, l := range a.Layers {
		sum := 0.0
		for _, f := range l.Freq {
			sum += f
		}
		if sum < 0.999 || sum > 1.001 {
			t.Errorf("layer %s: frequencies sum to %v", l.Name, sum)
		}
	}
}
