package nn_test

import (
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestLayoutTinyMatchesTorch runs testdata/models/layout_tiny_op14.onnx and
// _op17.onnx (scripts/make_layout_tiny.py: torch.onnx exports with
// PixelShuffle as DepthToSpace CRD, PixelUnshuffle, SpaceToDepth, a DCR
// DepthToSpace, two Einsums — attention scores of two computed tensors and
// a bilinear term with a constant — two Trilus, a CumSum and a
// GatherElements, all on computed tensors) on the four inputs of
// layout_tiny_ref.npz and compares with PyTorch's float64 module (see
// matchTinyTorch).
func TestLayoutTinyMatchesTorch(t *testing.T) {
	matchTinyTorch(t, "layout_tiny", tinyTorch{
		opsets: []int{14, 17},
		nodes: func(t *testing.T, m *model.Model) {
			want := map[string]int{"DepthToSpace": 2, "SpaceToDepth": 1, "Einsum": 2, "GatherElements": 1, "CumSum": 1, "Trilu": 2}
			count := map[string]int{}
			for _, n := range m.Nodes {
				if _, ok := want[n.Op]; ok {
					count[n.Op]++
				}
			}
			if !maps.Equal(count, want) {
				t.Fatalf("layout nodes %v, want %v", count, want)
			}
		},
	})
}

// TestGatherElementsComputedIndices runs GatherElements whose indices are
// a graph input (int64 data read at run time, negative ones included):
// y[n, i, j] = (x w)[n, i, ids[n, i, j]] against the product written out,
// the gradient in w against central differences of the loss, H·v against
// central differences of the gradient; an index outside the axis makes
// the forward pass fail with an error naming the node.
func TestGatherElementsComputedIndices(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	b := mt.New("gather_elements_ids", 13)
	b.Input("x", -1, 3, 4)
	b.Proto().Graph.Input = append(b.Proto().Graph.Input, &onnx.ValueInfoProto{Name: "ids", Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: int32(onnx.TensorProto_INT64), Shape: &onnx.TensorShapeProto{Dim: []*onnx.TensorShapeProto_Dimension{
			{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}, {Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: 3}},
			{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: 2}}}}}}}})
	w := randn(r, 16, 0.5)
	b.Double("w", []int{4, 4}, w)
	b.Node("MatMul", "mm", []string{"x", "w"}, []string{"h"})
	b.Node("Tanh", "", []string{"h"}, []string{"t"})
	b.Node("GatherElements", "ge", []string{"t", "ids"}, []string{"g"}, mt.Int("axis", 2))
	b.Node("Flatten", "", []string{"g"}, []string{"y"})
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	x := randn(r, n*12, 1)
	ids := []int64{0, 3, -1, 2, 1, -4, 3, 3, 0, 0, -2, 1, 2, -3, 1, 0, 3, -1}
	idsF := make([]float64, len(ids))
	for i, v := range ids {
		idsF[i] = float64(v)
	}
	got, err := e.LogitsInputs([][]float64{x, idsF}, n)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < n; s++ {
		for i := 0; i < 3; i++ {
			for j := 0; j < 2; j++ {
				k := int((ids[(s*3+i)*2+j] + 4) % 4)
				h := 0.0
				for c := 0; c < 4; c++ {
					h += x[(s*3+i)*4+c] * w[c*4+k]
				}
				if want := math.Tanh(h); math.Abs(got[(s*3+i)*2+j]-want) > 1e-14 {
					t.Fatalf("y[%d, %d, %d] = %.17g, want %.17g", s, i, j, got[(s*3+i)*2+j], want)
				}
			}
		}
	}
	labels := []int{1, 5, 2}
	ds, err := data.NewArrays([]string{"x", "ids"}, []*data.Array{{Shape: []int{n, 3, 4}, Float: x}, {Shape: []int{n, 3, 2}, Int: ids}}, labels)
	if err != nil {
		t.Fatal(err)
	}
	theta := e.Theta()
	g := gradAt(t, e, ds, theta)
	const h = 1e-5
	for i := range theta {
		u := make([]float64, len(theta))
		u[i] = 1
		if fd := lossDifference(t, e, ds, theta, u, h); math.Abs(fd-g[i]) > 1e-7*max(1, norm(g)) {
			t.Errorf("∂L/∂w[%d] = %.10g, finite differences %.10g", i, g[i], fd)
		}
	}
	if err := e.SetTheta(theta); err != nil {
		t.Fatal(err)
	}
	op, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	v := randn(r, len(theta), 1)
	hv := make([]float64, len(theta))
	if err := op.HVP(context.Background(), hv, v); err != nil {
		t.Fatal(err)
	}
	fd := gradDifference(t, e, ds, theta, v, h)
	if err := relErr(hv, fd); err > 1e-6 {
		t.Errorf("H·v: relative error %.3g against finite differences of the gradient", err)
	}
	// An index of 4 on an axis of 4.
	idsF[5] = 4
	_, err = e.LogitsInputs([][]float64{x, idsF}, n)
	if err == nil || !strings.Contains(err.Error(), `GatherElements node "ge"`) || !strings.Contains(err.Error(), "index 4 at position 5 is outside [-4, 4)") {
		t.Errorf("out-of-range index: error %v", err)
	}
}

// TestEinsumUnits: an Einsum of an activation and a weight matrix is a unit
// whose output channels lie on the weight's axis of the label it passes
// to the output — axis 0 for 'bld,hd->blh' (a Linear layer's N×K weight),
// axis 1 for 'blh,hk->blk', also with the weight first — with MACs of the
// output's elements times the contracted size; the engine's per-channel
// indices (the pruning and channel-Hessian blocks) are the weight's slices
// along that axis; a 1-D constant added to an output whose last axis holds
// the channels is the unit's bias. An Einsum of two activations, a
// three-dimensional weight and a weight label shared with the activation
// are not units.
func TestEinsumUnits(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	b := mt.New("einsum_units", 17)
	b.Input("x", -1, 3, 4)
	b.Double("w1", []int{5, 4}, randn(r, 20, 0.5))
	b.Double("w2", []int{5, 2}, randn(r, 10, 0.5))
	b.Double("w3", []int{2, 3}, randn(r, 6, 0.5))
	b.Double("w4", []int{3, 3, 3}, randn(r, 27, 0.5))
	b.Double("w5", []int{3, 3}, randn(r, 9, 0.5))
	b.Node("Einsum", "e1", []string{"x", "w1"}, []string{"h"}, mt.String("equation", "bld,hd->blh"))
	b.Double("b2", []int{2}, []float64{0.1, -0.2})
	b.Node("Einsum", "e2", []string{"h", "w2"}, []string{"h2b"}, mt.String("equation", "blh,hk->blk"))
	b.Node("Add", "bias", []string{"h2b", "b2"}, []string{"h2"})
	b.Node("Einsum", "e3", []string{"w3", "h2"}, []string{"h3"}, mt.String("equation", "kj,blk->blj"))
	b.Node("Einsum", "att", []string{"h3", "h3"}, []string{"a"}, mt.String("equation", "bij,bkj->bik"))
	b.Node("Einsum", "cube", []string{"a", "w4"}, []string{"c"}, mt.String("equation", "bik,kij->bij"))
	b.Node("Einsum", "shared", []string{"c", "w5"}, []string{"s"}, mt.String("equation", "bij,ij->bij"))
	b.Node("Flatten", "", []string{"s"}, []string{"y"})
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]int64{"e1": {0, 5, 3 * 5 * 4}, "e2": {1, 2, 3 * 2 * 5}, "e3": {1, 3, 3 * 3 * 2}}
	got := map[string][3]int64{}
	for _, u := range m.Units {
		got[u.Name] = [3]int64{int64(u.ChannelAxis), int64(u.OutChannels), u.MACs}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("units (channel axis, channels, MACs) %v, want %v", got, want)
	}
	for _, u := range m.Units {
		if want := map[string]string{"e2": "b2"}[u.Name]; u.Bias != want {
			t.Errorf("%s: bias %q, want %q", u.Name, u.Bias, want)
		}
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range e.Units() {
		ws := u.WeightShape
		for c, idx := range u.ChannelIndices() {
			var slice []int
			for i := 0; i < ws[0]*ws[1]; i++ {
				if []int{i / ws[1], i % ws[1]}[u.ChannelAxis] == c {
					slice = append(slice, u.WeightOffset+i)
				}
			}
			if u.BiasSize > 0 {
				slice = append(slice, u.BiasOffset+c) // the channel's bias
			}
			if !slices.Equal(idx, slice) {
				t.Errorf("%s channel %d: indices %v, want the weight's slice %v on axis %d", u.Name, c, idx, slice, u.ChannelAxis)
			}
		}
	}
}

// TestCumSumPositionIds runs the position ids of Hugging Face exports,
// CumSum(mask) − 1 of an int64 attention mask read at run time, into the
// lookup of a position-embedding table: the ids are integer data (no
// derivative) and the logits are the table's rows at those ids.
func TestCumSumPositionIds(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	b := mt.New("position_ids", 14)
	b.Proto().Graph.Input = append(b.Proto().Graph.Input, &onnx.ValueInfoProto{Name: "mask", Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: int32(onnx.TensorProto_INT64), Shape: &onnx.TensorShapeProto{Dim: []*onnx.TensorShapeProto_Dimension{
			{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}, {Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: 5}}}}}}}})
	w := randn(r, 6*3, 1)
	b.Double("pos", []int{6, 3}, w)
	b.Int64("axis", []int{}, []int64{1})
	b.Int64("one", []int{}, []int64{1})
	b.Node("CumSum", "cs", []string{"mask", "axis"}, []string{"c"})
	b.Node("Sub", "", []string{"c", "one"}, []string{"ids"})
	b.Node("Gather", "emb", []string{"pos", "ids"}, []string{"e"})
	b.Node("Flatten", "", []string{"e"}, []string{"y"})
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float32, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	mask := []float64{1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1}
	got, err := e.LogitsInputs([][]float64{mask}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 3; s++ {
		sum := 0
		for p := 0; p < 5; p++ {
			sum += int(mask[s*5+p])
			id := sum - 1
			if id < 0 {
				id += 6 // Gather's negative index
			}
			for c := 0; c < 3; c++ {
				if g, want := got[(s*5+p)*3+c], float64(float32(w[id*3+c])); g != want {
					t.Fatalf("sample %d position %d: %g, want row %d's %g", s, p, g, id, want)
				}
			}
		}
	}
}
