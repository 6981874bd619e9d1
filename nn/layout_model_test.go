package nn_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// TestLayoutTinyMatchesTorch runs testdata/models/layout_tiny_op14.onnx and
// _op17.onnx (scripts/make_layout_tiny.py: torch.onnx exports with
// PixelShuffle as DepthToSpace CRD, PixelUnshuffle, SpaceToDepth, a DCR
// DepthToSpace, two Einsums — attention scores of two computed tensors and
// a bilinear term with a constant — two Trilus, a CumSum and a
// GatherElements, all on computed tensors) on the four inputs of
// layout_tiny_ref.npz and compares with PyTorch's float64 module: the
// logits (also in float32), the loss, the gradient and H·v for the
// reference's Rademacher v (double backprop), per parameter; and H·v
// against central differences of the engine's own gradient. The
// tolerances are TestVariadicTinyMatchesTorch's.
func TestLayoutTinyMatchesTorch(t *testing.T) {
	dir := filepath.Join("..", "testdata", "models")
	z, err := data.OpenNPZ(filepath.Join(dir, "layout_tiny_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	arr := func(name string) []float64 {
		t.Helper()
		a, err := z.Array(name)
		if err != nil {
			t.Fatal(err)
		}
		return a.Float
	}
	ds, err := z.Match([]string{"input"})
	if err != nil {
		t.Fatal(err)
	}
	x, logits, loss := arr("input"), arr("logits"), arr("loss")[0]
	for _, opset := range []int{14, 17} {
		t.Run(fmt.Sprintf("op%d", opset), func(t *testing.T) {
			m, err := model.Load(filepath.Join(dir, fmt.Sprintf("layout_tiny_op%d.onnx", opset)))
			if err != nil {
				t.Fatalf("committed model: %v", err)
			}
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
			e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Logits(x, 4)
			if err != nil {
				t.Fatal(err)
			}
			if d, s := maxAbsDiff(got, logits); d > torchTol*s {
				t.Errorf("float64 logits differ from PyTorch's by %.3g (scale %.3g)", d, s)
			}
			e32, err := nn.New(m, &nn.Options{Precision: nn.Float32, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			got32, err := e32.Logits(x, 4)
			if err != nil {
				t.Fatal(err)
			}
			if d, s := maxAbsDiff(got32, logits); d > tol32Logits*s {
				t.Errorf("float32 logits differ from PyTorch's by %.3g (scale %.3g)", d, s)
			}
			// θ in the engine's layout from the reference's per-parameter
			// arrays.
			theta := e.Theta()
			gradRef, v, hvRef := make([]float64, len(theta)), make([]float64, len(theta)), make([]float64, len(theta))
			for _, p := range e.Params() {
				copy(gradRef[p.Offset:p.Offset+p.Size], arr("grad."+p.Name))
				copy(v[p.Offset:p.Offset+p.Size], arr("v."+p.Name))
				copy(hvRef[p.Offset:p.Offset+p.Size], arr("hv."+p.Name))
			}
			g := make([]float64, len(theta))
			ev, err := e.Gradient(context.Background(), ds, g)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(ev.Loss-loss) > torchTol*max(1, loss) {
				t.Errorf("loss %.15g, PyTorch %.15g", ev.Loss, loss)
			}
			if err := relErr(g, gradRef); err > torchTol*10 {
				t.Errorf("gradient: relative error %.3g against PyTorch", err)
			}
			op, err := e.Operator(ds)
			if err != nil {
				t.Fatal(err)
			}
			hv := make([]float64, len(theta))
			if err := op.HVP(context.Background(), hv, v); err != nil {
				t.Fatal(err)
			}
			if err := relErr(hv, hvRef); err > torchTol*10 {
				t.Errorf("H·v: relative error %.3g against PyTorch's double backprop", err)
			}
			plus, minus := make([]float64, len(theta)), make([]float64, len(theta))
			for i := range theta {
				plus[i], minus[i] = theta[i]+hvStep*v[i], theta[i]-hvStep*v[i]
			}
			gp, gm := gradAt(t, e, ds, plus), gradAt(t, e, ds, minus)
			fd := make([]float64, len(theta))
			for i := range fd {
				fd[i] = (gp[i] - gm[i]) / (2 * hvStep)
			}
			if err := relErr(hv, fd); err > hvFDTol {
				t.Errorf("H·v: relative error %.3g against central differences of the gradient", err)
			}
			d64, sc := maxAbsDiff(got, logits)
			d32, _ := maxAbsDiff(got32, logits)
			t.Logf("against PyTorch: logits %.2g (float32 %.2g) of scale %.3g, loss %.2g, gradient %.2g, H·v %.2g; H·v against finite differences %.2g (|H·v| %.6g)",
				d64, d32, sc, math.Abs(ev.Loss-loss), relErr(g, gradRef), relErr(hv, hvRef), relErr(hv, fd), norm(hv))
		})
	}
}
