package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/ilp"
	"github.com/bitplan/bitplan/internal/bundled"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/sensitivity"
)

// The bundled default of `bitplan plan` with no arguments.
const (
	defaultProfile = "t4"
	defaultBudget  = "50%"
)

// runPlan is the main job: ONNX model + calibration data + hardware budget
// in, an optimal per-layer precision plan with its certificate out.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plan", "[MODEL.onnx --data mnist | --inputs X.npy --labels Y.npy] [--profile NAME] [--max-size S] [--max-bops B] [--max-latency L] [flags]", stdout)
	var df dataFlags
	df.register(fs, 256, "calibration (mnist, fashion-mnist, idx: the training split)")
	df.stderr = stderr
	df.registerLoss(fs)
	var tf traceFlags
	tf.register(fs)
	var bf budgetFlags
	bf.register(fs)
	format := fs.String("format", "table", "output `FORMAT`: table, json (the plan, accepted by bitplan eval), csv or markdown")
	output := fs.String("o", "", "write the plan to `FILE` instead of standard output")
	tableOut := fs.String("table-out", "", "also write the sensitivity table to `FILE` (input of bitplan solve)")
	stability := fs.Int("stability", 0, "re-solve `N` times on bootstrap resamples of the Hutchinson probes, the weight traces' and, independently, the activation traces' (with --act-quadratic the weight traces' only: its activation term is exact; --sensitivity diag: its diagonal sums from the same probes), and report per-layer choice frequencies")
	timeLimit := fs.Duration("time-limit", 0, "stop the ILP search after `DURATION` (0: none)")
	verifyK := fs.Int("verify", 3, "measure the ILP plan, its `K` next-best plans and the widest fitting uniform plan on held-out samples, correct Ω where the measurement overrules it, and return the best measured (0: skip)")
	verifyN := fs.Int("verify-samples", 1000, "held-out samples `N` of the verification, taken after the --samples calibration samples")
	gap := gapFlag(fs)
	attBits := fs.String("attention-bits", "16", "candidate `WIDTHS` of both inputs of every activation × activation MatMul (attention's Q·Kᵀ and P·V), comma-separated, e.g. 4,8,16 (16: float, FP16 on the device); Ω is the measured loss increase (×2 for the Hessian criteria); the default 16 keeps them float and counts their MACs in BOPS, latency and energy; none leaves them out of the plan")
	nonlin := fs.String("nonlinear", "float", "GELU, Softmax and LayerNorm `MODE`: float (not planned) or choose (per block, integer-only as I-BERT computes them or float: Ω measured as for --attention-bits, latency and energy from the profile's element-wise units)")
	stopRule := fs.String("stop", stopPlan, "stop the trace estimate on `RULE`: plan (at the tolerance, or as soon as no trace vector in the layers' joint 95 % confidence box can change the ILP's plan) or tolerance (only at --tol; the traces of --table-out are then as precise as asked)")
	export := fs.String("export", "", "also write the plan's QDQ model (as bitplan quantize does, calibrated on the planning data) to `FILE`")
	var xf exportFlags
	xf.register(fs, false)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	f, err := plan.ParseFormat(*format)
	if err != nil {
		return usageError{fmt.Errorf("flag --format: %v", err)}
	}
	if err := checkGap(*gap); err != nil {
		return err
	}
	var modelPath string
	switch len(pos) {
	case 0:
		// The bundled default: LeNet-5 on MNIST for a T4 at half the size
		// range, unless flags say otherwise.
		modelPath = "(bundled lenet)"
		if df.source == "" && df.inputs == "" {
			df.source = "mnist"
		}
		if len(bf.devices) == 0 {
			if err := (profileValue{&bf}).Set(defaultProfile); err != nil {
				return err
			}
		}
		if len(bf.pending) == 0 {
			if err := (budgetValue{&bf, sizeKind, "max-size"}).Set(defaultBudget); err != nil {
				return err
			}
		}
		fmt.Fprintf(stderr, "bitplan: planning the bundled LeNet-5 on MNIST for %s, budgets: %s\n", deviceNames(bf.devices), pendingText(bf.pending))
	case 1:
		modelPath = pos[0]
	default:
		return usageError{fmt.Errorf("plan: want at most one ONNX model, got %d arguments", len(pos))}
	}
	if c := strings.ToLower(tf.criterion); *stability > 0 && c != "" && c != string(sensitivity.Hessian) && c != string(sensitivity.Diag) {
		return usageError{fmt.Errorf("flag --stability resamples the Hessian probes; it applies to --sensitivity hessian and diag, not %s (its Ω is measured or exact, with no per-probe samples)", tf.criterion)}
	}
	abits, err := parseAttentionBits(*attBits)
	if err != nil {
		return err
	}
	if *nonlin != "float" && *nonlin != "choose" {
		return usageError{fmt.Errorf("flag --nonlinear %q: want float or choose", *nonlin)}
	}
	if *verifyK < 0 || *verifyN < 0 {
		return usageError{fmt.Errorf("flags --verify and --verify-samples must not be negative")}
	}
	if *verifyK > 0 && *verifyN == 0 {
		return usageError{fmt.Errorf("flag --verify-samples: the verification needs held-out samples (or give --verify 0)")}
	}
	if *verifyK > 0 && df.samples == 0 {
		return usageError{fmt.Errorf("flag --samples 0 puts every sample in the traces; --verify needs held-out ones: give --samples N or --verify 0")}
	}
	pr := newProgress(stderr)
	a, err := tf.analysis(pr)
	if err != nil {
		return err
	}
	byPlan, err := stopByPlan(*stopRule, tf.given("stop"), a, tf.actQuad)
	if err != nil {
		return err
	}
	// The budgets are checked before any work (they need no trace).
	devices, budgets, err := bf.budgets(false)
	if err != nil {
		return err
	}
	var e *nn.Engine
	if len(pos) == 0 {
		m, derr := model.Decode(bundled.LeNet)
		if derr != nil {
			return fmt.Errorf("bundled model: %w", derr)
		}
		e, err = df.engine(m, modelPath)
	} else {
		e, err = df.loadEngine(modelPath)
	}
	if err != nil {
		return err
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "verify" || f.Name == "verify-samples" })
	ds, heldOut, err := calibAndHeldOut(&df, e, *verifyK > 0, explicit, *verifyN, stderr)
	if err != nil {
		return err
	}
	a.Engine, a.Model = e, modelName(modelPath)
	tf.setData(a, ds)
	if len(pos) == 0 {
		a.Model = "lenet (bundled)"
	}
	var (
		ps               *plan.StableStop
		ts               *plan.Sensitivity      // the checks' table
		act              *eval.ActivationResult // its activation term
		final            *eval.ActivationResult // the table's activation term (for --stability)
		actNote, attNote string                 // what the activation term and addAttention added to its source
	)
	if byPlan && a.Trace.MaxProbes > a.Trace.MinProbes {
		// (With a fixed number of probes there is nothing to stop
		// early.) The table without traces (Δ², costs, ties) for the checks.
		tmpl := *a
		tmpl.NoTraces, tmpl.TopEigen, tmpl.Density = true, false, nil
		ts, err = plan.Analyze(ctx, &tmpl)
		if err == nil && !tf.weightOnly {
			// The activation term first, a pilot of --min-probes
			// probes (actPilot when they are importance-sampled): its
			// traces' intervals join the checks' box. If the weight
			// traces then stop on the rule, the plan is certified for
			// that box and the table takes the pilot's activation
			// term; else the term is estimated on, to the tolerance,
			// after the weights, continuing from the pilot's probes.
			base := ts.Table.Source
			act, err = tf.activation(ctx, a, ts.Table, pr, tf.minProbes, nil)
			if err == nil && act.Design != nil && actPilot > tf.minProbes && (tf.maxProbes == 0 || actPilot <= tf.maxProbes) {
				mid := ts.Table.Source
				act, err = tf.activation(ctx, a, ts.Table, pr, actPilot, act)
				ts.Table.Source = base + strings.TrimPrefix(ts.Table.Source, mid)
			}
			actNote = strings.TrimPrefix(ts.Table.Source, base)
			if err == nil && !tf.given("probe-batch") {
				tf.stratify(a, act, ds.Len())
			}
		}
		if err == nil && abits != nil {
			// Attention points share the budgets: the checks' ILP
			// needs them (their Ω is measured, not a trace's), and the
			// final table takes them from here.
			base := ts.Table.Source
			err = addAttention(ctx, e, ds, ts, abits, pr)
			attNote = strings.TrimPrefix(ts.Table.Source, base)
		}
		if err != nil {
			return err
		}
		ps = &plan.StableStop{Table: ts.Table, Confidence: defaultStopConfidence, Overhead: stopOverhead,
			Request: plan.Request{Devices: devices, Budgets: budgets, Settings: &ilp.Settings{TimeLimit: *timeLimit, RelGap: *gap}}}
		if act != nil {
			ps.Activation, ps.ActivationLayers = act.Traces, act.Layers
		}
		a.Trace.Check = ps.Rule(ctx)
		tf.status = func() string {
			if ps.Status == "" {
				return ""
			}
			return "; " + ps.Status
		}
	} else if err := tf.stratifyFirst(ctx, a, pr); err != nil {
		return err
	}
	s, err := plan.Analyze(ctx, a)
	if err == nil && ps != nil {
		if d := ps.Describe(s.Traces); d != "" {
			s.Table.Source += "; " + d
			fmt.Fprintf(stderr, "bitplan: traces %s\n", d)
		}
	}
	switch {
	case err != nil:
	case act != nil && s.Traces.Stop == plan.StopPlanStable:
		// The plan is certified with the pilot's activation term: the
		// same layers, in the same order.
		for _, i := range act.Layers {
			l, from := &s.Table.Layers[i], &ts.Table.Layers[i]
			l.ActAvgTrace, l.ActAvgTraceStderr, l.ActDeltaSq = from.ActAvgTrace, from.ActAvgTraceStderr, from.ActDeltaSq
		}
		s.Table.Source += actNote
		final = act
	case act != nil:
		// The activation term to the tolerance, or until the plan is
		// stable with the weight traces' box fixed, from the pilot's
		// probes on (the first check is on them).
		again := *ps
		again.Table, again.Weights, again.Checks, again.Status = s.Table, s.Traces, 0, ""
		tf.actCheck = again.Rule(ctx)
		if final, err = tf.activation(ctx, a, s.Table, pr, 0, act); err == nil {
			if d := again.Describe(final.Traces); d != "" {
				s.Table.Source += "; activation traces " + d
				fmt.Fprintf(stderr, "bitplan: activation traces %s\n", d)
			}
		}
	case ts == nil:
		final, err = tf.score(ctx, a, s, pr)
	}
	switch {
	case err != nil || abits == nil:
	case ts != nil:
		// Measured for the checks already: the same layers after the
		// units (the template was analysed like this table).
		s.Table.Layers = append(s.Table.Layers, ts.Table.Layers[len(s.Table.Layers):]...)
		s.Table.Source += attNote
	default:
		err = addAttention(ctx, e, ds, s, abits, pr)
	}
	if err == nil && *nonlin == "choose" {
		pr.printf("non-linearities: measuring Ω of integer-only GELU, Softmax and LayerNorm per block")
		var n int
		if n, err = eval.AddNonlinear(ctx, e, ds, s.Table); err == nil && n > 0 {
			s.Table.Source += fmt.Sprintf("; %d non-linearity groups (I-BERT integer-only or float): Ω measured on %d calibration samples", n, ds.Len())
		}
	}
	pr.done()
	if err != nil {
		return err
	}
	if *tableOut != "" {
		if err := writeOutput("table-out", *tableOut, []string{modelPath, df.inputs, df.labels}, s.Table.WriteJSON); err != nil {
			return err
		}
	}
	req := &plan.Request{Table: s.Table, Devices: devices, Budgets: budgets,
		Settings: &ilp.Settings{TimeLimit: *timeLimit, RelGap: *gap}}
	if heldOut != nil {
		req.Verify = &plan.Verify{K: *verifyK, Measure: &measureProgress{
			m: &eval.Measurer{Engine: e, Calib: ds, HeldOut: heldOut, Weights: a.Quantizer,
				Loss: df.heldOutLoss(df.samples)}, p: newProgress(stderr)}}
	}
	show, endProgress := solveProgress(stderr)
	req.Settings.Progress = show
	p, err := plan.Solve(ctx, req)
	endProgress()
	if req.Verify != nil {
		req.Verify.Measure.(*measureProgress).p.done()
	}
	if err != nil {
		return err
	}
	if *stability > 0 && p.Objective != nil {
		// The activation traces' probes too (none with --act-quadratic,
		// whose term is exact and stays fixed).
		st, err := plan.StabilityOf(ctx, req, p, *stability, tf.seed, plan.BootstrapResampler(final.Probes(s)))
		if err != nil {
			return err
		}
		p.Stability = st
	}
	if err := emitPlan(ctx, p, f, *output, []string{modelPath, df.inputs, df.labels}, stdout, stderr); err != nil || *export == "" {
		return err
	}
	xf.quant = tf.quant
	return exportPlan(ctx, &xf, *export, modelPath, len(pos) == 0, e, ds, p, []string{modelPath, df.inputs, df.labels, *output, *tableOut}, stderr)
}

// calibAndHeldOut loads the calibration samples (--samples) and, when
// held is set, up to n held-out samples after them for the verification.
// When none is left the verification is an error if the user asked for it
// (explicit), else it is skipped with a note on stderr.
func calibAndHeldOut(df *dataFlags, e *nn.Engine, held, explicit bool, n int, stderr io.Writer) (data.Dataset, data.Dataset, error) {
	if !held {
		ds, err := df.load(data.Train, e)
		return ds, nil, err
	}
	all, err := df.loadN(data.Train, e, df.samples+n)
	if err != nil {
		return nil, nil, err
	}
	if all.Len() <= df.samples && !explicit {
		fmt.Fprintf(stderr, "bitplan: the data has %d samples and --samples takes %d for the traces; none is left to verify the plan on, so it is not verified (give more data or fewer --samples)\n", all.Len(), df.samples)
		return all, nil, nil
	}
	if all.Len() <= df.samples {
		return nil, nil, usageError{fmt.Errorf("flag --verify: the data has %d samples and --samples takes %d for the traces, none is left to verify on: give fewer --samples, more data, or --verify 0", all.Len(), df.samples)}
	}
	rest := newWindow(all, df.samples, all.Len()-df.samples)
	if rest.Len() < n {
		fmt.Fprintf(stderr, "bitplan: verifying on the %d samples left after the %d calibration samples (--verify-samples %d)\n", rest.Len(), df.samples, n)
	}
	return data.Head(all, df.samples), rest, nil
}

// newWindow returns the samples [off, off+n) of ds, of every input when ds
// has several (token ids and a mask).
func newWindow(ds data.Dataset, off, n int) data.Dataset {
	w := window{ds, off, n}
	if mi, ok := ds.(data.Inputs); ok {
		return windowInputs{w, mi}
	}
	return w
}

// window is the samples [off, off+n) of a dataset.
type window struct {
	data.Dataset
	off, n int
}

func (w window) Len() int { return w.n }

func (w window) check(start, n int) error {
	if start < 0 || start+n > w.n {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+n, w.n)
	}
	return nil
}

func (w window) Read(start int, inputs []float64, labels []int) error {
	if err := w.check(start, len(labels)); err != nil {
		return err
	}
	return w.Dataset.Read(w.off+start, inputs, labels)
}

// windowInputs is a window of a dataset of several inputs.
type windowInputs struct {
	window
	in data.Inputs
}

func (w windowInputs) SampleShapes() [][]int { return w.in.SampleShapes() }

func (w windowInputs) ReadInputs(start int, inputs [][]float64, labels []int) error {
	if err := w.check(start, len(labels)); err != nil {
		return err
	}
	return w.in.ReadInputs(w.off+start, inputs, labels)
}

// measureProgress shows the verification's passes on a terminal.
type measureProgress struct {
	m     plan.Measurer
	p     *progress
	calls int
}

func (m *measureProgress) Measure(ctx context.Context, layers []plan.Layer) (plan.Measurement, error) {
	m.calls++
	m.p.printf("verifying the plan: measurement %d", m.calls)
	return m.m.Measure(ctx, layers)
}

func deviceNames(ds []plan.Device) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ", "
		}
		s += d.Profile.Name
	}
	return s
}

func pendingText(ps []pendingBudget) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += "--" + p.flag + " " + p.text
	}
	return s
}

// sizeKind is the budget kind of the default budget.
const sizeKind = budget.Size

// parseAttentionBits reads --attention-bits: "none" (nil) or a list of
// widths in 1..32 (16 and more: float).
func parseAttentionBits(spec string) ([]int, error) {
	spec = strings.TrimSpace(spec)
	if strings.EqualFold(spec, "none") {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b < 1 || b > eval.MaxBits {
			return nil, usageError{fmt.Errorf("flag --attention-bits %q: want comma-separated widths in 1..%d (16: float) or none", spec, eval.MaxBits)}
		}
		if slices.Contains(out, b) {
			return nil, usageError{fmt.Errorf("flag --attention-bits %q: width %d given twice", spec, b)}
		}
		out = append(out, b)
	}
	return out, nil
}

// addAttention appends the model's attention points to the table (see
// eval.AddAttention) and says so in its source.
func addAttention(ctx context.Context, e *nn.Engine, ds data.Dataset, s *plan.Sensitivity, bits []int, pr *progress) error {
	quant := slices.ContainsFunc(bits, func(b int) bool { return b < eval.FloatBits })
	if quant {
		pr.printf("attention: measuring Ω of %d activation × activation MatMuls", len(eval.AttentionPoints(e)))
	}
	n, err := eval.AddAttention(ctx, e, ds, s.Table, &eval.AttentionSettings{Bits: bits})
	if err != nil || n == 0 {
		return err
	}
	if quant {
		s.Table.Source += fmt.Sprintf("; %d attention points (Q·Kᵀ, P·V): Ω measured on %d calibration samples", n, ds.Len())
	} else {
		s.Table.Source += fmt.Sprintf("; %d attention points (Q·Kᵀ, P·V) counted at float", n)
	}
	return nil
}
