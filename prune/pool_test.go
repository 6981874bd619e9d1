package prune

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/budget"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/plan"
)

// globalPoolNet is x N×2×5×5 → Conv a(2→4, 3×3, pad 1)+b → Relu →
// GlobalMaxPool → Flatten → Gemm fa(4→2); Conv b(2→3, 1×1)+b →
// GlobalLpPool (p 2) → Flatten → Gemm fb(3→2); Conv c(2→3, 1×1) → Tanh →
// GlobalLpPool p 1 → Flatten → Gemm fc(3→2); the three logits added.
func globalPoolNet(seed uint64) *mt.Builder {
	r := rand.New(rand.NewPCG(seed, 4))
	rnd := func(n int, s float64) []float64 { return normals(r, n, s) }
	b := mt.New("globalpool", 13).Input("x", -1, 2, 5, 5).Output("logits")
	b.Float("wa", []int{4, 2, 3, 3}, rnd(72, 0.4)).Float("ba", []int{4}, rnd(4, 0.1))
	b.Float("wb", []int{3, 2, 1, 1}, rnd(6, 0.5)).Float("bb", []int{3}, rnd(3, 0.1))
	b.Float("wc", []int{3, 2, 1, 1}, rnd(6, 0.5))
	b.Float("wfa", []int{2, 4}, rnd(8, 0.5)).Float("bfa", []int{2}, rnd(2, 0.1))
	b.Float("wfb", []int{2, 3}, rnd(6, 0.5)).Float("wfc", []int{2, 3}, rnd(6, 0.5))
	b.Node("Conv", "a", []string{"x", "wa", "ba"}, []string{"ca"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("Relu", "relu", []string{"ca"}, []string{"ra"})
	b.Node("GlobalMaxPool", "gmax", []string{"ra"}, []string{"pa"})
	b.Node("Flatten", "flata", []string{"pa"}, []string{"ha"})
	b.Node("Gemm", "fa", []string{"ha", "wfa", "bfa"}, []string{"la"}, mt.Int("transB", 1))
	b.Node("Conv", "b", []string{"x", "wb", "bb"}, []string{"cb"})
	b.Node("GlobalLpPool", "gl2", []string{"cb"}, []string{"pb"})
	b.Node("Flatten", "flatb", []string{"pb"}, []string{"hb"})
	b.Node("Gemm", "fb", []string{"hb", "wfb"}, []string{"lb"}, mt.Int("transB", 1))
	b.Node("Conv", "c", []string{"x", "wc"}, []string{"cc"})
	b.Node("Tanh", "tanh", []string{"cc"}, []string{"tc"})
	b.Node("GlobalLpPool", "gl1", []string{"tc"}, []string{"pc"}, mt.Int("p", 1))
	b.Node("Flatten", "flatc", []string{"pc"}, []string{"hc"})
	b.Node("Gemm", "fc", []string{"hc", "wfc"}, []string{"lc"}, mt.Int("transB", 1))
	b.Node("Add", "add1", []string{"la", "lb"}, []string{"lab"})
	b.Node("Add", "add2", []string{"lab", "lc"}, []string{"logits"})
	return b
}

// TestGlobalPoolChannels: GlobalMaxPool and GlobalLpPool pass each conv's
// channels to the Gemm after them (channel flow FlowPool, as
// GlobalAveragePool: a silenced channel pools to 0, and a removed one is
// a removed Gemm column); random cuts run in the engine equal the
// original with those channels silenced within 1e-9, and the counts are
// the cost model's.
func TestGlobalPoolChannels(t *testing.T) {
	l := loadBytes(t, globalPoolNet(1).Bytes())
	for _, g := range []struct {
		source, consumer string
		channels         int
	}{{"a", "fa", 4}, {"b", "fb", 3}, {"c", "fc", 3}} {
		gr := groupOf(l.st, g.source)
		if gr == nil || !gr.Prunable || gr.Channels != g.channels || !slices.Equal(gr.Consumers, []string{g.consumer}) {
			t.Fatalf("group %s %+v, want %d prunable channels read by %s", g.source, gr, g.channels, g.consumer)
		}
	}
	p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
		Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	checkRandomCuts(t, l, rand.New(rand.NewPCG(8, 1)), p, 5, 50, "", zeroRemoved, nil)
}

// TestPoolTiny: the torch.onnx export whose features are GlobalMaxPool
// (nn.AdaptiveMaxPool2d(1), F.adaptive_max_pool1d(…, 1)) and GlobalLpPool
// of computed tensors, each read by its own Linear head
// (testdata/models/pool_tiny_op13.onnx and op17, scripts/make_pool_tiny.py):
// the engine computes the module's float64 logits; conv_b's channels pass
// through a GlobalMaxPool and two GlobalLpPools to three heads and are
// prunable, conv_a's are left intact (a flatten of its output for the 1-D
// pool merges the channels with the plane); random cuts equal the original
// with those channels silenced and the counts are the cost model's.
func TestPoolTiny(t *testing.T) {
	x, want := refLogits(t, filepath.Join("..", "testdata", "models", "pool_tiny_ref.npz"))
	for _, opset := range []string{"op13", "op17"} {
		l := load(t, "pool_tiny_"+opset)
		if d, s := maxDiff(want.Float, mustLogits(t, l, x.Float, 4)); d > zeroTol*max(s, 1) {
			t.Errorf("%s: engine logits differ from the module's by %.3g", opset, d)
		}
		gb := groupOf(l.st, "/conv_b/Conv")
		if gb == nil || !gb.Prunable || gb.Channels != 3 || !slices.Equal(gb.Consumers, []string{"/heads.1/Gemm", "/heads.4/Gemm", "/heads.5/Gemm"}) {
			t.Errorf("%s: group of conv_b %+v, want 3 prunable channels read by heads 1, 4 and 5", opset, gb)
		}
		if ga := groupOf(l.st, "/conv_a/Conv"); ga == nil || ga.Prunable {
			t.Errorf("%s: group of conv_a %+v, want intact (the flatten for the 1-D pool)", opset, ga)
		}
		p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
			Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		checkRandomCuts(t, l, rand.New(rand.NewPCG(4, 4)), p, 4, 64, opset+", ", zeroRemoved, nil)
	}
}
