package qdq

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
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
		res, src := exportTinyW8A8(t, r, name, 5)
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

// TestUpgradedReductionsMatchTorch: the export's opset upgrade of
// reduce_tiny_op17.onnx (the eight reductions' axes moved to int64 inputs,
// opset 21, nothing quantized) runs in the engine and gives PyTorch's
// logits, loss, gradient and H·v of reduce_tiny_ref.npz (torch 1.13
// exports no opset 18: this is the real export in the axes-input form).
// Rounding only separates them (≈ 1e-15 relative; the bound leaves 1,000).
func TestUpgradedReductionsMatchTorch(t *testing.T) {
	const tol = 1e-12
	b, err := os.ReadFile(modelPath("reduce_tiny_op17"))
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		t.Fatal(err)
	}
	if err := upgradeOpset(mp); err != nil {
		t.Fatal(err)
	}
	ub, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Decode(ub)
	if err != nil {
		t.Fatal(err)
	}
	inputs := 0
	for _, n := range m.Nodes {
		if strings.HasPrefix(n.Op, "Reduce") && n.Input(1) != "" {
			inputs++
		}
	}
	if m.Opset != Opset || inputs != 8 {
		t.Fatalf("upgraded model: opset %d, %d reductions with an axes input (want %d, 8)", m.Opset, inputs, Opset)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", "reduce_tiny_ref.npz"))
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
	rel := func(got, want []float64) float64 {
		d, s := 0.0, 0.0
		for i := range want {
			d += (got[i] - want[i]) * (got[i] - want[i])
			s += want[i] * want[i]
		}
		return math.Sqrt(d / max(s, 1e-300))
	}
	logits, err := e.Logits(arr("input"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if d := rel(logits, arr("logits")); d > tol {
		t.Errorf("logits: relative error %.3g against PyTorch", d)
	}
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
	op, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	hv := make([]float64, len(theta))
	if err := op.HVP(context.Background(), hv, v); err != nil {
		t.Fatal(err)
	}
	loss := arr("loss")[0]
	if math.Abs(ev.Loss-loss) > tol*max(1, loss) || rel(g, gradRef) > tol || rel(hv, hvRef) > tol {
		t.Errorf("loss %.15g (PyTorch %.15g), gradient relative error %.3g, H·v %.3g", ev.Loss, loss, rel(g, gradRef), rel(hv, hvRef))
	}
	t.Logf("opset %d against PyTorch: logits %.2g, gradient %.2g, H·v %.2g relative", m.Opset, rel(logits, arr("logits")), rel(g, gradRef), rel(hv, hvRef))
}
