package qdq

import (
	"maps"
	"math/rand/v2"
	"testing"
)

// TestExportLayoutOps: the W8A8 export of layout_tiny (opsets 14 and 17:
// DepthToSpace, SpaceToDepth, Einsum, GatherElements, CumSum and Trilu
// between six units, and an Einsum with a weight, the seventh) is an
// opset-21 model in which those nodes are unchanged — same inputs (but for
// the Einsum unit's activation, which now reads its dequantized copy) and
// attributes: none of the six operators changed between opsets 14 and 21,
// so the upgrade rewrites none — and which model.Decode reads back.
func TestExportLayoutOps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	layout := map[string]bool{"DepthToSpace": true, "SpaceToDepth": true, "Einsum": true, "GatherElements": true, "CumSum": true, "Trilu": true}
	for _, name := range []string{"layout_tiny_op14", "layout_tiny_op17"} {
		res, src := exportTinyW8A8(t, r, name, 7)
		dq := 0
		for _, n := range res.Model.Graph.Node {
			if n.OpType == "DequantizeLinear" && len(n.Output) == 1 && n.Output[0] == "bil" {
				dq++
			}
		}
		if dq != 1 {
			t.Errorf("%s: %d DequantizeLinear nodes give the Einsum weight bil, want 1", name, dq)
		}
		want, got := keptNodes(src.Graph, layout), keptNodes(res.Model.Graph, layout)
		if len(want) != 9 || !maps.Equal(want, got) {
			t.Errorf("%s: layout nodes after export\n%v\nwant\n%v", name, got, want)
		}
	}
}
