package eval

import (
	"context"
	"fmt"
	"strings"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// Config is one evaluation: a model, the precisions to simulate and the
// data.
type Config struct {
	// Engine runs the model; its weights are restored on return.
	Engine *nn.Engine
	// Layers are the precisions (FromPlan turns a plan into them).
	Layers []Layer
	// Calib is the calibration set of the activation ranges (may be nil
	// when no layer has ABits > 0).
	Calib data.Dataset
	// Test is the evaluation set.
	Test data.Dataset
	// Weights is the weight quantizer (zero value: symmetric per-channel
	// min/max).
	Weights sensitivity.Quantizer
	// Calibration chooses the activation ranges (zero value: min/max).
	Calibration Calibration
	// Model and Plan name the model and the plan in the report.
	Model, Plan string
}

// Result is a model's score on the test set.
type Result struct {
	// Accuracy is Correct/Scored.
	Accuracy float64 `json:"accuracy"`
	// Loss is the mean loss (cross-entropy over the scored predictions,
	// MSE over the output elements).
	Loss float64 `json:"loss"`
	// Correct counts the right predictions among Scored: samples for
	// class labels and KL (agreement with the float model's top-1),
	// labelled positions for per-position labels, none for MSE. N is the
	// number of samples.
	Correct int `json:"correct"`
	Scored  int `json:"scored"`
	N       int `json:"n"`
}

func result(e nn.Eval) Result {
	return Result{Accuracy: e.Accuracy(), Loss: e.Loss, Correct: e.Correct, Scored: e.Scored, N: e.N}
}

// The values of Report.Scoring: what a Result's Correct and Scored count.
const (
	ScoringSamples   = "samples"   // class labels: one prediction per sample
	ScoringAgreement = "agreement" // KL: samples whose top-1 is the float model's
	ScoringPositions = "positions" // per-position labels: the labelled positions
	ScoringNone      = "none"      // MSE: no predictions to count
)

// Scoring returns what l's Correct and Scored count (one of the Scoring
// constants; nil is the class-label loss).
func Scoring(l nn.Loss) string {
	switch l.(type) {
	case nn.PositionLabels, *nn.PositionLabels:
		return ScoringPositions
	case nn.MSE, *nn.MSE:
		return ScoringNone
	case nn.KL, *nn.KL:
		return ScoringAgreement
	}
	return ScoringSamples
}

// Report is the outcome of Run: the float and the quantized model's scores
// and what was applied to every layer.
type Report struct {
	Model string `json:"model,omitempty"`
	Plan  string `json:"plan,omitempty"`
	// Samples and CalibSamples count the test and calibration samples.
	Samples      int `json:"samples"`
	CalibSamples int `json:"calib_samples"`
	// Scoring says what the results' Correct and Scored count (Scoring).
	Scoring string `json:"scoring"`
	// WeightQuantizer and ActQuantizer describe the quantizers.
	WeightQuantizer string `json:"weight_quantizer"`
	ActQuantizer    string `json:"act_quantizer"`
	Float           Result `json:"float"`
	Quantized       Result `json:"quantized"`
	// WeightBytes is Σ weights·bits/8 over the quantized layers and
	// FloatBytes the same weights in float32.
	WeightBytes float64       `json:"weight_bytes"`
	FloatBytes  float64       `json:"float_bytes"`
	Layers      []LayerReport `json:"layers"`
	// Runtime is the plan's QDQ model run in a real runtime (nil when
	// only simulated).
	Runtime *RuntimeReport `json:"runtime,omitempty"`
}

// RuntimeReport is the plan's exported model measured in a runtime (ONNX
// Runtime): its score on the same test samples and the kernels the
// runtime chose.
type RuntimeReport struct {
	// Name names the runtime and version ("onnxruntime 1.24.1").
	Name   string `json:"name"`
	Result Result `json:"result"`
	// Kernels counts the operators of the runtime's optimized graph
	// ("QLinearConv", "com.microsoft:QGemm"), Quantized those that compute
	// in integers; a layer not among them runs as DequantizeLinear + a
	// float operator.
	Kernels   map[string]int `json:"kernels"`
	Quantized map[string]int `json:"quantized_kernels"`
	// LatencyMS and FloatLatencyMS are the median latencies of one sample
	// (batch 1, one thread) of the QDQ and of the float model.
	LatencyMS      float64 `json:"latency_ms,omitempty"`
	FloatLatencyMS float64 `json:"float_latency_ms,omitempty"`
}

// LayerReport is one layer's line of the report.
type LayerReport struct {
	Name    string `json:"name"`
	Bits    int    `json:"bits"`
	ABits   int    `json:"abits"`
	Weights int    `json:"weights"`
	// DeltaSq is ‖Q(W) − W‖²₂, RelErr ‖Q(W) − W‖/‖W‖.
	DeltaSq float64 `json:"delta_sq"`
	RelErr  float64 `json:"rel_err"`
	// InputMin and InputMax are the calibrated range of the data input,
	// InputSigned whether its grid has negative levels and InputStep the
	// grid's step (all zero when the input stays float).
	InputMin    float64 `json:"input_min"`
	InputMax    float64 `json:"input_max"`
	InputSigned bool    `json:"input_signed"`
	InputStep   float64 `json:"input_step"`
}

// Run evaluates the float model on c.Test, applies c.Layers (Apply),
// evaluates the quantized model on the same samples and restores the
// engine.
func Run(ctx context.Context, c *Config) (*Report, error) {
	if c.Engine == nil || c.Test == nil {
		return nil, fmt.Errorf("eval: Run needs an engine and test data")
	}
	e := c.Engine
	fl, err := e.Evaluate(ctx, c.Test)
	if err != nil {
		return nil, fmt.Errorf("eval: float model: %w", err)
	}
	a, err := Apply(ctx, e, c.Layers, c.Calib, &Settings{Weights: c.Weights, Calibration: c.Calibration})
	if err != nil {
		return nil, err
	}
	defer a.Restore()
	qu, err := e.Evaluate(ctx, c.Test)
	if err != nil {
		return nil, fmt.Errorf("eval: quantized model: %w", err)
	}
	r := &Report{Model: c.Model, Plan: c.Plan, Samples: c.Test.Len(), Scoring: Scoring(e.Loss()),
		WeightQuantizer: DescribeQuantizer(c.Weights),
		ActQuantizer:    describeCalibration(c.Calibration),
		Float:           result(fl), Quantized: result(qu)}
	quantActs := false
	for _, l := range a.Layers {
		quantActs = quantActs || l.ABits > 0
	}
	if !quantActs {
		r.ActQuantizer = "float (not quantized)"
	} else if c.Calib != nil {
		r.CalibSamples = c.Calib.Len()
	}
	for _, l := range a.Layers {
		lr := LayerReport{Name: l.Name, Bits: l.Bits, ABits: l.ABits, Weights: l.Weights, DeltaSq: l.DeltaSq, RelErr: l.RelErr}
		if l.ABits > 0 {
			lr.InputMin, lr.InputMax, lr.InputSigned = l.Input.Min, l.Input.Max, l.Act.Signed()
			lr.InputStep, _ = l.Act.Scale()
		}
		r.WeightBytes += float64(l.Weights*l.Bits) / 8
		r.FloatBytes += float64(l.Weights) * 4
		r.Layers = append(r.Layers, lr)
	}
	return r, nil
}

// DescribeQuantizer names a weight quantizer the way ParseQuantizer reads
// it: "symmetric,per-channel,minmax".
func DescribeQuantizer(q sensitivity.Quantizer) string {
	s := []string{"symmetric", "per-channel", "minmax"}
	if q.Asymmetric {
		s[0] = "asymmetric"
	}
	if q.PerTensor {
		s[1] = "per-tensor"
	}
	if q.MSE {
		s[2] = "mse"
	}
	return strings.Join(s, ",")
}

// ParseQuantizer reads a weight quantizer spec: comma-separated words
// symmetric|asymmetric, per-channel|per-tensor, minmax|mse (the syntax of
// the --quantizer flag of bitplan trace and plan); "" is the default,
// symmetric per-channel min/max. Unknown or contradictory words are an
// error naming the word.
func ParseQuantizer(spec string) (sensitivity.Quantizer, error) {
	var q sensitivity.Quantizer
	got := map[string]string{}
	for _, w := range strings.Split(strings.ToLower(spec), ",") {
		w = strings.TrimSpace(w)
		var axis string
		switch w {
		case "":
			continue
		case "symmetric", "asymmetric":
			axis = "symmetry"
			q.Asymmetric = w == "asymmetric"
		case "per-channel", "per-tensor":
			axis = "granularity"
			q.PerTensor = w == "per-tensor"
		case "minmax", "mse":
			axis = "range"
			q.MSE = w == "mse"
		default:
			return sensitivity.Quantizer{}, fmt.Errorf("quantizer %q: unknown word %q (want symmetric|asymmetric, per-channel|per-tensor, minmax|mse)", spec, w)
		}
		if prev, ok := got[axis]; ok && prev != w {
			return sensitivity.Quantizer{}, fmt.Errorf("quantizer %q: %q contradicts %q", spec, w, prev)
		}
		got[axis] = w
	}
	return q, nil
}
