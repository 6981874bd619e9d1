package nn_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// Tolerances of the comparisons with PyTorch (matchTinyTorch,
// matchTorch). The engine in float64 and PyTorch's float64 module compute
// the same sums on the same float32 weights in different orders:
// differences are rounding, ≈ 1e-15 relative; torchTol leaves a margin of
// 1,000. The float32 engine rounds each of at most ~60 operations per
// logit at 6e-8: tol32Logits. The finite-difference check of H·v uses
// central differences of the gradient with step hvStep (ReLUs, Max/Min
// picks, ReduceL1's signs and TopK's choices make the losses piecewise
// smooth; the step is far below the distance of these inputs from any
// kink: the torch-checked references agree with it), truncation O(h²) and
// rounding O(ε/h) ≈ 1e-10 relative.
const (
	torchTol    = 1e-12
	tol32Logits = 1e-5
	hvStep      = 1e-6
	hvFDTol     = 1e-6
)

// tinyTorch describes a torch-exported tiny model for matchTinyTorch.
type tinyTorch struct {
	// opsets of the committed exports <name>_op<opset>.onnx; 13 and 17
	// when empty.
	opsets []int
	// inputs are the reference's arrays fed to the model's inputs;
	// "input" when empty.
	inputs []string
	// want lists (sorted) operators every export must contain.
	want []string
	// nodes, when set, checks the export's nodes further.
	nodes func(t *testing.T, m *model.Model)
}

// matchTinyTorch runs testdata/models/<name>_op<opset>.onnx, which must
// contain every operator of c.want, on the four samples of <name>_ref.npz
// and compares with PyTorch's float64 module (see matchTorch).
func matchTinyTorch(t *testing.T, name string, c tinyTorch) {
	if len(c.inputs) == 0 {
		c.inputs = []string{"input"}
	}
	if len(c.opsets) == 0 {
		c.opsets = []int{13, 17}
	}
	dir := filepath.Join("..", "testdata", "models")
	z, err := data.OpenNPZ(filepath.Join(dir, name+"_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	for _, opset := range c.opsets {
		t.Run(fmt.Sprintf("op%d", opset), func(t *testing.T) {
			m, err := model.Load(filepath.Join(dir, fmt.Sprintf("%s_op%d.onnx", name, opset)))
			if err != nil {
				t.Fatalf("committed model: %v", err)
			}
			var found []string
			for _, n := range m.Nodes {
				if slices.Contains(c.want, n.Op) && !slices.Contains(found, n.Op) {
					found = append(found, n.Op)
				}
			}
			slices.Sort(found)
			if !slices.Equal(found, c.want) {
				t.Fatalf("operators %v, want %v", found, c.want)
			}
			if c.nodes != nil {
				c.nodes(t, m)
			}
			matchTorch(t, m, z, c.inputs, "")
		})
	}
}

// npzFloats returns the reference array name as float64s (integer arrays
// converted).
func npzFloats(t *testing.T, z *data.NPZ, name string) []float64 {
	t.Helper()
	a, err := z.Array(name)
	if err != nil {
		t.Fatal(err)
	}
	if a.Int != nil {
		v := make([]float64, len(a.Int))
		for i, x := range a.Int {
			v[i] = float64(x)
		}
		return v
	}
	return a.Float
}

// matchTorch runs m on the four samples of z's arrays inputs and compares
// with PyTorch's float64 module: logits (also in float32), loss,
// gradient and H·v for the reference's Rademacher v (double backprop),
// per parameter (also in float32); and H·v against central differences
// of the engine's own gradient. The reference arrays are logits<tag>,
// loss<tag>, grad<tag>.<param>, v.<param> and hv<tag>.<param>.
func matchTorch(t *testing.T, m *model.Model, z *data.NPZ, inputs []string, tag string) {
	t.Helper()
	arr := func(name string) []float64 { return npzFloats(t, z, name) }
	ds, err := z.Match(inputs)
	if err != nil {
		t.Fatal(err)
	}
	var xs [][]float64
	for _, in := range inputs {
		xs = append(xs, arr(in))
	}
	logits, loss := arr("logits"+tag), arr("loss" + tag)[0]
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.LogitsInputs(xs, 4)
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
	got32, err := e32.LogitsInputs(xs, 4)
	if err != nil {
		t.Fatal(err)
	}
	if d, s := maxAbsDiff(got32, logits); d > tol32Logits*s {
		t.Errorf("float32 logits differ from PyTorch's by %.3g (scale %.3g)", d, s)
	}
	// θ in the engine's layout from the reference's per-parameter arrays.
	theta := e.Theta()
	gradRef, v, hvRef := make([]float64, len(theta)), make([]float64, len(theta)), make([]float64, len(theta))
	for _, p := range e.Params() {
		copy(gradRef[p.Offset:p.Offset+p.Size], arr("grad"+tag+"."+p.Name))
		copy(v[p.Offset:p.Offset+p.Size], arr("v."+p.Name))
		copy(hvRef[p.Offset:p.Offset+p.Size], arr("hv"+tag+"."+p.Name))
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
	// The float32 engine's gradient and H·v.
	g32, hv32 := make([]float64, len(theta)), make([]float64, len(theta))
	if _, err := e32.Gradient(context.Background(), ds, g32); err != nil {
		t.Fatal(err)
	}
	op32, err := e32.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	if err := op32.HVP(context.Background(), hv32, v); err != nil {
		t.Fatal(err)
	}
	if e1, e2 := relErr(g32, gradRef), relErr(hv32, hvRef); e1 > 1e-4 || e2 > 1e-4 {
		t.Errorf("float32: gradient relative error %.3g, H·v %.3g against PyTorch", e1, e2)
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
	t.Logf("against PyTorch: logits %.2g (float32 %.2g) of scale %.3g, loss %.2g, gradient %.2g (float32 %.2g), H·v %.2g (float32 %.2g); H·v against finite differences %.2g (|H·v| %.6g)",
		d64, d32, sc, math.Abs(ev.Loss-loss), relErr(g, gradRef), relErr(g32, gradRef), relErr(hv, hvRef), relErr(hv32, hvRef), relErr(hv, fd), norm(hv))
}

// maxAbsDiff returns max |a − b| and the scale max(1, max |b|).
func maxAbsDiff(a, b []float64) (d, scale float64) {
	scale = 1
	for i := range b {
		scale = max(scale, math.Abs(b[i]))
		if i < len(a) {
			d = max(d, math.Abs(a[i]-b[i]))
		}
	}
	if len(a) != len(b) {
		d = math.Inf(1)
	}
	return d, scale
}
