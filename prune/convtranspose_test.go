package prune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

// convTransposeNet is a decoder-style classifier whose transposed
// convolution's output channels are prunable:
//
//	x N×2×5×5 → Conv(2→4, 3×3, pad 1)+b → Relu → ConvTranspose(4→6, 2×2,
//	stride 2)+b → BatchNormalization → Relu → Conv(6→3, 3×3)+b → Relu →
//	GlobalAveragePool → Flatten → Gemm(3→2, transB) → logits
func convTransposeNet(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	rnd := func(n int, s float64) []float64 { return normals(r, n, s) }
	pos := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = 0.5 + r.Float64()
		}
		return v
	}
	b := mt.New("ct", 13).Input("x", -1, 2, 5, 5).Output("logits")
	b.Float("w1", []int{4, 2, 3, 3}, rnd(72, 0.4)).Float("b1", []int{4}, rnd(4, 0.1))
	b.Float("wt", []int{4, 6, 2, 2}, rnd(96, 0.4)).Float("bt", []int{6}, rnd(6, 0.1))
	b.Float("gamma", []int{6}, pos(6)).Float("beta", []int{6}, rnd(6, 0.1)).Float("mean", []int{6}, rnd(6, 0.1)).Float("var", []int{6}, pos(6))
	b.Float("w2", []int{3, 6, 3, 3}, rnd(162, 0.3)).Float("b2", []int{3}, rnd(3, 0.1))
	b.Float("wg", []int{2, 3}, rnd(6, 0.5)).Float("bg", []int{2}, rnd(2, 0.1))
	b.Node("Conv", "conv1", []string{"x", "w1", "b1"}, []string{"c1"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("Relu", "relu1", []string{"c1"}, []string{"r1"})
	b.Node("ConvTranspose", "ct", []string{"r1", "wt", "bt"}, []string{"t"}, mt.Ints("strides", 2, 2))
	b.Node("BatchNormalization", "bn", []string{"t", "gamma", "beta", "mean", "var"}, []string{"tb"})
	b.Node("Relu", "relu2", []string{"tb"}, []string{"r2"})
	b.Node("Conv", "conv2", []string{"r2", "w2", "b2"}, []string{"c2"})
	b.Node("Relu", "relu3", []string{"c2"}, []string{"r3"})
	b.Node("GlobalAveragePool", "gap", []string{"r3"}, []string{"p"})
	b.Node("Flatten", "flat", []string{"p"}, []string{"f"})
	b.Node("Gemm", "fc", []string{"f", "wg", "bg"}, []string{"logits"}, mt.Int("transB", 1))
	return b.Bytes()
}

func groupOf(st *Structure, source string) *Group {
	for _, g := range st.Groups {
		if slices.Contains(g.Sources, source) {
			return g
		}
	}
	return nil
}

// TestConvTransposeChannels: a ConvTranspose's output channels (axis 1 of
// its C×M×k weight, its bias, the BatchNorm after it) form a prunable
// group read by the next Conv, and its input channels (axis 0) follow the
// group of the Conv before it. For random kept sets the written model
// computes what the original computes with the removed channels silenced,
// and its parameter and MAC counts are the cost model's.
func TestConvTransposeChannels(t *testing.T) {
	l := loadBytes(t, convTransposeNet(1))
	ct := groupOf(l.st, "ct")
	if ct == nil || !ct.Prunable || ct.Channels != 6 || !slices.Equal(ct.Consumers, []string{"conv2"}) {
		t.Fatalf("ConvTranspose group %+v, want 6 prunable channels read by conv2", ct)
	}
	c1 := groupOf(l.st, "conv1")
	if c1 == nil || !c1.Prunable || c1.Channels != 4 || !slices.Equal(c1.Consumers, []string{"ct"}) {
		t.Fatalf("conv1 group %+v, want 4 prunable channels read by ct", c1)
	}
	// The engine's per-output-channel blocks of the ConvTranspose: channel
	// m holds W[c, m, :, :] for every c, then bias m.
	for _, u := range l.e.Units() {
		if u.Name != "ct" {
			continue
		}
		chans := u.OutputChannelIndices()
		if len(chans) != 6 {
			t.Fatalf("ct has %d output channel blocks, want 6", len(chans))
		}
		for m, idx := range chans {
			if len(idx) != 4*4+1 || idx[len(idx)-1] != u.BiasOffset+m {
				t.Fatalf("ct channel %d: %d indices ending %d, want 17 ending with bias %d", m, len(idx), idx[len(idx)-1], u.BiasOffset+m)
			}
			for _, i := range idx[:16] {
				if j := i - u.WeightOffset; j/4%6 != m {
					t.Fatalf("ct channel %d holds weight %d, of output channel %d", m, j, j/4%6)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 5))
	p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
		Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	x := make([]float64, n*2*5*5)
	for i := range x {
		x[i] = r.Float64()*2 - 1
	}
	for trial := 0; trial < 6; trial++ {
		keep := randomKeep(r, l.st)
		pl := prunedMatchesSilenced(t, l, keep, x, n, "trial "+strconv.Itoa(trial))
		checkCounts(t, p, pl.m, keep, "trial "+strconv.Itoa(trial))
		kc := keptCounts(keep)
		if u := pl.m.Unit("ct"); u == nil || u.WeightShape[0] != kc[c1.Index] || u.WeightShape[1] != kc[ct.Index] {
			t.Errorf("trial %d: pruned ConvTranspose weight %v, want %d×%d×2×2", trial, u.WeightShape, kc[c1.Index], kc[ct.Index])
		}
	}
}

// TestZooUNetConvTranspose: in the zoo's U-Net the ConvTranspose reads the
// bottleneck's channels (now prunable through it) and its own channels
// reach a Concat (a skip connection), which leaves them intact, reported.
// The bottleneck pruned, the written model equals the original with those
// channels silenced.
func TestZooUNetConvTranspose(t *testing.T) {
	for _, opset := range zooOpsets {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "zoo", "tiny_unet", opset+".onnx"))
		if err != nil {
			t.Fatalf("committed zoo model tiny_unet/%s missing: %v", opset, err)
		}
		mp := &onnx.ModelProto{}
		if err := proto.Unmarshal(b, mp); err != nil {
			t.Fatal(err)
		}
		mp, st := analyzeProto(t, mp)
		mid, up := groupOf(st, "/mid/mid.3/Conv"), groupOf(st, "/up2/ConvTranspose")
		if mid == nil || !mid.Prunable || !slices.Equal(mid.Consumers, []string{"/up2/ConvTranspose"}) {
			t.Fatalf("%s: bottleneck group %+v, want prunable, read by the ConvTranspose", opset, mid)
		}
		if up == nil || up.Prunable || !strings.Contains(strings.Join(up.Reasons, ";"), "Concat") {
			t.Fatalf("%s: ConvTranspose group %+v, want unprunable because of the Concat", opset, up)
		}
		keep := make([][]int, len(st.Groups))
		for i, g := range st.Groups {
			for c := 0; c < g.Channels; c++ {
				if g != mid || c%3 != 1 {
					keep[i] = append(keep[i], c)
				}
			}
		}
		out, err := Apply(mp, st, keep)
		if err != nil {
			t.Fatal(err)
		}
		run := func(p *onnx.ModelProto) []float64 {
			_, pm, err := model.NormalizeProto(proto.Clone(p).(*onnx.ModelProto))
			if err != nil {
				t.Fatal(err)
			}
			e, err := nn.New(pm, &nn.Options{Workers: 1, Loss: nn.PositionLabels{Labels: make([]int, 16*16), ClassAxis: 0}})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(2, 2))
			x := make([]float64, 2*3*16*16)
			for i := range x {
				x[i] = r.Float64()*2 - 1
			}
			y, err := e.Logits(x, 2)
			if err != nil {
				t.Fatal(err)
			}
			return y
		}
		got, want := run(out), run(zeroRemoved(t, mp, st, keep))
		scale, diff := 0.0, 0.0
		for i := range want {
			scale = max(scale, math.Abs(want[i]))
			diff = max(diff, math.Abs(want[i]-got[i]))
		}
		if diff > zeroTol*max(scale, 1) {
			t.Errorf("%s: pruned U-Net differs from the silenced original by %.3g (scale %.3g)", opset, diff, scale)
		}
	}
}

// groupedConvTransposeNet is x N×2×5×5 → Conv(2→4, 3×3, pad 1)+b → Relu →
// ConvTranspose(4→out, 2×2, stride 2, group g)+b → Relu → Conv(out→6,
// 3×3, group g2)+b → GlobalAveragePool → Flatten → Gemm(6→2): with g = 4
// and out = 4 the transposed convolution is depthwise (a 4×1×2×2 weight).
func groupedConvTransposeNet(seed uint64, g, out, g2 int) []byte {
	r := rand.New(rand.NewPCG(seed, 5))
	rnd := func(n int, s float64) []float64 { return normals(r, n, s) }
	b := mt.New("gct", 13).Input("x", -1, 2, 5, 5).Output("logits")
	b.Float("w1", []int{4, 2, 3, 3}, rnd(72, 0.4)).Float("b1", []int{4}, rnd(4, 0.1))
	b.Float("wt", []int{4, out / g, 2, 2}, rnd(4*out/g*4, 0.6)).Float("bt", []int{out}, rnd(out, 0.1))
	b.Float("w2", []int{6, out / g2, 3, 3}, rnd(6*out/g2*9, 0.3)).Float("b2", []int{6}, rnd(6, 0.1))
	b.Float("wg", []int{2, 6}, rnd(12, 0.5)).Float("bg", []int{2}, rnd(2, 0.1))
	b.Node("Conv", "conv1", []string{"x", "w1", "b1"}, []string{"c1"}, mt.Ints("pads", 1, 1, 1, 1))
	b.Node("Relu", "relu1", []string{"c1"}, []string{"r1"})
	b.Node("ConvTranspose", "ct", []string{"r1", "wt", "bt"}, []string{"t"}, mt.Ints("strides", 2, 2), mt.Int("group", int64(g)))
	b.Node("Relu", "relu2", []string{"t"}, []string{"r2"})
	b.Node("Conv", "conv2", []string{"r2", "w2", "b2"}, []string{"c2"}, mt.Int("group", int64(g2)))
	b.Node("GlobalAveragePool", "gap", []string{"c2"}, []string{"p"})
	b.Node("Flatten", "flat", []string{"p"}, []string{"f"})
	b.Node("Gemm", "fc", []string{"f", "wg", "bg"}, []string{"logits"}, mt.Int("transB", 1))
	return b.Bytes()
}

// TestGroupedConvTranspose: a depthwise ConvTranspose (group = channels,
// a C×1×k weight) passes the channels of the Conv before it through, so
// conv1's group loses its weight rows, its bias and its group attribute
// and is read by conv2; random cuts equal the silenced original and the
// counts are the cost model's. A grouped ConvTranspose that is not
// depthwise (group 2, 4→6, a 4×3×2×2 weight) keeps its group attribute:
// it consumes conv1's channels group by group (rows of the weight) and its
// output channel j of group d is column j of group d's rows, so both
// groups have Directions 2 (every conv group keeps the same number); with
// conv2 grouped too (group 2) it reads ct's channels as column j of its
// group's rows and its own outputs are a group of 2 directions. Random
// cuts equal the silenced original, with the counts the cost model's.
// Where conv2's group count (3) splits ct's channels differently from ct's
// (2), ct's group is left intact, listed with the reason.
func TestGroupedConvTranspose(t *testing.T) {
	l := loadBytes(t, groupedConvTransposeNet(1, 4, 4, 1))
	g := groupOf(l.st, "conv1")
	if g == nil || !g.Prunable || !slices.Equal(g.Through, []string{"ct"}) || !slices.Equal(g.Consumers, []string{"conv2"}) {
		t.Fatalf("conv1 group %+v, want prunable through the depthwise ct, read by conv2", g)
	}
	if r, _ := l.st.Role("ct"); !r.Depthwise || r.Out != g.Index || r.In != g.Index {
		t.Errorf("ct role %+v, want depthwise in group %d", r, g.Index)
	}
	p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
		Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(6, 6))
	const n = 2
	x := make([]float64, n*2*5*5)
	for i := range x {
		x[i] = r.Float64()*2 - 1
	}
	for trial := 0; trial < 4; trial++ {
		keep := randomKeep(r, l.st)
		out, err := Apply(l.mp, l.st, keep)
		if err != nil {
			t.Fatal(err)
		}
		pl := loadProto(t, out)
		got := mustLogits(t, pl, x, n)
		want := mustLogits(t, loadProto(t, zeroRemoved(t, l.mp, l.st, keep)), x, n)
		if d, s := maxDiff(want, got); d > zeroTol*max(s, 1) {
			t.Errorf("trial %d: pruned logits differ from the silenced original by %.3g (scale %.3g)", trial, d, s)
		}
		checkCounts(t, p, pl.m, keep, "trial "+strconv.Itoa(trial))
		kc := keptCounts(keep)
		if u := pl.m.Unit("ct"); u == nil || u.Group != kc[g.Index] || u.WeightShape[0] != kc[g.Index] {
			t.Errorf("trial %d: pruned ct has group %d and weight %v, want %d", trial, u.Group, u.WeightShape, kc[g.Index])
		}
	}

	r2 := rand.New(rand.NewPCG(8, 8))
	for _, g2 := range []int{1, 2} {
		l := loadBytes(t, groupedConvTransposeNet(1, 2, 6, g2))
		g1, gt, gc := groupOf(l.st, "conv1"), groupOf(l.st, "ct"), groupOf(l.st, "conv2")
		if g1 == nil || !g1.Prunable || g1.Directions != 2 || !slices.Equal(g1.Consumers, []string{"ct"}) {
			t.Errorf("conv2 group %d: conv1 group %+v, want prunable in 2 directions, read by ct", g2, g1)
		}
		if gt == nil || !gt.Prunable || gt.Directions != 2 || gt.Channels != 6 || !slices.Equal(gt.Consumers, []string{"conv2"}) {
			t.Errorf("conv2 group %d: ct group %+v, want 6 prunable channels in 2 directions, read by conv2", g2, gt)
		}
		if want := g2; gc == nil || !gc.Prunable || max(gc.Directions, 1) != want {
			t.Errorf("conv2 group %d: conv2 group %+v, want prunable with %d directions", g2, gc, want)
		}
		p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
			Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		checkRandomCuts(t, l, r2, p, 4, 50, fmt.Sprintf("conv2 group %d, ", g2), zeroRemoved, func(keep [][]int, pl *loaded, label string) {
			kc := keptCounts(keep)
			if u := pl.m.Unit("ct"); u == nil || u.Group != 2 || u.WeightShape[0] != kc[g1.Index] || u.WeightShape[1] != kc[gt.Index]/2 {
				t.Errorf("%s: pruned ct has group %d and weight %v, want group 2 and %d×%d", label, u.Group, u.WeightShape, kc[g1.Index], kc[gt.Index]/2)
			}
		})
	}

	l = loadBytes(t, groupedConvTransposeNet(1, 2, 6, 3))
	if g := groupOf(l.st, "ct"); g == nil || g.Prunable || !strings.Contains(strings.Join(g.Reasons, ";"), "grouped convolution (group 3) of channels also split into 2 groups") {
		t.Errorf("ct group %+v, want unprunable: conv2 splits its channels into 3 groups, ct's own rows into 2", g)
	}
	if g := groupOf(l.st, "conv1"); g == nil || !g.Prunable {
		t.Errorf("conv1 group %+v, want prunable (read group by group by ct)", g)
	}
	listed := strings.Join(l.st.Unprunable(), "\n")
	if !strings.Contains(listed, "ct: ") {
		t.Errorf("the ct group is not listed as left intact:\n%s", listed)
	}
}

// TestGroupedTiny: the torch.onnx export with a grouped Conv and a grouped
// ConvTranspose (groups 2) and a x.mean(dim=(2, 3)) head
// (testdata/models/grouped_tiny_op13.onnx and op17, scripts/
// make_grouped_tiny.py): the engine computes the module's float64 logits;
// conv1's, grouped's and up's channels form groups of 2 directions (one per
// convolution group) and conv2's passes the ReduceMean to fc; random cuts
// equal the original with those channels silenced and the counts are the
// cost model's.
func TestGroupedTiny(t *testing.T) {
	x, want := refLogits(t, filepath.Join("..", "testdata", "models", "grouped_tiny_ref.npz"))
	for _, opset := range []string{"op13", "op17"} {
		l := load(t, "grouped_tiny_"+opset)
		if d, s := maxDiff(want.Float, mustLogits(t, l, x.Float, 4)); d > zeroTol*max(s, 1) {
			t.Errorf("%s: engine logits differ from the module's by %.3g", opset, d)
		}
		for name, dirs := range map[string]int{"/conv1/Conv": 2, "/grouped/Conv": 2, "/up/ConvTranspose": 2, "/conv2/Conv": 1} {
			if g := groupOf(l.st, name); g == nil || !g.Prunable || max(g.Directions, 1) != dirs {
				t.Errorf("%s: group of %s %+v, want prunable with %d directions", opset, name, g, dirs)
			}
		}
		p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
			Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
		if err != nil {
			t.Fatal(err)
		}
		checkRandomCuts(t, l, rand.New(rand.NewPCG(3, 3)), p, 4, 64, opset+", ", zeroRemoved, nil)
	}
}
