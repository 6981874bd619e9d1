package nn_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// Tolerances of the finite-difference checks. Central differences with step
// fdStep have truncation error O(h²)·|f”'| ≈ 1e-10 and rounding error
// O(ε/h) ≈ 1e-11 relative for these O(1) losses, so agreement to fdTol
// relative (to the vector's norm) leaves a wide margin while still catching
// any wrong derivative term.
const (
	fdStep = 1e-5
	fdTol  = 1e-6
)

func randn(r *rand.Rand, n int, s float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = s * r.NormFloat64()
	}
	return v
}

func rademacher(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(2*r.IntN(2) - 1)
	}
	return v
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

// netCase is a small graph exercising some operators.
type netCase struct {
	name   string
	sample []int
	build  func(b *mt.Builder, r *rand.Rand)
	// kinks marks piecewise-linear graphs, where a finite-difference step
	// may cross a kink; tests then use a smaller step.
	kinks bool
	// opset is the model's opset (0: 13).
	opset int64
}

func dbl(b *mt.Builder, r *rand.Rand, name string, dims ...int) {
	n := 1
	for _, d := range dims {
		n *= d
	}
	b.Double(name, dims, randn(r, n, 1/math.Sqrt(float64(max(n/dims[0], 1)))))
}

var netCases = []netCase{
	{name: "conv-pads-strides", sample: []int{3, 7, 7}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w", 4, 3, 3, 3)
		dbl(b, r, "b", 4)
		dbl(b, r, "fw", 5, 4*4*4)
		dbl(b, r, "fb", 5)
		b.Node("Conv", "conv", []string{"x", "w", "b"}, []string{"h"}, mt.Ints("pads", 1, 1, 1, 1), mt.Ints("strides", 2, 2))
		b.Node("Tanh", "act", []string{"h"}, []string{"h2"})
		b.Node("Flatten", "flat", []string{"h2"}, []string{"h3"})
		b.Node("Gemm", "fc", []string{"h3", "fw", "fb"}, []string{"y"}, mt.Int("transB", 1))
	}},
	{name: "conv-groups-dilation-same", sample: []int{4, 6, 5}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "dw", 4, 1, 3, 3)
		dbl(b, r, "gw", 6, 2, 2, 3)
		dbl(b, r, "gb", 6)
		dbl(b, r, "fw", 6, 4)
		b.Node("Conv", "depthwise", []string{"x", "dw"}, []string{"h"}, mt.Int("group", 4), mt.String("auto_pad", "SAME_LOWER"))
		b.Node("Sigmoid", "s", []string{"h"}, []string{"h1"})
		b.Node("Conv", "grouped", []string{"h1", "gw", "gb"}, []string{"h2"}, mt.Int("group", 2), mt.Ints("dilations", 2, 1), mt.Ints("pads", 1, 0, 0, 2))
		b.Node("GlobalAveragePool", "gap", []string{"h2"}, []string{"h3"})
		b.Node("Flatten", "flat", []string{"h3"}, []string{"h4"})
		b.Node("MatMul", "mm", []string{"h4", "fw"}, []string{"y"})
	}},
	{name: "conv1d-matmul3d", sample: []int{2, 9}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w", 3, 2, 3)
		dbl(b, r, "mw", 4, 2)
		dbl(b, r, "mb", 2)
		b.Int64("shape", []int{2}, []int64{0, -1})
		b.Node("Conv", "c1d", []string{"x", "w"}, []string{"h"}, mt.Ints("strides", 2), mt.Ints("pads", 1, 0))
		b.Node("MatMul", "mm", []string{"h", "mw"}, []string{"h2"})
		b.Node("Add", "mmb", []string{"h2", "mb"}, []string{"h3"})
		b.Node("Tanh", "t", []string{"h3"}, []string{"h4"})
		b.Node("Reshape", "r", []string{"h4", "shape"}, []string{"y"})
	}},
	{name: "gemm-variants", sample: []int{6}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w1", 6, 5)
		dbl(b, r, "b1", 1, 5)
		dbl(b, r, "w2", 4, 5)
		dbl(b, r, "b2", 1)
		b.Node("Gemm", "g1", []string{"x", "w1", "b1"}, []string{"h"}, mt.Float32("alpha", 0.7), mt.Float32("beta", 1.3))
		b.Node("LeakyRelu", "lr", []string{"h"}, []string{"h1"}, mt.Float32("alpha", 0.2))
		b.Node("Transpose", "", []string{"h1"}, []string{"h1t"})
		b.Node("Gemm", "g2", []string{"h1t", "w2", "b2"}, []string{"y"}, mt.Int("transA", 1), mt.Int("transB", 1))
	}, kinks: true},
	{name: "elementwise-broadcast", sample: []int{2, 3, 3}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w1", 2, 2, 1, 1)
		dbl(b, r, "w2", 2, 2, 1, 1)
		b.Double("cb", []int{2, 1, 1}, []float64{0.3, -0.2})
		b.Double("half", []int{}, []float64{0.5})
		dbl(b, r, "fw", 18, 3)
		dbl(b, r, "fb", 3)
		b.Node("Conv", "ca", []string{"x", "w1"}, []string{"a"})
		b.Node("Conv", "cb", []string{"x", "w2"}, []string{"c"})
		b.Node("Add", "", []string{"a", "cb"}, []string{"a1"})
		b.Node("GlobalAveragePool", "", []string{"c"}, []string{"cg"})
		b.Node("Mul", "", []string{"a1", "cg"}, []string{"m"})
		b.Node("Sigmoid", "", []string{"c"}, []string{"cs"})
		b.Node("Add", "", []string{"cs", "half"}, []string{"den"})
		b.Node("Div", "", []string{"m", "den"}, []string{"d"})
		b.Node("Sub", "", []string{"d", "a"}, []string{"s"})
		b.Node("Mul", "", []string{"s", "half"}, []string{"s2"})
		b.Node("Flatten", "", []string{"s2"}, []string{"f"})
		b.Node("Gemm", "fc", []string{"f", "fw", "fb"}, []string{"y"})
	}},
	{name: "pools-bn-relu", sample: []int{2, 8, 8}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w", 3, 2, 3, 3)
		b.Double("scale", []int{3}, []float64{1.2, 0.8, -0.5})
		b.Double("bias", []int{3}, []float64{0.1, -0.2, 0.3})
		b.Double("mean", []int{3}, []float64{0.05, 0.1, -0.1})
		b.Double("var", []int{3}, []float64{0.9, 1.5, 0.4})
		b.Double("lo", []int{}, []float64{0})
		b.Double("hi", []int{}, []float64{6})
		dbl(b, r, "fw", 54, 4)
		b.Int64("shape", []int{2}, []int64{-1, 54})
		b.Node("Conv", "conv", []string{"x", "w"}, []string{"h"}, mt.Ints("pads", 1, 1, 1, 1))
		b.Node("BatchNormalization", "bn", []string{"h", "scale", "bias", "mean", "var"}, []string{"h1"}, mt.Float32("epsilon", 1e-3))
		b.Node("Clip", "relu6", []string{"h1", "lo", "hi"}, []string{"h2"})
		b.Node("MaxPool", "mp", []string{"h2"}, []string{"p1"}, mt.Ints("kernel_shape", 3, 3), mt.Ints("strides", 3, 3), mt.Ints("pads", 1, 1, 1, 1), mt.Int("ceil_mode", 1))
		b.Node("Relu", "relu", []string{"h1"}, []string{"h3"})
		b.Node("AveragePool", "ap", []string{"h3"}, []string{"p2"}, mt.Ints("kernel_shape", 3, 3), mt.Ints("strides", 3, 3), mt.Ints("pads", 1, 1, 0, 0), mt.Int("count_include_pad", 1))
		b.Node("AveragePool", "ap2", []string{"h2"}, []string{"p3"}, mt.Ints("kernel_shape", 2, 2), mt.Ints("strides", 3, 3), mt.Ints("pads", 0, 0, 1, 1), mt.Int("ceil_mode", 1))
		b.Node("Add", "", []string{"p2", "p3"}, []string{"p4"})
		b.Node("Flatten", "", []string{"p1"}, []string{"f1"})
		b.Node("Flatten", "", []string{"p4"}, []string{"f2"})
		b.Node("Concat", "", []string{"f1", "f2"}, []string{"f"}, mt.Int("axis", 1))
		b.Node("Reshape", "", []string{"f", "shape"}, []string{"f3"})
		b.Node("MatMul", "fc", []string{"f3", "fw"}, []string{"y"})
	}, kinks: true},
	{name: "softmax-inside", sample: []int{5}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w1", 5, 4)
		dbl(b, r, "w2", 4, 4)
		dbl(b, r, "b2", 4)
		dbl(b, r, "w3", 4, 3)
		b.Node("MatMul", "m1", []string{"x", "w1"}, []string{"h"})
		b.Node("Softmax", "sm", []string{"h"}, []string{"p"}, mt.Int("axis", 1))
		b.Node("Unsqueeze", "", []string{"p"}, []string{"pu"}, mt.Ints("axes", 1))
		b.Node("Squeeze", "", []string{"pu"}, []string{"ps"}, mt.Ints("axes", 1))
		b.Node("Dropout", "", []string{"ps"}, []string{"pd"})
		b.Node("Gemm", "g2", []string{"pd", "w2", "b2"}, []string{"h2"}, mt.Float32("alpha", 3))
		b.Node("Identity", "", []string{"h2"}, []string{"h3"})
		b.Node("LogSoftmax", "lsm", []string{"h3"}, []string{"h4"}, mt.Int("axis", -1))
		b.Node("MatMul", "m3", []string{"h4", "w3"}, []string{"y"})
	}},
	// LayerNorm as torch.onnx exports it at opset 13 (ReduceMean, Sub, Pow,
	// Sqrt, Div), with GELU (Erf), then LayerNormalization at opset 17
	// (the registry's composite).
	{name: "layernorm-decomposed-gelu", sample: []int{3, 4}, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w1", 4, 4)
		dbl(b, r, "g", 4)
		dbl(b, r, "be", 4)
		dbl(b, r, "w2", 12, 3)
		b.Double("two", []int{}, []float64{2})
		b.Double("eps", []int{}, []float64{1e-5})
		b.Double("half", []int{}, []float64{0.5})
		b.Double("one", []int{}, []float64{1})
		b.Double("rs2", []int{}, []float64{1 / math.Sqrt2})
		b.Node("MatMul", "m1", []string{"x", "w1"}, []string{"h"})
		b.Node("ReduceMean", "", []string{"h"}, []string{"mu"}, mt.Ints("axes", -1))
		b.Node("Sub", "", []string{"h", "mu"}, []string{"d"})
		b.Node("Pow", "", []string{"d", "two"}, []string{"d2"})
		b.Node("ReduceMean", "", []string{"d2"}, []string{"v"}, mt.Ints("axes", -1))
		b.Node("Add", "", []string{"v", "eps"}, []string{"ve"})
		b.Node("Sqrt", "", []string{"ve"}, []string{"sd"})
		b.Node("Div", "", []string{"d", "sd"}, []string{"n"})
		b.Node("Mul", "", []string{"n", "g"}, []string{"ng"})
		b.Node("Add", "", []string{"ng", "be"}, []string{"ln"})
		b.Node("Mul", "", []string{"ln", "rs2"}, []string{"u"})
		b.Node("Erf", "", []string{"u"}, []string{"e"})
		b.Node("Add", "", []string{"e", "one"}, []string{"e1"})
		b.Node("Mul", "", []string{"ln", "e1"}, []string{"le"})
		b.Node("Mul", "", []string{"le", "half"}, []string{"gelu"})
		b.Node("Flatten", "", []string{"gelu"}, []string{"f"})
		b.Node("MatMul", "m2", []string{"f", "w2"}, []string{"y"})
	}},
	// Max, Min, Sum and Mean of computed tensors: one to four inputs,
	// broadcast against each other (a per-channel pooled tensor, a
	// one-channel map, a constant), at opsets 13 and 17.
	{name: "variadic-13", sample: []int{2, 3, 3}, build: variadicNet, kinks: true},
	{name: "variadic-17", sample: []int{2, 3, 3}, build: variadicNet, kinks: true, opset: 17},
	// The non-linear reductions of computed tensors (reduceNet in
	// reduce_model_test.go): axes as attributes at opset 13, as inputs at 18.
	{name: "reductions-13", sample: []int{2, 4, 4}, build: reduceNet(false), kinks: true},
	{name: "reductions-18", sample: []int{2, 4, 4}, build: reduceNet(true), kinks: true, opset: 18},
	// The layout operators (DepthToSpace in both modes, SpaceToDepth,
	// Trilu, CumSum, GatherElements with indices expanded to the batch)
	// and Einsum of two computed operands, of an activation and a weight,
	// and of three operands, at opsets 14 and 17.
	{name: "layout-14", sample: []int{2, 4, 4}, build: layoutNet, opset: 14},
	{name: "layout-17", sample: []int{2, 4, 4}, build: layoutNet, opset: 17},
	// GlobalMaxPool and GlobalLpPool (p 1, 2, 3) of computed tensors
	// (globalPoolNet in reduce_model_test.go).
	{name: "global-pools", sample: []int{2, 4, 4}, build: globalPoolNet, kinks: true},
	// ScatterND and ScatterElements of computed tensors: constant,
	// expanded and computed indices, duplicates, reduction add
	// (scatterNet in scatter_model_test.go).
	{name: "scatter-18", sample: []int{2, 4, 4}, build: scatterNet, opset: 18},
	// TopK of a computed tensor, GatherND of its indices (batch_dims 2)
	// and of indices expanded to the batch (batch_dims 1), OneHot of the
	// TopK indices with differentiable values, GroupNormalization (scale
	// per group at 18, per channel at 21), MeanVarianceNormalization and
	// InstanceNormalization (miscNet).
	{name: "misc-18", sample: []int{2, 4, 4}, build: miscNet(18), kinks: true, opset: 18},
	{name: "misc-21", sample: []int{2, 4, 4}, build: miscNet(21), kinks: true, opset: 21},
	{name: "layernormalization-17", sample: []int{3, 4}, opset: 17, build: func(b *mt.Builder, r *rand.Rand) {
		dbl(b, r, "w1", 4, 4)
		dbl(b, r, "g", 4)
		dbl(b, r, "be", 4)
		dbl(b, r, "w2", 12, 3)
		b.Node("MatMul", "m1", []string{"x", "w1"}, []string{"h"})
		b.Node("LayerNormalization", "ln", []string{"h", "g", "be"}, []string{"ln"}, mt.Int("axis", -1))
		b.Node("Tanh", "", []string{"ln"}, []string{"t"})
		b.Node("Flatten", "", []string{"t"}, []string{"f"})
		b.Node("MatMul", "m2", []string{"f", "w2"}, []string{"y"})
	}},
}

// variadicNet is the graph of the variadic cases.
func variadicNet(b *mt.Builder, r *rand.Rand) {
	dbl(b, r, "w1", 3, 2, 1, 1)
	dbl(b, r, "w2", 3, 2, 1, 1)
	dbl(b, r, "w3", 1, 2, 3, 3)
	b.Double("k", []int{3, 1, 1}, []float64{-0.2, 0.1, 0.3})
	dbl(b, r, "fw", 27, 4)
	b.Node("Conv", "ca", []string{"x", "w1"}, []string{"a"})
	b.Node("Conv", "cb", []string{"x", "w2"}, []string{"c"})
	b.Node("Conv", "cd", []string{"x", "w3"}, []string{"d"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("GlobalAveragePool", "", []string{"a"}, []string{"p"})
	b.Node("Sum", "sum3", []string{"a", "c", "d"}, []string{"s"})
	b.Node("Max", "max4", []string{"s", "p", "c", "k"}, []string{"m"})
	b.Node("Min", "min2", []string{"a", "d"}, []string{"n"})
	b.Node("Mean", "mean3", []string{"m", "n", "p"}, []string{"e"})
	b.Node("Tanh", "", []string{"e"}, []string{"t"})
	b.Node("Min", "min1", []string{"t"}, []string{"t1"})
	b.Node("Sum", "sum2", []string{"t1", "s"}, []string{"t2"})
	b.Node("Flatten", "", []string{"t2"}, []string{"f"})
	b.Node("MatMul", "fc", []string{"f", "fw"}, []string{"y"})
}

// layoutNet is the graph of the layout cases.
func layoutNet(b *mt.Builder, r *rand.Rand) {
	dbl(b, r, "w1", 8, 2, 1, 1)
	dbl(b, r, "we", 8, 3)
	dbl(b, r, "fw", 32, 4)
	b.Int64("shape", []int{3}, []int64{0, 8, 16})
	b.Double("scale", []int{}, []float64{0.2})
	b.Int64("k", []int{}, []int64{-1})
	b.Int64("axis", []int{}, []int64{-1})
	b.Int64("idx", []int{1, 8, 3}, []int64{0, 7, -1, 3, 3, 1, 2, -8, 5, 6, 0, 4, 1, 1, 7, 2, 5, -3, 4, 0, 6, 7, 2, 3})
	b.Int64("tail", []int{2}, []int64{8, 3})
	b.Int64("start", []int{1}, []int64{0})
	b.Int64("end", []int{1}, []int64{1})
	b.Node("Conv", "c", []string{"x", "w1"}, []string{"a"})
	b.Node("DepthToSpace", "d2s_crd", []string{"a"}, []string{"d"}, mt.Int("blocksize", 2), mt.String("mode", "CRD"))
	b.Node("Tanh", "", []string{"d"}, []string{"dt"})
	b.Node("SpaceToDepth", "s2d", []string{"dt"}, []string{"s"}, mt.Int("blocksize", 2))
	b.Node("DepthToSpace", "d2s_dcr", []string{"s"}, []string{"d2"}, mt.Int("blocksize", 2))
	b.Node("Mul", "", []string{"d2", "d"}, []string{"dd"})
	b.Node("Reshape", "", []string{"dd", "shape"}, []string{"q"})
	b.Node("Einsum", "att", []string{"q", "q"}, []string{"att"}, mt.String("equation", "bcq,bdq->bcd"))
	b.Node("Mul", "", []string{"att", "scale"}, []string{"as"})
	b.Node("Trilu", "tril", []string{"as", "k"}, []string{"tr"}, mt.Int("upper", 0))
	b.Node("CumSum", "cs", []string{"tr", "axis"}, []string{"cs"}, mt.Int("exclusive", 1))
	b.Node("Einsum", "proj", []string{"cs", "we"}, []string{"e"}, mt.String("equation", "bcd,de->bce"))
	b.Node("Shape", "", []string{"x"}, []string{"xs"})
	b.Node("Slice", "", []string{"xs", "start", "end"}, []string{"n"})
	b.Node("Concat", "", []string{"n", "tail"}, []string{"is"}, mt.Int("axis", 0))
	b.Node("Expand", "", []string{"idx", "is"}, []string{"ie"})
	b.Node("GatherElements", "gather", []string{"as", "ie"}, []string{"g"}, mt.Int("axis", 2))
	b.Node("Add", "", []string{"e", "g"}, []string{"h"})
	b.Node("Tanh", "", []string{"h"}, []string{"t"})
	b.Node("Einsum", "tri", []string{"cs", "we", "t"}, []string{"tri"}, mt.String("equation", "bcd,de,bce->bc"))
	b.Node("Tanh", "", []string{"tri"}, []string{"tt"})
	b.Node("Flatten", "", []string{"t"}, []string{"f"})
	b.Node("Concat", "", []string{"f", "tt"}, []string{"ft"}, mt.Int("axis", 1))
	b.Node("MatMul", "fc", []string{"ft", "fw"}, []string{"y"})
}

// miscNet is the graph of the misc cases at the given opset (18 to 21).
func miscNet(opset int) func(b *mt.Builder, r *rand.Rand) {
	return func(b *mt.Builder, r *rand.Rand) {
		per := 2 // GroupNormalization's scale and bias: per group before 21
		if opset >= 21 {
			per = 4
		}
		dbl(b, r, "w1", 4, 2, 1, 1)
		b.Double("gs", []int{per}, randn(r, per, 0.3))
		b.Double("gb", []int{per}, randn(r, per, 0.3))
		b.Double("is", []int{4}, randn(r, 4, 0.3))
		b.Double("ib", []int{4}, randn(r, 4, 0.3))
		b.Double("ohv", []int{2}, []float64{-0.3, 0.8})
		dbl(b, r, "fw", 4*3*2+2, 3)
		b.Int64("shape", []int{3}, []int64{0, 4, 16})
		b.Int64("k", []int{1}, []int64{3})
		b.Int64("depth", []int{}, []int64{16})
		b.Int64("last", []int{1}, []int64{-1})
		b.Int64("tuples", []int{1, 2, 2}, []int64{1, 5, 3, -2})
		b.Int64("tail", []int{2}, []int64{2, 2})
		b.Int64("start", []int{1}, []int64{0})
		b.Int64("end", []int{1}, []int64{1})
		b.Node("Conv", "c", []string{"x", "w1"}, []string{"a"})
		b.Node("GroupNormalization", "gn", []string{"a", "gs", "gb"}, []string{"gn"}, mt.Int("num_groups", 2), mt.Float32("epsilon", 0.01))
		b.Node("MeanVarianceNormalization", "mvn", []string{"a"}, []string{"mv"}, mt.Ints("axes", 2, 3))
		b.Node("InstanceNormalization", "in", []string{"a", "is", "ib"}, []string{"in"})
		b.Node("Tanh", "", []string{"gn"}, []string{"t"})
		b.Node("Mul", "", []string{"t", "mv"}, []string{"tm"})
		b.Node("Add", "", []string{"tm", "in"}, []string{"h"})
		b.Node("Reshape", "", []string{"h", "shape"}, []string{"r"})
		b.Node("TopK", "topk", []string{"r", "k"}, []string{"v", "i"})
		b.Node("Tanh", "", []string{"r"}, []string{"s"})
		b.Node("Unsqueeze", "", []string{"i", "last"}, []string{"iu"})
		b.Node("GatherND", "gnd_topk", []string{"s", "iu"}, []string{"g1"}, mt.Int("batch_dims", 2))
		b.Node("OneHot", "onehot", []string{"i", "depth", "ohv"}, []string{"oh"})
		b.Node("Unsqueeze", "", []string{"s", "last"}, []string{"su0"})
		b.Node("Transpose", "", []string{"su0"}, []string{"su"}, mt.Ints("perm", 0, 1, 3, 2))
		b.Node("Mul", "", []string{"oh", "su"}, []string{"ohs"})
		b.Node("ReduceSum", "", []string{"ohs", "last"}, []string{"ohr"}, mt.Int("keepdims", 0))
		b.Node("Shape", "", []string{"x"}, []string{"xs"})
		b.Node("Slice", "", []string{"xs", "start", "end"}, []string{"n"})
		b.Node("Concat", "", []string{"n", "tail"}, []string{"ts"}, mt.Int("axis", 0))
		b.Node("Expand", "", []string{"tuples", "ts"}, []string{"te"})
		b.Node("GatherND", "gnd_const", []string{"r", "te"}, []string{"g2"}, mt.Int("batch_dims", 1))
		b.Node("Flatten", "", []string{"v"}, []string{"fv"})
		b.Node("Flatten", "", []string{"g1"}, []string{"f1"})
		b.Node("Flatten", "", []string{"ohr"}, []string{"f3"})
		b.Node("Mul", "", []string{"fv", "f1"}, []string{"fvf"})
		b.Node("Concat", "", []string{"fvf", "f3", "g2"}, []string{"ft"}, mt.Int("axis", 1))
		b.Node("MatMul", "fc", []string{"ft", "fw"}, []string{"y"})
	}
}

// buildNet builds case c with input "x" and output "y" as a model.
func buildNet(t testing.TB, c netCase, seed uint64) *model.Model {
	t.Helper()
	opset := c.opset
	if opset == 0 {
		opset = 13
	}
	b := mt.New(c.name, opset)
	b.Input("x", append([]int{-1}, c.sample...)...)
	c.build(b, rand.New(rand.NewPCG(seed, 7)))
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randomData(t testing.TB, e *nn.Engine, n int, seed uint64) *data.Memory {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 11))
	size := 1
	for _, d := range e.SampleShape() {
		size *= d
	}
	y := make([]int, n)
	for i := range y {
		y[i] = r.IntN(e.Classes())
	}
	ds, err := data.NewMemory(randn(r, n*size, 1), y, e.SampleShape())
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func lossAt(t *testing.T, e *nn.Engine, ds data.Dataset, theta []float64) float64 {
	t.Helper()
	if err := e.SetTheta(theta); err != nil {
		t.Fatal(err)
	}
	r, err := e.Evaluate(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	return r.Loss
}

// lossDifference is the central difference (L(θ+h·u) − L(θ−h·u))/2h of
// the loss along u at theta; it leaves e's θ moved.
func lossDifference(t *testing.T, e *nn.Engine, ds data.Dataset, theta, u []float64, h float64) float64 {
	t.Helper()
	plus, minus := slices.Clone(theta), slices.Clone(theta)
	for i := range theta {
		plus[i], minus[i] = theta[i]+h*u[i], theta[i]-h*u[i]
	}
	return (lossAt(t, e, ds, plus) - lossAt(t, e, ds, minus)) / (2 * h)
}

// gradDifference is the central difference (∇L(θ+h·v) − ∇L(θ−h·v))/2h of
// the gradient along v at theta, which H·v approximates; it leaves e's θ
// moved.
func gradDifference(t *testing.T, e *nn.Engine, ds data.Dataset, theta, v []float64, h float64) []float64 {
	t.Helper()
	plus, minus := slices.Clone(theta), slices.Clone(theta)
	for i := range theta {
		plus[i], minus[i] = theta[i]+h*v[i], theta[i]-h*v[i]
	}
	gp, gm := gradAt(t, e, ds, plus), gradAt(t, e, ds, minus)
	fd := make([]float64, len(theta))
	for i := range fd {
		fd[i] = (gp[i] - gm[i]) / (2 * h)
	}
	return fd
}

func gradAt(t *testing.T, e *nn.Engine, ds data.Dataset, theta []float64) []float64 {
	t.Helper()
	if err := e.SetTheta(theta); err != nil {
		t.Fatal(err)
	}
	g := make([]float64, e.Dim())
	if _, err := e.Gradient(context.Background(), ds, g); err != nil {
		t.Fatal(err)
	}
	return g
}

func relErr(got, want []float64) float64 {
	d := make([]float64, len(got))
	for i := range got {
		d[i] = got[i] - want[i]
	}
	return norm(d) / max(norm(want), 1e-300)
}

// TestDerivatives checks, for every case: the gradient against central
// differences of the loss (along random directions and per coordinate), the
// HVP against central differences of the gradient, symmetry uᵀHv = vᵀHu,
// HVPBatch against single products, and independence of the worker count.
func TestDerivatives(t *testing.T) {
	ctx := context.Background()
	for ci, c := range netCases {
		t.Run(c.name, func(t *testing.T) {
			m := buildNet(t, c, uint64(ci))
			e, err := nn.New(m, &nn.Options{BatchSize: 2, Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			ds := randomData(t, e, 5, uint64(ci))
			r := rand.New(rand.NewPCG(uint64(ci), 3))
			theta := e.Theta()
			h := fdStep
			if c.kinks {
				h = 1e-6
			}
			g := gradAt(t, e, ds, theta)
			// Directional derivatives.
			for k := 0; k < 3; k++ {
				u := randn(r, len(theta), 1)
				fd := lossDifference(t, e, ds, theta, u, h)
				if an := dot(g, u); math.Abs(fd-an) > fdTol*max(math.Abs(an), norm(g)*norm(u)*1e-3) {
					t.Errorf("directional derivative: analytic %.10g, finite difference %.10g", an, fd)
				}
			}
			// Per coordinate, for up to 40 coordinates.
			for k := 0; k < min(40, len(theta)); k++ {
				i := r.IntN(len(theta))
				u := make([]float64, len(theta))
				u[i] = 1
				fd := lossDifference(t, e, ds, theta, u, h)
				if math.Abs(fd-g[i]) > fdTol*max(norm(g), 1e-8)+1e-9 {
					t.Errorf("∂L/∂θ[%d]: analytic %.10g, finite difference %.10g", i, g[i], fd)
				}
			}
			// HVPs against differences of gradients.
			if err := e.SetTheta(theta); err != nil {
				t.Fatal(err)
			}
			op, err := e.Operator(ds)
			if err != nil {
				t.Fatal(err)
			}
			vs := [][]float64{rademacher(r, len(theta)), randn(r, len(theta), 1)}
			hv := [][]float64{make([]float64, len(theta)), make([]float64, len(theta))}
			if err := op.HVPBatch(ctx, hv, vs); err != nil {
				t.Fatal(err)
			}
			for j, v := range vs {
				fd := gradDifference(t, e, ds, theta, v, h)
				if err := relErr(hv[j], fd); err > 10*fdTol {
					t.Errorf("H·v[%d]: relative error %.3g against finite differences of the gradient", j, err)
				}
				if err := e.SetTheta(theta); err != nil {
					t.Fatal(err)
				}
				single := make([]float64, len(theta))
				if err := op.HVP(ctx, single, v); err != nil {
					t.Fatal(err)
				}
				if err := relErr(single, hv[j]); err > 1e-14 {
					t.Errorf("HVP and HVPBatch differ: %.3g", err)
				}
			}
			if a, b := dot(vs[0], hv[1]), dot(vs[1], hv[0]); math.Abs(a-b) > 1e-10*max(math.Abs(a), 1) {
				t.Errorf("symmetry: uᵀHv = %.12g, vᵀHu = %.12g", a, b)
			}
			// One worker gives bitwise the same result.
			e1, err := nn.New(m, &nn.Options{BatchSize: 2, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			op1, _ := e1.Operator(ds)
			hv1 := make([]float64, len(theta))
			if err := op1.HVP(ctx, hv1, vs[0]); err != nil {
				t.Fatal(err)
			}
			for i := range hv1 {
				if hv1[i] != hv[0][i] {
					t.Fatalf("1 worker vs 2 workers: Hv[%d] = %v vs %v", i, hv1[i], hv[0][i])
				}
			}
		})
	}
}
