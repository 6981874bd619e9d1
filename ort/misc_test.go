//go:build ort

package ort_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestMiscOpsORT compares the engine's forward pass with ONNX Runtime's on
// small graphs (a MatMul unit, the operators, a Flatten) for what the
// torch export of make_misc_tiny.py does not set: TopK smallest, along a
// middle axis, its INT64 indices (cast to float), ties (a weight with two
// equal columns makes equal values: the lower index first, as ONNX
// Runtime), GatherND of TopK's indices with batch_dims 2 and of constant
// tuples expanded to the batch with negative coordinates, OneHot of TopK's
// indices along axes 1 and −1 with values [−1, 2], GroupNormalization at
// opsets 18 (per-group scale) and 21 (per-channel), MeanVarianceNormalization
// over one and two axes, and InstanceNormalization.
func TestMiscOpsORT(t *testing.T) {
	initORT(t)
	r := rand.New(rand.NewPCG(6, 6))
	randv := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(r.NormFloat64()))
		}
		return v
	}
	type tc struct {
		name   string
		opset  int64
		sample []int // x's shape without the batch; the MatMul acts on its last axis
		batch  int
		ties   bool                // two equal columns of the MatMul weight
		build  func(b *mt.Builder) // from "h" (the MatMul's output) to "z"
	}
	k := func(b *mt.Builder, v int64) { b.Int64("k", []int{1}, []int64{v}) }
	topk := func(kv int64, attrs ...*onnx.AttributeProto) func(b *mt.Builder) {
		return func(b *mt.Builder) {
			k(b, kv)
			b.Node("TopK", "op", []string{"h", "k"}, []string{"z", "i"}, attrs...)
		}
	}
	indices := func(kv int64, attrs ...*onnx.AttributeProto) func(b *mt.Builder) {
		return func(b *mt.Builder) {
			k(b, kv)
			b.Node("TopK", "op", []string{"h", "k"}, []string{"v", "i"}, attrs...)
			b.Node("Cast", "", []string{"i"}, []string{"z"}, mt.Int("to", int64(onnx.TensorProto_FLOAT)))
		}
	}
	norm := func(op string, attrs ...*onnx.AttributeProto) func(b *mt.Builder) {
		return func(b *mt.Builder) { b.Node(op, "op", []string{"h"}, []string{"z"}, attrs...) }
	}
	affine := func(op string, n int, attrs ...*onnx.AttributeProto) func(b *mt.Builder) {
		return func(b *mt.Builder) {
			b.Float("s", []int{n}, randv(n))
			b.Float("bi", []int{n}, randv(n))
			b.Node(op, "op", []string{"h", "s", "bi"}, []string{"z"}, attrs...)
		}
	}
	cases := []tc{
		{"TopK largest", 17, []int{3, 6}, 3, false, topk(3)},
		{"TopK smallest axis 1", 17, []int{5, 4}, 2, false, topk(2, mt.Int("axis", 1), mt.Int("largest", 0))},
		{"TopK indices", 13, []int{3, 6}, 3, false, indices(4)},
		{"TopK indices smallest axis -2", 21, []int{5, 4}, 2, false, indices(5, mt.Int("axis", -2), mt.Int("largest", 0))},
		{"TopK ties indices", 17, []int{2, 6}, 3, true, indices(6)},
		{"TopK ties indices smallest", 17, []int{2, 6}, 3, true, indices(6, mt.Int("largest", 0))},
		{"TopK ties values", 17, []int{2, 6}, 3, true, topk(3)},
		{"GatherND of TopK indices, batch_dims 2", 17, []int{3, 6}, 2, false, func(b *mt.Builder) {
			k(b, 2)
			b.Int64("last", []int{1}, []int64{-1})
			b.Node("TopK", "top", []string{"h", "k"}, []string{"v", "i"})
			b.Node("Tanh", "", []string{"h"}, []string{"h2"})
			b.Node("Unsqueeze", "", []string{"i", "last"}, []string{"iu"})
			b.Node("GatherND", "op", []string{"h2", "iu"}, []string{"z"}, mt.Int("batch_dims", 2))
		}},
		{"GatherND constant tuples, batch_dims 1", 13, []int{3, 4}, 2, false, func(b *mt.Builder) {
			b.Int64("tuples", []int{1, 3, 2}, []int64{0, -1, 2, 1, -3, 3})
			b.Int64("start", []int{1}, []int64{0})
			b.Int64("end", []int{1}, []int64{1})
			b.Int64("tail", []int{2}, []int64{3, 2})
			b.Node("Shape", "", []string{"h"}, []string{"hs"})
			b.Node("Slice", "", []string{"hs", "start", "end"}, []string{"n"})
			b.Node("Concat", "", []string{"n", "tail"}, []string{"ts"}, mt.Int("axis", 0))
			b.Node("Expand", "", []string{"tuples", "ts"}, []string{"te"})
			b.Node("GatherND", "op", []string{"h", "te"}, []string{"z"}, mt.Int("batch_dims", 1))
		}},
		{"GatherND slices, batch_dims 1", 17, []int{3, 4}, 2, false, func(b *mt.Builder) {
			k(b, 2)
			b.Int64("last", []int{1}, []int64{-1})
			b.Int64("shape", []int{3}, []int64{0, 3, 4})
			b.Node("ReduceMax", "", []string{"h"}, []string{"hm"}, mt.Ints("axes", 2), mt.Int("keepdims", 0))
			b.Node("TopK", "top", []string{"hm", "k"}, []string{"v", "i"})
			b.Node("Unsqueeze", "", []string{"i", "last"}, []string{"iu"})
			b.Node("GatherND", "op", []string{"h", "iu"}, []string{"z"}, mt.Int("batch_dims", 1))
		}},
		{"OneHot of TopK indices, axis -1", 17, []int{2, 5}, 2, false, func(b *mt.Builder) {
			k(b, 3)
			b.Int64("depth", []int{}, []int64{5})
			b.Float("vals", []int{2}, []float64{-1, 2})
			b.Node("TopK", "top", []string{"h", "k"}, []string{"v", "i"})
			b.Node("OneHot", "op", []string{"i", "depth", "vals"}, []string{"z"})
		}},
		{"OneHot of TopK indices, axis 1, depth 7", 11, []int{2, 5}, 2, false, func(b *mt.Builder) {
			k(b, 2)
			b.Int64("depth", []int{1}, []int64{7})
			b.Float("vals", []int{2}, []float64{0.5, -3})
			b.Node("TopK", "top", []string{"h", "k"}, []string{"v", "i"})
			b.Node("OneHot", "op", []string{"i", "depth", "vals"}, []string{"z"}, mt.Int("axis", 1))
		}},
		{"GroupNormalization per group (18)", 18, []int{4, 3}, 3, false, affine("GroupNormalization", 2, mt.Int("num_groups", 2))},
		{"GroupNormalization per channel (21)", 21, []int{6, 2}, 3, false, affine("GroupNormalization", 6, mt.Int("num_groups", 3), mt.Float32("epsilon", 0.01))},
		{"GroupNormalization one group (21)", 21, []int{4, 3}, 2, false, affine("GroupNormalization", 4, mt.Int("num_groups", 1))},
		{"InstanceNormalization", 17, []int{3, 4}, 2, false, affine("InstanceNormalization", 3)},
		{"MeanVarianceNormalization axis 2", 13, []int{3, 5}, 2, false, norm("MeanVarianceNormalization", mt.Ints("axes", 2))},
		{"MeanVarianceNormalization axes 1 2", 18, []int{3, 5}, 2, false, norm("MeanVarianceNormalization", mt.Ints("axes", 1, 2))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.sample[len(c.sample)-1]
			w := randv(d * d)
			if c.ties {
				for i := 0; i < d; i++ {
					w[i*d+d-1] = w[i*d+1] // columns 1 and d−1 equal: tied values
				}
			}
			opGraphORT(t, "misc_op", c.opset, c.sample, c.batch, w, c.build, randv)
		})
	}
}

// TestMiscTinyORT: testdata/models/misc_tiny_op13.onnx and _op17.onnx
// (GroupNorm as InstanceNormalization, TopK, GatherND of the top-k indices
// and of a boolean mask, OneHot) run in ONNX Runtime and give PyTorch's
// logits of misc_tiny_ref.npz; their W8A8 QDQ export (opset 21, those
// nodes left in float between the quantized units) loads and runs there
// and agrees with bitplan's simulation of the plan on 200 random inputs
// (tolerances tinyFloatTol, tinyQDQTol).
func TestMiscTinyORT(t *testing.T) { tinyORT(t, "misc_tiny", tinyCase{seed: 6}) }

// TestGroupNormORT: the graphs of scripts/make_groupnorm_reference.py
// with GroupNormalization at opsets 18 (per-group scale) and 21
// (per-channel), built by hand on the reference's float32 weights, run in
// ONNX Runtime and give F.group_norm's float64 logits of groupnorm_ref.npz;
// their W8A8 QDQ export (opset 21: the opset-18 node rewritten as Reshape,
// InstanceNormalization, Reshape) agrees with the simulation on 200 random
// inputs.
func TestGroupNormORT(t *testing.T) {
	initORT(t)
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", "groupnorm_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	arr := func(name string) *data.Array {
		t.Helper()
		a, err := z.Array(name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	xa := arr("input")
	for _, opset := range []int64{18, 21} {
		bd := mt.GroupNorm(opset, false, func(name string) ([]int, []float64) { a := arr(name); return a.Shape, a.Float })
		b := bd.Bytes()
		m, err := model.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e, err := nn.New(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(uint64(opset), 7))
		calib, test := normalSamples(r, e, 64), normalSamples(r, e, 200)
		checkORT(t, fmt.Sprintf("groupnorm opset %d", opset), "F.group_norm's", b, e, [][]float64{xa.Float}, arr(fmt.Sprintf("logits.%d", opset)).Float, tinyFloatTol, calib, [][]float64{test.Inputs}, test.Len())
	}
}
