package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// traceFlags are the estimator flags shared by trace and plan.
type traceFlags struct {
	method     string
	tol        float64
	minProbes  int
	maxProbes  int
	matvecs    int
	seed       uint64
	candidates string
	quant      string
	probeBatch int
	timeBudget time.Duration
	groups     multiString
	criterion  string
	weightOnly bool
	actQuad    bool
	fs         *flag.FlagSet // to tell flags given from defaults
	// status, when set, adds to the progress line (plan's --stop plan),
	// and actCheck is the activation traces' stopping rule.
	status   func() string
	actCheck func(*hessian.TraceResult) (string, error)
	// pilot, when set, is the activation term's first probes, run before
	// the weight traces to stratify them (stratifyFirst); score continues
	// it.
	pilot *eval.ActivationResult
	// actMaxProbes, when positive, is the activation term's probe limit
	// (the weights' was raised for their strata).
	actMaxProbes int
}

// stratifyFirst runs, when the analysis a will add the activation term to
// HAWQ-V3's Ω and its weight traces are Hutchinson's or auto's with
// --probe-batch not given, the activation term's first importancePilot+1
// probes on a template table (the pilot that chooses their importance
// design), and gives the weight products strata by its per-sample scores
// (stratify); score then continues the pilot. Otherwise it does nothing.
func (t *traceFlags) stratifyFirst(ctx context.Context, a *plan.Analysis, pr *progress) error {
	c, err := sensitivity.ParseCriterion(t.criterion)
	if err != nil || c != sensitivity.Hessian || t.weightOnly || t.actQuad || t.given("probe-batch") ||
		(a.Method != plan.Hutchinson && a.Method != plan.Auto) || a.Trace.MaxProbes <= actScorePilot {
		return err
	}
	tmpl := *a
	tmpl.NoTraces, tmpl.TopEigen, tmpl.Density = true, false, nil
	ts, err := plan.Analyze(ctx, &tmpl)
	if err != nil {
		return err
	}
	if t.pilot, err = t.activation(ctx, a, ts.Table, pr, actScorePilot, nil); err != nil {
		return err
	}
	t.stratify(a, t.pilot, a.Data.Len())
	return nil
}

// actScorePilot is the probes of stratifyFirst's activation pilot: the 4
// over all samples whose per-sample values score the samples
// (eval.ActivationTerm), and one more, so that the importance design is
// drawn.
const actScorePilot = 5

// groupHelp is the help of --group (plan, trace, solve).
const groupHelp = "units matching `REGEX` share one precision, those whose matches agree outside the parenthesised parts in one group " +
	"(layers\\.\\d+\\.attn\\.(q|k|v) groups q, k, v per layer); repeatable; none: no automatic groups " +
	"(q/k/v and gate/up reading one input, tied weights)"

// defaultProbeBatch is the --probe-batch default: the mini-batch size that
// reached a given error soonest in the measurements of docs/probes.md.
const defaultProbeBatch = 32

// fullDataUpTo: when --probe-batch is not given, calibration sets of at
// most this many samples use full-data products instead. Measured on the
// bundled LeNet (256 MNIST images, docs/probes.md): batch sizes 8–128 all
// gave the same SE²·CPU time, while products over all 256 samples share
// their forward passes (1.4× less CPU per sample) and keep the curvature
// all samples share, which auto's sketch then removes (it captured 0 % of
// ‖H‖²_F across mini-batches and 77 % on all samples): 2.5× smaller SE²·t
// than batches of 32. On 512 Fashion-MNIST samples batches of 32 were
// 7.9× better than all samples.
const fullDataUpTo = 256

func (t *traceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.method, "method", "auto", "trace `ESTIMATOR`: auto (a pilot picks hutchinson or adaptive hutch++), hutchinson (adaptive, error bars), hutch++, xtrace (fixed budget) or exact (one product per weight)")
	fs.Float64Var(&t.tol, "tol", 0.05, "stop Hutchinson when every layer's relative standard error is below `TOL`")
	fs.IntVar(&t.minProbes, "min-probes", 10, "Hutchinson probes before stopping is considered (`N`)")
	fs.IntVar(&t.maxProbes, "max-probes", 0, "probe limit `N` of hutchinson and auto (0: the samples of 50 products over all samples, i.e. 50·⌈samples/probe-batch⌉ probes)")
	fs.IntVar(&t.matvecs, "matvecs", 60, "Hessian-vector product budget `N` of hutch++ and xtrace")
	fs.Uint64Var(&t.seed, "seed", 1, "random `SEED` of the probes")
	fs.StringVar(&t.candidates, "bits", "4,8", "candidate precisions, comma-separated `LIST` of bit widths (4 = W4A4) or pairs (w4a8)")
	fs.StringVar(&t.quant, "quantizer", "symmetric,per-channel,minmax", "weight quantizer of Δ²: `SPEC` of symmetric|asymmetric, per-channel|per-tensor, minmax|mse")
	fs.IntVar(&t.probeBatch, "probe-batch", defaultProbeBatch, fmt.Sprintf("each Hutchinson probe averages the Hessian over its own random mini-batch of `N` calibration samples (0: every probe over all samples; when not given, all samples for calibration sets of at most %d)", fullDataUpTo))
	fs.StringVar(&t.criterion, "sensitivity", "hessian", "sensitivity `CRITERION` of Ω: hessian (HAWQ-V3, Tr(H)/n·‖ΔW‖²), diag (Σ diag(H)·ΔW² from the same probes), quadratic (ΔWᵀHΔW + Δaᵀ·H_a·Δa along each candidate's own errors, exact, no probes), fisher (ModelOpt: Σ(∂L/∂y)²(Δy)²), taylor (|∇L·ΔW|), weight (‖ΔW‖²) or measured (calibration loss increase, one layer at a time); see docs/validation.md")
	fs.BoolVar(&t.weightOnly, "weight-only", false, "hessian and diag: HAWQ-V3's weight-only Ω, without the activation term Tr(H_a)/n_a·E‖Δa‖² (Σ diag(H_a)·Δa² for diag) that prices each candidate's activation width")
	fs.BoolVar(&t.actQuad, "act-quadratic", false, "hessian and diag: the activation term as the exact quadratic form Δaᵀ·H_a·Δa along the activation quantizer's error on the calibration data (one product per layer and width, no probes) instead of Tr(H_a)/n_a·E‖Δa‖²")
	fs.DurationVar(&t.timeBudget, "time-budget", 0, "stop Hutchinson after `DURATION` (e.g. 2m) and report the errors reached (0: no limit)")
	fs.Var(&t.groups, "group", groupHelp)
	t.fs = fs
}

// given reports whether the named flag was on the command line.
func (t *traceFlags) given(name string) bool {
	set := false
	if t.fs != nil {
		t.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	}
	return set
}

// analysis turns the flags into an Analysis (engine and data set by the
// caller); the progress callback writes to pr.
func (t *traceFlags) analysis(pr *progress) (*plan.Analysis, error) {
	a := &plan.Analysis{Method: plan.Method(strings.ToLower(t.method))}
	var err error
	if a.Groups, err = plan.ParseGroups(t.groups); err != nil {
		return nil, usageError{fmt.Errorf("flag --%v", err)}
	}
	c, err := sensitivity.ParseCriterion(t.criterion)
	if err != nil {
		return nil, usageError{fmt.Errorf("flag --sensitivity: %v", err)}
	}
	if t.actQuad && t.weightOnly {
		return nil, usageError{fmt.Errorf("flags --act-quadratic and --weight-only conflict: the first sets the activation term, the second drops it")}
	}
	if c == sensitivity.Quadratic && (t.actQuad || t.weightOnly) {
		return nil, usageError{fmt.Errorf("flags --act-quadratic and --weight-only apply to --sensitivity hessian and diag: quadratic's activation term is always the exact quadratic form")}
	}
	a.Diag = c == sensitivity.Diag
	a.NoTraces = !c.NeedsTraces()
	if a.Diag && a.Method != plan.Hutchinson && a.Method != plan.Auto {
		return nil, usageError{fmt.Errorf("flag --sensitivity diag needs Hutchinson probes: give --method hutchinson or auto, not %s", a.Method)}
	}
	switch a.Method {
	case plan.Hutchinson, plan.Auto, plan.HutchPP, plan.XTrace, plan.Exact:
	default:
		return nil, usageError{fmt.Errorf("flag --method: unknown estimator %q (want hutchinson, auto, hutch++, xtrace or exact)", t.method)}
	}
	if t.tol <= 0 || t.minProbes < 2 || (t.maxProbes != 0 && t.maxProbes < t.minProbes) || t.matvecs < 6 {
		return nil, usageError{fmt.Errorf("flags --tol %g --min-probes %d --max-probes %d --matvecs %d: want tol > 0, 2 ≤ min ≤ max, matvecs ≥ 6", t.tol, t.minProbes, t.maxProbes, t.matvecs)}
	}
	if t.probeBatch < 0 {
		return nil, usageError{fmt.Errorf("flag --probe-batch: %d, want a number of samples ≥ 1, or 0 for all samples", t.probeBatch)}
	}
	if t.timeBudget < 0 {
		return nil, usageError{fmt.Errorf("flag --time-budget: %v, want a positive duration such as 2m, or 0 for none", t.timeBudget)}
	}
	if a.Method != plan.Hutchinson && a.Method != plan.Auto {
		for _, f := range []string{"probe-batch", "time-budget"} {
			if t.given(f) && !(f == "probe-batch" && t.probeBatch == 0) {
				return nil, usageError{fmt.Errorf("flag --%s applies to --method hutchinson and auto only (%s: %s)", f, a.Method, notHutchinson[f])}
			}
		}
	}
	a.Trace = &hessian.Settings{Seed: t.seed, Tol: t.tol, MinProbes: t.minProbes, MaxProbes: t.maxProbes,
		ProbeBatch: t.probeBatch, TimeBudget: t.timeBudget,
		Progress: func(p hessian.Progress) {
			more := ""
			if t.status != nil {
				more = t.status()
			}
			pr.printf("trace: %d probes in %s, worst relative error %.1f%% (target %.1f%%)%s%s", p.Probes, p.Elapsed.Round(time.Second), 100*p.WorstRelErr, 100*t.tol, eta(p, a.Trace.MaxProbes), more)
		}}
	a.Sketch = &hessian.SketchSettings{Seed: t.seed, Matvecs: t.matvecs}
	// Each word sets one of three choices; two words for one choice
	// conflict.
	given := map[int]string{}
	for _, s := range strings.Split(strings.ToLower(t.quant), ",") {
		w := strings.TrimSpace(s)
		choice := -1
		switch w {
		case "":
			continue
		case "symmetric", "asymmetric":
			choice = 0
			a.Quantizer.Asymmetric = w == "asymmetric"
		case "per-channel", "per-tensor":
			choice = 1
			a.Quantizer.PerTensor = w == "per-tensor"
		case "minmax", "mse":
			choice = 2
			a.Quantizer.MSE = w == "mse"
		default:
			return nil, usageError{fmt.Errorf("flag --quantizer: unknown word %q (want symmetric|asymmetric, per-channel|per-tensor, minmax|mse)", s)}
		}
		if prev, dup := given[choice]; dup && prev != w {
			return nil, usageError{fmt.Errorf("flag --quantizer: %q and %q conflict; give one of them", prev, w)}
		}
		given[choice] = w
	}
	for _, s := range strings.Split(t.candidates, ",") {
		p, err := sensitivity.ParsePrecision(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("flag --bits: %v", err)}
		}
		q := a.Quantizer
		q.Bits = p.W
		if err := q.Check(); err != nil {
			return nil, usageError{fmt.Errorf("flag --bits %s: weights: %v", s, err)}
		}
		if p.A > 32 {
			return nil, usageError{fmt.Errorf("flag --bits %s: activations: %d bits out of range [1, 32]", s, p.A)}
		}
		a.Candidates = append(a.Candidates, p)
	}
	return a, nil
}

// score sets the table's Ω by the --sensitivity criterion when it is one
// that needs more than the Hessian probes (eval.Score), measured on the
// calibration data ds at the analysis's quantizer; for hessian and diag
// it adds the activation term (eval.ActivationTerm) unless --weight-only,
// and returns it.
func (t *traceFlags) score(ctx context.Context, a *plan.Analysis, s *plan.Sensitivity, pr *progress) (*eval.ActivationResult, error) {
	c, err := sensitivity.ParseCriterion(t.criterion)
	if err != nil || (c.NeedsTraces() && t.weightOnly) {
		return nil, err
	}
	if c.NeedsTraces() {
		return t.activation(ctx, a, s.Table, pr, 0, t.pilot)
	}
	pr.printf("sensitivity: %s criterion on %d calibration samples", c, a.Data.Len())
	if err := eval.Score(ctx, a.Engine, a.Data, s.Table, c, &eval.ScoreSettings{Settings: eval.Settings{Weights: a.Quantizer}}); err != nil {
		return nil, err
	}
	s.Table.Source += fmt.Sprintf("; Ω: %s criterion on %d calibration samples", c, a.Data.Len())
	return nil, nil
}

// activation adds the activation term to table (eval.ActivationTerm) with
// the analysis's trace settings, estimated to the tolerance, or with
// exactly probes probes when probes > 0, continuing the estimate from
// (its probes not recomputed) when from is not nil. The weight traces'
// stopping rule is not passed on; actCheck, when set, is the activation
// traces' own.
func (t *traceFlags) activation(ctx context.Context, a *plan.Analysis, table *sensitivity.Table, pr *progress, probes int, from *eval.ActivationResult) (*eval.ActivationResult, error) {
	ts := *a.Trace
	ts.Check, ts.Strata = t.actCheck, nil
	if t.actMaxProbes > 0 {
		ts.MaxProbes = t.actMaxProbes
	}
	if probes > 0 {
		ts.MinProbes, ts.MaxProbes = probes, probes
	}
	ts.Progress = func(p hessian.Progress) {
		pr.printf("activation traces: %d probes in %s, worst relative error %.1f%% (target %.1f%%)%s", p.Probes, p.Elapsed.Round(time.Second), 100*p.WorstRelErr, 100*t.tol, eta(p, ts.MaxProbes))
	}
	return eval.ActivationTerm(ctx, a.Engine, a.Data, table, &eval.ActivationSettings{Trace: &ts, Quadratic: t.actQuad, Continue: from})
}

// defaultFullProducts is the probe limit by default, in products over all
// calibration samples. A mini-batch probe costs 1.5–2× more per sample than
// a full-data one (no forward pass shared between probes: 800 probes of 32
// samples took 38 s against 24 s for 100 over 256 on the bundled LeNet),
// so 50 keeps the limit below the old default of 100 full-data probes in
// time as well (docs/probes.md).
const defaultFullProducts = 50

// setData gives the analysis its calibration data, full-data products
// for a small calibration set when --probe-batch was not given, and, when
// --max-probes is 0, the probe limit of the same cost as defaultFullProducts products
// over all n samples (each probe on --probe-batch of them).
func (t *traceFlags) setData(a *plan.Analysis, ds data.Dataset) {
	a.Data = ds
	if !t.given("probe-batch") && ds.Len() <= fullDataUpTo {
		t.probeBatch, a.Trace.ProbeBatch = 0, 0
	}
	if t.maxProbes != 0 {
		return
	}
	n, per := ds.Len(), 1
	if b := t.probeBatch; b > 0 && b < n {
		per = (n + b - 1) / b
	}
	a.Trace.MaxProbes = max(t.minProbes, defaultFullProducts*per)
}

// notHutchinson says why --probe-batch and --time-budget do not apply to
// the other estimators.
var notHutchinson = map[string]string{
	"probe-batch": "a sketch needs one fixed operator across its matvecs, and exact traces use all samples",
	"time-budget": "the sketches run a fixed budget of --matvecs products, and exact traces one per weight",
}

// eta describes the expected time to the tolerance of a progress report.
func eta(p hessian.Progress, maxProbes int) string {
	switch {
	case p.ETA < 0:
		return ""
	case p.Needed > maxProbes:
		return fmt.Sprintf(", tolerance needs about %d probes (> --max-probes %d), %s", p.Needed, maxProbes, p.ETA.Round(time.Second))
	case p.ETA == 0:
		return ""
	}
	return fmt.Sprintf(", ETA to tolerance %s (about %d probes)", p.ETA.Round(time.Second), p.Needed)
}

// runTrace estimates every layer's Hessian trace on calibration data.
func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("trace", "MODEL.onnx --data mnist | --inputs X.npy --labels Y.npy [flags]", stdout)
	var df dataFlags
	df.register(fs, 256, "calibration (mnist, fashion-mnist, idx: the training split)")
	df.stderr = stderr
	df.registerLoss(fs)
	var tf traceFlags
	tf.register(fs)
	exact := fs.Bool("exact", false, "compute every layer's trace exactly from unit vectors (one product per weight: small models only); same as --method exact")
	eigen := fs.Bool("eigen", false, "also estimate the Hessian's largest eigenvalue (Lanczos)")
	density := fs.String("density", "", "also estimate the spectral density (stochastic Lanczos quadrature) and plot it to `FILE` (.svg, .png)")
	format := fs.String("format", "table", "output `FORMAT`: table, markdown, csv, or json (the sensitivity table for bitplan solve)")
	output := fs.String("o", "", "write the result to `FILE` instead of standard output")
	arg, f, help, err := parseOne(fs, args, "ONNX model", format)
	if help || err != nil {
		return err
	}
	if *exact {
		tf.method = string(plan.Exact)
	}
	pr := newProgress(stderr)
	a, err := tf.analysis(pr)
	if err != nil {
		return err
	}
	e, err := df.loadEngine(arg)
	if err != nil {
		return err
	}
	ds, err := df.load(data.Train, e)
	if err != nil {
		return err
	}
	a.Engine, a.Model, a.TopEigen = e, modelName(arg), *eigen
	tf.setData(a, ds)
	if err := tf.stratifyFirst(ctx, a, pr); err != nil {
		return err
	}
	if *density != "" {
		a.Density = &hessian.DensitySettings{Seed: tf.seed}
	}
	s, err := plan.Analyze(ctx, a)
	if err == nil {
		_, err = tf.score(ctx, a, s, pr)
	}
	pr.done()
	if err != nil {
		return err
	}
	inputs := []string{arg, df.inputs, df.labels}
	if *density != "" {
		for _, in := range inputs {
			if in != "" && sameFile(*density, in) {
				return usageError{fmt.Errorf("flag --density: %s is an input file; refusing to overwrite it", *density)}
			}
		}
		if err := plan.PlotDensity(s.Density, *density, "Hessian spectral density: "+a.Model); err != nil {
			return err
		}
	}
	if *output != "" {
		return writeOutput("o", *output, inputs, func(w io.Writer) error { return s.Write(w, f) })
	}
	return s.Write(stdout, f)
}
