package prune

import (
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// TestAnalyzeMiscBlocks: the channel flow of the normalizations and of
// TopK blocks (op's FlowBlocks, the conservative choice): conv a feeds a
// GroupNormalization (channels tied within a group), conv b a
// MeanVarianceNormalization, conv c an InstanceNormalization (then a TopK
// along the last axis); every group is left intact, each naming its
// operator.
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
	for name, op := range map[string]string{"a": "GroupNormalization", "b": "MeanVarianceNormalization", "c": "InstanceNormalization"} {
		grp := groupByName(t, st, name)
		if why := strings.Join(grp.Reasons, "; "); grp.Prunable || !strings.Contains(why, op) {
			t.Errorf("group %s: prunable %v (%s), want intact naming %s", name, grp.Prunable, why, op)
		}
	}
}
