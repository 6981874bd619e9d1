package qdq

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/model"
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
	nodes := func(g *onnx.GraphProto) map[string]string {
		j := map[string]string{}
		for _, n := range g.Node {
			if layout[n.OpType] {
				in := slices.Clone(n.Input)
				for i, x := range in {
					in[i] = strings.TrimSuffix(x, "_dequantized")
				}
				j[n.Name] = fmt.Sprint(n.OpType, in, n.Output, n.Attribute)
			}
		}
		return j
	}
	for _, name := range []string{"layout_tiny_op14", "layout_tiny_op17"} {
		b, e := load(t, name)
		ds := &data.Memory{Inputs: make([]float64, 16*64), Labels: make([]int, 16), Shape: e.SampleShape()}
		for i := range ds.Inputs {
			ds.Inputs[i] = r.NormFloat64()
		}
		var layers []eval.Layer
		for _, u := range e.Units() {
			layers = append(layers, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
		}
		res, err := Export(context.Background(), &Config{Model: b, Engine: e, Layers: layers, Calib: ds})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(res.Summary.Layers) != 7 || res.Model.OpsetImport[0].Version != Opset {
			t.Errorf("%s: %d layers quantized (want 7), opset %d", name, len(res.Summary.Layers), res.Model.OpsetImport[0].Version)
		}
		dq := 0
		for _, n := range res.Model.Graph.Node {
			if n.OpType == "DequantizeLinear" && len(n.Output) == 1 && n.Output[0] == "bil" {
				dq++
			}
		}
		if dq != 1 {
			t.Errorf("%s: %d DequantizeLinear nodes give the Einsum weight bil, want 1", name, dq)
		}
		src := &onnx.ModelProto{}
		if err := proto.Unmarshal(b, src); err != nil {
			t.Fatal(err)
		}
		want, got := nodes(src.Graph), nodes(res.Model.Graph)
		if len(want) != 9 || !maps.Equal(want, got) {
			t.Errorf("%s: layout nodes after export\n%v\nwant\n%v", name, got, want)
		}
		out, err := res.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := model.Decode(out); err != nil {
			t.Errorf("%s: the QDQ model does not decode: %v", name, err)
		}
	}
}
