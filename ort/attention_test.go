//go:build ort

package ort_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/qdq"
	"github.com/bitplan/bitplan/sensitivity"
)

// attLogitTol bounds |logit_ORT − logit_simulated| of tiny_bert's QDQ
// export with quantized attention inputs: ONNX Runtime computes in float32
// on the same integer grids the float64 simulation uses, so the two differ
// by float32 rounding (measured: 8.8e-8 on logits of size ~0.2), far below
// the 7e-3 that 4-bit attention moves the logits by.
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

// TestAttentionQDQMatchesSimulation exports tiny_bert with its four
// attention products quantized (three at 4 bits, the last P·V at 8:
// QuantizeLinear/DequantizeLinear on both inputs, ranges calibrated on the
// committed samples; weights float), runs it in ONNX Runtime, and compares
// the logits with eval's simulation to attLogitTol; the quantized
// attention moves the logits by 100× the tolerance (the check can fail).
// (With every weight layer at W8A8 as well, ONNX Runtime and the
// simulation differ by 6.4e-3 already without attention quantization, a
// difference of the weight layers' export on this model, not checked
// here.)
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
		var layers []eval.Layer
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
		sim, noAtt := simLogits(layers), simLogits(nil)
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
