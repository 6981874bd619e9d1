package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/ibert"
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

// TestNonlinearSimulation checks the integer-only non-linearities on
// tiny_bert at both opsets: every Softmax output node, under the
// simulation, equals ibert.SimSoftmax of that node's float input read
// from the same pass (the hook replaces the right node with the right
// function); the model's logits move by less than 0.05 (the
// approximations are close) but do move; AddNonlinear adds the blocks'
// functions tied per block, with Ω at 8 equal to the measured loss change.
func TestNonlinearSimulation(t *testing.T) {
	ctx := context.Background()
	for _, f := range []string{"op13.onnx", "op17.onnx"} {
		e, ds := tinyBERT(t, f)
		var layers []Layer
		gs := NonlinearGroups(e)
		for _, g := range gs {
			layers = append(layers, Layer{Name: g.Name, Bits: 8, Kind: sensitivity.KindNonlinear})
		}
		if len(gs) != 7 { // embedding norm; per layer softmax, gelu, layernorm (×2)
			t.Fatalf("%s: %d groups %v", f, len(gs), nonlinearNames(gs))
		}
		xs := [][]float64{make([]float64, 2*16), make([]float64, 2*16)}
		if err := ds.ReadInputs(0, xs, make([]int, 2)); err != nil {
			t.Fatal(err)
		}
		z0, err := e.LogitsInputs(xs, 2)
		if err != nil {
			t.Fatal(err)
		}
		a, err := Apply(ctx, e, layers, ds, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Nonlinear) != 9 {
			t.Errorf("%s: %d non-linearities simulated, want 9", f, len(a.Nonlinear))
		}
		vals, err := e.IntermediatesInputs(xs, 2)
		if err != nil {
			t.Fatal(err)
		}
		z, err := e.LogitsInputs(xs, 2)
		a.Restore()
		if err != nil {
			t.Fatal(err)
		}
		for _, an := range a.Nonlinear {
			if an.Kind != model.Softmax {
				continue
			}
			n := e.Model().Nodes[an.Node]
			in, out := vals[n.Inputs[0]].Data, vals[n.Outputs[0]].Data
			want := make([]float64, len(in))
			ibert.SimSoftmax(want, in, an.Row, SoftmaxOutBits)
			for i := range want {
				if want[i] != out[i] {
					t.Fatalf("%s: %s output %d = %g, ibert.SimSoftmax %g", f, an.Name, i, out[i], want[i])
				}
			}
		}
		var moved float64
		for i := range z {
			moved = math.Max(moved, math.Abs(z[i]-z0[i]))
		}
		t.Logf("%s: integer-only non-linearities move the logits by %.3g", f, moved)
		if moved == 0 || moved > 0.05 {
			t.Errorf("%s: integer-only non-linearities move the logits by %g", f, moved)
		}
		tb := &sensitivity.Table{Criterion: string(sensitivity.Measured)}
		n, err := AddNonlinear(ctx, e, ds, tb)
		if err != nil || n != 7 {
			t.Fatalf("%s: AddNonlinear: %d, %v", f, n, err)
		}
		if _, err := tb.Validate(); err != nil {
			t.Errorf("%s: table: %v", f, err)
		}
		base, _ := e.Evaluate(ctx, ds)
		for _, l := range tb.Layers {
			if l.Kind != sensitivity.KindNonlinear || l.Function == "" || l.InElems == 0 || (l.Name != "/norm/layernorm" && l.Tie == "") {
				t.Errorf("%s: %+v", f, l)
			}
			a, err := Apply(ctx, e, []Layer{{Name: l.Name, Bits: 8, Kind: sensitivity.KindNonlinear}}, ds, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := e.Evaluate(ctx, ds)
			a.Restore()
			if d := r.Loss - base.Loss; math.Abs(l.Scores["8"]-d) > 1e-12 {
				t.Errorf("%s: %s: Ω %g, measured %g", f, l.Name, l.Scores["8"], d)
			}
		}
	}
}
