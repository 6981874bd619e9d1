package nn_test

import (
	"context"
	"math/rand/v2"
	"testing"

	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// reduceNet is the graph of the reductions cases of TestDerivatives: on a
// 1×1 convolution a (N×3×4×4) of the input, ReduceMax over the spatial
// axes (global max pooling), ReduceMin over the channels, a ReduceL2
// normalisation over the channels, ReduceLogSumExp over the spatial axes
// without keepdims, ReduceProd of tanh(a) over the last axis,
// ReduceSumSquare over H without keepdims, ReduceL1 over every axis but
// the batch, ReduceLogSum of sigmoid(a) over the channels; their
// flattened outputs are concatenated into a 3-class MatMul. With
// axesInput the axes are int64 initializer inputs (opset 18), else
// attributes.
func reduceNet(axesInput bool) func(b *mt.Builder, r *rand.Rand) {
	return func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w", 3, 2, 1, 1)
		dbl(b, r, "bias", 3)
		dbl(b, r, "fw", 3+16+48+3+12+12+1+16, 3)
		b.Double("eps", []int{}, []float64{1e-3})
		b.Node("Conv", "conv", []string{"x", "w", "bias"}, []string{"a"})
		reduce := func(op, in, out string, keep int64, axes ...int64) {
			if !axesInput {
				b.Node(op, op, []string{in}, []string{out}, mt.Ints("axes", axes...), mt.Int("keepdims", keep))
				return
			}
			ax := out + ".axes"
			b.Int64(ax, []int{len(axes)}, axes)
			b.Node(op, op, []string{in, ax}, []string{out}, mt.Int("keepdims", keep))
		}
		reduce("ReduceMax", "a", "gmax", 1, 2, 3)
		reduce("ReduceMin", "a", "cmin", 1, 1)
		reduce("ReduceL2", "a", "l2", 1, 1)
		b.Node("Add", "", []string{"l2", "eps"}, []string{"l2e"})
		b.Node("Div", "", []string{"a", "l2e"}, []string{"unit"})
		reduce("ReduceLogSumExp", "a", "lse", 0, -2, -1)
		b.Node("Tanh", "", []string{"a"}, []string{"ta"})
		reduce("ReduceProd", "ta", "prod", 1, 3)
		reduce("ReduceSumSquare", "a", "ss", 0, 2)
		reduce("ReduceL1", "a", "l1", 1, 1, 2, 3)
		b.Node("Sigmoid", "", []string{"a"}, []string{"sa"})
		reduce("ReduceLogSum", "sa", "ls", 1, 1)
		var flat []string
		for _, t := range []string{"gmax", "cmin", "unit", "lse", "prod", "ss", "l1", "ls"} {
			b.Node("Flatten", "", []string{t}, []string{t + ".f"})
			flat = append(flat, t+".f")
		}
		b.Node("Concat", "", flat, []string{"cat"}, mt.Int("axis", 1))
		b.Node("MatMul", "fc", []string{"cat", "fw"}, []string{"y"})
	}
}

// globalPoolNet is the graph of the global-pools case of TestDerivatives:
// on a 1×1 convolution a (N×3×4×4) of the input, GlobalMaxPool,
// GlobalLpPool with the default p (2), GlobalLpPool p 1 of tanh(a) and p 3
// of a, and GlobalMaxPool of a second convolution's ReLU; their flattened
// N×3 outputs are concatenated into a 3-class MatMul.
func globalPoolNet(b *mt.Builder, r *rand.Rand) {
	dbl(b, r, "w", 3, 2, 1, 1)
	dbl(b, r, "bias", 3)
	dbl(b, r, "w2", 3, 2, 3, 3)
	dbl(b, r, "fw", 5*3, 3)
	b.Node("Conv", "conv", []string{"x", "w", "bias"}, []string{"a"})
	b.Node("Conv", "conv2", []string{"x", "w2"}, []string{"c"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("Relu", "", []string{"c"}, []string{"rc"})
	b.Node("Tanh", "", []string{"a"}, []string{"ta"})
	b.Node("GlobalMaxPool", "gmax", []string{"a"}, []string{"gmax"})
	b.Node("GlobalLpPool", "gl2", []string{"a"}, []string{"gl2"})
	b.Node("GlobalLpPool", "gl1", []string{"ta"}, []string{"gl1"}, mt.Int("p", 1))
	b.Node("GlobalLpPool", "gl3", []string{"a"}, []string{"gl3"}, mt.Int("p", 3))
	b.Node("GlobalMaxPool", "gmaxr", []string{"rc"}, []string{"gmaxr"})
	var flat []string
	for _, t := range []string{"gmax", "gl2", "gl1", "gl3", "gmaxr"} {
		b.Node("Flatten", "", []string{t}, []string{t + ".f"})
		flat = append(flat, t+".f")
	}
	b.Node("Concat", "", flat, []string{"cat"}, mt.Int("axis", 1))
	b.Node("MatMul", "fc", []string{"cat", "fw"}, []string{"y"})
}

// TestReduceNetFloat32: the float32 engine's loss, gradient and H·v on the
// reductions nets and the global-pools net agree with the float64 engine's (TestDerivatives checks
// the latter against finite differences): the float32 kernels compute the
// same rules. Each value passes through about 20 rounded float32
// operations (ε32 ≈ 6e-8), so 1e-4 relative leaves a margin of ~50; a
// wrong float32 rule is off by O(1).
func TestReduceNetFloat32(t *testing.T) {
	const tol = 1e-4
	ctx := context.Background()
	for i, c := range netCases {
		if c.name != "reductions-13" && c.name != "reductions-18" && c.name != "global-pools" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			m := buildNet(t, c, uint64(i))
			e64, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			e32, err := nn.New(m, &nn.Options{Precision: nn.Float32, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			ds := randomData(t, e64, 5, uint64(i))
			r := rand.New(rand.NewPCG(uint64(i), 9))
			v := randn(r, e64.Dim(), 1)
			var g, hv [2][]float64
			var loss [2]float64
			for j, e := range []*nn.Engine{e64, e32} {
				g[j], hv[j] = make([]float64, e.Dim()), make([]float64, e.Dim())
				ev, err := e.Gradient(ctx, ds, g[j])
				if err != nil {
					t.Fatal(err)
				}
				loss[j] = ev.Loss
				op, err := e.Operator(ds)
				if err != nil {
					t.Fatal(err)
				}
				if err := op.HVP(ctx, hv[j], v); err != nil {
					t.Fatal(err)
				}
			}
			if d := (loss[1] - loss[0]) / max(1, loss[0]); d > tol || d < -tol {
				t.Errorf("loss: float32 %.8g, float64 %.8g", loss[1], loss[0])
			}
			if err := relErr(g[1], g[0]); err > tol {
				t.Errorf("gradient: float32 differs from float64 by %.3g relative", err)
			}
			if err := relErr(hv[1], hv[0]); err > tol {
				t.Errorf("H·v: float32 differs from float64 by %.3g relative", err)
			}
			t.Logf("float32 against float64: loss %.2g, gradient %.2g, H·v %.2g relative", (loss[1]-loss[0])/max(1, loss[0]), relErr(g[1], g[0]), relErr(hv[1], hv[0]))
		})
	}
}

// TestReduceTinyMatchesTorch runs testdata/models/reduce_tiny_op13.onnx and
// _op17.onnx (scripts/make_reduce_tiny.py: a torch.onnx export whose
// features are ReduceMax and ReduceMin global pooling, an F.normalize
// ReduceL2, ReduceLogSumExp, ReduceProd, ReduceL1, ReduceSumSquare and
// ReduceLogSum of computed tensors) on the four inputs of
// reduce_tiny_ref.npz and compares with PyTorch's float64 module (see
// matchTinyTorch).
func TestReduceTinyMatchesTorch(t *testing.T) {
	matchTinyTorch(t, "reduce_tiny", tinyTorch{want: []string{"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare"}})
}

// TestPoolTinyMatchesTorch runs testdata/models/pool_tiny_op13.onnx and
// _op17.onnx (scripts/make_pool_tiny.py: a torch.onnx export whose
// features are GlobalMaxPool of nn.AdaptiveMaxPool2d(1) and
// F.adaptive_max_pool1d(…, 1), and GlobalLpPool p 1, 2 and 3, of computed
// tensors) on the four inputs of pool_tiny_ref.npz and compares with
// PyTorch's float64 module (see matchTinyTorch).
func TestPoolTinyMatchesTorch(t *testing.T) {
	matchTinyTorch(t, "pool_tiny", tinyTorch{want: []string{"GlobalLpPool", "GlobalMaxPool"}})
}
