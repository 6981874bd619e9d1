package nn_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// tiny builds x(N×3) → Gemm(3→2, transB) → op → y.
func tiny(op string) *mt.Builder {
	b := mt.New("tiny", 13)
	b.Input("x", -1, 3)
	b.Double("w", []int{2, 3}, []float64{0.1, -0.2, 0.3, 0.4, 0.5, -0.6})
	b.Double("b", []int{2}, []float64{0.01, -0.02})
	b.Node("Gemm", "fc", []string{"x", "w", "b"}, []string{"h"}, mt.Int("transB", 1))
	b.Node(op, "odd", []string{"h"}, []string{"y"})
	b.Output("y")
	return b
}

func TestUnsupportedOp(t *testing.T) {
	m, err := model.Decode(tiny("Hardmax").Bytes())
	if err != nil {
		t.Fatalf("import must succeed on an op the engine cannot run: %v", err)
	}
	if len(m.Units) != 1 || m.Units[0].Name != "fc" {
		t.Errorf("units %+v", m.Units)
	}
	_, err = nn.New(m, nil)
	if err == nil || !strings.Contains(err.Error(), `Hardmax node "odd" (#1): operator Hardmax is not supported by the engine`) {
		t.Errorf("New: %v", err)
	}
	if nn.Supported("Hardmax") || !nn.Supported("Erf") || !nn.Supported("Conv") || !nn.Supported("Shape") {
		t.Error("Supported is wrong")
	}
}

func TestEngineErrors(t *testing.T) {
	m, err := model.Decode(tiny("Relu").Bytes())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ds, _ := data.NewMemory([]float64{1, 2, 3, 4, 5, 6}, []int{0, 5}, []int{3})
	if _, err := e.Evaluate(ctx, ds); !errors.Is(err, data.ErrLabel) || !strings.Contains(err.Error(), "sample 1 has label 5") {
		t.Errorf("label out of range: %v", err)
	}
	if _, err := e.Operator(ds); !errors.Is(err, data.ErrLabel) {
		t.Errorf("Operator with bad labels: %v", err)
	}
	other, _ := data.NewMemory([]float64{1, 2}, []int{0}, []int{2})
	if _, err := e.Evaluate(ctx, other); err == nil || !strings.Contains(err.Error(), "expects [3]") {
		t.Errorf("wrong sample shape: %v", err)
	}
	if err := e.SetWeights("fc", []float64{1}); err == nil || !strings.Contains(err.Error(), "want 6") {
		t.Errorf("SetWeights: %v", err)
	}
	if err := e.SetWeights("nope", nil); err == nil {
		t.Error("SetWeights on an unknown unit")
	}
	if err := e.SetTheta(make([]float64, 3)); err == nil {
		t.Error("SetTheta with a short vector")
	}
	if _, err := e.Gradient(ctx, ds, make([]float64, 2)); err == nil {
		t.Error("Gradient with a short buffer")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	good, _ := data.NewMemory([]float64{1, 2, 3}, []int{1}, []int{3})
	if _, err := e.Evaluate(cctx, good); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}

	// Bad attribute values surface from the constructor with the node.
	b := tiny("Softmax")
	b.Proto().Graph.Node[1].Attribute = append(b.Proto().Graph.Node[1].Attribute, mt.Int("axis", 7))
	m2, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nn.New(m2, nil); err == nil || !strings.Contains(err.Error(), `Softmax node "odd" (#1): axis 7 out of range`) {
		t.Errorf("bad axis: %v", err)
	}
	// Gather of computed data runs with constant indices ...
	b3 := mt.New("gather", 13)
	b3.Input("x", -1, 3)
	b3.Double("w", []int{2, 3}, make([]float64, 6))
	b3.Int64("idx", []int{2}, []int64{1, 0})
	b3.Node("Gemm", "fc", []string{"x", "w"}, []string{"h"}, mt.Int("transB", 1))
	b3.Node("Gather", "gat", []string{"h", "idx"}, []string{"y"}, mt.Int("axis", 1))
	b3.Output("y")
	m3, err := model.Decode(b3.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nn.New(m3, nil); err != nil {
		t.Errorf("Gather of computed data by constant indices: %v", err)
	}
	// ... but shape-only operators cannot.
	b4 := mt.New("cos", 13)
	b4.Input("x", -1, 3)
	b4.Double("w", []int{2, 3}, make([]float64, 6))
	b4.Node("Gemm", "fc", []string{"x", "w"}, []string{"h"}, mt.Int("transB", 1))
	b4.Node("ConstantOfShape", "cos", []string{"h"}, []string{"y"})
	b4.Output("y")
	m4, err := model.Decode(b4.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nn.New(m4, nil); err == nil || !strings.Contains(err.Error(), `ConstantOfShape node "cos" (#1): ConstantOfShape is supported only on constants and shapes, not on computed data`) {
		t.Errorf("ConstantOfShape of computed data: %v", err)
	}
}

// TestSetWeights checks that replacing a unit's weights changes the
// evaluation as recomputing by hand predicts.
func TestSetWeights(t *testing.T) {
	m, err := model.Decode(tiny("Identity").Bytes())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := []float64{1, 0, 0, 0, 1, 0}
	if err := e.SetWeights("fc", w); err != nil {
		t.Fatal(err)
	}
	got, err := e.Weights("fc")
	if err != nil || fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("Weights = %v, %v", got, err)
	}
	logits, err := e.Logits([]float64{2, 3, 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(logits) != "[2.01 2.98]" {
		t.Errorf("logits %v, want [2.01 2.98]", logits)
	}
	ds, _ := data.NewMemory([]float64{2, 3, 4}, []int{1}, []int{3})
	ev, err := e.Evaluate(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	want := math.Log(math.Exp(2.01)+math.Exp(2.98)) - 2.98
	if math.Abs(ev.Loss-want) > 1e-15 || ev.Correct != 1 {
		t.Errorf("eval %+v, want loss %v and 1 correct", ev, want)
	}
}

func lenetLike() *model.Model {
	b := mt.New("lenet-like", 13)
	b.Input("x", -1, 1, 8, 8)
	seq := func(n int, s float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = s * math.Sin(float64(3*i+1))
		}
		return v
	}
	b.Float("c.w", []int{4, 1, 3, 3}, seq(36, 0.5)).Float("c.b", []int{4}, seq(4, 0.1))
	b.Float("f.w", []int{10, 36}, seq(360, 0.3)).Float("f.b", []int{10}, seq(10, 0.1))
	b.Node("Conv", "conv", []string{"x", "c.w", "c.b"}, []string{"h"})
	b.Node("Relu", "relu", []string{"h"}, []string{"h1"})
	b.Node("MaxPool", "pool", []string{"h1"}, []string{"h2"}, mt.Ints("kernel_shape", 2, 2), mt.Ints("strides", 2, 2))
	b.Node("Flatten", "flat", []string{"h2"}, []string{"h3"})
	b.Node("Gemm", "fc", []string{"h3", "f.w", "f.b"}, []string{"logits"}, mt.Int("transB", 1))
	b.Output("logits")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		panic(err)
	}
	return m
}

func sampleData() *data.Memory {
	x := make([]float64, 6*64)
	for i := range x {
		x[i] = math.Abs(math.Cos(float64(i)))
	}
	ds, _ := data.NewMemory(x, []int{3, 1, 4, 1, 5, 9}, []int{1, 8, 8})
	return ds
}

// ExampleEngine_Gradient evaluates a small network and its gradient.
func ExampleEngine_Gradient() {
	e, err := nn.New(lenetLike(), &nn.Options{BatchSize: 4})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range e.Units() {
		fmt.Printf("%s: θ[%d:%d] weight %v\n", u.Name, u.Offset, u.Offset+u.Size, u.WeightShape)
	}
	g := make([]float64, e.Dim())
	ev, err := e.Gradient(context.Background(), sampleData(), g)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f, accuracy %.2f, |∇L| %.4f\n", ev.Loss, ev.Accuracy(), math.Sqrt(dot(g, g)))
	// Output:
	// conv: θ[0:40] weight [4 1 3 3]
	// fc: θ[40:410] weight [10 36]
	// loss 2.3550, accuracy 0.00, |∇L| 1.4005
}

// ExampleEngine_Operator computes a Hessian-vector product and the exact
// trace of each unit's Hessian block.
func ExampleEngine_Operator() {
	e, err := nn.New(lenetLike(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ds := sampleData()
	op, err := e.Operator(ds)
	if err != nil {
		fmt.Println(err)
		return
	}
	var _ hessian.BatchOperator = op
	ctx := context.Background()
	v, hv := make([]float64, op.Dim()), make([]float64, op.Dim())
	for i := range v {
		v[i] = float64(1 - 2*(i%2))
	}
	if err := op.HVP(ctx, hv, v); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("vᵀHv = %.4f\n", dot(v, hv))
	for _, b := range op.Blocks() {
		tr, err := e.BlockTrace(ctx, ds, b, 0)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("Tr(H_%s)/n = %.5f\n", b.Name, tr/float64(b.Size))
	}
	// Output:
	// vᵀHv = 3.0443
	// Tr(H_conv)/n = 0.03528
	// Tr(H_fc)/n = 0.03368
}
