package nn_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// scatterNet is the graph of the scatter case of TestDerivatives (opset
// 18), on a 1×1 convolution a (N×3×4×4) and a 3×3 one c (N×2×4×4) of the
// input:
//
//   - ScatterND of rows 2, 0 and −1 (2 again: the last write wins) of a
//     channel-major copy of a (3×N×4×4, Transpose) with the rows of
//     2·tanh(a): constant indices, a duplicate;
//   - ScatterElements along the channels with reduction add, indices
//     [2, −3] expanded to c's shape (Shape → Expand, as torch.onnx writes
//     them), c added into a's channels 2 and 0;
//   - ScatterElements along the width of tanh(a) with computed indices
//     ⌊4·sigmoid(x)⌋ (Floor, Cast to int64; they depend on the input, not
//     on θ), c's values written: duplicates in most rows.
//
// The three are flattened, added and read by a 3-class MatMul.
func scatterNet(b *mt.Builder, r *rand.Rand) {
	dbl(b, r, "w", 3, 2, 1, 1)
	dbl(b, r, "bias", 3)
	dbl(b, r, "w2", 2, 2, 3, 3)
	dbl(b, r, "fw", 48, 3)
	b.Double("two", []int{}, []float64{2})
	b.Int64("rows", []int{3, 1}, []int64{2, 0, -1})
	b.Int64("chans", []int{1, 2, 1, 1}, []int64{2, -3})
	b.Node("Conv", "conv", []string{"x", "w", "bias"}, []string{"a"})
	b.Node("Conv", "conv2", []string{"x", "w2"}, []string{"c"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("Tanh", "", []string{"a"}, []string{"ta"})
	// ScatterND of rows, constant indices.
	b.Node("Mul", "", []string{"ta", "two"}, []string{"ta2"})
	b.Node("Transpose", "", []string{"a"}, []string{"at"}, mt.Ints("perm", 1, 0, 2, 3))
	b.Node("Transpose", "", []string{"ta2"}, []string{"ut"}, mt.Ints("perm", 1, 0, 2, 3))
	b.Node("ScatterND", "nd", []string{"at", "rows", "ut"}, []string{"s1t"})
	b.Node("Transpose", "", []string{"s1t"}, []string{"s1"}, mt.Ints("perm", 1, 0, 2, 3))
	// ScatterElements, reduction add, expanded constant indices.
	b.Node("Shape", "", []string{"c"}, []string{"cs"})
	b.Node("Expand", "", []string{"chans", "cs"}, []string{"ce"})
	b.Node("ScatterElements", "add", []string{"a", "ce", "c"}, []string{"s2"}, mt.Int("axis", 1), mt.String("reduction", "add"))
	b.Node("Add", "", []string{"s1", "s2"}, []string{"s"})
	b.Node("Flatten", "", []string{"s"}, []string{"f"})
	b.Node("MatMul", "fc", []string{"f", "fw"}, []string{"y"})
}

// scatterComputedModel is x N×2×4×4 (float) and ix N×2×4×4 (INT64 ids)
// → a = Conv 1×1 2→3 (x), c = Conv 3×3 2→2 (x) → ScatterElements(tanh(a),
// ix, c, axis 3): c's values written at the widths ix gives (computed
// indices, read when the kernel runs) → Flatten → MatMul (3 classes).
func scatterComputedModel(t *testing.T) *model.Model {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 3))
	b := mt.New("scatter-ids", 13)
	b.Input("x", -1, 2, 4, 4)
	b.IntInput("ix", -1, 2, 4, 4)
	dbl(b, r, "w", 3, 2, 1, 1)
	dbl(b, r, "bias", 3)
	dbl(b, r, "w2", 2, 2, 3, 3)
	dbl(b, r, "fw", 48, 3)
	b.Node("Conv", "conv", []string{"x", "w", "bias"}, []string{"a"})
	b.Node("Conv", "conv2", []string{"x", "w2"}, []string{"c"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("Tanh", "", []string{"a"}, []string{"ta"})
	b.Node("ScatterElements", "scatter", []string{"ta", "ix", "c"}, []string{"s"}, mt.Int("axis", 3))
	b.Node("Flatten", "", []string{"s"}, []string{"f"})
	b.Node("MatMul", "fc", []string{"f", "fw"}, []string{"y"})
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestScatterComputedIndices runs a ScatterElements whose indices are an
// INT64 graph input (random in [−4, 4): negative ones and duplicates in
// most rows) in both precisions: the gradient against central
// differences of the loss, H·v against central differences of the
// gradient, float32 against float64; and an id of 4 (outside [−4, 4)) is
// an error naming the node and the index, not a result.
func TestScatterComputedIndices(t *testing.T) {
	ctx := context.Background()
	m := scatterComputedModel(t)
	r := rand.New(rand.NewPCG(5, 5))
	const n = 5
	ids := &data.Array{Shape: []int{n, 2, 4, 4}, DType: "<i8", Int: make([]int64, n*32)}
	for i := range ids.Int {
		ids.Int[i] = int64(r.IntN(8) - 4)
	}
	xs := &data.Array{Shape: []int{n, 2, 4, 4}, DType: "<f8", Float: randn(r, n*32, 1)}
	labels := []int{0, 1, 2, 1, 0}
	ds, err := data.NewArrays([]string{"x", "ix"}, []*data.Array{xs, ids}, labels)
	if err != nil {
		t.Fatal(err)
	}
	var g64, hv64 []float64
	for _, prec := range []nn.Precision{nn.Float64, nn.Float32} {
		e, err := nn.New(m, &nn.Options{Precision: prec, BatchSize: 2, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		theta := e.Theta()
		g := gradAt(t, e, ds, theta)
		v := randn(rand.New(rand.NewPCG(6, 6)), len(theta), 1)
		op, err := e.Operator(ds)
		if err != nil {
			t.Fatal(err)
		}
		hv := make([]float64, len(theta))
		if err := op.HVP(ctx, hv, v); err != nil {
			t.Fatal(err)
		}
		if prec == nn.Float32 {
			if e1, e2 := relErr(g, g64), relErr(hv, hv64); e1 > 1e-5 || e2 > 1e-5 {
				t.Errorf("float32 against float64: gradient %.3g, H·v %.3g relative", e1, e2)
			}
			continue
		}
		g64, hv64 = g, hv
		fd := lossDifference(t, e, ds, theta, v, fdStep)
		if an := dot(g, v); math.Abs(fd-an) > fdTol*max(math.Abs(an), 1) {
			t.Errorf("directional derivative: analytic %.10g, finite difference %.10g", an, fd)
		}
		fdh := gradDifference(t, e, ds, theta, v, fdStep)
		if err := relErr(hv, fdh); err > 10*fdTol {
			t.Errorf("H·v: relative error %.3g against finite differences of the gradient", err)
		}
		if err := e.SetTheta(theta); err != nil {
			t.Fatal(err)
		}
	}
	ids.Int[37] = 4
	e, err := nn.New(m, &nn.Options{BatchSize: 2, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Evaluate(ctx, ds)
	if err == nil || !strings.Contains(err.Error(), `ScatterElements node "scatter"`) || !strings.Contains(err.Error(), "index 4 at position 37 of the indices is outside [-4, 4)") {
		t.Errorf("an id of 4: %v, want an error naming the node and the index", err)
	}
}

// TestScatterTinyMatchesTorch runs testdata/models/scatter_tiny_op13.onnx
// and _op17.onnx (scripts/make_scatter_tiny.py: a torch.onnx export with
// h[:, 0] = … and h[:, :, 0] = … as ScatterND, torch.scatter by an INT64
// graph input "index" as ScatterElements with computed indices, and
// torch.scatter_add as ScatterElements into zeros plus Add at opset 13,
// with reduction add at 17) on the four samples of scatter_tiny_ref.npz
// and compares with PyTorch's float64 module (see matchTinyTorch).
func TestScatterTinyMatchesTorch(t *testing.T) {
	matchTinyTorch(t, "scatter_tiny", tinyTorch{want: []string{"ScatterElements", "ScatterND"}, inputs: []string{"input", "index"}})
}
