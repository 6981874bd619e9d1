// Command study regenerates docs/validation.md: does the Hessian-aware ILP
// plan (HAWQ-V3, arXiv:2011.10680, with HAWQ-V2's Hutchinson traces,
// arXiv:1911.03852) give better fake-quantized accuracy than the simple
// alternatives at the same model-size budget?
//
// For every model and budget it evaluates on the MNIST test set
//
//	(a) the ILP plan: plan.Analyze (Hutchinson traces) + plan.Solve;
//	(b) the best uniform precision that fits the budget;
//	(c) random feasible mixed plans at the same budget (mean and best);
//	(d) the ILP on Ω without the Hessian (avg_trace = 1: Σ‖ΔW‖² only).
//
// Run from the repository root:
//
//	go run ./eval/internal/study [-o docs/validation.md] [-models lenet,rescnn,mlp] [-test lenet=10000,...]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// config is the study's setup; every field is printed in the document.
type config struct {
	models     []string
	test       map[string]int
	calib      int
	probes     int
	tol        float64
	seed       uint64
	randomN    int
	budgets    []float64
	candidates []sensitivity.Precision
	batch      int
}

func main() {
	out := flag.String("o", "docs/validation.md", "write the document to `FILE` (- for standard output)")
	models := flag.String("models", "lenet,rescnn,mlp", "comma-separated `MODELS` of testdata/models")
	test := flag.String("test", "lenet=10000,rescnn=2000,mlp=10000", "test samples per model (`NAME=N,...`; other models: 10000)")
	calib := flag.Int("calib", 256, "calibration samples (training set) for traces and activation ranges")
	probes := flag.Int("probes", 50, "Hutchinson probe limit")
	seed := flag.Uint64("seed", 1, "seed of the Hutchinson probes and of the random plans")
	randomN := flag.Int("random", 20, "random feasible mixed plans per budget")
	budgets := flag.String("budgets", "10,20,30,50", "size budgets in `PERCENT` of the all-W2..all-W8 range, comma-separated")
	flag.Parse()
	cfg := config{calib: *calib, probes: *probes, tol: 0.05, seed: *seed, randomN: *randomN,
		candidates: []sensitivity.Precision{{W: 2, A: 8}, {W: 3, A: 8}, {W: 4, A: 8}, {W: 8, A: 8}},
		test:       map[string]int{}, batch: 16}
	cfg.models = strings.Split(*models, ",")
	for _, b := range strings.Split(*budgets, ",") {
		v, err := strconv.ParseFloat(b, 64)
		if err != nil || v < 0 || v > 100 {
			fmt.Fprintf(os.Stderr, "study: flag -budgets: %q is not a percentage in [0, 100]\n", b)
			os.Exit(2)
		}
		cfg.budgets = append(cfg.budgets, v)
	}
	for _, kv := range strings.Split(*test, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "study: flag -test: %q is not NAME=N\n", kv)
			os.Exit(2)
		}
		cfg.test[k] = n
	}
	args := strings.Join(os.Args[1:], " ")
	if err := run(context.Background(), cfg, args, *out); err != nil {
		fmt.Fprintln(os.Stderr, "study:", err)
		os.Exit(1)
	}
}

// evaluated is one plan's outcome.
type evaluated struct {
	choice   []int // candidate index per layer
	size     float64
	omega    float64 // Σ Tr/n · Δ²
	deltaSq  float64 // Σ Δ²
	accuracy float64
	loss     float64
}

// budgetResult holds the four methods at one budget.
type budgetResult struct {
	pct     float64
	limit   float64
	ilp     evaluated
	uniform *evaluated // nil when no uniform candidate fits
	uniKey  string
	noHess  evaluated
	random  []evaluated
	pool    int // maximal feasible mixed plans to draw from
}

// modelResult is one model's study.
type modelResult struct {
	name      string
	layers    []sensitivity.Layer
	keys      [][]string
	precs     [][]sensitivity.Precision
	float     nn.Eval
	testN     int
	probes    int
	budgets   []budgetResult
	all       []evaluated // every distinct plan evaluated
	traceTime time.Duration
	wall      time.Duration
}

func run(ctx context.Context, cfg config, args, out string) error {
	start := time.Now()
	calib, err := data.MNIST(data.Train, cfg.calib)
	if err != nil {
		return err
	}
	var results []*modelResult
	for _, name := range cfg.models {
		n, ok := cfg.test[name]
		if !ok {
			n = 10000
		}
		test, err := data.MNIST(data.Test, n)
		if err != nil {
			return err
		}
		r, err := study(ctx, cfg, name, calib, test)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	total := time.Since(start)
	var w io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return write(w, cfg, args, results, total)
}

func study(ctx context.Context, cfg config, name string, calib, test data.Dataset) (*modelResult, error) {
	t0 := time.Now()
	m, err := model.Load(filepath.Join("testdata", "models", name+".onnx"))
	if err != nil {
		return nil, err
	}
	e, err := nn.New(m, &nn.Options{BatchSize: cfg.batch})
	if err != nil {
		return nil, err
	}
	res := &modelResult{name: name, testN: test.Len()}
	if res.float, err = e.Evaluate(ctx, test); err != nil {
		return nil, err
	}
	s, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: calib, Model: name,
		Trace:      &hessian.Settings{Seed: cfg.seed, Tol: cfg.tol, MinProbes: 10, MaxProbes: cfg.probes},
		Candidates: cfg.candidates})
	if err != nil {
		return nil, err
	}
	res.traceTime = time.Since(t0)
	res.probes = len(s.Traces.Samples)
	tbl := s.Table
	res.layers = tbl.Layers
	for i := range tbl.Layers {
		p, k := tbl.Layers[i].Candidates()
		res.precs = append(res.precs, p)
		res.keys = append(res.keys, k)
	}
	flat := &sensitivity.Table{Model: tbl.Model, Layers: slices.Clone(tbl.Layers)}
	for i := range flat.Layers {
		flat.Layers[i].AvgTrace, flat.Layers[i].AvgTraceStderr, flat.Layers[i].Trace = 1, 0, nil
	}
	cache := map[string]evaluated{}
	evalChoice := func(choice []int) (evaluated, error) {
		key := fmt.Sprint(choice)
		if ev, ok := cache[key]; ok {
			return ev, nil
		}
		ev := res.score(choice)
		var layers []eval.Layer
		for i, c := range choice {
			p := res.precs[i][c]
			layers = append(layers, eval.Layer{Name: res.layers[i].Name, Bits: p.W, ABits: p.A})
		}
		a, err := eval.Apply(ctx, e, layers, calib, nil)
		if err != nil {
			return ev, err
		}
		r, err := e.Evaluate(ctx, test)
		a.Restore()
		if err != nil {
			return ev, err
		}
		ev.accuracy, ev.loss = r.Accuracy(), r.Loss
		cache[key] = ev
		res.all = append(res.all, ev)
		fmt.Fprintf(os.Stderr, "study: %s %v: accuracy %.4f (%s)\n", name, res.describe(choice), ev.accuracy, time.Since(t0).Round(time.Second))
		return ev, nil
	}
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	for _, pct := range cfg.budgets {
		spec, err := budget.Parse(budget.Size, strconv.FormatFloat(pct, 'g', -1, 64)+"%")
		if err != nil {
			return nil, err
		}
		req := &plan.Request{Table: tbl, Resources: []plan.Resource{plan.SizeResource}, Budgets: []plan.Budget{{Resource: "size", Spec: spec}}}
		p, err := plan.Solve(ctx, req)
		if err != nil {
			return nil, err
		}
		if p.Status != "optimal" {
			return nil, fmt.Errorf("budget %g%%: ILP status %s", pct, p.Status)
		}
		br := budgetResult{pct: pct, limit: *p.Usage["size"].Limit}
		if br.ilp, err = evalChoice(res.choiceOf(p)); err != nil {
			return nil, err
		}
		fp, err := plan.Solve(ctx, &plan.Request{Table: flat, Resources: []plan.Resource{plan.SizeResource}, Budgets: req.Budgets})
		if err != nil {
			return nil, err
		}
		if br.noHess, err = evalChoice(res.choiceOf(fp)); err != nil {
			return nil, err
		}
		// (b) the widest uniform candidate that fits.
		for c := len(cfg.candidates) - 1; c >= 0; c-- {
			choice := make([]int, len(tbl.Layers))
			ok := true
			for i := range choice {
				choice[i] = slices.Index(res.precs[i], cfg.candidates[c])
				ok = ok && choice[i] >= 0
			}
			if ok && res.sizeOf(choice) <= br.limit*(1+1e-12) {
				ev, err := evalChoice(choice)
				if err != nil {
					return nil, err
				}
				br.uniform, br.uniKey = &ev, cfg.candidates[c].String()
				break
			}
		}
		// (c) random maximal feasible mixed plans.
		pool := res.maximalMixed(br.limit)
		br.pool = len(pool)
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		for _, choice := range pool[:min(cfg.randomN, len(pool))] {
			ev, err := evalChoice(choice)
			if err != nil {
				return nil, err
			}
			br.random = append(br.random, ev)
		}
		res.budgets = append(res.budgets, br)
	}
	res.wall = time.Since(t0)
	return res, nil
}

// score fills a plan's size, Ω and Σ Δ² from the table.
func (r *modelResult) score(choice []int) evaluated {
	ev := evaluated{choice: slices.Clone(choice), size: r.sizeOf(choice)}
	for i, c := range choice {
		l := &r.layers[i]
		ev.omega += l.Omega(r.keys[i][c])
		ev.deltaSq += l.DeltaSq[r.keys[i][c]]
	}
	return ev
}

// sizeOf is Σ params · b_w / 8, plan.SizeResource's cost.
func (r *modelResult) sizeOf(choice []int) float64 {
	s := 0.0
	for i, c := range choice {
		s += r.layers[i].Params * float64(r.precs[i][c].W) / 8
	}
	return s
}

func (r *modelResult) choiceOf(p *plan.Plan) []int {
	choice := make([]int, len(p.Layers))
	for i, l := range p.Layers {
		choice[i] = slices.Index(r.keys[i], l.Choice)
	}
	return choice
}

func (r *modelResult) describe(choice []int) string {
	var s []string
	for i, c := range choice {
		s = append(s, strconv.Itoa(r.precs[i][c].W))
	}
	return "W" + strings.Join(s, "/")
}

// maximalMixed enumerates the plans that fit the limit, are maximal (no
// layer can take a wider candidate and still fit) and are mixed (not every
// layer at the same candidate), in lexicographic order.
func (r *modelResult) maximalMixed(limit float64) [][]int {
	n := len(r.layers)
	choice := make([]int, n)
	var out [][]int
	fits := func(c []int) bool { return r.sizeOf(c) <= limit*(1+1e-12) }
	var rec func(i int)
	rec = func(i int) {
		if i == n {
			if !fits(choice) {
				return
			}
			same := true
			for j := range choice {
				same = same && r.precs[j][choice[j]] == r.precs[0][choice[0]]
				if choice[j]+1 < len(r.precs[j]) {
					choice[j]++
					up := fits(choice)
					choice[j]--
					if up {
						return
					}
				}
			}
			if !same {
				out = append(out, slices.Clone(choice))
			}
			return
		}
		for c := range r.precs[i] {
			choice[i] = c
			rec(i + 1)
		}
	}
	rec(0)
	return out
}

func mean(v []float64) (m, sd float64) {
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	for _, x := range v {
		sd += (x - m) * (x - m)
	}
	if len(v) > 1 {
		sd = math.Sqrt(sd / float64(len(v)-1))
	}
	return m, sd
}

// spearman is the rank correlation of x and y (average ranks for ties).
func spearman(x, y []float64) float64 {
	rank := func(v []float64) []float64 {
		idx := make([]int, len(v))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
		r := make([]float64, len(v))
		for i := 0; i < len(idx); {
			j := i
			for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
				j++
			}
			for k := i; k <= j; k++ {
				r[idx[k]] = float64(i+j)/2 + 1
			}
			i = j + 1
		}
		return r
	}
	rx, ry := rank(x), rank(y)
	mx, _ := mean(rx)
	my, _ := mean(ry)
	var sxy, sxx, syy float64
	for i := range rx {
		sxy += (rx[i] - mx) * (ry[i] - my)
		sxx += (rx[i] - mx) * (rx[i] - mx)
		syy += (ry[i] - my) * (ry[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', 2, 64) }

func write(w io.Writer, cfg config, args string, results []*modelResult, total time.Duration) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	var cands []string
	for _, c := range cfg.candidates {
		cands = append(cands, "w"+strconv.Itoa(c.W)+"a"+strconv.Itoa(c.A))
	}
	cmd := "go run ./eval/internal/study"
	if args != "" {
		cmd += " " + args
	}
	p("# Validation: does the Hessian-aware ILP plan keep more accuracy?\n\n")
	p("Generated by `%s` (from the repository root; this file is its output, do not edit by hand).\n\n", cmd)
	p("## Setup\n\n")
	p("- Models: %s from `testdata/models` (float accuracy on the test samples below).\n", strings.Join(cfg.models, ", "))
	p("- Candidates per layer: %s (weights 2, 3, 4 or 8 bits; every layer's input fake-quantized to 8 bits).\n", strings.Join(cands, ", "))
	p("- Budgets: model size (Σ weights · b_w / 8) at %s of the range between all-W2 and all-W8 (HAWQ-V3's percentage convention). Low budgets are where the choice matters: with candidates 2/3/4/8 and one layer holding most of the weights, budgets from about 40 %% up leave only a few maximal plans (every small layer at 8 bits, the large one at 4), so the study spends most of its budgets below that.\n", joinPct(cfg.budgets))
	p("- Sensitivities: `plan.Analyze` on the first %d MNIST training images, Hutchinson with Rademacher probes (seed %d, stop at %.0f %% relative standard error per layer, at most %d probes); Δ² from HAWQ's symmetric per-channel min/max weight quantizer.\n", cfg.calib, cfg.seed, 100*cfg.tol, cfg.probes)
	p("- Evaluation (`eval.Apply`): weights fake-quantized with the same quantizer; each layer's data input quantized to 8 bits with a per-tensor min/max range calibrated on the same %d training images (unsigned when the input is non-negative); accuracy and mean cross-entropy on the first N MNIST test images (N per model below).\n", cfg.calib)
	p("- Methods at each budget:\n")
	p("  - **ILP**: `plan.Solve` on Ω = Tr(H)/n · ‖Q(W) − W‖² (HAWQ-V3).\n")
	p("  - **uniform**: the widest single candidate whose size fits the budget.\n")
	p("  - **random**: %d plans drawn without replacement (PCG seed (%d, 0x5eed)) from all plans that fit the budget, are *maximal* (no layer can be widened and still fit, so they spend the budget as the ILP does) and are mixed (not uniform); mean ± standard deviation and best accuracy. When fewer such plans exist, all of them (the column \"random > ILP\" shows how many were scored): models with one dominant layer have few maximal plans, and a uniform draw from all feasible plans would mostly score plans that leave budget unused.\n", cfg.randomN, cfg.seed)
	p("  - **no Hessian**: the same ILP with avg_trace = 1 for every layer (Ω = ‖Q(W) − W‖² only).\n")
	p("- Machine: %d cores shared with other jobs (GOMAXPROCS %d), engine batch %d. Total run time %s.\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cfg.batch, total.Round(time.Second))

	p("## Summary\n\nTest accuracy (%%) of each method; the best of ILP / uniform / random mean / no Hessian in bold.\n\n")
	p("| model | test N | float | budget | ILP | uniform | random mean ± sd | random best | random > ILP | no Hessian |\n")
	p("|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	type tally struct{ beatsUni, tiesUni, beatsRand, beatsBestRand, beatsNoH, tiesNoH, n int }
	var t tally
	for _, r := range results {
		for _, b := range r.budgets {
			var ra []float64
			above := 0
			for _, e := range b.random {
				ra = append(ra, e.accuracy)
				if e.accuracy > b.ilp.accuracy {
					above++
				}
			}
			rm, rsd := mean(ra)
			rbest := slices.Max(ra)
			uni := math.NaN()
			if b.uniform != nil {
				uni = b.uniform.accuracy
			}
			best := math.Max(math.Max(b.ilp.accuracy, rm), b.noHess.accuracy)
			if !math.IsNaN(uni) {
				best = math.Max(best, uni)
			}
			bold := func(v float64) string {
				if math.IsNaN(v) {
					return "-"
				}
				if v == best {
					return "**" + pct(v) + "**"
				}
				return pct(v)
			}
			uniS := bold(uni)
			if b.uniform != nil {
				uniS += " (" + b.uniKey + ")"
			}
			p("| %s | %d | %s | %g %% | %s | %s | %s ± %s | %s | %d/%d | %s |\n", r.name, r.testN, pct(r.float.Accuracy()), b.pct,
				bold(b.ilp.accuracy), uniS, bold(rm), pct(rsd), pct(rbest), above, len(b.random), bold(b.noHess.accuracy))
			t.n++
			switch {
			case b.ilp.accuracy > uni || math.IsNaN(uni):
				t.beatsUni++
			case b.ilp.accuracy == uni:
				t.tiesUni++
			}
			if b.ilp.accuracy > rm {
				t.beatsRand++
			}
			if b.ilp.accuracy >= rbest {
				t.beatsBestRand++
			}
			switch {
			case b.ilp.accuracy > b.noHess.accuracy:
				t.beatsNoH++
			case b.ilp.accuracy == b.noHess.accuracy:
				t.tiesNoH++
			}
		}
	}
	p("\n## What it shows\n\n")
	p("Over the %d model × budget cases (counts computed by the study):\n\n", t.n)
	p("- The ILP plan is more accurate than the best uniform precision that fits in %d of %d cases and ties it in %d.\n", t.beatsUni, t.n, t.tiesUni)
	p("- It is more accurate than the mean random maximal mixed plan in %d of %d cases, and at least as accurate as the best of the random plans in %d.\n", t.beatsRand, t.n, t.beatsBestRand)
	p("- It is more accurate than the ILP without the Hessian in %d of %d cases and ties it in %d (a tie is usually the same plan: see the per-model tables).\n", t.beatsNoH, t.n, t.tiesNoH)
	p("- Resolution: with N test images an accuracy near p has a binomial standard error √(p(1−p)/N): about %.2f points at p = 98 %% and N = 10,000, %.2f points at N = 2,000. All methods are scored on the same images, so differences between them are less noisy than that, but differences of one or two tenths of a point are within noise.\n", 100*math.Sqrt(0.98*0.02/10000), 100*math.Sqrt(0.98*0.02/2000))
	p("- Where another method beats the ILP by more than two binomial standard errors of the float accuracy (computed; the layers where the plans differ, with the ILP's trace estimate ± standard error):\n")
	losses := 0
	for _, r := range results {
		se := math.Sqrt(r.float.Accuracy() * (1 - r.float.Accuracy()) / float64(r.testN))
		for _, b := range r.budgets {
			type comp struct {
				name string
				e    *evaluated
			}
			cs := []comp{{"no Hessian", &b.noHess}}
			if b.uniform != nil {
				cs = append(cs, comp{"uniform " + b.uniKey, b.uniform})
			}
			if len(b.random) > 0 {
				bi := 0
				for i, e := range b.random {
					if e.accuracy > b.random[bi].accuracy {
						bi = i
					}
				}
				cs = append(cs, comp{"best random", &b.random[bi]})
			}
			for _, c := range cs {
				if c.e.accuracy-b.ilp.accuracy <= 2*se {
					continue
				}
				losses++
				var diff []string
				for i := range r.layers {
					if c.e.choice[i] != b.ilp.choice[i] {
						l := r.layers[i]
						diff = append(diff, fmt.Sprintf("%s W%d→W%d (avg trace %.3g ± %.2g)", l.Name, r.precs[i][b.ilp.choice[i]].W, r.precs[i][c.e.choice[i]].W, l.AvgTrace, l.AvgTraceStderr))
					}
				}
				p("  - %s at %g %%: %s %s %% vs ILP %s %%; ILP → %s: %s.\n", r.name, b.pct, c.name, pct(c.e.accuracy), pct(b.ilp.accuracy), c.name, strings.Join(diff, ", "))
			}
		}
	}
	if losses == 0 {
		p("  - none.\n")
	}
	var noisy []string
	for _, r := range results {
		for _, l := range r.layers {
			if l.AvgTraceStderr > 0.5*math.Abs(l.AvgTrace) {
				noisy = append(noisy, fmt.Sprintf("%s %s (%.3g ± %.2g)", r.name, l.Name, l.AvgTrace, l.AvgTraceStderr))
			}
		}
	}
	if len(noisy) > 0 {
		p("- Layers whose trace estimate has a standard error above half its value after the probe limit (the ILP's Ω for them is poorly resolved): %s.\n", strings.Join(noisy, "; "))
	}
	p("- Does Ω predict the damage? Spearman rank correlation, over every distinct plan evaluated for a model, between a plan's Ω and its test loss, and between Σ‖ΔW‖² (no Hessian) and its test loss:\n\n")
	p("| model | plans | ρ(Ω, loss) | ρ(Σ‖ΔW‖², loss) |\n|:--|--:|--:|--:|\n")
	for _, r := range results {
		var om, ds, lo []float64
		for _, e := range r.all {
			om = append(om, e.omega)
			ds = append(ds, e.deltaSq)
			lo = append(lo, e.loss)
		}
		p("| %s | %d | %.3f | %.3f |\n", r.name, len(r.all), spearman(om, lo), spearman(ds, lo))
	}
	p("\nCaveats: one seed, one calibration set, post-training quantization without any fine-tuning (HAWQ-V3 fine-tunes after choosing bits), MNIST models whose float accuracy is close to saturation, and a single resource (size). The plans are optimal for Ω, a second-order proxy of the loss increase that ignores the 8-bit activation error and cross-layer terms; the table below each model lists the plans so that the reader can judge where the proxy and the measured accuracy disagree.\n")

	for _, r := range results {
		p("\n## %s\n\n", r.name)
		var tot, big float64
		bigName := ""
		for _, l := range r.layers {
			tot += l.Params
			if l.Params > big {
				big, bigName = l.Params, l.Name
			}
		}
		p("Float accuracy %s %% (loss %.4f) on %d test images. Traces: %d probes. Largest layer %s holds %.0f %% of the weights. Run time %s (traces and float evaluation %s).\n\n",
			pct(r.float.Accuracy()), r.float.Loss, r.testN, r.probes, bigName, 100*big/tot, r.wall.Round(time.Second), r.traceTime.Round(time.Second))
		p("| layer | weights | avg trace Tr(H)/n | ± stderr | Δ² at W2 | W3 | W4 | W8 |\n|:--|--:|--:|--:|--:|--:|--:|--:|\n")
		for i, l := range r.layers {
			p("| %s | %.0f | %.4g | %.2g |", l.Name, l.Params, l.AvgTrace, l.AvgTraceStderr)
			for _, k := range r.keys[i] {
				p(" %.4g |", l.DeltaSq[k])
			}
			p("\n")
		}
		p("\nBits per layer in the order above (activations 8 bits throughout); size in bytes of weights.\n\n")
		p("| budget | method | weight bits | size | Ω | Σ‖ΔW‖² | accuracy %% | loss |\n|--:|:--|:--|--:|--:|--:|--:|--:|\n")
		row := func(b budgetResult, method string, e evaluated) {
			p("| %g %% | %s | %s | %.0f | %.4g | %.4g | %s | %.4f |\n", b.pct, method, r.describe(e.choice), e.size, e.omega, e.deltaSq, pct(e.accuracy), e.loss)
		}
		for _, b := range r.budgets {
			row(b, "ILP", b.ilp)
			if b.uniform != nil {
				row(b, "uniform "+b.uniKey, *b.uniform)
			}
			row(b, "no Hessian", b.noHess)
			rs := slices.Clone(b.random)
			sort.Slice(rs, func(i, j int) bool { return rs[i].accuracy > rs[j].accuracy })
			if len(rs) > 0 {
				row(b, "random best", rs[0])
				row(b, "random worst", rs[len(rs)-1])
			}
			p("| %g %% | (limit %.0f B; %d random plans of %d maximal mixed) | | | | | | |\n", b.pct, b.limit, len(b.random), b.pool)
		}
	}
	return nil
}

func joinPct(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.FormatFloat(x, 'g', -1, 64)+" %")
	}
	return strings.Join(s, ", ")
}
