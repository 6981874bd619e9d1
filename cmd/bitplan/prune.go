package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/internal/readfile"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/profiles"
	"github.com/bitplan/bitplan/prune"
)

// pruneBudget is a flag.Value collecting one --max-* budget of bitplan prune.
type pruneBudget struct {
	kind budget.Kind
	out  *[]plan.Budget
}

func (v pruneBudget) String() string { return "" }
func (v pruneBudget) Set(s string) error {
	b, err := budget.Parse(v.kind, s)
	if err != nil {
		return err
	}
	if b.Relative && !b.BaseGiven && b.Kind.DefaultBase() != budget.Max {
		// Before one vocabulary, prune read a bare P% of size or latency
		// as a fraction of the unpruned model; plan reads it as a share of
		// the range. Refuse the spelling rather than change its meaning.
		p := strings.TrimSpace(s[:strings.Index(s, "%")])
		return fmt.Errorf("%q is ambiguous here: bitplan prune used to read it as %s%% of the unpruned model, "+
			"bitplan plan as %s%% of the range from least to unpruned; write %s%%max for the first or %s%%range for the second", s, p, p, p, p)
	}
	for _, o := range *v.out {
		if o.Spec.Kind == v.kind {
			return fmt.Errorf("given twice")
		}
	}
	*v.out = append(*v.out, plan.Budget{Resource: v.kind.String(), Spec: b})
	return nil
}

// runPrune plans structured pruning — channels, attention heads, FFN rows —
// (optionally jointly with bit widths) with Hessian-aware importances,
// writes the pruned ONNX model and
// reports accuracy before and after an optional fine-tuning.
func runPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("prune", "MODEL.onnx --data mnist --max-params 50% [flags]", stdout)
	var df dataFlags
	df.register(fs, 512, "calibration and fine-tuning (mnist, fashion-mnist, idx: the training split)")
	df.stderr = stderr
	df.registerLoss(fs)
	var budgets []plan.Budget
	fs.Var(pruneBudget{budget.Params, &budgets}, "max-params", "parameter budget: `COUNT` (30K, 1.2M) or P% (= P%max) of the unpruned model; P%range: of the range from the least (every group at its smallest ratio) to the unpruned model")
	fs.Var(pruneBudget{budget.FLOPs, &budgets}, "max-flops", "FLOPs budget per sample (2·MACs): `COUNT` (2.4M), P% (= P%max) of the unpruned model, or P%range")
	fs.Var(pruneBudget{budget.Size, &budgets}, "max-size", "weight size budget: `SIZE` (120KB), P%max of the unpruned model at the widest --bits (32-bit without --joint) or P%range of the range from the least to that")
	fs.Var(pruneBudget{budget.BOPS, &budgets}, "max-bops", "bit-operations budget (MACs·b_w·b_a): `BOPS` (72G), P%max or P%range")
	fs.Var(pruneBudget{budget.Latency, &budgets}, "max-latency", "latency budget on --profile: `TIME` (0.5ms), P%max or P%range")
	profile := fs.String("profile", "", "hardware `PROFILE` pricing --max-latency: a built-in name (see bitplan profiles) or a JSON file")
	precision := fs.String("precision", "w32a32", "weight/activation `PRECISION` of the latency and size models without --joint")
	mode := fs.String("mode", "ilp", "planner `MODE`: ilp (exact, per-group keep ratios), threshold (HAP's global threshold), uniform (one ratio, HAP ranking) or l1 (one ratio, L1-norm ranking)")
	ratios := fs.String("ratios", "", "keep ratios the ILP chooses from, comma-separated `LIST` (default 1,0.875,...,0.125)")
	joint := fs.Bool("joint", false, "plan pruning and weight bit widths together (mode ilp)")
	bits := fs.String("bits", "4,8", "candidate weight widths of --joint, comma-separated `LIST`")
	probes := fs.Int("probes", 32, "Hutchinson probes `N` for the channel traces")
	probeBatch := fs.Int("probe-batch", 0, "each probe averages the Hessian over its own random mini-batch of `N` calibration samples (0: all samples)")
	seed := fs.Uint64("seed", 1, "random `SEED` of the probes and of fine-tuning")
	sign := fs.String("sign", "abs", "how negative channel traces count: `POLICY` abs, clamp or signed")
	nodeLimit := fs.Int("node-limit", 0, "bound the exact search to `N` nodes (0: 2,000,000)")
	steps := fs.Int("finetune-steps", 0, "fine-tune the pruned model for `N` SGD steps on the calibration data (0: none)")
	lr := fs.Float64("lr", 0.002, "fine-tuning learning `RATE` (momentum 0.9, batch 32)")
	compensate := fs.Bool("compensate", false, "fold the removed inputs' calibration means into Gemm/MatMul consumers' biases (mean replacement)")
	testN := fs.Int("test-samples", 10000, "measure accuracy on `N` test images (with --data mnist, fashion-mnist or idx:; 0: skip)")
	output := fs.String("o", "", "write the pruned ONNX model to `FILE`")
	format := fs.String("format", "table", "report `FORMAT`: table, json, csv or markdown")
	arg, f, help, err := parseOne(fs, args, "ONNX model", format)
	if help || err != nil {
		return err
	}
	req := &prune.Request{Budgets: budgets, Joint: *joint, Model: modelName(arg), NodeLimit: *nodeLimit}
	if req.Mode, err = prune.ParseMode(*mode); err != nil {
		return usageError{fmt.Errorf("flag --mode: %v", err)}
	}
	if *joint && req.Mode != prune.ILP {
		return usageError{fmt.Errorf("flag --joint needs --mode ilp, got %s", req.Mode)}
	}
	if len(budgets) == 0 {
		return usageError{fmt.Errorf("no budget: give --max-params, --max-flops, --max-size, --max-bops or --max-latency")}
	}
	if req.Ratios, err = floatList(*ratios); err != nil {
		return usageError{fmt.Errorf("flag --ratios: %v", err)}
	}
	if *joint {
		for _, s := range strings.Split(*bits, ",") {
			b, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || b < 2 || b > 32 {
				return usageError{fmt.Errorf("flag --bits: %q is not a width in 2..32", s)}
			}
			req.Bits = append(req.Bits, b)
		}
	}
	if req.Precision, err = profiles.ParsePrecision(*precision); err != nil {
		return usageError{fmt.Errorf("flag --precision: %v", err)}
	}
	if *profile != "" {
		if req.Profile, err = profiles.Load(*profile); err != nil {
			return usageError{fmt.Errorf("flag --profile: %v", err)}
		}
	}
	for _, b := range budgets {
		if b.Spec.Kind == budget.Latency && req.Profile == nil {
			return usageError{fmt.Errorf("flag --max-latency: needs --profile")}
		}
	}
	sg, err := prune.ParseSign(*sign)
	if err != nil {
		return usageError{fmt.Errorf("flag --sign: %v", err)}
	}
	if *probeBatch < 0 {
		return usageError{fmt.Errorf("flag --probe-batch: %d, want a number of samples ≥ 1, or 0 for all samples", *probeBatch)}
	}
	if *probes < 2 || *steps < 0 || *testN < 0 || !(*lr > 0) {
		return usageError{fmt.Errorf("flags --probes %d --finetune-steps %d --test-samples %d --lr %g: want probes ≥ 2, steps ≥ 0, samples ≥ 0, lr > 0", *probes, *steps, *testN, *lr)}
	}

	raw, err := readfile.Read(arg, readfile.Model)
	if err != nil {
		return err
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(raw, mp); err != nil {
		return fmt.Errorf("%s: not an ONNX model: %v", arg, err)
	}
	// Pruning edits the file by node position and initializer name: those
	// of the normalised graph.
	mp, m, err := model.NormalizeProto(mp)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	e, err := df.engine(m, arg)
	if err != nil {
		return err
	}
	lk, _ := df.lossKind()
	if *steps > 0 && lk != lossClass {
		return usageError{fmt.Errorf("flag --finetune-steps: fine-tuning takes class labels (this run: --loss %s); give --finetune-steps 0", lk)}
	}
	calib, err := df.load(data.Train, e)
	if err != nil {
		return err
	}
	var test data.Dataset
	if df.hasSplits() && *testN > 0 {
		if test, err = df.loadN(data.Test, e, *testN); err != nil {
			return err
		}
	}
	st, err := prune.Analyze(m)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	pr := newProgress(stderr)
	req.Structure = st
	req.Importance, err = prune.Estimate(ctx, e, calib, &prune.Settings{Probes: *probes, Seed: *seed, Sign: sg, ProbeBatch: *probeBatch,
		Progress: func(i, n int) { pr.printf("channel traces: probe %d of %d", i, n) }})
	pr.done()
	if err != nil {
		return err
	}
	p, err := prune.Solve(ctx, req)
	if err != nil {
		return err
	}
	if p.Keep() != nil {
		opts := &prune.RealizeOptions{Test: test, Original: e, Calibration: calib,
			Engine: &nn.Options{BatchSize: df.batch, Workers: df.workers, Precision: e.Precision(), Loss: initialLoss(lk)}, Compensate: *compensate}
		if *steps > 0 {
			opts.FineTune = &prune.FineTuneSettings{Steps: *steps, LR: *lr, Seed: *seed,
				Progress: func(i int, loss float64) { pr.printf("fine-tuning: step %d of %d, loss %.4f", i, *steps, loss) }}
		}
		pruned, _, err := prune.Realize(ctx, mp, st, p, opts)
		pr.done()
		if err != nil {
			return err
		}
		if *output != "" {
			b, err := proto.Marshal(pruned)
			if err != nil {
				return err
			}
			inputs := []string{arg, df.inputs, df.labels}
			if err := writeOutput("o", *output, inputs, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
				return err
			}
		}
	}
	warn(stderr, p.Warnings)
	if err := p.Write(stdout, f); err != nil {
		return err
	}
	if p.Keep() == nil {
		return errInfeasible
	}
	return nil
}

// floatList parses a comma-separated list of numbers ("" is nil).
func floatList(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0 && v <= 1) {
			return nil, fmt.Errorf("%q is not a keep ratio in (0, 1]", f)
		}
		out = append(out, v)
	}
	return out, nil
}
