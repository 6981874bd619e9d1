//go:build ort

package ort_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/ort"
	"github.com/bitplan/bitplan/qdq"
	"github.com/bitplan/bitplan/sensitivity"
)

// layoutOpsTol bounds |engine − ONNX Runtime| relative to max(1, |y|):
// the engine runs in float64, ONNX Runtime in float32 on float32 weights,
// over at most a few dozen operations per output (rounding ≈ 1e-7 each).
const layoutOpsTol = 1e-5

// TestLayoutOpsORT compares the engine's forward pass with ONNX Runtime's
// on one-operator graphs (a MatMul unit, the operator, a Flatten) for the
// attributes and inputs torch exports never set: DepthToSpace DCR and CRD,
// SpaceToDepth, Trilu upper and lower with positive, negative and absent
// k, CumSum exclusive and reverse, GatherElements with negative indices,
// and Einsum equations with implicit outputs, '...', diagonals, sums over
// an index, transposed products, upper-case labels and a constant operand
// (ONNX Runtime 1.24.1 refuses an implicit output with upper-case labels,
// "The only subscript labels allowed are lower-cased letters (a-z) and
// upper-cased letters (A-Z)": op's TestEinsumBruteForce checks that order
// against numpy's instead).
func TestLayoutOpsORT(t *testing.T) {
	initORT(t)
	type tc struct {
		name   string
		sample []int // x's shape without the batch; the MatMul acts on its last axis
		batch  int
		build  func(b *mt.Builder) // from "h" (the MatMul's output) to "z"
	}
	eq := func(e string) *onnx.AttributeProto { return mt.String("equation", e) }
	one := func(op string, attrs ...*onnx.AttributeProto) func(b *mt.Builder) {
		return func(b *mt.Builder) { b.Node(op, "op", []string{"h"}, []string{"z"}, attrs...) }
	}
	withInt := func(op string, v []int64, attrs ...*onnx.AttributeProto) func(b *mt.Builder) {
		return func(b *mt.Builder) {
			b.Int64("c", []int{}, v)
			b.Node(op, "op", []string{"h", "c"}, []string{"z"}, attrs...)
		}
	}
	second := func(op string, attrs ...*onnx.AttributeProto) func(b *mt.Builder) {
		return func(b *mt.Builder) {
			b.Node("Tanh", "", []string{"h"}, []string{"h2"})
			b.Node(op, "op", []string{"h", "h2"}, []string{"z"}, attrs...)
		}
	}
	r := rand.New(rand.NewPCG(5, 5))
	randv := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(r.NormFloat64()))
		}
		return v
	}
	cases := []tc{
		{"DepthToSpace DCR", []int{8, 2, 3}, 3, one("DepthToSpace", mt.Int("blocksize", 2))},
		{"DepthToSpace CRD", []int{8, 2, 3}, 3, one("DepthToSpace", mt.Int("blocksize", 2), mt.String("mode", "CRD"))},
		{"SpaceToDepth", []int{2, 4, 6}, 2, one("SpaceToDepth", mt.Int("blocksize", 2))},
		{"Trilu upper", []int{3, 4}, 2, one("Trilu")},
		{"Trilu upper k 2", []int{3, 5}, 2, withInt("Trilu", []int64{2})},
		{"Trilu lower k -1", []int{4, 3}, 2, withInt("Trilu", []int64{-1}, mt.Int("upper", 0))},
		{"CumSum axis 1", []int{3, 4}, 2, withInt("CumSum", []int64{1})},
		{"CumSum exclusive reverse axis -1", []int{3, 4}, 2, withInt("CumSum", []int64{-1}, mt.Int("exclusive", 1), mt.Int("reverse", 1))},
		{"CumSum exclusive axis 0", []int{3, 4}, 2, withInt("CumSum", []int64{0}, mt.Int("exclusive", 1))},
		{"GatherElements negative indices", []int{3, 4}, 1, func(b *mt.Builder) {
			b.Int64("i", []int{1, 2, 4}, []int64{-1, 0, 2, -3, 1, -2, 0, 3})
			b.Node("GatherElements", "op", []string{"h", "i"}, []string{"z"}, mt.Int("axis", 2))
		}},
		{"GatherElements axis 1", []int{3, 4}, 1, func(b *mt.Builder) {
			b.Int64("i", []int{1, 4, 2}, []int64{2, -1, 0, 1, -3, 2, 1, 1})
			b.Node("GatherElements", "op", []string{"h", "i"}, []string{"z"}, mt.Int("axis", 1))
		}},
		{"Einsum bij,bjk->bik", []int{3, 3}, 2, second("Einsum", eq("bij,bjk->bik"))},
		{"Einsum attention bhqd,bhkd->bhqk", []int{2, 3, 4}, 2, second("Einsum", eq("bhqd,bhkd->bhqk"))},
		{"Einsum implicit ...ij,...kj", []int{3, 4}, 2, second("Einsum", eq("...ij,...kj"))},
		{"Einsum upper case", []int{3, 4}, 2, func(b *mt.Builder) {
			b.Float("we", []int{4, 3}, randv(12))
			b.Node("Einsum", "op", []string{"h", "we"}, []string{"z"}, eq("Aba,aC->ACb"))
		}},
		{"Einsum ellipsis", []int{2, 3, 3}, 2, second("Einsum", eq("...ij,...jk->...ik"))},
		{"Einsum transposed output", []int{3, 4}, 2, second("Einsum", eq("bij,bik->bkj"))},
		{"Einsum diagonal", []int{3, 3}, 2, one("Einsum", eq("bii->bi"))},
		{"Einsum transpose", []int{2, 3, 4}, 2, one("Einsum", eq("bijk->bkji"))},
		{"Einsum own sum", []int{2, 3, 4}, 2, one("Einsum", eq("bijk->bj"))},
		{"Einsum constant", []int{3, 4}, 2, func(b *mt.Builder) {
			b.Float("we", []int{4, 2}, randv(8))
			b.Node("Einsum", "op", []string{"h", "we"}, []string{"z"}, eq("bij,jk->bik"))
		}},
		{"Einsum three operands", []int{3, 4}, 2, func(b *mt.Builder) {
			b.Float("we", []int{4, 2}, randv(8))
			b.Node("Tanh", "", []string{"h"}, []string{"h2"})
			b.Node("Einsum", "op", []string{"h", "we", "h2"}, []string{"z"}, eq("bij,jk,bij->bik"))
		}},
		{"Einsum four operands, ellipsis", []int{2, 3}, 2, func(b *mt.Builder) {
			b.Float("we", []int{3, 3}, randv(9))
			b.Node("Tanh", "", []string{"h"}, []string{"h2"})
			b.Node("Sigmoid", "", []string{"h"}, []string{"h3"})
			b.Node("Einsum", "op", []string{"h", "we", "h2", "h3"}, []string{"z"}, eq("...i,ij,...j,...k->...ik"))
		}},
		{"Einsum outer", []int{3}, 2, func(b *mt.Builder) {
			b.Node("Tanh", "", []string{"h"}, []string{"h2"})
			b.Node("Einsum", "op", []string{"h", "h2"}, []string{"z"}, eq("bi,bj->bij"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.sample[len(c.sample)-1]
			opGraphORT(t, "layout_op", 17, c.sample, c.batch, randv(d*d), c.build, randv)
		})
	}
}

// opGraphORT builds the graph name at opset: x (the batch, then sample),
// a MatMul unit by w (d×d, d the last axis of sample) to "h", build's
// nodes from "h" to "z", a Flatten to the N×classes logits y; runs the
// engine in float64 and ONNX Runtime on batch samples of randv and
// requires them to agree within layoutOpsTol relative to max(1, |y|).
func opGraphORT(t *testing.T, name string, opset int64, sample []int, batch int, w []float64, build func(b *mt.Builder), randv func(int) []float64) {
	t.Helper()
	b := mt.New(name, opset)
	b.Input("x", append([]int{-1}, sample...)...)
	d := sample[len(sample)-1]
	b.Float("w", []int{d, d}, w)
	b.Node("MatMul", "unit", []string{"x", "w"}, []string{"h"})
	build(b)
	b.Node("Flatten", "", []string{"z"}, []string{"y"}) // N×classes logits for the engine
	b.Output("y")
	raw := b.Bytes()
	m, err := model.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := 1
	for _, s := range sample {
		n *= s
	}
	x := randv(batch * n)
	want, err := e.Logits(x, batch)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.Open(raw, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime refuses the graph: %v", err)
	}
	defer s.Close()
	got, err := s.RunInputs([][]float64{x}, nil, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("ONNX Runtime gives %d values, the engine %d", len(got), len(want))
	}
	worst := 0.0
	for i, v := range want {
		worst = max(worst, math.Abs(float64(got[i])-v)/max(1, math.Abs(v)))
	}
	t.Logf("engine against ONNX Runtime: %.2g (relative)", worst)
	if worst > layoutOpsTol {
		t.Errorf("engine and ONNX Runtime differ by %.3g (relative):\nengine %v\nORT    %v", worst, want, got)
	}
}

// TestEinsumUnitORT: Einsums with weight matrices are units — 'bld,hd->blh'
// (output channels on the weight's axis 0, as a Linear layer's N×K weight,
// with the Add after it as its bias) and 'blh,hk->blk' (axis 1) — whose
// W4A8 and W8A8 QDQ exports run in ONNX
// Runtime as bitplan simulates them: per-channel weight scales along the
// unit's channel axis in both the simulation and the DequantizeLinear.
// Measured: 2e-7 at most (logits of size ~1) at both widths, against
// 2e-2 between the W4A8 logits and the float ones.
func TestEinsumUnitORT(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(6, 6))
	randv := func(n int, s float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(s * r.NormFloat64()))
		}
		return v
	}
	b := mt.New("einsum_units", 17)
	b.Input("x", -1, 3, 4)
	b.Float("w1", []int{5, 4}, randv(20, 0.5))
	b.Float("w2", []int{5, 3}, randv(15, 0.5))
	b.Float("b1", []int{5}, randv(5, 0.3))
	b.Node("Einsum", "e1", []string{"x", "w1"}, []string{"hb"}, mt.String("equation", "bld,hd->blh"))
	b.Node("Add", "bias", []string{"hb", "b1"}, []string{"h"})
	b.Node("Tanh", "", []string{"h"}, []string{"t"})
	b.Node("Einsum", "e2", []string{"t", "w2"}, []string{"z"}, mt.String("equation", "blh,hk->blk"))
	b.Node("Flatten", "", []string{"z"}, []string{"y"})
	b.Output("y")
	raw := b.Bytes()
	m, err := model.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	axes := map[string]int{}
	for _, u := range m.Units {
		axes[u.Name] = u.ChannelAxis
		if (u.Name == "e1") != (u.Bias == "b1") {
			t.Errorf("unit %s has bias %q", u.Name, u.Bias)
		}
	}
	if len(axes) != 2 || axes["e1"] != 0 || axes["e2"] != 1 {
		t.Fatalf("units and channel axes %v, want e1 on axis 0 and e2 on axis 1", axes)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(n int) *data.Memory {
		ds := &data.Memory{Inputs: randv(n*12, 1), Labels: make([]int, n), Shape: e.SampleShape()}
		return ds
	}
	calib, test := mk(64), mk(100)
	float, err := e.Logits(test.Inputs, test.Len())
	if err != nil {
		t.Fatal(err)
	}
	for _, bits := range []int{4, 8} {
		var layers []eval.Layer
		for _, u := range e.Units() {
			layers = append(layers, eval.Layer{Name: u.Name, Bits: bits, ABits: 8})
		}
		res, err := qdq.Export(ctx, &qdq.Config{Model: raw, Engine: e, Layers: layers, Calib: calib})
		if err != nil {
			t.Fatalf("W%dA8 QDQ export: %v", bits, err)
		}
		out, err := res.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		sim := simulated(t, e, layers, calib, test)
		zq := runQDQ(t, out, test, fmt.Sprintf("W%dA8: ", bits))
		maxd, scale, _, _ := compareLogits(sim, zq, test)
		fd := 0.0
		for i, v := range float {
			fd = max(fd, math.Abs(v-sim[i]))
		}
		t.Logf("W%dA8: QDQ in ONNX Runtime against the simulation %.3g (scale %.3g); simulation against float %.3g", bits, maxd, scale, fd)
		if maxd > 1e-4*scale {
			t.Errorf("W%dA8: QDQ logits in ONNX Runtime differ from the simulation's by %.3g (scale %.3g)", bits, maxd, scale)
		}
	}
}

// TestEinsumAttentionORT: attention written with torch.einsum — Einsum
// projections (units), scores 'bhqd,bhkd->bhqk' and mix 'bhqk,bhkd->bhqd'
// (attention points) — exported with W8A8 units and 4-bit attention inputs
// (Q/DQ pairs on both operands of both Einsums) runs in ONNX Runtime as
// eval simulates it; quantizing the attention moves the logits far more
// than the two differ. Measured: 8e-7 on logits up to 9, against a move
// of 3.2.
func TestEinsumAttentionORT(t *testing.T) {
	initORT(t)
	ctx := context.Background()
	const H, T, d = 2, 6, 4
	r := rand.New(rand.NewPCG(7, 7))
	randv := func(n int, s float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(s * r.NormFloat64()))
		}
		return v
	}
	b := mt.New("einsum_attention", 17)
	b.Input("x", -1, H, T, d)
	for _, w := range []string{"wq", "wk", "wv"} {
		b.Float(w, []int{d, d}, randv(d*d, 0.7))
	}
	b.Float("wo", []int{3, d}, randv(3*d, 0.5))
	b.Node("Einsum", "q", []string{"x", "wq"}, []string{"q"}, mt.String("equation", "bhtd,de->bhte"))
	b.Node("Einsum", "k", []string{"x", "wk"}, []string{"k"}, mt.String("equation", "bhtd,de->bhte"))
	b.Node("Einsum", "v", []string{"x", "wv"}, []string{"v"}, mt.String("equation", "bhtd,de->bhte"))
	b.Node("Einsum", "scores", []string{"q", "k"}, []string{"s"}, mt.String("equation", "bhqd,bhkd->bhqk"))
	b.Node("Softmax", "", []string{"s"}, []string{"p"}, mt.Int("axis", -1))
	b.Node("Einsum", "mix", []string{"p", "v"}, []string{"o"}, mt.String("equation", "bhqk,bhkd->bhqd"))
	b.Node("Einsum", "out", []string{"o", "wo"}, []string{"z"}, mt.String("equation", "bhqd,cd->bqc"))
	b.Node("Flatten", "", []string{"z"}, []string{"y"})
	b.Output("y")
	raw := b.Bytes()
	m, err := model.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	points := eval.AttentionPoints(e)
	if len(points) != 2 || len(e.Units()) != 4 {
		t.Fatalf("%d attention points and %d units, want 2 and 4", len(points), len(e.Units()))
	}
	mk := func(n int) *data.Memory {
		return &data.Memory{Inputs: randv(n*H*T*d, 1), Labels: make([]int, n), Shape: e.SampleShape()}
	}
	calib, test := mk(32), mk(50)
	var units, layers []eval.Layer
	for _, u := range e.Units() {
		units = append(units, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
	}
	layers = append(layers, units...)
	for _, p := range points {
		layers = append(layers, eval.Layer{Name: p.Name, Bits: 4, Kind: sensitivity.KindAttention})
	}
	res, err := qdq.Export(ctx, &qdq.Config{Model: raw, Engine: e, Layers: layers, Calib: calib})
	if err != nil {
		t.Fatalf("QDQ export: %v", err)
	}
	if len(res.Summary.Attention) != 2 {
		t.Fatalf("%d attention points exported, want 2", len(res.Summary.Attention))
	}
	out, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sim, noAtt := simulated(t, e, layers, calib, test), simulated(t, e, units, calib, test)
	zq := runQDQ(t, out, test, "")
	maxd, scale, _, _ := compareLogits(sim, zq, test)
	moved := 0.0
	for i := range sim {
		moved = max(moved, math.Abs(sim[i]-noAtt[i]))
	}
	t.Logf("QDQ in ONNX Runtime against the simulation %.3g (scale %.3g); 4-bit attention moves the logits by %.3g", maxd, scale, moved)
	if maxd > 1e-4*scale {
		t.Errorf("QDQ logits in ONNX Runtime differ from the simulation's by %.3g (scale %.3g)", maxd, scale)
	}
	if moved < 100*1e-4*scale {
		t.Errorf("quantizing the attention moved the logits by only %.3g: the test could not tell", moved)
	}
}

// runQDQ runs the QDQ model out in ONNX Runtime on the samples of test;
// prefix starts the message when ONNX Runtime refuses it.
func runQDQ(t *testing.T, out []byte, test *data.Memory, prefix string) []float32 {
	t.Helper()
	qs, err := ort.Open(out, nil)
	if err != nil {
		t.Fatalf("%sONNX Runtime refuses the QDQ model: %v", prefix, err)
	}
	defer qs.Close()
	zq, err := qs.RunInputs([][]float64{test.Inputs}, nil, test.Len())
	if err != nil {
		t.Fatal(err)
	}
	return zq
}
