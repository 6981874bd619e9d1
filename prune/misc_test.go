package prune

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/plan"
)

// TestAnalyzeMiscBlocks: GroupNormalization (channels tied within a
// group), MeanVarianceNormalization and TopK block (op's FlowBlocks, the
// conservative choice): conv a feeds a GroupNormalization, conv b a
// MeanVarianceNormalization, conv c an InstanceNormalization (which passes
// its channels) and then a TopK along the last axis; every group is left
// intact, each naming its operator.
func TestAnalyzeMiscBlocks(t *testing.T) {
	g := newGraph([]int64{1, 1, 8, 8})
	pad := intsAttr("pads", 1, 1, 1, 1)
	a := g.node("Conv", "a", []string{"input", g.init("a.w", 4, 1, 3, 3), g.init("a.b", 4)}, pad)
	a = g.node("GroupNormalization", "gn", []string{a, g.init("gn.s", 2), g.init("gn.b", 2)}, intAttr("num_groups", 2))
	b := g.node("Conv", "b", []string{a, g.init("b.w", 4, 4, 3, 3), g.init("b.b", 4)}, pad)
	b = g.node("MeanVarianceNormalization", "mvn", []string{b}, intsAttr("axes", 2, 3))
	c := g.node("Conv", "c", []string{b, g.init("c.w", 4, 4, 3, 3), g.init("c.b", 4)}, pad)
	c = g.node("InstanceNormalization", "in", []string{c, g.init("in.s", 4), g.init("in.b", 4)})
	c = g.node("TopK", "top", []string{c, g.ints("k", 3)})
	c = g.node("GlobalAveragePool", "gap", []string{c})
	c = g.node("Flatten", "flat", []string{c})
	out := g.node("Gemm", "fc", []string{c, g.init("fc.w", 3, 4), g.init("fc.b", 3)}, intAttr("transB", 1))
	raw := g.bytes(t, out, []int64{1, 3})
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(raw, mp); err != nil {
		t.Fatal(err)
	}
	mp.OpsetImport[0].Version = 18
	raw, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	st := loadBytes(t, raw).st
	for name, op := range map[string]string{"a": "GroupNormalization", "b": "MeanVarianceNormalization", "c": "TopK"} {
		grp := groupByName(t, st, name)
		if why := strings.Join(grp.Reasons, "; "); grp.Prunable || !strings.Contains(why, op) {
			t.Errorf("group %s: prunable %v (%s), want intact naming %s", name, grp.Prunable, why, op)
		}
	}
}

// TestInstanceNormChannels: InstanceNormalization passes channels as
// BatchNormalization does (FlowNorm), its scale and bias sliced with them:
// conv a → InstanceNormalization → Relu → conv b → GlobalAveragePool →
// Gemm. For random kept sets the pruned model computes what the original
// computes with the removed channels silenced, and its counts are the
// planner's.
func TestInstanceNormChannels(t *testing.T) {
	g := newGraph([]int64{1, 1, 28, 28})
	pad := intsAttr("pads", 1, 1, 1, 1)
	a := g.node("Conv", "a", []string{"input", g.init("a.w", 6, 1, 3, 3), g.init("a.b", 6)}, pad)
	a = g.node("InstanceNormalization", "in", []string{a, g.init("in.s", 6), g.init("in.b", 6)})
	a = g.node("Relu", "ra", []string{a})
	b := g.node("Conv", "b", []string{a, g.init("b.w", 5, 6, 3, 3), g.init("b.b", 5)}, pad)
	b = g.node("GlobalAveragePool", "gap", []string{b})
	b = g.node("Flatten", "flat", []string{b})
	out := g.node("Gemm", "fc", []string{b, g.init("fc.w", 3, 5), g.init("fc.b", 3)}, intAttr("transB", 1))
	l := loadBytes(t, g.bytes(t, out, []int64{1, 3}))
	grp := groupByName(t, l.st, "a")
	if !grp.Prunable || grp.Channels != 6 {
		t.Fatalf("group a %+v: want prunable with 6 channels", grp)
	}
	p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
		Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(12, 12))
	const n = 3
	x := randomInputs(r, n)
	for trial := 0; trial < 4; trial++ {
		keep := randomKeep(r, l.st)
		pl := prunedMatchesSilenced(t, l, keep, x, n, fmt.Sprintf("trial %d (keep %v)", trial, keep))
		ins := 0
		for _, nd := range pl.mp.Graph.Node {
			if nd.OpType == "InstanceNormalization" {
				ins++
			}
		}
		if ins != 1 {
			t.Errorf("trial %d: %d InstanceNormalization nodes in the pruned model", trial, ins)
		}
		checkCounts(t, p, pl.m, keep, "trial "+strconv.Itoa(trial))
	}
}
