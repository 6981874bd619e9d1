package prune

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/bitplan/bitplan/budget"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/plan"
)

// reduceNet is x N×2×5×5 → Conv a(2→4, 3×3, pad 1)+b → Relu → r, multiplied
// by r's ReduceSum over the channels and by a LayerNorm-style ReduceMean
// over the channels of Conv b(2→3, 1×1) (both N×1×5×5, broadcast) →
// ReduceSum with no axes and noop_with_empty_axes 1 (an identity) → r3;
// then the sum of ReduceMean(Transpose(r3, NHWC), axes 1, 2, keepdims 0)
// (the channel axis 3 moves to 1) and Flatten(ReduceMean(r3, axes 2, 3))
// → Gemm(4→2). At opset 13 ReduceMean takes its axes as an attribute, at
// 18 as an input; ReduceSum takes them as an input at both.
func reduceNet(seed uint64, opset int64) *mt.Builder {
	r := rand.New(rand.NewPCG(seed, 3))
	rnd := func(n int, s float64) []float64 { return normals(r, n, s) }
	b := mt.New("reduce", opset).Input("x", -1, 2, 5, 5).Output("logits")
	b.Float("wa", []int{4, 2, 3, 3}, rnd(72, 0.4)).Float("ba", []int{4}, rnd(4, 0.1))
	b.Float("wb", []int{3, 2, 1, 1}, rnd(6, 0.5)).Float("bb", []int{3}, rnd(3, 0.1))
	b.Float("wg", []int{2, 4}, rnd(8, 0.5)).Float("bg", []int{2}, rnd(2, 0.1))
	b.Int64("ax1", []int{1}, []int64{1})
	mean := func(name, in, out string, keep int64, axes ...int64) {
		if opset >= 18 {
			b.Int64(name+".axes", []int{len(axes)}, axes)
			b.Node("ReduceMean", name, []string{in, name + ".axes"}, []string{out}, mt.Int("keepdims", keep))
			return
		}
		b.Node("ReduceMean", name, []string{in}, []string{out}, mt.Ints("axes", axes...), mt.Int("keepdims", keep))
	}
	b.Node("Conv", "a", []string{"x", "wa", "ba"}, []string{"ca"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("Relu", "relu", []string{"ca"}, []string{"r"})
	b.Node("ReduceSum", "chsum", []string{"r", "ax1"}, []string{"s"})
	b.Node("Mul", "mul1", []string{"r", "s"}, []string{"r1"})
	b.Node("Conv", "b", []string{"x", "wb", "bb"}, []string{"cb"})
	mean("chmean", "cb", "m", 1, -3)
	b.Node("Mul", "mul2", []string{"r1", "m"}, []string{"r2"})
	b.Node("ReduceSum", "noop", []string{"r2"}, []string{"r3"}, mt.Int("noop_with_empty_axes", 1))
	b.Node("Transpose", "nhwc", []string{"r3"}, []string{"tr"}, mt.Ints("perm", 0, 2, 3, 1))
	mean("hw", "tr", "h1", 0, 1, 2)
	mean("gap", "r3", "p", 1, 2, 3)
	b.Node("Flatten", "flat", []string{"p"}, []string{"h2"})
	b.Node("Add", "join", []string{"h1", "h2"}, []string{"h"})
	b.Node("Gemm", "fc", []string{"h", "wg", "bg"}, []string{"logits"}, mt.Int("transB", 1))
	return b
}

// TestReduceChannels: spatial reductions pass conv a's channels through
// (keepdims 1 or 0, the channel axis moved by keepdims 0 after a
// Transpose, axes as attribute or input, an empty axes set with
// noop_with_empty_axes an identity), a ReduceSum over them consumes them,
// and fc reads them; random cuts equal the original with those channels
// silenced within 1e-9 and the counts are the cost model's. Conv b's
// channels meet a ReduceMean over the channel axis, whose divisor counts
// them: left intact, reported.
func TestReduceChannels(t *testing.T) {
	for _, opset := range []int64{13, 18} {
		l := loadBytes(t, reduceNet(1, opset).Bytes())
		ga := groupOf(l.st, "a")
		if ga == nil || !ga.Prunable || ga.Channels != 4 || !slices.Equal(ga.Consumers, []string{"fc"}) {
			t.Fatalf("opset %d: group a %+v, want 4 prunable channels read by fc", opset, ga)
		}
		gb := groupOf(l.st, "b")
		if gb == nil || gb.Prunable || !strings.Contains(strings.Join(gb.Reasons, ";"), "chmean") || !strings.Contains(strings.Join(gb.Reasons, ";"), "divisor") {
			t.Errorf("opset %d: group b %+v, want unprunable: the ReduceMean chmean averages its channels", opset, gb)
		}
		p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
			Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		checkRandomCuts(t, l, rand.New(rand.NewPCG(7, uint64(opset))), p, 4, 50, fmt.Sprintf("opset %d, ", opset), zeroRemoved, nil)
	}
}

// reduceExtremeNet is x N×2×5×5 → Conv a(2→4)+b → ReduceMax over the
// spatial axes (keepdims 0) → Gemm(4→2), plus Conv b(2→3) whose channels
// feed a ReduceMin over axis 1 multiplied into the logits' input.
func reduceExtremeNet(opset int64) *onnx.ModelProto {
	r := rand.New(rand.NewPCG(2, 3))
	rnd := func(n int, s float64) []float64 { return normals(r, n, s) }
	b := mt.New("extreme", opset).Input("x", -1, 2, 5, 5).Output("logits")
	b.Float("wa", []int{4, 2, 1, 1}, rnd(8, 0.4)).Float("wb", []int{3, 2, 1, 1}, rnd(6, 0.4))
	b.Float("wg", []int{4, 2}, rnd(8, 0.5))
	b.Node("Conv", "a", []string{"x", "wa"}, []string{"ca"})
	b.Node("Conv", "b", []string{"x", "wb"}, []string{"cb"})
	if opset >= 18 {
		b.Int64("hw", []int{2}, []int64{2, 3}).Int64("c", []int{1}, []int64{1})
		b.Node("ReduceMax", "max", []string{"ca", "hw"}, []string{"h"}, mt.Int("keepdims", 0))
		b.Node("ReduceMin", "min", []string{"cb", "c"}, []string{"m"}, mt.Int("keepdims", 0))
	} else {
		b.Node("ReduceMax", "max", []string{"ca"}, []string{"h"}, mt.Ints("axes", 2, 3), mt.Int("keepdims", 0))
		b.Node("ReduceMin", "min", []string{"cb"}, []string{"m"}, mt.Ints("axes", 1), mt.Int("keepdims", 0))
	}
	b.Node("ReduceMean", "mm", []string{"m"}, []string{"mv"}, mt.Int("keepdims", 0))
	b.Node("Mul", "scale", []string{"h", "mv"}, []string{"hs"})
	b.Node("MatMul", "fc", []string{"hs", "wg"}, []string{"logits"})
	return b.Proto()
}

// TestReduceExtremes: the analysis treats ReduceMax and ReduceMin (run by
// ONNX Runtime, not by the engine) as ReduceMean: over the spatial axes
// they pass conv a's channels to fc, over the channels they leave conv
// b's intact (a removed channel's zero may be the minimum).
func TestReduceExtremes(t *testing.T) {
	for _, opset := range []int64{13, 18} {
		_, st := analyzeProto(t, reduceExtremeNet(opset))
		ga, gb := groupOf(st, "a"), groupOf(st, "b")
		if ga == nil || !ga.Prunable || !slices.Equal(ga.Consumers, []string{"fc"}) {
			t.Errorf("opset %d: group a %+v, want prunable through the spatial ReduceMax, read by fc", opset, ga)
		}
		if gb == nil || gb.Prunable || !strings.Contains(strings.Join(gb.Reasons, ";"), "ReduceMin node \"min\"") || !strings.Contains(strings.Join(gb.Reasons, ";"), "reduces the channel axis") {
			t.Errorf("opset %d: group b %+v, want unprunable: the ReduceMin reduces its channels", opset, gb)
		}
	}
}
