package qdq

import (
	"context"
	"encoding/binary"
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

// TestExportReductions exports the torch.onnx model whose features are the
// eight non-linear reductions of computed tensors
// (testdata/models/reduce_tiny_op13.onnx and _op17.onnx, axes as
// attributes) at W8A8: every unit is quantized, and each reduction reaches
// the opset-21 model reading the same data with its axes moved to an int64
// initializer input of the same values (axesToInput) and its keepdims
// kept; the exported model imports again (ONNX Runtime runs it: ort's
// TestReduceTinyORT).
func TestExportReductions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, name := range []string{"reduce_tiny_op13", "reduce_tiny_op17"} {
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
		if len(res.Summary.Layers) != 5 || res.Model.OpsetImport[0].Version != Opset {
			t.Errorf("%s: %d layers quantized (want 5), opset %d", name, len(res.Summary.Layers), res.Model.OpsetImport[0].Version)
		}
		src := &onnx.ModelProto{}
		if err := proto.Unmarshal(b, src); err != nil {
			t.Fatal(err)
		}
		inits := map[string]*onnx.TensorProto{}
		for _, in := range res.Model.Graph.Initializer {
			inits[in.Name] = in
		}
		out := map[string]*onnx.NodeProto{}
		for _, n := range res.Model.Graph.Node {
			out[n.Name] = n
		}
		attr := func(n *onnx.NodeProto, a string) *onnx.AttributeProto {
			for _, x := range n.Attribute {
				if x.Name == a {
					return x
				}
			}
			return nil
		}
		seen := 0
		for _, n := range src.Graph.Node {
			if !strings.HasPrefix(n.OpType, "Reduce") {
				continue
			}
			seen++
			q := out[n.Name]
			if q == nil || q.OpType != n.OpType || len(q.Input) != 2 || q.Input[0] != n.Input[0] {
				t.Errorf("%s: %s became %v", name, n.Name, q)
				continue
			}
			ax := inits[q.Input[1]]
			want := attr(n, "axes").GetInts()
			if ax == nil || ax.DataType != int32(onnx.TensorProto_INT64) || !slices.Equal(int64s(ax), want) {
				t.Errorf("%s: %s's axes input %v, want the attribute's %v", name, n.Name, ax, want)
			}
			if attr(q, "axes") != nil || attr(q, "keepdims").GetI() != attr(n, "keepdims").GetI() {
				t.Errorf("%s: %s attributes %v, source %v", name, n.Name, q.Attribute, n.Attribute)
			}
		}
		if seen != 8 {
			t.Errorf("%s: %d reductions in the source, want 8", name, seen)
		}
		qb, err := res.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := model.Decode(qb); err != nil {
			t.Fatalf("%s: the exported model does not import: %v", name, err)
		}
	}
}

// int64s returns the values of an INT64 initializer (int64_data or
// little-endian raw_data).
func int64s(t *onnx.TensorProto) []int64 {
	if len(t.RawData) == 0 {
		return t.Int64Data
	}
	v := make([]int64, len(t.RawData)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(t.RawData[8*i:]))
	}
	return v
}
