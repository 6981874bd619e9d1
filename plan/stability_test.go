package plan

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/sensitivity"
	"gonum.org/v1/gonum/stat"
)

// actMarginCase is a table whose plan turns on the activation term: two
// layers of equal MACs, candidates W4A4 and W4A8 (the same weights, so
// the weight traces cannot tell them apart), and a BOPS budget that lets
// exactly one layer read 8-bit activations. The one with the larger
// activation gain ActAvgTrace · (E‖Δa‖²₄ − E‖Δa‖²₈) gets it; the two
// gains are 1.00 and 0.95, and the activation traces come from 30 probe
// rows with exactly that mean and a 20 % relative standard deviation (a
// 3.7 % standard error), so the margin is within the noise. The weight
// traces come from 30 such rows too. It returns the request, the analysis and the activation estimate.
func actMarginCase(t *testing.T) (*Request, *Sensitivity, *hessian.TraceResult) {
	t.Helper()
	const probes = 30
	r := rand.New(rand.NewPCG(11, 12))
	rows := func(means []float64, rel float64) *hessian.TraceResult {
		res := &hessian.TraceResult{Method: "hutchinson", Probes: probes, Samples: make([][]float64, probes), TotalSamples: make([]float64, probes)}
		for i := range res.Samples {
			res.Samples[i] = make([]float64, len(means))
		}
		col := make([]float64, probes)
		for k, m := range means {
			// Normal noise scaled to the exact sample mean m and
			// standard deviation rel·m.
			for i := range col {
				col[i] = r.NormFloat64()
			}
			mu, sd := stat.MeanStdDev(col, nil)
			for i, x := range col {
				col[i] = m * (1 + rel*(x-mu)/sd)
				res.Samples[i][k] = col[i]
				res.TotalSamples[i] += col[i]
			}
			e, err := hessian.Summarize(col, 0.95)
			if err != nil {
				t.Fatal(err)
			}
			e.Name, e.Size = []string{"a", "b"}[k], 100
			res.Blocks = append(res.Blocks, e)
		}
		return res
	}
	w := rows([]float64{100, 100}, 0.2)  // Tr(H_W) of 100 weights each
	act := rows([]float64{100, 95}, 0.2) // Tr(H_a) of 100 input elements each
	tab := &sensitivity.Table{Model: "margin"}
	for k, name := range []string{"a", "b"} {
		tab.Layers = append(tab.Layers, sensitivity.Layer{Name: name, Params: 100, MACs: 1000,
			AvgTrace: w.Blocks[k].Trace / 100, AvgTraceStderr: w.Blocks[k].StdErr / 100,
			ActAvgTrace: act.Blocks[k].Trace / 100, ActAvgTraceStderr: act.Blocks[k].StdErr / 100,
			DeltaSq:    map[string]float64{"4": 1, "w4a8": 1},
			ActDeltaSq: map[string]float64{"4": 1.01, "w4a8": 0.01}})
	}
	spec, err := budget.Parse(budget.BOPS, "50%")
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Table: tab, Budgets: []Budget{{"bops", spec}}}, &Sensitivity{Table: tab, Traces: w}, act
}

// TestStabilityActivationTerm: on a plan decided by the activation term,
// resampling the weight probes alone (the old --stability) reports the
// plan 100 % stable, while resampling the activation probes too moves
// it; the parametric resampler does the same from the standard errors.
func TestStabilityActivationTerm(t *testing.T) {
	req, s, act := actMarginCase(t)
	ctx := context.Background()
	nominal, err := Solve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := nominal.Layers[0].Choice + "/" + nominal.Layers[1].Choice; got != "w4a8/4" && got != "4/w4a8" {
		t.Fatalf("nominal plan %s: want one layer at w4a8", got)
	}
	const runs = 100
	old, err := StabilityOf(ctx, req, nominal, runs, 1, BootstrapResampler(Probes{Analysis: s}))
	if err != nil {
		t.Fatal(err)
	}
	if old.Unchanged != runs {
		t.Errorf("weight probes only: %d of %d unchanged, want all (the weights cannot tell W4A4 from W4A8)", old.Unchanged, runs)
	}
	rs := BootstrapResampler(Probes{Analysis: s, Activation: act, ActivationLayers: []int{0, 1}})
	if !strings.Contains(rs.Method, "activation traces: bootstrap over their 30 probes") {
		t.Errorf("method %q", rs.Method)
	}
	both, err := StabilityOf(ctx, req, nominal, runs, 1, rs)
	if err != nil {
		t.Fatal(err)
	}
	// A replicate's gain difference is about normal with mean 0.05 and
	// standard deviation 0.050 (the two gains' 3.65 % and 3.47 %
	// standard errors): the plan flips with probability p ≈ 0.16, and
	// fewer than 4 or more than 33 flips of 100 have a binomial
	// probability below 3·10⁻⁴ for any p in [0.14, 0.18].
	flips := runs - both.Unchanged
	if flips < 4 || flips > 33 {
		t.Errorf("weight and activation probes: %d of %d plans changed, want about 16", flips, runs)
	}
	for _, l := range both.Layers {
		if f := l.Freq[l.Nominal]; math.Abs(f-float64(both.Unchanged)/runs) > 1e-9 {
			t.Errorf("layer %s: nominal frequency %v, unchanged fraction %v (one of two layers flips exactly when the other does)", l.Name, f, float64(both.Unchanged)/runs)
		}
	}
	par, err := StabilityOf(ctx, req, nominal, runs, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := runs - par.Unchanged; f < 4 || f > 33 {
		t.Errorf("parametric: %d of %d plans changed, want about 16", f, runs)
	}
	// The request's table is untouched.
	if req.Table.Layers[0].ActAvgTrace != act.Blocks[0].Trace/100 {
		t.Error("resampling changed the request's table")
	}
}

// TestStabilityQuadraticScores: with the exact activation term in Scores
// (--act-quadratic), the weight resample moves Ω by its weight term only,
// on copies of the scores.
func TestStabilityQuadraticScores(t *testing.T) {
	req, s, _ := actMarginCase(t)
	tab := req.Table
	for i := range tab.Layers {
		l := &tab.Layers[i]
		l.Scores = map[string]float64{}
		for key, d := range l.DeltaSq {
			l.Scores[key] = l.AvgTrace*d + 7 // 7: the exact activation term
		}
		l.ActAvgTrace, l.ActAvgTraceStderr = 0, 0
	}
	rs := BootstrapResampler(Probes{Analysis: s, ActivationLayers: []int{0, 1}})
	if !strings.Contains(rs.Method, "activation term: exact quadratic form, fixed") {
		t.Errorf("method %q", rs.Method)
	}
	cp := *tab
	cp.Layers = append([]sensitivity.Layer(nil), tab.Layers...)
	rs.Draw(rand.New(rand.NewPCG(1, 2)), &cp)
	for i, l := range cp.Layers {
		if l.AvgTrace == tab.Layers[i].AvgTrace {
			t.Errorf("layer %s: weight trace not resampled", l.Name)
		}
		for key, d := range l.DeltaSq {
			if got, want := l.Scores[key], l.AvgTrace*d+7; math.Abs(got-want) > 1e-12*want {
				t.Errorf("layer %s at %s: Ω %v, want the resampled weight term + 7 = %v", l.Name, key, got, want)
			}
			if tab.Layers[i].Scores[key] != tab.Layers[i].AvgTrace*d+7 {
				t.Errorf("layer %s: the original scores changed", l.Name)
			}
		}
	}
}

// TestStabilityAttentionLayer: a table with layers beyond the trace
// blocks (an attention point with measured Ω, appended after the units)
// resamples the weight layers by name and leaves the extra layer alone
// (the weights-only resampler indexed rows by table position and read
// past a row's end there).
func TestStabilityAttentionLayer(t *testing.T) {
	req, s, act := actMarginCase(t)
	att := sensitivity.Layer{Name: "attn", Kind: sensitivity.KindAttention, MACs: 10,
		Scores: map[string]float64{"4": 0.5, "w4a8": 0.1}, DeltaSq: map[string]float64{"4": 0, "w4a8": 0}}
	req.Table.Layers = append(req.Table.Layers, att)
	rs := BootstrapResampler(Probes{Analysis: s, Activation: act, ActivationLayers: []int{0, 1}})
	cp := *req.Table
	cp.Layers = append([]sensitivity.Layer(nil), req.Table.Layers...)
	rs.Draw(rand.New(rand.NewPCG(3, 4)), &cp)
	if l := cp.Layers[2]; l.Scores["4"] != 0.5 || l.Scores["w4a8"] != 0.1 || l.AvgTrace != 0 || l.ActAvgTrace != 0 {
		t.Errorf("attention layer changed: %+v", l)
	}
	if cp.Layers[0].AvgTrace == req.Table.Layers[0].AvgTrace || cp.Layers[1].ActAvgTrace == req.Table.Layers[1].ActAvgTrace {
		t.Error("weight layers not resampled")
	}
}
