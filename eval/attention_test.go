package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/sensitivity"
)

// tinyBERT returns the zoo's BERT-style encoder (opset file f) with its two
// committed samples (labels 0 and 2) in float64.
func tinyBERT(t *testing.T, f string) (*nn.Engine, *data.Arrays) {
	t.Helper()
	dir := filepath.Join("..", "testdata", "zoo", "tiny_bert")
	m, err := model.Load(filepath.Join(dir, f))
	if err != nil {
		t.Fatalf("committed zoo model: %v", err)
	}
	lab := filepath.Join(t.TempDir(), "y.npy")
	fy, err := os.Create(lab)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteNPYInt64(fy, []int{2}, []int64{0, 2}); err != nil {
		t.Fatal(err)
	}
	fy.Close()
	ds, err := data.LoadNPYInputs([]string{filepath.Join(dir, "input_ids.npy"), filepath.Join(dir, "attention_mask.npy")}, lab)
	if err != nil {
		t.Fatalf("committed zoo inputs: %v", err)
	}
	e, err := nn.New(m, &nn.Options{BatchSize: 2, Workers: 1, Precision: nn.Float64})
	if err != nil {
		t.Fatal(err)
	}
	return e, ds
}

// TestAttentionHookIsTheProduct checks that an 8-bit attention point
// quantizes the two operands of its own MatMul and nothing else: the
// MatMul's output equals, to rounding, the product of the float operands
// (read from the same pass) each passed through the calibrated quantizer,
// computed here by loops.
func TestAttentionHookIsTheProduct(t *testing.T) {
	e, ds := tinyBERT(t, "op17.onnx")
	ctx := context.Background()
	const name = "/layers.0/att/MatMul"
	a, err := Apply(ctx, e, []Layer{{Name: name, Bits: 4, Kind: sensitivity.KindAttention}}, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Restore()
	if len(a.Attention) != 1 || a.Attention[0].Bits != 4 {
		t.Fatalf("applied %+v", a.Attention)
	}
	xs := [][]float64{make([]float64, 2*16), make([]float64, 2*16)}
	if err := ds.ReadInputs(0, xs, make([]int, 2)); err != nil {
		t.Fatal(err)
	}
	vals, err := e.IntermediatesInputs(xs, 2)
	if err != nil {
		t.Fatal(err)
	}
	n := e.Model().Nodes[a.Attention[0].Node]
	qa, qb, y := vals[n.Inputs[0]], vals[n.Inputs[1]], vals[n.Outputs[0]]
	// 2×4×16×8 · 2×4×8×16 → 2×4×16×16.
	A, B := append([]float64(nil), qa.Data...), append([]float64(nil), qb.Data...)
	a.Attention[0].Acts[0].Quantize(A)
	a.Attention[0].Acts[1].Quantize(B)
	var worst, changed float64
	for bh := 0; bh < 8; bh++ {
		for i := 0; i < 16; i++ {
			for j := 0; j < 16; j++ {
				var s, f float64
				for k := 0; k < 8; k++ {
					s += A[bh*128+i*8+k] * B[bh*128+k*16+j]
					f += qa.Data[bh*128+i*8+k] * qb.Data[bh*128+k*16+j]
				}
				got := y.Data[bh*256+i*16+j]
				worst = math.Max(worst, math.Abs(got-s))
				changed = math.Max(changed, math.Abs(got-f))
			}
		}
	}
	if worst > 1e-12 {
		t.Errorf("quantized Q·Kᵀ differs from the product of quantized operands by %g", worst)
	}
	if changed < 1e-3 {
		t.Errorf("4-bit operands changed Q·Kᵀ by only %g: the quantizers did not act", changed)
	}
}

// TestAddAttention checks the attention rows of a table on tiny_bert: one
// per Q·Kᵀ and P·V with the hand-counted MACs, no parameters, Ω 0 at
// float and Ω at 4 and 8 bits equal to the loss increase measured by Apply
// and Evaluate on their own (×2 for the Hessian criterion), and the
// float-only setting pins every point to 16.
func TestAddAttention(t *testing.T) {
	e, ds := tinyBERT(t, "op13.onnx")
	ctx := context.Background()
	base, err := e.Evaluate(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	for _, crit := range []string{"", string(sensitivity.Measured)} {
		tb := &sensitivity.Table{Criterion: crit}
		n, err := AddAttention(ctx, e, ds, tb, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n != 4 || len(tb.Layers) != 4 {
			t.Fatalf("criterion %q: %d attention layers, want 4", crit, n)
		}
		scale := 2.0
		if crit != "" {
			scale = 1
		}
		for _, l := range tb.Layers {
			if l.Kind != sensitivity.KindAttention || l.MACs != 8192 || l.Params != 0 || l.Pin != "" {
				t.Errorf("%s: kind %q, %g MACs, %g params, pin %q", l.Name, l.Kind, l.MACs, l.Params, l.Pin)
			}
			if l.Scores["16"] != 0 {
				t.Errorf("%s: Ω at float %g", l.Name, l.Scores["16"])
			}
			for _, b := range []int{4, 8} {
				a, err := Apply(ctx, e, []Layer{{Name: l.Name, Bits: b, Kind: sensitivity.KindAttention}}, ds, nil)
				if err != nil {
					t.Fatal(err)
				}
				r, err := e.Evaluate(ctx, ds)
				a.Restore()
				if err != nil {
					t.Fatal(err)
				}
				k := sensitivity.Precision{W: b, A: b}.String()
				if want := scale * (r.Loss - base.Loss); math.Abs(l.Scores[k]-want) > 1e-12 {
					t.Errorf("criterion %q: %s: Ω(%s) = %g, want %g", crit, l.Name, k, l.Scores[k], want)
				}
			}
		}
		if _, err := tb.Validate(); err != nil {
			t.Errorf("the table does not validate: %v", err)
		}
	}
	tb := &sensitivity.Table{}
	if _, err := AddAttention(ctx, e, ds, tb, &AttentionSettings{Bits: []int{FloatBits}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range tb.Layers {
		if l.Pin != "16" || len(l.DeltaSq) != 1 {
			t.Errorf("float only: %s pinned %q with candidates %v", l.Name, l.Pin, l.DeltaSq)
		}
	}
	if _, err := AddAttention(ctx, e, ds, &sensitivity.Table{Criterion: string(sensitivity.Weight)}, nil); err == nil {
		t.Error("the weight criterion was accepted")
	}
}
