package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/qdq"
)

// runEval measures a plan's accuracy: the model's weights fake-quantized
// to each layer's bits, its layers' inputs to their abits with ranges
// calibrated on training samples, evaluated against the float model on
// the test set.
func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", "MODEL.onnx --plan PLAN.json [--data mnist | --inputs X.npy --labels Y.npy] [flags]", stdout)
	planPath := fs.String("plan", "", "the plan to apply: `FILE` written by bitplan plan --format json (or solve)")
	var df dataFlags
	df.register(fs, 0, "evaluation (mnist, fashion-mnist, idx: the test split)")
	df.stderr = stderr
	df.registerLoss(fs)
	calibN := fs.Int("calib-samples", 256, "calibrate activation ranges on `N` samples (mnist, fashion-mnist, idx: the training set; 0: all)")
	calibIn := fs.String("calib-inputs", "", "calibration inputs as a NumPy `FILE` (with --calib-labels; default: the first --calib-samples of --inputs)")
	calibLab := fs.String("calib-labels", "", "calibration labels as a NumPy `FILE`, with --calib-inputs")
	quant := fs.String("quantizer", "symmetric,per-channel,minmax", "weight quantizer `SPEC`: symmetric|asymmetric, per-channel|per-tensor, minmax|mse (use the one the plan was priced with)")
	weightsOnly := fs.Bool("weights-only", false, "quantize the weights only; activations stay float")
	calibration := fs.String("calibration", "minmax", "activation range `METHOD`: minmax, percentile[:P] or mse")
	runtime := fs.String("runtime", "", "also run the plan's QDQ model in `RUNTIME` (ort: ONNX Runtime, builds with -tags ort) and report its accuracy, kernels and latency")
	ortLib := fs.String("ort-lib", "", "ONNX Runtime shared library `FILE` (default $"+ort.LibraryEnv+")")
	format := fs.String("format", "table", "output `FORMAT`: table, json, csv or markdown")
	output := fs.String("o", "", "write the report to `FILE` instead of standard output")
	arg, f, help, err := parseOne(fs, args, "ONNX model", format)
	if help || err != nil {
		return err
	}
	if df.source == "synthetic" {
		return usageError{fmt.Errorf("eval: flag --data synthetic: eval measures accuracy on real test data; give --data or --inputs/--labels for it (plan from synthetic data, evaluate on real)")}
	}
	if *planPath == "" {
		return usageError{fmt.Errorf("eval: flag --plan: give the plan to evaluate (bitplan plan --format json -o plan.json)")}
	}
	wq, err := eval.ParseQuantizer(*quant)
	if err != nil {
		return usageError{fmt.Errorf("flag --quantizer: %v", err)}
	}
	cal, err := eval.ParseCalibration(*calibration)
	if err != nil {
		return usageError{fmt.Errorf("flag --calibration: %v", err)}
	}
	if *runtime != "" && *runtime != "ort" {
		return usageError{fmt.Errorf("flag --runtime: unknown runtime %q (want ort)", *runtime)}
	}
	if *calibN < 0 {
		return usageError{fmt.Errorf("flag --calib-samples: must not be negative, got %d", *calibN)}
	}
	if (*calibIn == "") != (*calibLab == "") {
		return usageError{fmt.Errorf("flags --calib-inputs and --calib-labels: give both")}
	}
	if lk, _ := df.lossKind(); *calibIn != "" && lk != lossClass {
		return usageError{fmt.Errorf("flags --calib-inputs/--calib-labels go with --loss class; with --loss %s the activation ranges are calibrated on the first --calib-samples of the evaluation data", lk)}
	}
	if *calibIn != "" && df.source != "" {
		return usageError{fmt.Errorf("flags --calib-inputs/--calib-labels go with --inputs/--labels; --data %s brings its own calibration split", df.source)}
	}
	p, warnings, err := plan.ReadFile(*planPath)
	warn(stderr, warnings)
	if err != nil {
		return err
	}
	e, err := df.loadEngine(arg)
	if err != nil {
		return err
	}
	test, err := df.load(data.Test, e)
	if err != nil {
		return err
	}
	var calib data.Dataset
	switch {
	case *weightsOnly:
	case df.hasSplits():
		calib, err = df.loadN(data.Train, e, *calibN)
	case *calibIn != "":
		var m *data.Memory
		m, err = data.LoadNPY(*calibIn, *calibLab)
		calib = data.Head(m, *calibN)
	default:
		calib = data.Head(test, *calibN)
		src := df.inputs
		if src == "" {
			src = df.source
		}
		fmt.Fprintf(stderr, "bitplan: calibrating activation ranges on the first %d samples of %s (give --calib-inputs to use other data)\n", calib.Len(), src)
	}
	if err != nil {
		return err
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
	pr := newProgress(stderr)
	pr.printf("eval: float and quantized model on %d samples", test.Len())
	r, err := eval.Run(ctx, &eval.Config{Engine: e, Layers: layers, Calib: calib, Test: test, Weights: wq, Calibration: cal,
		Model: modelName(arg), Plan: filepath.Base(*planPath)})
	pr.done()
	if err != nil {
		return err
	}
	if *runtime == "ort" {
		pr.printf("eval: the QDQ model in ONNX Runtime")
		r.Runtime, err = ortReport(ctx, *ortLib, arg, &qdq.Config{Engine: e, Layers: layers, Calib: calib, Weights: wq, Calibration: cal}, test)
		pr.done()
		if err != nil {
			return err
		}
	}
	if *output != "" {
		return writeOutput("o", *output, []string{arg, *planPath, df.inputs, df.labels, *calibIn, *calibLab},
			func(w io.Writer) error { return r.Write(w, f) })
	}
	return r.Write(stdout, f)
}
