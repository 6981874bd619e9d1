package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bitplan/bitplan/sensitivity"
)

// floats lists values as "a, b, c" (shortest form).
func floats(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.FormatFloat(x, 'g', -1, 64))
	}
	return strings.Join(s, ", ")
}

// floatsF lists values as "a / b / c" with prec decimals.
func floatsF(v []float64, prec int) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.FormatFloat(x, 'f', prec, 64))
	}
	return strings.Join(s, " / ")
}

// methods lists every compared method: the criteria, then the baselines.
func methods() []string { return append(criteriaNames(), baselines...) }

// stage selects the accuracy compared: after post-training quantization
// or after fine-tuning.
type stage bool

const (
	ptq stage = false
	ft  stage = true
)

// seedsOf returns the seeds that have results at the stage (the
// fine-tuned ones for ft).
func (r *modelResult) seedsOf(st stage) []*seedResult {
	if st == ptq {
		return r.seeds
	}
	var out []*seedResult
	for _, sr := range r.seeds {
		if sr.tuned != nil {
			out = append(out, sr)
		}
	}
	return out
}

// perImage returns, for method m against reference ref at budget b, the
// per-test-image difference of correctness averaged over the stage's
// seeds (and over the random plans for "random"), or nil when either
// method has no plan at this budget (no uniform plan fits, or the method
// is not fine-tuned).
func (r *modelResult) perImage(b int, m, ref string, st stage) []float64 {
	n := len(r.float.correct)
	d := make([]float64, n)
	seeds := r.seedsOf(st)
	if len(seeds) == 0 {
		return nil
	}
	for _, sr := range seeds {
		om, or := sr.outcomes(b, m, st), sr.outcomes(b, ref, st)
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
			d[j] += (a/float64(len(om)) - c/float64(len(or))) / float64(len(seeds))
		}
	}
	return d
}

// outcomes returns a method's plans at budget b (several for random) at
// the stage.
func (sr *seedResult) outcomes(b int, m string, st stage) []*outcome {
	if st == ft {
		if sr.tuned == nil || sr.tuned[b][m] == nil {
			return nil
		}
		return []*outcome{sr.tuned[b][m]}
	}
	if m == "random" {
		return sr.randoms[b]
	}
	if o := sr.plans[b][m]; o != nil {
		return []*outcome{o}
	}
	return nil
}

// meanAcc is a method's accuracy at budget b averaged over the stage's
// seeds (NaN without a plan).
func (r *modelResult) meanAcc(b int, m string, st stage) float64 {
	var s float64
	seeds := r.seedsOf(st)
	if len(seeds) == 0 {
		return math.NaN()
	}
	for _, sr := range seeds {
		os := sr.outcomes(b, m, st)
		if os == nil {
			return math.NaN()
		}
		for _, o := range os {
			s += o.accuracy() / float64(len(os))
		}
	}
	return s / float64(len(seeds))
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

// compare returns, for method m against ref at the stage, the per-case
// intervals (model, budget; nil entries where either has no plan), their
// tally and the pooled interval over all cases.
func compare(results []*modelResult, m, ref string, reps int, st stage) ([][]*interval, tally, interval) {
	var all [][][]float64
	var t tally
	per := make([][]*interval, len(results))
	for mi, r := range results {
		var ds [][]float64
		per[mi] = make([]*interval, len(r.budgets))
		for b := range r.budgets {
			d := r.perImage(b, m, ref, st)
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

// layerProxy compares each criterion's Ω with the measured one-layer
// calibration loss increase: rho[c] is the Spearman correlation across
// the layers at one candidate (the ordering of the layers' sensitivity
// that mixed precision trades on; mean over the candidates every layer
// has and over seeds), and, over every layer and candidate of every seed,
// for
// hessian's trace term against the exact quadratic form (iso) and the
// quadratic form against twice the measured increase (taylor2: ΔL ≈ ½·Ω
// for the Hessian criteria), the typical factor between them,
// 10^median|log10(a/b)| over the pairs where both are positive (n of
// them, of all).
func (r *modelResult) layerProxy() (rho map[sensitivity.Criterion]float64, iso, taylor2 float64, nIso, nTaylor, all int) {
	rho = map[sensitivity.Criterion]float64{}
	var li, lt []float64
	var keys []string // the candidates every layer has
	for _, k := range r.keys[0] {
		if !slices.ContainsFunc(r.keys, func(ks []string) bool { return !slices.Contains(ks, k) }) {
			keys = append(keys, k)
		}
	}
	for _, sr := range r.seeds {
		meas := sr.tables[sensitivity.Measured]
		for _, k := range keys {
			y := make([]float64, len(r.layers))
			for i := range r.layers {
				y[i] = meas.Layers[i].Omega(k)
			}
			for _, c := range criteria {
				if c == sensitivity.Measured {
					continue
				}
				x := make([]float64, len(r.layers))
				for i := range r.layers {
					x[i] = sr.tables[c].Layers[i].Omega(k)
				}
				rho[c] += spearman(x, y) / float64(len(r.seeds)*len(keys))
			}
		}
		h, q := sr.tables[sensitivity.Hessian], sr.tables[sensitivity.Quadratic]
		for i := range r.layers {
			for _, k := range r.keys[i] {
				all++
				hv, qv, mv := h.Layers[i].Omega(k), q.Layers[i].Omega(k), meas.Layers[i].Omega(k)
				if hv > 0 && qv > 0 {
					li = append(li, math.Abs(math.Log10(hv/qv)))
				}
				if qv > 0 && mv > 0 {
					lt = append(lt, math.Abs(math.Log10(qv/(2*mv))))
				}
			}
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return math.NaN()
		}
		sort.Float64s(v)
		m := v[len(v)/2]
		if len(v)%2 == 0 {
			m = (v[len(v)/2-1] + m) / 2
		}
		return math.Pow(10, m)
	}
	return rho, med(li), med(lt), len(li), len(lt), all
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
	if strings.Join(cfg.models, ",") != defaultModels {
		cmd += " -models " + strings.Join(cfg.models, ",")
	}
	p("# Validation: which sensitivity criterion keeps the most accuracy?\n\n")
	p("Generated by `%s` (from the repository root; this file is its output, do not edit by hand). ", cmd)
	if cfg.quick {
		p("**Quick mode: one seed, two budget levels, %d test images, %d fine-tuning steps — a smoke test, not the study.** ", cfg.testN, cfg.ftSteps)
	}
	p("Total run time %s on %d cores shared with other jobs (GOMAXPROCS %d).\n\n", total.Round(time.Second), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	p("Inputs (SHA-256; `go test ./eval/internal/study` fails when one changes without the study being rerun):\n\n")
	for _, h := range hashes {
		p("- `%s` `%s`\n", h[0], h[1])
	}
	p("\n## Setup\n\n")
	p("- Models: %s, trained on the 60,000 Fashion-MNIST training images (Xiao et al. 2017, arXiv:1708.07747; Debian's dataset-fashion-mnist) by committed scripts (`scripts/train_models.py --only fmnist_rescnn`, `scripts/train_study.py` for fmnist_mbv2 and fmnist_lstm, `scripts/train_vit_fashion.py` for fmnist_vit, which saw the first 20,000 training images; see `testdata/models/README.md`). fmnist_lstm reads the image's 28 rows as 28 time steps (ONNX LSTM node: its input weights W and recurrent weights R are two layers; R multiplies the node's internal hidden state, so its activation width is not simulated).\n", strings.Join(cfg.models, ", "))
	p("- Candidates per layer: %s (`4` is W4A4, `8` W8A8; each layer's input is fake-quantized at the candidate's activation width).\n", precList(cfg.candidates))
	p("- Budgets: model size (Σ params · b_w / 8) and BOPS (Σ MACs · b_w · b_a), each at %s of the range between every layer at its cheapest and at its widest candidate (HAWQ-V3's percentage convention); one budget at a time.\n", joinPct(cfg.levels))
	p("- Calibration: %d training images drawn at random per seed (seeds 1..%d: PCG(seed, 0xca11b)); the same images give the traces, the other criteria's measurements and the activation ranges. Nothing is chosen on the test images.\n", cfg.calibN, cfg.seeds)
	p("- Sensitivities (`plan.Analyze` with `Diag`, then `eval.Score`): Hutchinson with Rademacher probes (seed = calibration seed), each probe on its own mini-batch of %d calibration images, stop at %.0f %% relative standard error per layer or %d probes; `hessian` and `diag` come from the same probes. Both include the **activation term** (`eval.ActivationTerm`, as `bitplan plan` adds it unless `--weight-only`): Tr(H_a)/n_a · E‖Q_A(a) − a‖² (diag: Σ diag(H_a) · (Q_A(a) − a)²) of each layer's input, from a second Hutchinson run over the inputs with the same settings but at most %d probes (each probe runs every layer's input separately, so a probe costs more than a weight probe), so that they tell W4A4 from W4A8 (an LSTM's R has no input of its own in the graph and no such term). `quadratic` (`eval.Score`) is the exact second-order term along each candidate's own errors, ΔWᵀ H_ii ΔW + (1/N) Σ Δaᵀ H_a Δa over all calibration images (one block-local Hessian-vector product per layer, one input R-pass per layer and activation width; no probes): the quantity `hessian` approximates by Tr(H)/n · ‖ΔW‖², without assuming the error is spread evenly and independently; it is not one of the issue's criteria and was added after the proxy errors below (isotropic trace term against the one-layer loss increase on the calibration images) showed where the trace misleads. `fisher`, `taylor`, `weight` and `measured` as documented in `sensitivity.Criterion` (fisher and measured quantize the layer's input too; taylor and weight see the weights only, so they cannot tell W4A4 from W4A8).\n", cfg.probeBatch, 100*cfg.tol, cfg.maxProbes, cfg.actProbes)
	p("- Evaluation (`eval.Apply`): HAWQ's symmetric per-channel min/max weight quantizer, per-tensor min/max activation ranges on the seed's calibration images, biases on the INT32 grid; accuracy and cross-entropy on the first %d Fashion-MNIST test images (a subset, to keep the study's cost down on a shared machine: one image moves accuracy by %.1f points).\n", cfg.testN, 100.0/float64(cfg.testN))
	p("- Fine-tuning (FT), as HAWQ-V3 does after choosing bits: the plans of %s at every budget, in seed%s %s only (each distinct plan once). Each starts from the float model and takes %d steps of `prune.FineTune` (SGD, heavy-ball momentum 0.9, rate chosen per model among %s as the one whose fine-tuning of the uniform W4A4 plan ends with the lowest loss on the seed's calibration images, quantized as the plan is — training images only, the rate is listed in each model's section —, mini-batches of %d from %d training images drawn per seed, BatchNormalization statistics fixed) through the plan as deployed: the straight-through estimator on the plan's weight quantizer (`FineTuneSettings.Quantize`: every step runs at Q(W) and updates the float W) and on its activation quantizers (`nn.Engine.SetQuantizedGradient`: the gradient pass reads Q_A(a), as inference does, and the gradient passes the rounding unchanged inside the quantizer's clipping range and is zero outside it, the clipped STE of PACT and LSQ; the ranges are those calibrated on the seed's calibration images at the plan's quantized weights, fixed during the steps). The tuned weights are then quantized again by `eval.Apply` with the same activation ranges (the quantizers the weights were tuned for, as quantization-aware training deploys them; recalibrating them at the tuned weights moves the grids the weights adapted to) and scored on the same test images, so PTQ and FT differences are paired the same way.\n",
		strings.Join(quoted(cfg.ftMethods), ", "), plural(cfg.ftSeeds), seedList(cfg.ftSeeds), cfg.ftSteps, floats(cfg.ftLRs), cfg.ftBatch, cfg.ftN)
	p("- Methods at each budget: the ILP (`plan.Solve`) on each criterion's Ω; **uniform**, the single candidate that spends the most of the budget (ties: more weight bits, then more activation bits); **greedy**, the HAWQ-V2 / NNCF trace-ordered plan (layers sorted by average trace, all at W8A8, the least sensitive layer that can still step down its cost ladder does so until the plan fits, then the most sensitive step back up while it fits); **random**, %d random maximal mixed plans per budget and seed (random start, random cheaper moves until it fits, random widenings while it fits), averaged.\n", cfg.randomN)
	p("- Statistics: accuracies are averaged over the %d seeds; a method's difference to a reference is paired (same test images, same seeds) and its 95 %% interval comes from %d bootstrap resamples of the test images (percentile method). A *win* is an interval above 0, a *loss* one below 0, a *tie* one that contains 0. Pooled differences average each model's cases, then the models.\n\n", cfg.seeds, cfg.boot)

	p("## Summary\n\n")
	p("Accuracy differences in points (mean over seeds and cases, 95 %% paired bootstrap interval); W / T / L = wins / ties / losses over the model × budget cases (%d in all). **PTQ**: after post-training quantization, %d seeds, every method. **FT**: after the short fine-tuning, seed%s %s, the fine-tuned methods only (`-` elsewhere); both plans of a pair are fine-tuned alike.\n\n", countCases(results), cfg.seeds, plural(cfg.ftSeeds), seedList(cfg.ftSeeds))
	cases := map[[2]string][][]*interval{}
	st := summarize(results, ms, cfg.boot)
	for k, v := range st.cases {
		if !k.ft {
			cases[[2]string{k.m, k.ref}] = v
		}
	}
	p("All models pooled:\n\n")
	summaryTable(p, st, ms)
	for _, r := range results {
		if len(results) == 1 {
			break // the pooled table is the model's
		}
		p("\n%s:\n\n", r.name)
		summaryTable(p, summarize([]*modelResult{r}, ms, cfg.boot), ms)
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
	p("Goal (issue 16): the better of `hessian` and `diag` beats uniform at ≥ 90 %% of budgets, and beats `weight` and `fisher` on average with an interval that excludes 0. Both are checked, so that the choice between them is not made on the test images; after PTQ (the study's main comparison) and after FT:\n\n")
	holds := false
	for _, stg := range []stage{ptq, ft} {
		for _, m := range []string{"hessian", "diag"} {
			tu := st.tallies[statKey{m, "uniform", stg}]
			if tu.n == 0 {
				continue
			}
			frac := float64(tu.better) / float64(max(tu.n, 1))
			var vs []string
			ok := frac >= 0.9
			for _, o := range []string{"weight", "fisher"} {
				_, _, iv := compare(results, m, o, cfg.boot, stg)
				vs = append(vs, fmt.Sprintf("vs %s %s", o, iv))
				ok = ok && iv.n > 0 && iv.lo > 0
			}
			if stg == ptq {
				holds = holds || ok
			}
			verdict := "**does not meet the goal**"
			if ok {
				verdict = "**meets the goal**"
			}
			p("- %s `%s`: better than uniform (point estimate) at %d of %d budgets (%.0f %%; intervals: %s W / T / L); %s; %s.\n", stg, m, tu.better, tu.n, 100*frac, tu, strings.Join(vs, ", "), verdict)
		}
	}
	// quadratic is reported beside the goal, not in it: the issue names
	// hessian and diag.
	for _, stg := range []stage{ptq, ft} {
		tu := st.tallies[statKey{"quadratic", "uniform", stg}]
		if tu.n == 0 {
			continue
		}
		var vs []string
		for _, o := range []string{"hessian", "weight", "fisher"} {
			_, _, iv := compare(results, "quadratic", o, cfg.boot, stg)
			vs = append(vs, fmt.Sprintf("vs %s %s", o, iv))
		}
		p("- (not in the goal) %s `quadratic`: better than uniform (point estimate) at %d of %d budgets (%.0f %%; intervals: %s W / T / L); %s.\n", stg, tu.better, tu.n, 100*float64(tu.better)/float64(max(tu.n, 1)), tu, strings.Join(vs, ", "))
	}
	if holds {
		p("\nThe goal holds after PTQ for at least one of the two Hessian criteria.\n")
	} else {
		p("\n**The goal does not hold after PTQ.** Where it fails, and why, is shown in *Which proxy error?* (how well each Ω orders the layers, and how far the trace term is from the exact second-order term and that from the measured loss) and per model below (the cases the Hessian ILP loses, with the layers where the plans differ and each criterion's Ω of them).\n")
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

	p("\n## Which proxy error?\n\n")
	p("One layer quantized at a time on the calibration images: the Spearman correlation ρ across the layers between each criterion's Ω and the measured one-layer loss increase at the same candidate (which layers are the sensitive ones, the ordering mixed precision trades on; mean over the candidates and seeds), and, over every layer at every candidate of every seed, two typical factors, 10^median|log10(a/b)| over the pairs where both are positive: *isotropy*, hessian's Ω (trace × error size, weights and activations) against `quadratic`'s exact second-order term along the same errors — what assuming the rounding error spread evenly and independently costs; *beyond second order*, `quadratic` against twice the measured increase (ΔL ≈ ½·Ω) — the first-order term (the gradient at a trained model is not exactly 0 on 128 images), the higher-order terms and sampling noise. A criterion can rank single layers well and still choose worse plans: the ILP adds one-layer Ω, and the test images are not the calibration images.\n\n")
	p("| model | layers × candidates |")
	for _, c := range criteria {
		if c != sensitivity.Measured {
			p(" %s ρ |", c)
		}
	}
	p(" isotropy factor (pairs) | beyond-second-order factor (pairs) |\n|:--|--:|%s--:|--:|\n", strings.Repeat("--:|", len(criteria)-1))
	for _, r := range results {
		rho, iso, tay, ni, nt, all := r.layerProxy()
		p("| %s | %d |", r.name, all/len(r.seeds))
		for _, c := range criteria {
			if c != sensitivity.Measured {
				p(" %.3f |", rho[c])
			}
		}
		p(" %.2f (%d) | %.2f (%d) |\n", iso, ni, tay, nt)
	}

	p("\n## Cost of the criteria\n\n")
	p("Wall time per seed on the shared machine (%d calibration images), seconds, mean over seeds (fine-tuning: per fine-tuned seed, with the number of distinct plans tuned and the time per plan, evaluation and the choice of the rate included; the plans run GOMAXPROCS at a time):\n\n", cfg.calibN)
	p("| model | hessian + diag (probes) | activation term (probes) | quadratic | fisher | taylor | weight | measured | fine-tuning (plans) |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		var tm = map[string]float64{}
		probes, actProbes, tuned := 0, 0, 0
		var ftSecs float64
		for _, sr := range r.seeds {
			for k, v := range sr.times {
				tm[k] += v.Seconds() / float64(len(r.seeds))
			}
			probes += sr.probes
			actProbes += sr.actProbes
			ftSecs += sr.times["fine-tuning"].Seconds()
			tuned += len(sr.tunedAll)
		}
		ftS := "-"
		if tuned > 0 {
			ftS = fmt.Sprintf("%.0f (%d, %.1f each)", ftSecs/float64(len(r.seedsOf(ft))), tuned/len(r.seedsOf(ft)), ftSecs/float64(tuned))
		}
		p("| %s | %.1f (%d) | %.1f (%d) | %.1f | %.1f | %.2f | %.3f | %.1f | %s |\n", r.name, tm["hessian+diag"], probes/len(r.seeds), tm["activation"], actProbes/len(r.seeds), tm["quadratic"], tm["fisher"], tm["taylor"], tm["weight"], tm["measured"], ftS)
	}

	for mi, r := range results {
		p("\n## %s\n\n", r.name)
		var tot float64
		for _, l := range r.layers {
			tot += l.Params
		}
		p("Float accuracy %s %% (loss %.4f) on %d test images; %d quantized weights in %d layers. Run time %s.\n\n", pct(r.float.accuracy()), r.float.meanLoss(), len(r.float.correct), r.params, len(r.layers), r.wall.Round(time.Second))
		p("Per layer at W2A8, seed 1 (Ω of each criterion; diag with its standard error; the input's average trace Tr(H_a)/n_a of the activation term):\n\n")
		p("| layer | weights | avg trace ± se | act trace ± se | hessian | diag ± se | quadratic | fisher | taylor | weight | measured |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		s1 := r.seeds[0]
		for i, l := range r.layers {
			k := "w2a8"
			d := s1.tables[sensitivity.Diag].Layers[i]
			p("| %s | %.0f | %.3g ± %.2g | %.3g ± %.2g | %.3g | %.3g ± %.2g | %.3g | %.3g | %.3g | %.3g | %.3g |\n", l.Name, l.Params, l.AvgTrace, l.AvgTraceStderr, l.ActAvgTrace, l.ActAvgTraceStderr,
				s1.tables[sensitivity.Hessian].Layers[i].Omega(k), d.Omega(k), d.ScoreStderr[k], s1.tables[sensitivity.Quadratic].Layers[i].Omega(k),
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
				if v := r.meanAcc(b, m, ptq); v > best {
					best = v
				}
			}
			for _, m := range ms {
				v := r.meanAcc(b, m, ptq)
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
		if fts := r.seedsOf(ft); len(fts) > 0 {
			var tms []string
			for _, m := range ms {
				if slices.Contains(cfg.ftMethods, m) {
					tms = append(tms, m)
				}
			}
			for _, sr := range fts {
				p("\nFine-tuning rate, seed %d: %g (calibration loss after fine-tuning the uniform W4A4 plan at %s: %s).\n", sr.seed, sr.ftLR, floats(cfg.ftLRs), floatsF(sr.lrLoss, 4))
			}
			p("\nAfter fine-tuning (seed%s %s): test accuracy (%%) after PTQ → after FT, the same seeds:\n\n| budget |", plural(len(fts)), seedList(len(fts)))
			for _, m := range tms {
				p(" %s |", m)
			}
			p("\n|:--|%s\n", strings.Repeat("--:|", len(tms)))
			for b, bc := range r.budgets {
				p("| %s |", bc)
				for _, m := range tms {
					var a, t float64
					ok := true
					for _, sr := range fts {
						if sr.plans[b][m] == nil || sr.tuned[b][m] == nil {
							ok = false
							break
						}
						a += sr.plans[b][m].accuracy() / float64(len(fts))
						t += sr.tuned[b][m].accuracy() / float64(len(fts))
					}
					if ok {
						p(" %s → %s |", pct(a), pct(t))
					} else {
						p(" - |")
					}
				}
				p("\n")
			}
			// How fine-tuning changed the distinct fine-tuned plans, and
			// whether the ones it hurt quantize some activation to 4 bits.
			up, same, down, downA4, a4, all := 0, 0, 0, 0, 0, 0
			for _, sr := range fts {
				for key, o := range sr.tunedAll {
					all++
					hasA4 := false
					for i, c := range o.choice {
						hasA4 = hasA4 || r.precs[i][c].A == 4
					}
					if hasA4 {
						a4++
					}
					switch before := sr.all[key].accuracy(); {
					case o.accuracy() > before:
						up++
					case o.accuracy() == before:
						same++
					default:
						down++
						if hasA4 {
							downA4++
						}
					}
				}
			}
			p("\nFine-tuning raised the accuracy of %d of the %d distinct fine-tuned plans, left %d unchanged and lowered %d; %d of those %d put some layer at W4A4 (%d of all %d do).\n", up, all, same, down, downA4, down, a4, all)
			others := slices.DeleteFunc(slices.Clone(tms), func(s string) bool { return s == "hessian" })
			p("\nAfter fine-tuning: difference to the fine-tuned Hessian ILP (points, 95 %% interval):\n\n| budget |")
			for _, m := range others {
				p(" %s |", m)
			}
			p("\n|:--|%s\n", strings.Repeat("--:|", len(others)))
			for b, bc := range r.budgets {
				p("| %s |", bc)
				for _, m := range others {
					if iv := st.cases[statKey{m, "hessian", ft}][mi][b]; iv != nil {
						p(" %s |", *iv)
					} else {
						p(" - |")
					}
				}
				p("\n")
			}
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
			for _, m := range []string{"uniform", "weight", "fisher", "measured", "diag", "quadratic"} {
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
					ql := s1.tables[sensitivity.Quadratic].Layers[i]
					diff = append(diff, fmt.Sprintf("%s hessian %s (Ω %.3g, quadratic %.3g, measured %.3g) vs %s (Ω %.3g, quadratic %.3g, measured %.3g)",
						r.layers[i].Name, kh, hl.Omega(kh), ql.Omega(kh), meas.Omega(kh), ko, hl.Omega(ko), ql.Omega(ko), meas.Omega(ko)))
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
		for _, m := range []string{"hessian", "diag", "quadratic", "fisher", "measured"} {
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
				p("\nPlans at size budgets that put some layer at W4A4 although W4A8 has the same size (a criterion that gives both the same Ω leaves the ILP indifferent between them; the activation term is there to break that tie for hessian, diag and quadratic): ")
			}
			p("%s %d of %d", m, a4, tot)
			if m != "measured" {
				p(", ")
			} else {
				p(".\n")
			}
		}
		if len(lost) > 0 {
			p("\nWhere the Hessian ILP loses (an interval above 0; \"quadratic\" is the exact second-order term along that candidate's errors, which hessian's Ω approximates by the trace: their gap is the error of assuming the rounding error spread evenly; \"measured\" is the one-layer calibration loss increase, which adds the first- and higher-order terms):\n\n%s\n", strings.Join(lost, "\n"))
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

func (s stage) String() string {
	if s == ft {
		return "FT"
	}
	return "PTQ"
}

// statKey names one comparison: method m against ref at a stage.
type statKey struct {
	m, ref string
	ft     stage
}

// stats are the summary comparisons of a set of models.
type stats struct {
	pooled  map[statKey]interval
	tallies map[statKey]tally
	cases   map[statKey][][]*interval
}

// summarize compares every method with hessian and with uniform, after
// PTQ and after FT, over the given models.
func summarize(results []*modelResult, ms []string, reps int) stats {
	st := stats{pooled: map[statKey]interval{}, tallies: map[statKey]tally{}, cases: map[statKey][][]*interval{}}
	for _, m := range ms {
		for _, ref := range []string{"hessian", "uniform"} {
			for _, s := range []stage{ptq, ft} {
				k := statKey{m, ref, s}
				st.cases[k], st.tallies[k], st.pooled[k] = compare(results, m, ref, reps, s)
			}
		}
	}
	return st
}

// summaryTable prints one row per method: W / T / L and the pooled
// difference against hessian and against uniform, after PTQ and FT.
func summaryTable(p func(string, ...any), st stats, ms []string) {
	p("| method | PTQ vs hessian W / T / L | PTQ vs hessian [95 %%] | PTQ vs uniform W / T / L | PTQ vs uniform [95 %%] | PTQ better than uniform | FT vs hessian W / T / L | FT vs hessian [95 %%] | FT vs uniform W / T / L | FT vs uniform [95 %%] |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, m := range ms {
		p("| %s |", m)
		for _, s := range []stage{ptq, ft} {
			for _, ref := range []string{"hessian", "uniform"} {
				k := statKey{m, ref, s}
				t, iv := st.tallies[k], st.pooled[k]
				switch {
				case m == ref:
					p(" (reference) | |")
				case t.n == 0:
					p(" - | - |")
				default:
					p(" %s | %s |", t, iv)
				}
				if s == ptq && ref == "uniform" {
					if m == ref || t.n == 0 {
						p(" |")
					} else {
						p(" %d of %d |", t.better, t.n)
					}
				}
			}
		}
		p("\n")
	}
}

func quoted(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = "`" + v + "`"
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// seedList names seeds 1..n.
func seedList(n int) string {
	if n == 1 {
		return "1"
	}
	return fmt.Sprintf("1..%d", n)
}
