package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/internal/bundled"
	"github.com/bitplan/bitplan/internal/readfile"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/qdq"
)

// runQuantize writes the QDQ model of a plan: weights stored as INT8/INT4
// codes, inputs quantized with ranges calibrated on training samples.
func runQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("quantize", "MODEL.onnx --plan PLAN.json [--data mnist | --inputs X.npy] -o OUT.onnx [flags]", stdout)
	planPath := fs.String("plan", "", "the plan to apply: `FILE` written by bitplan plan --format json (or solve)")
	var df dataFlags
	df.register(fs, 256, "calibrating activation ranges (MNIST: the training set)")
	df.stderr = stderr
	// Calibration runs the model forward only: it scores no loss and
	// reads no labels. --loss is taken (and checked) so that plan's data
	// flags work unchanged.
	df.inputsOnly = true
	fs.StringVar(&df.loss, "loss", lossClass, "`LOSS` as plan takes it (class, position, mse or kl): accepted and checked, but calibration runs the model forward only, scores no loss and reads no --labels")
	var xf exportFlags
	xf.register(fs, true)
	weightsOnly := fs.Bool("weights-only", false, "quantize the weights only; activations stay float")
	format := fs.String("format", "table", "`FORMAT` of the summary on standard output: table, json, csv or markdown")
	output := fs.String("o", "", "write the QDQ model to `FILE` (required; never one of the inputs)")
	var groups multiString
	fs.Var(&groups, "group", groupHelp+"; the plan must give every group one precision")
	arg, f, help, err := parseOne(fs, args, "ONNX model", format)
	if help || err != nil {
		return err
	}
	if *planPath == "" {
		return usageError{fmt.Errorf("quantize: flag --plan: give the plan to apply (bitplan plan --format json -o plan.json)")}
	}
	if *output == "" {
		return usageError{fmt.Errorf("quantize: flag -o: give the file to write the QDQ model to")}
	}
	grouping, err := plan.ParseGroups(groups)
	if err != nil {
		return usageError{fmt.Errorf("flag --%v", err)}
	}
	cfg, err := xf.config()
	if err != nil {
		return err
	}
	inputs := []string{arg, *planPath, df.inputs, df.labels}
	if err := xf.checkOutputs(*output, inputs); err != nil {
		return err
	}
	if df.labels != "" {
		fmt.Fprintf(stderr, "bitplan: quantize: --labels %s is not read (calibration takes the model's inputs only)\n", df.labels)
	}
	p, warnings, err := plan.ReadFile(*planPath)
	warn(stderr, warnings)
	if err != nil {
		return err
	}
	b, err := readfile.Read(arg, readfile.Model)
	if err != nil {
		return err
	}
	e, err := df.loadEngine(arg)
	if err != nil {
		return err
	}
	if err := p.CheckGroups(plan.FindGroups(e.Model(), grouping)); err != nil {
		return fmt.Errorf("%s: %w (re-plan with the same --group flags, or give --group none to export it anyway)", *planPath, err)
	}
	var calib data.Dataset
	if !*weightsOnly {
		if calib, err = df.load(data.Train, e); err != nil {
			return err
		}
	}
	layers, err := eval.FromPlan(p, e)
	if err != nil {
		return fmt.Errorf("%s: %w (model %s)", *planPath, err, arg)
	}
	if *weightsOnly {
		for i := range layers {
			layers[i].ABits = 0
		}
	}
	cfg.Model, cfg.Dir, cfg.Engine, cfg.Layers, cfg.Calib, cfg.Plan = b, filepath.Dir(arg), e, layers, calib, filepath.Base(*planPath)
	pr := newProgress(stderr)
	pr.printf("quantize: calibrating on %d samples", lenOf(calib))
	s, err := xf.write(ctx, cfg, *output, inputs)
	pr.done()
	if err != nil {
		return err
	}
	noteFloatNonlinear(stderr, s)
	return s.Write(stdout, f)
}

func lenOf(ds data.Dataset) int {
	if ds == nil {
		return 0
	}
	return ds.Len()
}

// exportFlags are the QDQ export flags of quantize, also taken by plan
// with --export.
type exportFlags struct {
	quant       string
	calibration string
	overrides   string
	dyadic      bool
	floatBias   bool
}

// register adds the flags; withQuantizer adds --quantizer too (plan has
// its own, which the export then uses).
func (x *exportFlags) register(fs *flag.FlagSet, withQuantizer bool) {
	x.quant = "symmetric,per-channel,minmax"
	if withQuantizer {
		fs.StringVar(&x.quant, "quantizer", x.quant, "weight quantizer `SPEC` (symmetric only: per-channel|per-tensor, minmax|mse; use the one the plan was priced with)")
	}
	fs.StringVar(&x.calibration, "calibration", "minmax", "activation range `METHOD`: minmax, percentile[:P] (default P 99.999) or mse")
	fs.StringVar(&x.overrides, "overrides", "", "also write the plan as ONNX Runtime TensorQuantOverrides JSON to `FILE`")
	fs.BoolVar(&x.dyadic, "dyadic", false, "record every requantization scale as a dyadic number b/2^c (HAWQ-V3) in the model's metadata")
	fs.BoolVar(&x.floatBias, "float-bias", false, "keep biases in float (default: INT32 with scale s_x·s_w when the input is quantized)")
}

// config checks the flags and returns the export settings.
func (x *exportFlags) config() (*qdq.Config, error) {
	wq, err := eval.ParseQuantizer(x.quant)
	if err != nil {
		return nil, usageError{fmt.Errorf("flag --quantizer: %v", err)}
	}
	if wq.Asymmetric {
		return nil, usageError{fmt.Errorf("flag --quantizer %q: QDQ export takes symmetric weights (zero point 0) only", x.quant)}
	}
	c, err := eval.ParseCalibration(x.calibration)
	if err != nil {
		return nil, usageError{fmt.Errorf("flag --calibration: %v", err)}
	}
	return &qdq.Config{Weights: wq, Calibration: c, Dyadic: x.dyadic, FloatBias: x.floatBias}, nil
}

// checkOutputs refuses outputs that are inputs, before any work.
func (x *exportFlags) checkOutputs(out string, inputs []string) error {
	for _, in := range inputs {
		if in != "" && sameFile(out, in) {
			return usageError{fmt.Errorf("flag -o: %s is an input file; refusing to overwrite it", out)}
		}
		if in != "" && x.overrides != "" && sameFile(x.overrides, in) {
			return usageError{fmt.Errorf("flag --overrides: %s is an input file; refusing to overwrite it", x.overrides)}
		}
	}
	if x.overrides != "" && sameFile(x.overrides, out) {
		return usageError{fmt.Errorf("flags -o and --overrides name the same file %s", out)}
	}
	return nil
}

// maxInline is the largest model written as one file: protobuf's 2 GiB
// limit, less a margin.
const maxInline = 1<<31 - 1<<20

// write exports the model and writes it (and the overrides) atomically:
// nothing is written unless the export succeeded. A model whose input
// kept its weights in external data (or that would not fit protobuf's
// 2 GiB) is written the same way: its large initializers in OUT.data
// next to it (never one of the input's data files), written before the
// model that refers to it.
func (x *exportFlags) write(ctx context.Context, cfg *qdq.Config, out string, inputs []string) (*qdq.Summary, error) {
	if err := x.checkOutputs(out, inputs); err != nil {
		return nil, err
	}
	r, err := qdq.Export(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var b, ext []byte
	dataPath := out + ".data"
	if len(r.ExternalFiles) > 0 || proto.Size(r.Model) > maxInline {
		for _, in := range append(append([]string{}, inputs...), r.ExternalFiles...) {
			if in != "" && sameFile(dataPath, in) {
				return nil, usageError{fmt.Errorf("flag -o: the QDQ model's external data %s would overwrite the input file %s; choose another -o", dataPath, in)}
			}
		}
		if x.overrides != "" && sameFile(dataPath, x.overrides) {
			return nil, usageError{fmt.Errorf("flags -o and --overrides: the QDQ model's external data is %s", dataPath)}
		}
		b, ext, err = r.MarshalExternal(filepath.Base(dataPath))
	} else {
		b, err = r.Marshal()
	}
	if err != nil {
		return nil, err
	}
	var ov bytes.Buffer
	if x.overrides != "" {
		if err := r.Summary.WriteOverrides(&ov); err != nil {
			return nil, err
		}
	}
	if ext != nil {
		if err := writeAtomic(dataPath, ext); err != nil {
			return nil, fmt.Errorf("flag -o: external data: %w", err)
		}
	}
	if err := writeAtomic(out, b); err != nil {
		return nil, fmt.Errorf("flag -o: %w", err)
	}
	if x.overrides != "" {
		if err := writeAtomic(x.overrides, ov.Bytes()); err != nil {
			return nil, fmt.Errorf("flag --overrides: %w", err)
		}
	}
	return &r.Summary, nil
}

// writeAtomic writes b to path through a temporary file in the same
// directory renamed over path, so a reader never sees a partial file.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// exportPlan is plan --export: the solved plan applied to the planned
// model, calibrated on the planning data.
func exportPlan(ctx context.Context, x *exportFlags, out, modelPath string, bundledModel bool, e *nn.Engine, calib data.Dataset, p *plan.Plan, inputs []string, stderr io.Writer) error {
	if p.Status != "optimal" && p.Status != "limit" {
		return fmt.Errorf("flag --export: the plan has status %q; nothing to export", p.Status)
	}
	cfg, err := x.config()
	if err != nil {
		return err
	}
	if bundledModel {
		cfg.Model = bundled.LeNet
	} else if cfg.Model, err = os.ReadFile(modelPath); err != nil {
		return err
	} else {
		cfg.Dir = filepath.Dir(modelPath)
	}
	layers, err := eval.FromPlan(p, e)
	if err != nil {
		return fmt.Errorf("flag --export: %w", err)
	}
	cfg.Engine, cfg.Layers, cfg.Calib, cfg.Plan = e, layers, calib, p.Model
	s, err := x.write(ctx, cfg, out, inputs)
	if err != nil {
		return fmt.Errorf("flag --export: %w", err)
	}
	fmt.Fprintf(stderr, "bitplan: wrote the QDQ model of the plan (%d layers, opset %d) to %s\n", len(s.Layers), s.Opset, out)
	noteFloatNonlinear(stderr, s)
	return nil
}

// noteFloatNonlinear says which integer-only non-linearities of the plan
// the QDQ model computes in float.
func noteFloatNonlinear(stderr io.Writer, s *qdq.Summary) {
	if len(s.FloatNonlinear) > 0 {
		fmt.Fprintf(stderr, "bitplan: the QDQ model computes the plan's %d integer-only non-linearity groups (%s) in float: ONNX runtimes have no I-BERT kernels (eval simulates them)\n",
			len(s.FloatNonlinear), strings.Join(s.FloatNonlinear, ", "))
	}
}

// ortReport exports the QDQ model of cfg (the model file at path) and runs
// it in ONNX Runtime: accuracy and loss on test, the kernels of its
// optimized graph, the median latency of one sample.
func ortReport(ctx context.Context, lib, path string, cfg *qdq.Config, test data.Dataset) (*eval.RuntimeReport, error) {
	if err := ort.Init(lib); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// ONNX Runtime loads both models from memory: external data inline.
	if cfg.Model, err = model.Inline(b, filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := qdq.Export(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if b, err = r.Marshal(); err != nil {
		return nil, err
	}
	s, err := ort.Open(b, nil)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	fs, err := ort.Open(cfg.Model, nil)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	// Scored with the engine's loss (per-position labels, MSE targets, KL
	// against the float model in ONNX Runtime), as the simulation is.
	res, _, err := s.Evaluate(ctx, test, &ort.EvalOptions{Loss: cfg.Engine.Loss(), Ref: fs})
	if err != nil {
		return nil, err
	}
	k, err := ort.OptimizedKernels(b, nil)
	if err != nil {
		return nil, err
	}
	// One sample of every input (token ids and a mask feed a BERT).
	shapes := [][]int{test.SampleShape()}
	if m, ok := test.(data.Inputs); ok {
		shapes = m.SampleShapes()
	}
	xs := make([][]float64, len(shapes))
	for i, sh := range shapes {
		n := 1
		for _, d := range sh {
			n *= d
		}
		xs[i] = make([]float64, n)
	}
	if m, ok := test.(data.Inputs); ok {
		err = m.ReadInputs(0, xs, make([]int, 1))
	} else {
		err = test.Read(0, xs[0], make([]int, 1))
	}
	if err != nil {
		return nil, err
	}
	ins := s.Inputs()
	if len(ins) != len(xs) {
		return nil, fmt.Errorf("%s: the QDQ model has %d inputs, the test data %d", path, len(ins), len(xs))
	}
	feeds := make([]ort.Feed, len(xs))
	for i, in := range ins {
		integer := in.Type != onnx.TensorProto_FLOAT
		if integer && in.Type != onnx.TensorProto_INT64 {
			return nil, fmt.Errorf("%s: input %q has element type %v; latency is timed on FLOAT and INT64 inputs", path, in.Name, in.Type)
		}
		feeds[i] = ort.NewFeed(in.Name, integer, xs[i], 1, shapes[i])
	}
	lat, err := ort.TimeInputs(b, nil, feeds, latencyWarmup, latencyRuns)
	if err != nil {
		return nil, err
	}
	flat, err := ort.TimeInputs(cfg.Model, nil, feeds, latencyWarmup, latencyRuns)
	if err != nil {
		return nil, err
	}
	return &eval.RuntimeReport{Name: "onnxruntime " + ort.Version(), Result: res, Kernels: k, Quantized: k.Quantized(),
		LatencyMS: ms(lat.Median), FloatLatencyMS: ms(flat.Median)}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencyWarmup and latencyRuns are the untimed and timed runs of one
// latency figure (the median is reported).
const (
	latencyWarmup = 20
	latencyRuns   = 200
)
