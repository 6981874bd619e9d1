package qdq

import (
	"context"
	"fmt"
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

// exportTinyW8A8 exports testdata/models/<name>.onnx with every unit at
// 8-bit weights and activations (ranges calibrated on 16 standard normal
// samples drawn from r) and requires layers quantized layers, an
// opset-Opset model and one that model.Decode reads back; it returns the
// result and the source model.
func exportTinyW8A8(t *testing.T, r *rand.Rand, name string, layers int) (*Result, *onnx.ModelProto) {
	t.Helper()
	b, e := load(t, name)
	ds := &data.Memory{Inputs: make([]float64, 16*data.SampleSize(&data.Memory{Shape: e.SampleShape()})), Labels: make([]int, 16), Shape: e.SampleShape()}
	for i := range ds.Inputs {
		ds.Inputs[i] = r.NormFloat64()
	}
	var ls []eval.Layer
	for _, u := range e.Units() {
		ls = append(ls, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
	}
	res, err := Export(context.Background(), &Config{Model: b, Engine: e, Layers: ls, Calib: ds})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(res.Summary.Layers) != layers || res.Model.OpsetImport[0].Version != Opset {
		t.Errorf("%s: %d layers quantized (want %d), opset %d", name, len(res.Summary.Layers), layers, res.Model.OpsetImport[0].Version)
	}
	out, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.Decode(out); err != nil {
		t.Errorf("%s: the QDQ model does not decode: %v", name, err)
	}
	src := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, src); err != nil {
		t.Fatal(err)
	}
	return res, src
}

// keptNodes describes g's nodes of the operators ops by name: operator,
// inputs (a dequantized copy read as its source), outputs and attributes.
func keptNodes(g *onnx.GraphProto, ops map[string]bool) map[string]string {
	j := map[string]string{}
	for _, n := range g.Node {
		if ops[n.OpType] {
			in := slices.Clone(n.Input)
			for i, x := range in {
				in[i] = strings.TrimSuffix(x, "_dequantized")
			}
			j[n.Name] = fmt.Sprint(n.OpType, in, n.Output, n.Attribute)
		}
	}
	return j
}
