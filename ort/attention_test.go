//go:build ort

package ort_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/qdq"
	"github.com/bitplan/bitplan/sensitivity"
)

// attLogitTol bounds |logit_ORT − logit_simulated| of tiny_bert's QDQ
// export with quantized attention inputs: ONNX Runtime computes in float32
// on the same integer grids the float64 simulation uses, so the two differ
// by float32 rounding (measured: 8.2e-9 with the weight layers at W8A8,
// 1.0e-7 with attention alone, on logits of size ~0.2), far below the
// 5e-3 to 6e-3 that 4-bit attention moves the logits by.
const attLogitTol = 1e-5

// runBERT runs a two-input (input_ids, attention_mask) model in ONNX
// Runtime and returns its first output.
func runBERT(t *testing.T, b []byte, ids, mask []int64, n, seq int) []float32 {
	t.Helper()
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(b, []string{"input_ids", "attention_mask"}, []string{"logits"}, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime rejects the model: %v", err)
	}
	defer s.Destroy()
	shape := ortgo.NewShape(int64(n), int64(seq))
	it, err := ortgo.NewTensor(shape, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Destroy()
	mt, err := ortgo.NewTensor(shape, mask)
	if err != nil {
		t.Fatal(err)
	}
	defer mt.Destroy()
	outs := []ortgo.Value{nil}
	if err := s.Run([]ortgo.Value{it, mt}, outs); err != nil {
		t.Fatalf("run: %v", err)
	}
	defer outs[0].Destroy()
	return append([]float32(nil), outs[0].(*ortgo.Tensor[float32]).GetData()...)
}

// TestAttentionQDQMatchesSimulation exports tiny_bert with every weight
// layer at W8A8 and its four attention products quantized (three at 4
// bits, the last P·V at 8: QuantizeLinear/DequantizeLinear on both
// inputs, ranges calibrated on the committed samples), runs it in ONNX
// Runtime, and compares the logits with eval's simulation to attLogitTol;
// the quantized attention moves the logits (against W8A8 alone) by 100×
// the tolerance, so the check can fail.
func TestAttentionQDQMatchesSimulation(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	dir := filepath.Join("..", "testdata", "zoo", "tiny_bert")
	idsA, err := data.LoadNPYArray(filepath.Join(dir, "input_ids.npy"))
	if err != nil {
		t.Fatal(err)
	}
	maskA, err := data.LoadNPYArray(filepath.Join(dir, "attention_mask.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.NewArrays([]string{"input_ids", "attention_mask"}, []*data.Array{idsA, maskA}, []int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	toFloat := func(v []int64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	for _, f := range []string{"op13", "op17"} {
		b, err := os.ReadFile(filepath.Join(dir, f+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e, err := nn.New(m, &nn.Options{BatchSize: 2, Precision: nn.Float64})
		if err != nil {
			t.Fatal(err)
		}
		var units, layers []eval.Layer
		for _, u := range e.Units() {
			units = append(units, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
		}
		layers = append(layers, units...)
		for i, p := range eval.AttentionPoints(e) {
			bits := 4
			if i == 3 {
				bits = 8
			}
			layers = append(layers, eval.Layer{Name: p.Name, Bits: bits, Kind: sensitivity.KindAttention})
		}
		x, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: ds})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(x.Summary.Attention) != 4 {
			t.Fatalf("%s: %d attention points exported, want 4", f, len(x.Summary.Attention))
		}
		out, err := x.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got := runBERT(t, out, idsA.Int, maskA.Int, 2, 16)
		simLogits := func(ls []eval.Layer) []float64 {
			a, err := eval.Apply(ctx, e, ls, ds, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Restore()
			z, err := e.LogitsInputs([][]float64{toFloat(idsA.Int), toFloat(maskA.Int)}, 2)
			if err != nil {
				t.Fatal(err)
			}
			return z
		}
		sim, noAtt := simLogits(layers), simLogits(units)
		var worst, moved float64
		for i := range sim {
			worst = math.Max(worst, math.Abs(float64(got[i])-sim[i]))
			moved = math.Max(moved, math.Abs(sim[i]-noAtt[i]))
		}
		t.Logf("tiny_bert/%s: |ORT − simulation| ≤ %.3g over %d logits; attention quantization moves them by %.3g", f, worst, len(sim), moved)
		if worst > attLogitTol {
			t.Errorf("tiny_bert/%s: ONNX Runtime's logits differ from the simulation's by %g (tolerance %g)", f, worst, attLogitTol)
		}
		if moved <= 100*attLogitTol {
			t.Errorf("tiny_bert/%s: quantizing the attention moved the logits by only %g: the test could not tell", f, moved)
		}
	}
}

// TestAttentionPlanQDQ solves a real plan with attention candidates on
// tiny_bert (Hutchinson traces for the weights, measured Ω for the four
// attention products, a BOPS budget at 40 % of the range), exports it
// and runs it in ONNX Runtime: the logits match the simulation to
// attLogitTol, and the plan quantizes at least one attention product.
func TestAttentionPlanQDQ(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	dir := filepath.Join("..", "testdata", "zoo", "tiny_bert")
	idsA, err := data.LoadNPYArray(filepath.Join(dir, "input_ids.npy"))
	if err != nil {
		t.Fatal(err)
	}
	maskA, err := data.LoadNPYArray(filepath.Join(dir, "attention_mask.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.NewArrays([]string{"input_ids", "attention_mask"}, []*data.Array{idsA, maskA}, []int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "op17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{BatchSize: 2, Precision: nn.Float64})
	if err != nil {
		t.Fatal(err)
	}
	s, err := plan.Analyze(ctx, &plan.Analysis{Engine: e, Data: ds, Trace: &hessian.Settings{MinProbes: 2, MaxProbes: 3, Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eval.AddAttention(ctx, e, ds, s.Table, nil); err != nil {
		t.Fatal(err)
	}
	spec, err := budget.Parse(budget.BOPS, "40%")
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Solve(ctx, &plan.Request{Table: s.Table, Budgets: []plan.Budget{{Resource: "bops", Spec: spec}}})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := eval.FromPlan(p, e)
	if err != nil {
		t.Fatal(err)
	}
	quantized := 0
	for _, l := range layers {
		if l.Kind == sensitivity.KindAttention && l.Bits < eval.FloatBits {
			quantized++
		}
	}
	if quantized == 0 {
		t.Fatalf("the plan quantizes no attention product: %+v", p.Layers)
	}
	x, err := qdq.Export(ctx, &qdq.Config{Model: b, Engine: e, Layers: layers, Calib: ds})
	if err != nil {
		t.Fatal(err)
	}
	out, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := runBERT(t, out, idsA.Int, maskA.Int, 2, 16)
	a, err := eval.Apply(ctx, e, layers, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	toFloat := func(v []int64) []float64 {
		o := make([]float64, len(v))
		for i, x := range v {
			o[i] = float64(x)
		}
		return o
	}
	sim, err := e.LogitsInputs([][]float64{toFloat(idsA.Int), toFloat(maskA.Int)}, 2)
	a.Restore()
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i := range sim {
		worst = math.Max(worst, math.Abs(float64(got[i])-sim[i]))
	}
	t.Logf("plan: %d of 4 attention products quantized, %d layers; |ORT − simulation| ≤ %.3g (tolerance %g)", quantized, len(layers), worst, attLogitTol)
	if worst > attLogitTol {
		t.Errorf("ONNX Runtime's logits differ from the simulation's by %g", worst)
	}
}
