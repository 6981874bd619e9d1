package qdq

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// modelPath is a testdata model (testdata/models/README.md).
func modelPath(name string) string { return filepath.Join("..", "testdata", "models", name+".onnx") }

// load returns a testdata model's bytes and engine; a missing committed
// model fails the test.
func load(t testing.TB, name string) ([]byte, *nn.Engine) {
	t.Helper()
	b, err := os.ReadFile(modelPath(name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, e
}

// mixedLeNet is a plan over LeNet's five layers with every storage case:
// INT8, INT4, narrowed INT4 (3 bits) with a narrowed 6-bit input, a
// narrowed INT8 (6 bits), a weight-only layer.
var mixedLeNet = []eval.Layer{
	{Name: "/conv1/Conv", Bits: 8, ABits: 8},
	{Name: "/conv2/Conv", Bits: 4, ABits: 8},
	{Name: "/fc1/Gemm", Bits: 3, ABits: 6},
	{Name: "/fc2/Gemm", Bits: 6, ABits: 8},
	{Name: "/fc3/Gemm", Bits: 8, ABits: 0},
}

func calib(t testing.TB, n int) data.Dataset {
	t.Helper()
	ds, err := data.MNIST(data.Train, n)
	if err != nil {
		t.Fatalf("MNIST (shipped in the GoMNIST module): %v", err)
	}
	return ds
}

// graphIndex finds initializers and producers by name.
type graphIndex struct {
	init map[string]*onnx.TensorProto
	prod map[string]*onnx.NodeProto
}

func index(g *onnx.GraphProto) graphIndex {
	ix := graphIndex{init: map[string]*onnx.TensorProto{}, prod: map[string]*onnx.NodeProto{}}
	for _, t := range g.Initializer {
		ix.init[t.Name] = t
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			ix.prod[o] = n
		}
	}
	return ix
}

func attr(n *onnx.NodeProto, name string) *onnx.AttributeProto {
	for _, a := range n.Attribute {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// TestExportStructureMatchesPlan checks, on the serialized model, that
// every weight's codes, scale shape, zero point and type are the plan's,
// that the dequantized weights are eval's fake-quantized weights, and that
// every activation quantizer is per tensor without axis with eval's scale
// and zero point.
func TestExportStructureMatchesPlan(t *testing.T) {
	b, e := load(t, "lenet")
	ctx := context.Background()
	cal := calib(t, 64)
	r, err := Export(ctx, &Config{Model: b, Engine: e, Layers: mixedLeNet, Calib: cal, Plan: "mixed"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(out, mp); err != nil {
		t.Fatal(err)
	}
	if mp.IrVersion != IRVersion || len(mp.OpsetImport) != 1 || mp.OpsetImport[0].Version != Opset {
		t.Fatalf("IR %d, opsets %v; want IR %d, opset %d", mp.IrVersion, mp.OpsetImport, IRVersion, Opset)
	}
	// The reference: eval's own application of the same layers.
	a, err := eval.Apply(ctx, e, mixedLeNet, cal, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]eval.AppliedLayer{}
	wq := map[string][]float64{}
	for _, al := range a.Layers {
		want[al.Name] = al
		wq[al.Name], _ = e.Weights(al.Name)
	}
	a.Restore()
	ix := index(mp.Graph)
	wantType := map[int]Type{8: Int8, 6: Int8, 4: Int4, 3: Int4}
	for _, u := range e.Units() {
		al := want[u.Name]
		if _, still := ix.init[u.Weight]; still {
			t.Errorf("%s: float weight %q still an initializer", u.Name, u.Weight)
		}
		dq := ix.prod[u.Weight]
		if dq == nil || dq.OpType != "DequantizeLinear" || len(dq.Input) != 3 {
			t.Fatalf("%s: weight %q not produced by a 3-input DequantizeLinear: %v", u.Name, u.Weight, dq)
		}
		codesT, scaleT, zpT := ix.init[dq.Input[0]], ix.init[dq.Input[1]], ix.init[dq.Input[2]]
		if Type(codesT.DataType) != wantType[al.Bits] || Type(zpT.DataType) != wantType[al.Bits] {
			t.Errorf("%s: %d-bit codes %v, zero point %v; want %v", u.Name, al.Bits, Type(codesT.DataType), Type(zpT.DataType), wantType[al.Bits])
		}
		if len(scaleT.Dims) != 1 || scaleT.Dims[0] != int64(u.OutChannels) || len(zpT.Dims) != 1 || zpT.Dims[0] != int64(u.OutChannels) {
			t.Errorf("%s: scale dims %v, zero point dims %v; want [%d]", u.Name, scaleT.Dims, zpT.Dims, u.OutChannels)
		}
		ax := attr(dq, "axis")
		if ax == nil && al.Layout.Axis != 0 || ax != nil && ax.I != int64(al.Layout.Axis) {
			t.Errorf("%s: DequantizeLinear axis %v, want %d", u.Name, ax, al.Layout.Axis)
		}
		codes, err := DecodeInts(codesT)
		if err != nil {
			t.Fatal(err)
		}
		zp, _ := DecodeInts(zpT)
		for _, z := range zp {
			if z != 0 {
				t.Fatalf("%s: zero point %d, want 0", u.Name, z)
			}
		}
		sc, err := DecodeFloats(scaleT)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(1)<<(al.Bits-1) - 1
		per := len(codes) / u.OutChannels
		for i, c := range codes {
			if c < -n || c > n {
				t.Fatalf("%s: code %d outside ±%d", u.Name, c, n)
			}
			ch := i / per // axis 0: Conv and LeNet's transB Gemms
			got := float64(c) * float64(sc[ch])
			if d := math.Abs(got - wq[u.Name][i]); d > 1e-6*math.Abs(wq[u.Name][i])+1e-12 {
				t.Fatalf("%s: weight %d dequantizes to %g, eval simulates %g", u.Name, i, got, wq[u.Name][i])
			}
		}
	}
	// Activations: Q per tensor, no axis, the eval scale and zero point.
	qs := 0
	for _, nd := range mp.Graph.Node {
		if nd.OpType != "QuantizeLinear" {
			continue
		}
		qs++
		if attr(nd, "axis") != nil {
			t.Errorf("%s has an axis attribute", nd.Name)
		}
		sT, zT := ix.init[nd.Input[1]], ix.init[nd.Input[2]]
		if len(sT.Dims) != 0 || len(zT.Dims) != 0 || Type(zT.DataType) != Uint8 {
			t.Errorf("%s: scale dims %v, zero point dims %v type %v; want scalars, UINT8", nd.Name, sT.Dims, zT.Dims, Type(zT.DataType))
		}
	}
	if qs != 4 {
		t.Errorf("%d QuantizeLinear nodes, want 4 (fc3 is weight-only)", qs)
	}
	for _, l := range r.Summary.Layers {
		al := want[l.Name]
		if l.ABits == 0 {
			continue
		}
		s, z := al.Act.Scale()
		if l.ActScale != float32(s) || l.ActZeroPoint != int64(z) || l.ActMax != int64(al.Act.Levels()) {
			t.Errorf("%s: activation scale %g zp %d max %d; eval %g %g %g", l.Name, l.ActScale, l.ActZeroPoint, l.ActMax, s, z, al.Act.Levels())
		}
	}
	// The 6-bit input of fc1 is clipped to its 64 levels.
	var meta map[string]string = map[string]string{}
	for _, p := range mp.MetadataProps {
		meta[p.Key] = p.Value
	}
	if !strings.Contains(meta[MetadataNarrowed], "fc1.weight: 3-bit weight codes [-3, 3] stored in INT4") ||
		!strings.Contains(meta[MetadataNarrowed], "6-bit activation codes [0, 63] stored in UINT8 after a Clip") {
		t.Errorf("narrowed ranges metadata %q", meta[MetadataNarrowed])
	}
	var s Summary
	if err := json.Unmarshal([]byte(meta[MetadataKey]), &s); err != nil || len(s.Layers) != 5 || s.Opset != Opset {
		t.Errorf("metadata %s: %v", MetadataKey, err)
	}
	clips := 0
	for _, nd := range mp.Graph.Node {
		if nd.OpType == "Clip" {
			clips++
		}
	}
	if clips != 1 {
		t.Errorf("%d Clip nodes, want 1 (the 6-bit input)", clips)
	}
	// The engine is restored to the float weights.
	w, _ := e.Weights("/fc1/Gemm")
	m, _ := model.Decode(b)
	for i, v := range m.Initializers["fc1.weight"].Float {
		if w[i] != v {
			t.Fatal("engine weights not restored")
		}
	}
}

func TestExportErrors(t *testing.T) {
	b, e := load(t, "lenet")
	ctx := context.Background()
	for _, c := range []struct {
		layers []eval.Layer
		want   string
	}{
		{[]eval.Layer{{Name: "/nope/Conv", Bits: 8}}, `layer "/nope/Conv" is not a quantizable layer`},
		{[]eval.Layer{{Name: "/conv1/Conv", Bits: 33}}, "weight width 33 bits cannot be stored"},
		{[]eval.Layer{{Name: "/conv1/Conv", Bits: 8, ABits: 20}}, "activation width 20 bits cannot be stored"},
	} {
		_, err := Export(ctx, &Config{Model: b, Engine: e, Layers: c.layers})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.layers, err, c.want)
		}
	}
	if _, err := Export(ctx, &Config{Model: []byte("garbage"), Engine: e}); err == nil {
		t.Error("garbage model bytes accepted")
	}
}

func TestIntTensorRoundTrip(t *testing.T) {
	for _, ty := range []Type{Int4, Uint4, Int8, Uint8, Int16, Uint16, Int32, Int64} {
		lo, hi := ty.Range()
		if ty == Int64 {
			lo, hi = -1<<40, 1<<40
		}
		codes := []int64{lo, hi, 0, 1, -1 + 1*boolInt(lo == 0), lo + 1, hi - 1}
		tp := intTensor("x", ty, []int64{int64(len(codes))}, codes)
		got, err := DecodeInts(tp)
		if err != nil {
			t.Fatal(err)
		}
		for i := range codes {
			if got[i] != codes[i] {
				t.Fatalf("%v: code %d round-trips to %d", ty, codes[i], got[i])
			}
		}
	}
	// INT4 packing: first element in the low nibble.
	tp := intTensor("x", Int4, []int64{3}, []int64{-1, 2, 7})
	if len(tp.RawData) != 2 || tp.RawData[0] != 0x2f || tp.RawData[1] != 0x07 {
		t.Errorf("INT4 packing %x, want 2f07", tp.RawData)
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func TestDyadic(t *testing.T) {
	for _, m := range []float64{1e-6, 0.0123, 0.5, 0.75, 1, 3.999999999999} {
		b, sh, err := Dyadic(m)
		if err != nil {
			t.Fatal(err)
		}
		if b <= 0 || b >= 1<<DyadicBits {
			t.Fatalf("%g: b = %d outside (0, 2^%d)", m, b, DyadicBits)
		}
		if got := math.Ldexp(float64(b), -sh); math.Abs(got-m)/m > math.Exp2(-DyadicBits) {
			t.Errorf("%g: %d/2^%d = %g", m, b, sh, got)
		}
	}
	if _, _, err := Dyadic(0); err == nil {
		t.Error("Dyadic(0) succeeded")
	}
}

// TestExportOpsets: the zoo's opset-11 export is refused before
// any work, naming the opset and the fix; opset 13 and 17 export.
func TestExportOpsets(t *testing.T) {
	for _, c := range []struct {
		file, want string
	}{{"op11", "opset 11; export needs opset 13"}, {"op13", ""}, {"op17", ""}} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "zoo", "tiny_resnet", c.file+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e, err := nn.New(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		var layers []eval.Layer
		for _, u := range e.Units() {
			layers = append(layers, eval.Layer{Name: u.Name, Bits: 8})
		}
		r, err := Export(context.Background(), &Config{Model: b, Engine: e, Layers: layers})
		switch {
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.file, err, c.want)
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.file, err)
		case c.want == "" && r.Model.OpsetImport[0].Version != Opset:
			t.Errorf("%s: exported opset %d", c.file, r.Model.OpsetImport[0].Version)
		}
	}
}

// TestExportVariadicJoins exports the torch.onnx model whose joins are
// three-input Sum, Max, Min and Mean nodes on computed tensors
// (testdata/models/variadic_tiny_op13.onnx and _op17.onnx) at W8A8: every
// unit is quantized, and the variadic nodes reach the opset-21 model
// unchanged, reading the same three tensors (ONNX Runtime runs it:
// ort's TestVariadicTinyORT).
func TestExportVariadicJoins(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, name := range []string{"variadic_tiny_op13", "variadic_tiny_op17"} {
		res, src := exportTinyW8A8(t, r, name, 7)
		joins := func(g *onnx.GraphProto) map[string]string {
			j := map[string]string{}
			for _, n := range g.Node {
				switch n.OpType {
				case "Max", "Min", "Sum", "Mean":
					j[n.Name] = n.OpType + "(" + strings.Join(n.Input, ", ") + ")"
				}
			}
			return j
		}
		want, got := joins(src.Graph), joins(res.Model.Graph)
		if len(want) != 4 || !maps.Equal(want, got) {
			t.Errorf("%s: variadic nodes after export %v, want %v", name, got, want)
		}
	}
}
