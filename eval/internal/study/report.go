package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bitplan/bitplan/sensitivity"
)

// methods lists every compared method: the criteria, then the baselines.
func methods() []string {
	var ms []string
	for _, c := range criteria {
		ms = append(ms, string(c))
	}
	return append(ms, baselines...)
}

// perImage returns, for method m against reference ref at budget b, the
// per-test-image difference of correctness averaged over the seeds (and
// over the random plans for "random"), or nil when either method has no
// plan at this budget (no uniform plan fits).
func (r *modelResult) perImage(b int, m, ref string) []float64 {
	n := len(r.float.correct)
	d := make([]float64, n)
	for _, sr := range r.seeds {
		om, or := sr.outcomes(b, m), sr.outcomes(b, ref)
		if om == nil || or == nil {
			return nil
		}
		for j := 0; j < n; j++ {
			var a, c float64
			for _, o := range om {
				if o.correct[j] {
					a++
				}
			}
			for _, o := range or {
				if o.correct[j] {
					c++
				}
			}
			d[j] += (a/float64(len(om)) - c/float64(len(or))) / float64(len(r.seeds))
		}
	}
	return d
}

// outcomes returns a method's plans at budget b (several for random).
func (sr *seedResult) outcomes(b int, m string) []*outcome {
	if m == "random" {
		return sr.randoms[b]
	}
	if o := sr.plans[b][m]; o != nil {
		return []*outcome{o}
	}
	return nil
}

// meanAcc is a method's accuracy at budget b averaged over seeds (NaN
// without a plan).
func (r *modelResult) meanAcc(b int, m string) float64 {
	var s float64
	for _, sr := range r.seeds {
		os := sr.outcomes(b, m)
		if os == nil {
			return math.NaN()
		}
		for _, o := range os {
			s += o.accuracy() / float64(len(os))
		}
	}
	return s / float64(len(r.seeds))
}

// interval is a mean difference with its paired bootstrap interval.
type interval struct {
	mean, lo, hi float64
	n            int // cases pooled
}

func (iv interval) String() string {
	if iv.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.2f [%+.2f, %+.2f]", 100*iv.mean, 100*iv.lo, 100*iv.hi)
}

// bootstrap returns the mean of the per-model mean differences (each
// model's d averaged over its cases, then over its images; models weigh
// equally) and its 95 % percentile interval from resampling each model's
// test images with replacement, the same resample for every case of a
// model (the images are shared).
func bootstrap(ds [][][]float64, reps int, seed uint64) interval {
	// ds[model][case][image]; collapse cases first: the mean over cases
	// of per-image values is linear, so it commutes with resampling.
	var per [][]float64
	cases := 0
	for _, m := range ds {
		if len(m) == 0 {
			continue
		}
		avg := make([]float64, len(m[0]))
		for _, d := range m {
			for j, v := range d {
				avg[j] += v / float64(len(m))
			}
		}
		per = append(per, avg)
		cases += len(m)
	}
	if len(per) == 0 {
		return interval{}
	}
	stat := func(pick func(n int) int) float64 {
		var s float64
		for _, d := range per {
			var t float64
			for range d {
				t += d[pick(len(d))]
			}
			s += t / float64(len(d))
		}
		return s / float64(len(per))
	}
	var mean float64
	for _, d := range per {
		var t float64
		for _, v := range d {
			t += v
		}
		mean += t / float64(len(d)) / float64(len(per))
	}
	rng := rand.New(rand.NewPCG(seed, 0xb007))
	reps = max(reps, 20)
	bs := make([]float64, reps)
	for k := range bs {
		bs[k] = stat(rng.IntN)
	}
	sort.Float64s(bs)
	return interval{mean: mean, lo: bs[int(0.025*float64(reps))], hi: bs[int(math.Ceil(0.975*float64(reps)))-1], n: cases}
}

// tally counts wins, ties and losses of intervals against 0.
type tally struct{ win, tie, loss, better, n int }

func (t *tally) add(iv interval) {
	t.n++
	switch {
	case iv.lo > 0:
		t.win++
	case iv.hi < 0:
		t.loss++
	default:
		t.tie++
	}
	if iv.mean > 0 {
		t.better++
	}
}

func (t tally) String() string { return fmt.Sprintf("%d / %d / %d", t.win, t.tie, t.loss) }

// compare returns, for method m against ref, the per-case intervals
// (model, budget; nil entries where either has no plan), their tally and
// the pooled interval over all cases.
func compare(results []*modelResult, m, ref string, reps int) ([][]*interval, tally, interval) {
	var all [][][]float64
	var t tally
	per := make([][]*interval, len(results))
	for mi, r := range results {
		var ds [][]float64
		per[mi] = make([]*interval, len(r.budgets))
		for b := range r.budgets {
			d := r.perImage(b, m, ref)
			if d == nil {
				continue
			}
			iv := bootstrap([][][]float64{{d}}, reps, uint64(1000*mi+b+1))
			per[mi][b] = &iv
			t.add(iv)
			ds = append(ds, d)
		}
		all = append(all, ds)
	}
	return per, t, bootstrap(all, reps, 7)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f", 100*v)
}

// omegaOf is Σ Ω of a plan under a table.
func omegaOf(t *sensitivity.Table, keys [][]string, choice []int) float64 {
	var s float64
	for i, c := range choice {
		s += t.Layers[i].Omega(keys[i][c])
	}
	return s
}

// spearman is the rank correlation of x and y (average ranks for ties).
func spearman(x, y []float64) float64 {
	rx, ry := rank(x), rank(y)
	var mx, my float64
	for i := range rx {
		mx += rx[i] / float64(len(rx))
		my += ry[i] / float64(len(ry))
	}
	var sxy, sxx, syy float64
	for i := range rx {
		sxy += (rx[i] - mx) * (ry[i] - my)
		sxx += (rx[i] - mx) * (rx[i] - mx)
		syy += (ry[i] - my) * (ry[i] - my)
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

func rank(v []float64) []float64 {
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

// correlations returns, per criterion, the rank correlation between a
// plan's Σ Ω and its test-loss increase over the float model, over every
// distinct plan evaluated for the model, averaged over seeds.
func (r *modelResult) correlations() (map[sensitivity.Criterion]float64, int) {
	out := map[sensitivity.Criterion]float64{}
	plans := 0
	for _, sr := range r.seeds {
		var os []*outcome
		for _, o := range sr.all {
			os = append(os, o)
		}
		sort.Slice(os, func(a, b int) bool { return fmt.Sprint(os[a].choice) < fmt.Sprint(os[b].choice) })
		plans += len(os)
		base := r.float.meanLoss()
		y := make([]float64, len(os))
		for j, o := range os {
			y[j] = o.meanLoss() - base
		}
		for _, c := range criteria {
			x := make([]float64, len(os))
			for j, o := range os {
				x[j] = omegaOf(sr.tables[c], r.keys, o.choice)
			}
			out[c] += spearman(x, y) / float64(len(r.seeds))
		}
	}
	return out, plans / len(r.seeds)
}

func (r *modelResult) describe(choice []int) string {
	var s []string
	for i, c := range choice {
		s = append(s, r.precs[i][c].String())
	}
	return strings.Join(s, " ")
}

func write(w io.Writer, cfg config, results []*modelResult, hashes [][2]string, total time.Duration) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	ms := methods()
	cmd := "nice -n 10 go run ./eval/internal/study"
	if cfg.quick {
		cmd += " -quick"
	}
	if strings.Join(cfg.models, ",") != "fmnist_rescnn,fmnist_mbv2" {
		cmd += " -models " + strings.Join(cfg.models, ",")
	}
	p("# Validation: which sensitivity criterion keeps the most accuracy?\n\n")
	p("Generated by `%s` (from the repository root; this file is its output, do not edit by hand). ", cmd)
	if cfg.quick {
		p("**Quick mode: one seed, two budget levels, %d test images — a smoke test, not the study.** ", cfg.testN)
	}
	p("Total run time %s on %d cores shared with other jobs (GOMAXPROCS %d).\n\n", total.Round(time.Second), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	p("Inputs (SHA-256; `go test ./eval/internal/study` fails when one changes without the study being rerun):\n\n")
	for _, h := range hashes {
		p("- `%s` `%s`\n", h[0], h[1])
	}
	p("\n## Setup\n\n")
	p("- Models: %s, trained on the 60,000 Fashion-MNIST training images (Xiao et al. 2017, arXiv:1708.07747; Debian's dataset-fashion-mnist) by committed scripts (`scripts/train_models.py --only fmnist_rescnn`, `scripts/train_study.py`; see `testdata/models/README.md`).\n", strings.Join(cfg.models, ", "))
	p("- Candidates per layer: %s (`4` is W4A4, `8` W8A8; each layer's input is fake-quantized at the candidate's activation width).\n", precList(cfg.candidates))
	p("- Budgets: model size (Σ params · b_w / 8) and BOPS (Σ MACs · b_w · b_a), each at %s of the range between every layer at its cheapest and at its widest candidate (HAWQ-V3's percentage convention); one budget at a time.\n", joinPct(cfg.levels))
	p("- Calibration: %d training images drawn at random per seed (seeds 1..%d: PCG(seed, 0xca11b)); the same images give the traces, the other criteria's measurements and the activation ranges. Nothing is chosen on the test images.\n", cfg.calibN, cfg.seeds)
	p("- Sensitivities (`plan.Analyze` with `Diag`, then `eval.Score`): Hutchinson with Rademacher probes (seed = calibration seed), each probe on its own mini-batch of %d calibration images, stop at %.0f %% relative standard error per layer or %d probes; `hessian` and `diag` come from the same probes. `fisher`, `taylor`, `weight` and `measured` as documented in `sensitivity.Criterion` (fisher and measured quantize the layer's input too; hessian, diag, taylor and weight see the weights only, so they cannot tell W4A4 from W4A8).\n", cfg.probeBatch, 100*cfg.tol, cfg.maxProbes)
	p("- Evaluation (`eval.Apply`): HAWQ's symmetric per-channel min/max weight quantizer, per-tensor min/max activation ranges on the seed's calibration images, biases on the INT32 grid; accuracy and cross-entropy on the first %d Fashion-MNIST test images (a subset, to keep the study's cost down on a shared machine: one image moves accuracy by %.1f points). Post-training quantization only: **no fine-tuning** (HAWQ-V3 fine-tunes after choosing bits; `prune`'s SGD was not wired into this study for lack of time).\n", cfg.testN, 100.0/float64(cfg.testN))
	p("- Methods at each budget: the ILP (`plan.Solve`) on each criterion's Ω; **uniform**, the single candidate that spends the most of the budget (ties: more weight bits, then more activation bits); **greedy**, the HAWQ-V2 / NNCF trace-ordered plan (layers sorted by average trace, all at W8A8, the least sensitive layer that can still step down its cost ladder does so until the plan fits, then the most sensitive step back up while it fits); **random**, %d random maximal mixed plans per budget and seed (random start, random cheaper moves until it fits, random widenings while it fits), averaged.\n", cfg.randomN)
	p("- Statistics: accuracies are averaged over the %d seeds; a method's difference to a reference is paired (same test images, same seeds) and its 95 %% interval comes from %d bootstrap resamples of the test images (percentile method). A *win* is an interval above 0, a *loss* one below 0, a *tie* one that contains 0. Pooled differences average each model's cases, then the models.\n\n", cfg.seeds, cfg.boot)

	p("## Summary\n\n")
	p("Accuracy differences in points (mean over seeds and cases, 95 %% paired bootstrap interval); W / T / L = wins / ties / losses over the %d model × budget cases.\n\n", countCases(results))
	p("| method | vs hessian: W / T / L | vs hessian: mean [95 %%] | vs uniform: W / T / L | vs uniform: mean [95 %%] | better than uniform (point estimate) |\n|:--|--:|--:|--:|--:|--:|\n")
	pooled := map[[2]string]interval{}
	tallies := map[[2]string]tally{}
	cases := map[[2]string][][]*interval{}
	for _, m := range ms {
		for _, ref := range []string{"hessian", "uniform"} {
			per, t, iv := compare(results, m, ref, cfg.boot)
			pooled[[2]string{m, ref}], tallies[[2]string{m, ref}], cases[[2]string{m, ref}] = iv, t, per
		}
		th, tu := tallies[[2]string{m, "hessian"}], tallies[[2]string{m, "uniform"}]
		hs, hi := th.String(), pooled[[2]string{m, "hessian"}].String()
		if m == "hessian" {
			hs, hi = "(reference)", ""
		}
		us, ui, ub := tu.String(), pooled[[2]string{m, "uniform"}].String(), fmt.Sprintf("%d of %d", tu.better, tu.n)
		if m == "uniform" {
			us, ui, ub = "(reference)", "", ""
		}
		p("| %s | %s | %s | %s | %s | %s |\n", m, hs, hi, us, ui, ub)
	}
	noUni := 0
	for _, r := range results {
		for b := range r.budgets {
			if r.seeds[0].plans[b]["uniform"] == nil {
				noUni++
			}
		}
	}
	if noUni > 0 {
		p("\nAt %d budgets no uniform candidate fits; they are left out of the comparisons with uniform.\n", noUni)
	}

	p("\n## Does the goal hold?\n\n")
	p("Goal (issue 16): the better of `hessian` and `diag` beats uniform at ≥ 90 %% of budgets, and beats `weight` and `fisher` on average with an interval that excludes 0. Both are checked, so that the choice between them is not made on the test images:\n\n")
	holds := false
	for _, m := range []string{"hessian", "diag"} {
		tu := tallies[[2]string{m, "uniform"}]
		frac := float64(tu.better) / float64(max(tu.n, 1))
		var vs []string
		ok := frac >= 0.9
		for _, o := range []string{"weight", "fisher"} {
			_, _, iv := compare(results, m, o, cfg.boot)
			vs = append(vs, fmt.Sprintf("vs %s %s", o, iv))
			ok = ok && iv.lo > 0
		}
		holds = holds || ok
		verdict := "**does not meet the goal**"
		if ok {
			verdict = "**meets the goal**"
		}
		p("- `%s`: better than uniform (point estimate) at %d of %d budgets (%.0f %%; intervals: %s W / T / L); %s; %s.\n", m, tu.better, tu.n, 100*frac, tu, strings.Join(vs, ", "), verdict)
	}
	if holds {
		p("\nThe goal holds for at least one of the two Hessian criteria.\n")
	} else {
		p("\n**The goal does not hold.** Where it fails, and why, is shown per model below (the cases the Hessian ILP loses, with the layers where the plans differ and each criterion's Ω of them).\n")
	}

	p("\n## Does Ω predict the damage?\n\n")
	p("Spearman rank correlation between a plan's Σ Ω and its test-loss increase over the float model, over every distinct plan evaluated for the model (ILP plans of every criterion, uniform, greedy and random plans at every budget), averaged over seeds. `measured` sums one-layer loss increases, so it ignores interactions between layers.\n\n")
	p("| model | plans per seed |")
	for _, c := range criteria {
		p(" %s |", c)
	}
	p("\n|:--|--:|%s\n", strings.Repeat("--:|", len(criteria)))
	for _, r := range results {
		corr, n := r.correlations()
		p("| %s | %d |", r.name, n)
		for _, c := range criteria {
			p(" %.3f |", corr[c])
		}
		p("\n")
	}

	p("\n## Cost of the criteria\n\n")
	p("Wall time per seed on the shared machine (%d calibration images), seconds, mean over seeds:\n\n", cfg.calibN)
	p("| model | hessian + diag (probes) | fisher | taylor | weight | measured |\n|:--|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		var tm = map[string]float64{}
		probes := 0
		for _, sr := range r.seeds {
			for k, v := range sr.times {
				tm[k] += v.Seconds() / float64(len(r.seeds))
			}
			probes += sr.probes
		}
		p("| %s | %.1f (%d) | %.1f | %.2f | %.3f | %.1f |\n", r.name, tm["hessian+diag"], probes/len(r.seeds), tm["fisher"], tm["taylor"], tm["weight"], tm["measured"])
	}

	for mi, r := range results {
		p("\n## %s\n\n", r.name)
		var tot float64
		for _, l := range r.layers {
			tot += l.Params
		}
		p("Float accuracy %s %% (loss %.4f) on %d test images; %d quantized weights in %d layers. Run time %s.\n\n", pct(r.float.accuracy()), r.float.meanLoss(), len(r.float.correct), r.params, len(r.layers), r.wall.Round(time.Second))
		p("Per layer at W2A8, seed 1 (Ω of each criterion; diag with its standard error):\n\n")
		p("| layer | weights | avg trace ± se | hessian | diag ± se | fisher | taylor | weight | measured |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		s1 := r.seeds[0]
		for i, l := range r.layers {
			k := "w2a8"
			d := s1.tables[sensitivity.Diag].Layers[i]
			p("| %s | %.0f | %.3g ± %.2g | %.3g | %.3g ± %.2g | %.3g | %.3g | %.3g | %.3g |\n", l.Name, l.Params, l.AvgTrace, l.AvgTraceStderr,
				s1.tables[sensitivity.Hessian].Layers[i].Omega(k), d.Omega(k), d.ScoreStderr[k],
				s1.tables[sensitivity.Fisher].Layers[i].Omega(k), s1.tables[sensitivity.Taylor].Layers[i].Omega(k),
				s1.tables[sensitivity.Weight].Layers[i].Omega(k), s1.tables[sensitivity.Measured].Layers[i].Omega(k))
		}
		p("\nTest accuracy (%%), mean over seeds:\n\n| budget |")
		for _, m := range ms {
			p(" %s |", m)
		}
		p("\n|:--|%s\n", strings.Repeat("--:|", len(ms)))
		for b, bc := range r.budgets {
			p("| %s |", bc)
			best := math.Inf(-1)
			for _, m := range ms {
				if v := r.meanAcc(b, m); v > best {
					best = v
				}
			}
			for _, m := range ms {
				v := r.meanAcc(b, m)
				if v == best {
					p(" **%s** |", pct(v))
				} else {
					p(" %s |", pct(v))
				}
			}
			p("\n")
		}
		p("\nDifference to the Hessian ILP (points, 95 %% interval):\n\n| budget |")
		others := slices.DeleteFunc(slices.Clone(ms), func(s string) bool { return s == "hessian" })
		for _, m := range others {
			p(" %s |", m)
		}
		p("\n|:--|%s\n", strings.Repeat("--:|", len(others)))
		for b, bc := range r.budgets {
			p("| %s |", bc)
			for _, m := range others {
				iv := cases[[2]string{m, "hessian"}][mi][b]
				if iv == nil {
					p(" - |")
				} else {
					p(" %s |", *iv)
				}
			}
			p("\n")
		}
		p("\nPlans of seed 1 (candidate per layer, in the order of the layer table):\n\n| budget | method | plan | accuracy %% |\n|:--|:--|:--|--:|\n")
		for b, bc := range r.budgets {
			for _, m := range append(slices.Clone(ms[:len(criteria)]), "uniform", "greedy") {
				o := s1.plans[b][m]
				if o == nil {
					continue
				}
				p("| %s | %s | %s | %s |\n", bc, m, r.describe(o.choice), pct(o.accuracy()))
			}
		}
		// Where the Hessian ILP loses.
		var lost []string
		for b, bc := range r.budgets {
			for _, m := range []string{"uniform", "weight", "fisher", "measured", "diag"} {
				iv := cases[[2]string{m, "hessian"}][mi][b]
				if iv == nil || iv.lo <= 0 {
					continue
				}
				o, h := s1.plans[b][m], s1.plans[b]["hessian"]
				var diff []string
				for i := range r.layers {
					if o.choice[i] == h.choice[i] {
						continue
					}
					kh, ko := r.keys[i][h.choice[i]], r.keys[i][o.choice[i]]
					meas := s1.tables[sensitivity.Measured].Layers[i]
					hl := s1.tables[sensitivity.Hessian].Layers[i]
					diff = append(diff, fmt.Sprintf("%s hessian %s (Ω %.3g, measured %.3g) vs %s (Ω %.3g, measured %.3g)",
						r.layers[i].Name, kh, hl.Omega(kh), meas.Omega(kh), ko, hl.Omega(ko), meas.Omega(ko)))
				}
				lost = append(lost, fmt.Sprintf("- %s: %s beats the Hessian ILP by %s points; seed 1's plans differ at %s.", bc, m, *iv, orNone(diff)))
			}
		}
		// Two mechanisms, counted: layers whose trace is not resolved from 0,
		// and W4A4 chosen where W4A8 costs the same under the budget.
		var flat []string
		for i, l := range r.layers {
			n := 0
			for _, sr := range r.seeds {
				hl := sr.tables[sensitivity.Hessian].Layers[i]
				if math.Abs(hl.AvgTrace) < 1.96*hl.AvgTraceStderr {
					n++
				}
			}
			if n > 0 {
				flat = append(flat, fmt.Sprintf("%s (in %d of %d seeds; seed 1: avg trace %.3g ± %.2g, measured loss increase at W2A8 %.3g)", l.Name, n, len(r.seeds),
					s1.tables[sensitivity.Hessian].Layers[i].AvgTrace, s1.tables[sensitivity.Hessian].Layers[i].AvgTraceStderr, s1.tables[sensitivity.Measured].Layers[i].Omega("w2a8")))
			}
		}
		if len(flat) > 0 {
			p("\nLayers whose average trace is not resolved from 0 (|estimate| < 1.96 standard errors; their hessian Ω is noise, and a negative one makes the ILP prefer fewer bits): %s.\n", strings.Join(flat, "; "))
		}
		for _, m := range []string{"hessian", "diag", "fisher", "measured"} {
			a4, tot := 0, 0
			for _, sr := range r.seeds {
				for b, bc := range r.budgets {
					if bc.resource != "size" {
						continue
					}
					tot++
					o := sr.plans[b][m]
					for i, c := range o.choice {
						if r.keys[i][c] == "4" && slices.Contains(r.keys[i], "w4a8") {
							a4++
							break
						}
					}
				}
			}
			if m == "hessian" {
				p("\nPlans at size budgets that put some layer at W4A4 although W4A8 has the same size (weight-only criteria give both the same Ω, so the ILP is indifferent between them): ")
			}
			p("%s %d of %d", m, a4, tot)
			if m != "measured" {
				p(", ")
			} else {
				p(".\n")
			}
		}
		if len(lost) > 0 {
			p("\nWhere the Hessian ILP loses (an interval above 0; \"measured\" is the one-layer calibration loss increase, the oracle Ω approximates):\n\n%s\n", strings.Join(lost, "\n"))
		}
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no layer (the same plan in seed 1; other seeds differ)"
	}
	return strings.Join(s, "; ")
}

func countCases(results []*modelResult) int {
	n := 0
	for _, r := range results {
		n += len(r.budgets)
	}
	return n
}

func precList(ps []sensitivity.Precision) string {
	var s []string
	for _, p := range ps {
		s = append(s, "`"+p.String()+"`")
	}
	return strings.Join(s, ", ")
}

func joinPct(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%g %%", x))
	}
	return strings.Join(s, ", ")
}
