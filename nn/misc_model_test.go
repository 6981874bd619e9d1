package nn_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestMiscTinyMatchesTorch runs testdata/models/misc_tiny_op13.onnx and
// _op17.onnx (scripts/make_misc_tiny.py: torch.onnx exports with GroupNorm
// as InstanceNormalization, torch.topk of a computed tensor, a GatherND of
// the top-k indices with batch_dims 1, a boolean-mask index as NonZero —
// folded when the model loads — and GatherND, and F.one_hot of the top-k
// indices) on the four inputs of misc_tiny_ref.npz and compares with
// PyTorch's float64 module (see matchTinyTorch).
func TestMiscTinyMatchesTorch(t *testing.T) {
	matchTinyTorch(t, "misc_tiny", tinyTorch{want: []string{"GatherND", "InstanceNormalization", "OneHot", "TopK"}})
}

// TestMiscErrors: TopK's k beyond its axis and a constant GatherND index
// outside its axis fail when the engine is built, a computed GatherND
// index (TopK's, on a smaller axis) when the forward pass runs, each with
// an error naming the node; MeanVarianceNormalization over the batch axis
// is refused.
func TestMiscErrors(t *testing.T) {
	build := func(name string, f func(b *mt.Builder)) error {
		b := mt.New(name, 18)
		b.Input("x0", -1, 6)
		w := make([]float64, 36)
		for i := 0; i < 6; i++ {
			w[i*7] = 1
		}
		b.Double("w", []int{6, 6}, w)
		b.Node("MatMul", "mm", []string{"x0", "w"}, []string{"x"}) // a unit
		f(b)
		b.Output("y")
		m, err := model.Decode(b.Bytes())
		if err != nil {
			return err
		}
		e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
		if err != nil {
			return err
		}
		_, err = e.Logits([]float64{1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1}, 2)
		return err
	}
	for _, tc := range []struct {
		name string
		f    func(b *mt.Builder)
		want []string
	}{
		{"topk_k", func(b *mt.Builder) {
			b.Int64("k", []int{1}, []int64{7})
			b.Node("TopK", "top", []string{"x", "k"}, []string{"y", "i"})
		}, []string{`TopK node "top"`, "k = 7 is outside [0, 6]"}},
		{"gathernd_const", func(b *mt.Builder) {
			b.Int64("idx", []int{1, 1}, []int64{6})
			b.Node("Transpose", "", []string{"x"}, []string{"xt"})
			b.Node("GatherND", "gnd", []string{"xt", "idx"}, []string{"g"})
			b.Node("Transpose", "", []string{"g"}, []string{"y"})
		}, []string{`GatherND node "gnd"`, "index 6 at position 0 is outside [-6, 6)"}},
		{"gathernd_computed", func(b *mt.Builder) {
			b.Int64("k", []int{1}, []int64{2})
			b.Int64("last", []int{1}, []int64{-1})
			b.Int64("shape", []int{3}, []int64{0, 2, 3})
			b.Node("TopK", "top", []string{"x", "k"}, []string{"v", "i"})
			b.Node("Reshape", "", []string{"x", "shape"}, []string{"x3"})
			b.Node("Unsqueeze", "", []string{"i", "last"}, []string{"iu"})
			b.Node("GatherND", "gnd", []string{"x3", "iu"}, []string{"g"}, mt.Int("batch_dims", 1))
			b.Node("Flatten", "", []string{"g"}, []string{"y"})
		}, []string{`GatherND node "gnd"`, "outside [-2, 2) (axis 1 of data [2 2 3])"}},
		{"mvn_batch", func(b *mt.Builder) {
			b.Node("MeanVarianceNormalization", "mvn", []string{"x"}, []string{"y"}, mt.Ints("axes", 0, 1))
		}, []string{`MeanVarianceNormalization node "mvn"`, "batch axis 0"}},
	} {
		err := build(tc.name, tc.f)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, w)
				break
			}
		}
	}
}

// groupNormModel builds the graph of scripts/make_groupnorm_reference.py at
// opset 18 (scale and bias per group) or 21 (per channel) from the
// reference's tensors in float64 (modeltest.GroupNorm).
func groupNormModel(t *testing.T, z *data.NPZ, opset int64) *model.Model {
	t.Helper()
	b := mt.GroupNorm(opset, true, func(name string) ([]int, []float64) {
		a, err := z.Array(name)
		if err != nil {
			t.Fatal(err)
		}
		return a.Shape, a.Float
	})
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGroupNormMatchesTorch runs GroupNormalization in graphs built by
// hand (torch 1.13 exports GroupNorm as InstanceNormalization) at opset
// 18 (scale and bias per group) and 21 (per channel) on the tensors of
// testdata/models/groupnorm_ref.npz and compares with F.group_norm in
// float64 (scripts/make_groupnorm_reference.py): logits, loss, gradient
// and H·v of the unit parameters by double backprop; and H·v against
// central differences of the engine's gradient.
func TestGroupNormMatchesTorch(t *testing.T) {
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", "groupnorm_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	for _, opset := range []int64{18, 21} {
		t.Run(fmt.Sprintf("op%d", opset), func(t *testing.T) {
			m := groupNormModel(t, z, opset)
			e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Params()) != 4 {
				t.Fatalf("%d parameters, want the two units' weights and biases", len(e.Params()))
			}
			matchTorch(t, m, z, []string{"input"}, fmt.Sprintf(".%d", opset))
		})
	}
}
