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
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

// zooOpsets are the opsets of the committed zoo exports (testdata/zoo).
var zooOpsets = []string{"op11", "op13", "op17"}

func loadZoo(t testing.TB, name, opset string) *loaded {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "zoo", name, opset+".onnx"))
	if err != nil {
		t.Fatalf("committed zoo model %s/%s missing: %v", name, opset, err)
	}
	return loadBytes(t, b)
}

// zooInputs returns n random samples of every input of the zoo's
// transformers: tiny_vit's image, or tiny_bert's token ids (0..99) and
// attention mask (0/1, the [CLS] position always 1).
func zooInputs(r *rand.Rand, l *loaded, n int) [][]float64 {
	var xs [][]float64
	for _, in := range l.e.Inputs() {
		size := 1
		for _, d := range in.Sample {
			size *= d
		}
		x := make([]float64, n*size)
		for i := range x {
			switch {
			case strings.Contains(in.Name, "ids"):
				x[i] = float64(r.IntN(100))
			case strings.Contains(in.Name, "mask"):
				x[i] = float64(r.IntN(2))
				if i%size == 0 {
					x[i] = 1
				}
			default:
				x[i] = r.Float64()*2 - 1
			}
		}
		xs = append(xs, x)
	}
	return xs
}

// headGroups returns the prunable groups of a transformer whose channels
// are heads (those with Reshape edits) and the others (FFN rows, a
// pooler's rows).
func headGroups(st *Structure) (heads, rows []*Group) {
	for _, g := range st.Groups {
		if !g.Prunable {
			continue
		}
		if slices.ContainsFunc(g.edits, func(e edit) bool { return e.Shape }) {
			heads = append(heads, g)
		} else {
			rows = append(rows, g)
		}
	}
	return heads, rows
}

// TestZooHeadsAnalyze: in the zoo's tiny_vit and tiny_bert (one fused
// q/k/v MatMul split by three Slice nodes whose bounds, like the head
// Reshapes' shapes, are computed at run time from Shape nodes) every
// layer's 4 heads are a prunable group, read by the output projection, and
// every FFN's 64 rows another, at every committed opset.
func TestZooHeadsAnalyze(t *testing.T) {
	for _, name := range []string{"tiny_vit", "tiny_bert"} {
		for _, op := range zooOpsets {
			t.Run(name+"/"+op, func(t *testing.T) {
				st := loadZoo(t, name, op).st
				heads, rows := headGroups(st)
				wantRows := 2
				if name == "tiny_bert" {
					wantRows = 3 // and the pooler's 32 rows, read by the classifier
				}
				if len(heads) != 2 || len(rows) != wantRows {
					t.Fatalf("%d head groups and %d row groups, want 2 and %d; unprunable:\n%s", len(heads), len(rows), wantRows, strings.Join(st.Unprunable(), "\n"))
				}
				for _, g := range heads {
					if g.Channels != 4 || len(g.Consumers) != 1 || !strings.Contains(g.Consumers[0], "out") {
						t.Errorf("head group %s: %d channels, consumers %v", g.Name, g.Channels, g.Consumers)
					}
					var slices, shapes int
					for _, e := range g.edits {
						if e.Slice {
							slices++
						}
						if e.Shape {
							shapes++
							if e.Vals == nil {
								t.Errorf("%s: Reshape edit %+v is not of a computed shape", g.Name, e)
							}
						}
						if e.Init != "" && e.parts() != 3 && !strings.Contains(e.Init, "out") && !strings.Contains(e.Init, "328") && !strings.Contains(e.Init, "MatMul") {
							t.Logf("%s: edit %+v", g.Name, e)
						}
					}
					if slices != 3 || shapes != 4 {
						t.Errorf("%s: %d Slice edits and %d Reshape edits, want 3 and 4", g.Name, slices, shapes)
					}
				}
				for _, g := range rows {
					if g.Channels != 64 && !strings.Contains(g.Name, "pool") {
						t.Errorf("row group %s: %d channels", g.Name, g.Channels)
					}
				}
			})
		}
	}
}

// TestMHAHeads: torch's nn.MultiheadAttention export
// (testdata/models/mha_tiny.onnx, scripts/make_mha_tiny.py: the heads
// merged with the batch axis, [T, N·heads, 4], shapes computed at run
// time) has one prunable group of its 2 heads, and cutting one equals the
// silenced original at batch sizes 1 and 3 (the −1 in the rewritten shapes
// infers N·heads kept and T·N).
func TestMHAHeads(t *testing.T) {
	l := load(t, "mha_tiny")
	heads, rows := headGroups(l.st)
	if len(heads) != 1 || heads[0].Channels != 2 || len(rows) != 1 || rows[0].Channels != 16 {
		t.Fatalf("%d head groups and %d row groups (want one of 2 heads and one of 16 rows); unprunable:\n%s", len(heads), len(rows), strings.Join(l.st.Unprunable(), "\n"))
	}
	for c := 0; c < 2; c++ {
		keep := make([][]int, len(l.st.Groups))
		for i, g := range l.st.Groups {
			for j := 0; j < g.Channels; j++ {
				if g != heads[0] || j == c {
					keep[i] = append(keep[i], j)
				}
			}
		}
		out, err := Apply(l.mp, l.st, keep)
		if err != nil {
			t.Fatal(err)
		}
		pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
		r := rand.New(rand.NewPCG(uint64(c), 8))
		for _, n := range []int{1, 3} {
			xs := zooInputs(r, l, n)
			checkSilenced(t, pl, ref, xs, n, zeroTol, fmt.Sprintf("head %d kept", c))
		}
	}
}

// TestZooHeadsApply is TestApplyRandomKeeps on the zoo's transformers:
// random heads and rows removed, the written model (its Slice bounds and
// Reshape shapes rewritten as constants, the shape arithmetic gone) equals
// the original with those heads and rows silenced in the engine, at batch
// sizes 1 and 3 (the rewritten shapes hold for every batch size), and its
// parameter and MAC counts are the cost model's.
func TestZooHeadsApply(t *testing.T) {
	for _, name := range []string{"tiny_vit", "tiny_bert"} {
		for _, op := range zooOpsets {
			t.Run(name+"/"+op, func(t *testing.T) {
				l := loadZoo(t, name, op)
				r := rand.New(rand.NewPCG(5, uint64(len(name)+len(op))))
				p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
					Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
				if err != nil {
					t.Fatal(err)
				}
				heads, _ := headGroups(l.st)
				for trial := 0; trial < 3; trial++ {
					keep := randomKeep(r, l.st)
					for _, g := range heads {
						if trial == 0 { // one head left
							keep[g.Index] = []int{r.IntN(g.Channels)}
						}
					}
					out, err := Apply(l.mp, l.st, keep)
					if err != nil {
						t.Fatal(err)
					}
					for _, n := range out.Graph.Node {
						if n.GetOpType() == "Shape" && trial == 0 && name == "tiny_bert" {
							t.Logf("Shape node %s left (%v)", n.GetName(), n.Input)
						}
					}
					pl := loadProto(t, out)
					ref := loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
					for _, n := range []int{1, 3} {
						xs := zooInputs(r, l, n)
						got, err := pl.e.LogitsInputs(xs, n)
						if err != nil {
							t.Fatal(err)
						}
						want, err := ref.e.LogitsInputs(xs, n)
						if err != nil {
							t.Fatal(err)
						}
						diff, scale := maxDiff(want, got)
						if len(got) != len(want) || diff > zeroTol*max(scale, 1) {
							t.Errorf("trial %d, batch %d: pruned logits differ from the silenced original by %.3g (scale %.3g)", trial, n, diff, scale)
						}
					}
					checkCounts(t, p, pl.m, keep, "trial "+strconv.Itoa(trial))
				}
			})
		}
	}
}

// fusedSplitGraph is one attention layer written as another exporter
// writes chunk(3): a fused q/k/v MatMul (hidden 8, 2 heads of 4) with its
// bias, one Split node with constant sizes into q, k and v, constant head
// Reshapes (0 = copy), Q·Kᵀ, Softmax, P·V, the merge and the output
// projection, then a mean over the sequence. With shapeLeak, the
// Shape of the fused projection also scales the output (a run-time use of
// the channel count that pruning does not rewrite).
func fusedSplitGraph(t *testing.T, shapeLeak bool, opset int64) []byte {
	const T, D, H = 5, 8, 2
	g := newGraph([]int64{1, T, D})
	qkv := g.node("MatMul", "qkv", []string{"input", g.init("qkv.w", D, 3*D)})
	qkv = g.node("Add", "qkv_b", []string{qkv, g.init("qkv.b", 3*D)})
	split := &onnx.NodeProto{Name: "split", OpType: "Split", Input: []string{qkv}, Output: []string{"q", "k", "v"},
		Attribute: []*onnx.AttributeProto{intAttr("axis", 2)}}
	switch {
	case opset < 13: // sizes as an attribute
		split.Attribute = append(split.Attribute, intsAttr("split", D, D, D))
	case opset < 18: // sizes as an input
		split.Input = append(split.Input, g.ints("sizes", D, D, D))
	default: // equal parts by number
		split.Attribute = append(split.Attribute, intAttr("num_outputs", 3))
	}
	g.g.Node = append(g.g.Node, split)
	heads := func(x, name string, perm ...int64) string {
		x = g.node("Reshape", name+"_split", []string{x, g.ints(name+"_shape", 0, 0, H, D/H)})
		return g.node("Transpose", name+"_t", []string{x}, intsAttr("perm", perm...))
	}
	q := heads("q", "q", 0, 2, 1, 3)
	k := heads("k", "k", 0, 2, 3, 1)
	v := heads("v", "v", 0, 2, 1, 3)
	s := g.node("MatMul", "qk", []string{q, k})
	p := g.node("Softmax", "softmax", []string{s}, intAttr("axis", -1))
	y := g.node("MatMul", "pv", []string{p, v})
	y = g.node("Transpose", "merge_t", []string{y}, intsAttr("perm", 0, 2, 1, 3))
	y = g.node("Reshape", "merge", []string{y, g.ints("merge_shape", 0, 0, D)})
	y = g.node("MatMul", "out", []string{y, g.init("out.w", D, D)})
	if opset < 18 {
		y = g.node("ReduceMean", "mean", []string{y}, intsAttr("axes", 1), intAttr("keepdims", 0))
	} else {
		y = g.node("ReduceMean", "mean", []string{y, g.ints("axes", 1)}, intAttr("keepdims", 0))
	}
	if shapeLeak {
		sh := g.node("Shape", "shape", []string{qkv})
		d := g.node("Gather", "width", []string{sh, g.ints("last", 2)})
		f := g.node("Cast", "cast", []string{d}, intAttr("to", int64(onnx.TensorProto_FLOAT)))
		y = g.node("Mul", "scale", []string{y, f})
	}
	g.g.Output = []*onnx.ValueInfoProto{vi(y, []int64{1, D})}
	mp := &onnx.ModelProto{IrVersion: 8, Graph: g.g, OpsetImport: []*onnx.OperatorSetIdProto{{Version: opset}}}
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFusedSplitHeads: heads of a fused projection split by Split are a
// prunable group (channel h = columns of head h in each third) whose
// pruned model equals the silenced original and whose Split sizes shrink;
// a Shape of the projection that reaches the output leaves it intact.
func TestFusedSplitHeads(t *testing.T) {
	for _, opset := range []int64{11, 13, 18} {
		t.Run(fmt.Sprintf("opset%d", opset), func(t *testing.T) { fusedSplitHeads(t, opset) })
	}
}

func fusedSplitHeads(t *testing.T, opset int64) {
	l := loadBytes(t, fusedSplitGraph(t, false, opset))
	g := groupByName(t, l.st, "qkv")
	if !g.Prunable || g.Channels != 2 || !slices.Equal(g.Consumers, []string{"out"}) {
		t.Fatalf("head group %+v", g)
	}
	if p := g.parts(l.m.Unit("qkv")); p != 3 {
		t.Errorf("fused projection holds the heads %d times, want 3", p)
	}
	keep := make([][]int, len(l.st.Groups))
	for i, gp := range l.st.Groups {
		for c := 0; c < gp.Channels; c++ {
			keep[i] = append(keep[i], c)
		}
	}
	keep[g.Index] = []int{1}
	out, err := Apply(l.mp, l.st, keep)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, n := range out.Graph.Node {
		if n.GetOpType() != "Split" {
			continue
		}
		for _, a := range n.Attribute {
			if a.GetName() == "split" {
				sizes = a.Ints
			}
		}
		for _, tp := range out.Graph.Initializer {
			if len(n.Input) > 1 && tp.GetName() == n.Input[1] {
				mt, err := model.TensorFromProto(tp)
				if err != nil {
					t.Fatal(err)
				}
				sizes = mt.Int
			}
		}
	}
	want := []int64{4, 4, 4}
	if opset >= 18 {
		want = nil // num_outputs: equal parts, nothing to rewrite
	}
	if !slices.Equal(sizes, want) {
		t.Errorf("Split sizes %v after keeping one head of 4, want %v", sizes, want)
	}
	pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
	x := make([]float64, 2*5*8)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = r.NormFloat64()
	}
	got, err := pl.e.Logits(x, 2)
	if err != nil {
		t.Fatal(err)
	}
	wantZ, err := ref.e.Logits(x, 2)
	if err != nil {
		t.Fatal(err)
	}
	if d, s := maxDiff(wantZ, got); d > zeroTol*max(s, 1) {
		t.Errorf("pruned logits differ from the silenced original's by %.3g (scale %.3g)", d, s)
	}
	if d, _ := maxDiff(wantZ, mustLogits(t, l, x, 2)); d == 0 {
		t.Error("silencing a head changed nothing: the test cannot see a wrong cut")
	}

	leak := loadBytes(t, fusedSplitGraph(t, true, opset))
	g = groupByName(t, leak.st, "qkv")
	if g.Prunable || !strings.Contains(strings.Join(g.Reasons, ";"), "reaches graph output") {
		t.Errorf("a Shape of the projection reaching the output left the heads prunable: %+v", g)
	}
}

func mustLogits(t *testing.T, l *loaded, x []float64, n int) []float64 {
	t.Helper()
	z, err := l.e.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func maxDiff(a, b []float64) (diff, scale float64) {
	for i := range a {
		scale = max(scale, math.Abs(a[i]))
		diff = max(diff, math.Abs(a[i]-b[i]))
	}
	return diff, scale
}

// TestZooCacheHeads analyses the zoo's large transformers when
// $BITPLAN_ZOO_DIR holds them (scripts/zoo.py --large --out DIR): every
// layer of the BERT-base-shaped encoder (12 heads of 64), of the pre-norm
// ViT (3 heads of 64) and of torchvision's vit_b_16 (nn.MultiheadAttention:
// the heads merged with the batch axis, [T, B·H, 64]; 12 heads) is a
// prunable head group. On the ViTs a random cut equals the silenced
// original.
func TestZooCacheHeads(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("BITPLAN_ZOO_DIR not set (make the large zoo with scripts/zoo.py --large --out DIR)")
	}
	cases := []struct {
		name          string
		groups, heads int
	}{{"vit_prenorm", 6, 3}, {"bert", 12, 12}, {"vit_b_16", 12, 12}}
	for _, c := range cases {
		for _, op := range []string{"op13", "op17"} {
			t.Run(c.name+"/"+op, func(t *testing.T) {
				b, err := os.ReadFile(filepath.Join(dir, c.name+"_"+op+".onnx"))
				if err != nil {
					t.Skipf("%v (make the large zoo with /usr/bin/python3 scripts/zoo.py --large --out DIR)", err)
				}
				l := loadBytes(t, b)
				heads, _ := headGroups(l.st)
				for _, g := range heads {
					if g.Channels != c.heads {
						t.Errorf("head group %s: %d channels, want %d", g.Name, g.Channels, c.heads)
					}
				}
				t.Logf("%d head groups", len(heads))
				if c.groups < 0 {
					for _, u := range l.st.Unprunable() {
						if strings.Contains(u, "attn") || strings.Contains(u, "attention") {
							t.Log(u)
						}
					}
					return
				}
				if len(heads) != c.groups {
					t.Errorf("%d head groups, want %d; unprunable:\n%s", len(heads), c.groups, strings.Join(l.st.Unprunable(), "\n"))
				}
				if c.name == "bert" {
					return
				}
				r := rand.New(rand.NewPCG(9, 9))
				keep := randomKeep(r, l.st)
				out, err := Apply(l.mp, l.st, keep)
				if err != nil {
					t.Fatal(err)
				}
				pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
				xs := zooInputs(r, l, 2)
				got, err := pl.e.LogitsInputs(xs, 2)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ref.e.LogitsInputs(xs, 2)
				if err != nil {
					t.Fatal(err)
				}
				// The engine computes models of this size in float32 (its
				// Auto precision): the sums differ by float32 rounding.
				if d, s := maxDiff(want, got); d > float32Tol*max(s, 1) {
					t.Errorf("pruned logits differ from the silenced original's by %.3g (scale %.3g)", d, s)
				}
			})
		}
	}
}

// float32Tol is zeroTol for an engine computing in float32: a few units in
// the last place of the logits.
const float32Tol = 1e-5

// FuzzFusedHeads builds attention layers with a fused q/k/v projection
// from fuzzed split sizes, Split or Slice bounds and Reshape shapes: the
// analysis and Apply never panic, and whenever the heads are judged
// prunable and the model runs, the pruned model computes what the original
// with the removed heads silenced computes.
func FuzzFusedHeads(f *testing.F) {
	f.Add(false, int8(8), int8(8), int8(8), int8(2), int8(2), int8(4), int8(8), int8(0), int8(0))
	f.Add(true, int8(8), int8(8), int8(8), int8(-1), int8(2), int8(4), int8(8), int8(16), int8(24))
	f.Add(true, int8(0), int8(12), int8(8), int8(2), int8(4), int8(2), int8(8), int8(12), int8(24))
	f.Fuzz(func(t *testing.T, slice bool, s0, s1, s2, axis, h, dh, merge, e0, e1 int8) {
		const T, D = 3, 8
		g := newGraph([]int64{1, T, D})
		qkv := g.node("MatMul", "qkv", []string{"input", g.init("qkv.w", D, 3*D)})
		qkv = g.node("Add", "qkv_b", []string{qkv, g.init("qkv.b", 3*D)})
		if slice {
			bounds := [][2]int64{{int64(s0), int64(e0)}, {int64(e0), int64(e1)}, {int64(e1), int64(s2) * 3}}
			for i, name := range []string{"q", "k", "v"} {
				g.g.Node = append(g.g.Node, &onnx.NodeProto{Name: "slice_" + name, OpType: "Slice",
					Input:  []string{qkv, g.ints(name+"_lo", bounds[i][0]), g.ints(name+"_hi", bounds[i][1]), g.ints(name+"_ax", int64(axis))},
					Output: []string{name}})
			}
		} else {
			g.g.Node = append(g.g.Node, &onnx.NodeProto{Name: "split", OpType: "Split", Input: []string{qkv, g.ints("sizes", int64(s0), int64(s1), int64(s2))},
				Output: []string{"q", "k", "v"}, Attribute: []*onnx.AttributeProto{intAttr("axis", int64(axis))}})
		}
		heads := func(x, name string, perm ...int64) string {
			x = g.node("Reshape", name+"_split", []string{x, g.ints(name+"_shape", 0, 0, int64(h), int64(dh))})
			return g.node("Transpose", name+"_t", []string{x}, intsAttr("perm", perm...))
		}
		q := heads("q", "q", 0, 2, 1, 3)
		k := heads("k", "k", 0, 2, 3, 1)
		v := heads("v", "v", 0, 2, 1, 3)
		s := g.node("MatMul", "qk", []string{q, k})
		p := g.node("Softmax", "softmax", []string{s}, intAttr("axis", -1))
		y := g.node("MatMul", "pv", []string{p, v})
		y = g.node("Transpose", "merge_t", []string{y}, intsAttr("perm", 0, 2, 1, 3))
		y = g.node("Reshape", "merge", []string{y, g.ints("merge_shape", 0, 0, int64(merge))})
		y = g.node("MatMul", "out", []string{y, g.init("out.w", D, D)})
		y = g.node("ReduceMean", "mean", []string{y}, intsAttr("axes", 1), intAttr("keepdims", 0))
		g.g.Output = []*onnx.ValueInfoProto{vi(y, []int64{1, D})}
		mp := &onnx.ModelProto{IrVersion: 7, Graph: g.g, OpsetImport: []*onnx.OperatorSetIdProto{{Version: 13}}}
		mp, m, err := model.NormalizeProto(mp)
		if err != nil {
			return
		}
		st, err := Analyze(m)
		if err != nil {
			return
		}
		r := rand.New(rand.NewPCG(uint64(h), uint64(dh)))
		keep := randomKeep(r, st)
		hg := st.Group("qkv")
		if hg == nil || !hg.Prunable {
			return
		}
		keep[hg.Index] = keep[hg.Index][:max(1, len(keep[hg.Index])-1)] // at least one head goes
		if len(keep[hg.Index]) == hg.Channels {
			return
		}
		out, err := Apply(mp, st, keep)
		if err != nil {
			t.Fatalf("a prunable group: %v", err)
		}
		if _, err := nn.New(m, &nn.Options{Workers: 1}); err != nil {
			return
		}
		pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, mp, st, keep))
		x := make([]float64, T*D)
		for i := range x {
			x[i] = r.NormFloat64()
		}
		got, err := pl.e.Logits(x, 1)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.e.Logits(x, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d, s := maxDiff(want, got); d > zeroTol*max(s, 1) {
			t.Errorf("pruned logits differ from the silenced original's by %.3g (scale %.3g)", d, s)
		}
		t.Logf("kept heads %v of %d", keep[hg.Index], hg.Channels)
	})
}

// TestFusedHeadImportance: a head of a fused q/k/v projection gathers the
// statistics of its columns in every third (Tr(H_hh) of head h is the sum
// of the traces of columns p·D + h·dh + i, p < 3, i < dh), not of one
// contiguous block.
func TestFusedHeadImportance(t *testing.T) {
	l := loadZoo(t, "tiny_bert", "op13")
	im := synthImportance(t, l.e, 2)
	co, err := coarsened(l.st, im)
	if err != nil {
		t.Fatal(err)
	}
	heads, _ := headGroups(l.st)
	for _, g := range heads {
		i := unitIndex(l.st, g.Sources[0])
		u, c := im.Units[i], co.Units[i]
		const D, dh = 32, 8
		for h := 0; h < g.Channels; h++ {
			var tr, sq float64
			for p := 0; p < 3; p++ {
				for j := 0; j < dh; j++ {
					tr += u.Trace[p*D+h*dh+j]
					sq += u.SqNorm[p*D+h*dh+j]
				}
			}
			if math.Abs(c.Trace[h]-tr) > 1e-12*math.Abs(tr) || math.Abs(c.SqNorm[h]-sq) > 1e-12*sq {
				t.Errorf("%s head %d: trace %g, ‖W‖² %g; the columns of its thirds give %g, %g", g.Name, h, c.Trace[h], c.SqNorm[h], tr, sq)
			}
		}
	}
}

// TestZooJoint: the joint prune + quantize plan works on the fused-head
// transformers: a size budget of 25 % of the unpruned model narrows widths (and removes heads or rows), and
// Realize writes a model whose counts are the plan's.
func TestZooJoint(t *testing.T) {
	for _, name := range []string{"tiny_vit", "tiny_bert"} {
		t.Run(name, func(t *testing.T) {
			l := loadZoo(t, name, "op13")
			p, err := Solve(t.Context(), &Request{Structure: l.st, Importance: synthImportance(t, l.e, 3), Joint: true, Bits: []int{4, 8},
				Budgets: []plan.Budget{pct(budget.Size, 0.25)}})
			if err != nil {
				t.Fatal(err)
			}
			if p.Keep() == nil {
				t.Fatalf("status %s", p.Status)
			}
			heads, _ := headGroups(l.st)
			removed := 0
			for _, g := range heads {
				removed += g.Channels - len(p.Keep()[g.Index])
			}
			narrow := 0
			for _, ly := range p.Layers {
				if ly.Bits < 8 {
					narrow++
				}
			}
			t.Logf("%s: %d heads removed, %d layers below 8 bits", Summary(p), removed, narrow)
			if narrow == 0 {
				t.Errorf("no layer below 8 bits at 25%% of the unpruned size: %s", Summary(p))
			}
			if _, _, err := Realize(t.Context(), l.mp, l.st, p, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestZooCompensation: mean replacement on the fused-head transformers
// (multi-input tiny_bert included): with one group's heads or FFN rows
// removed at a time, every compensated consumer keeps its biased output's
// mean over samples and positions (exactly: the consumer is linear and its
// kept inputs are unchanged).
func TestZooCompensation(t *testing.T) {
	for _, name := range []string{"tiny_vit", "tiny_bert"} {
		t.Run(name, func(t *testing.T) {
			l := loadZoo(t, name, "op13")
			const n = 8
			r := rand.New(rand.NewPCG(4, 4))
			xs := zooInputs(r, l, n)
			var arrays []*data.Array
			var names []string
			for i, in := range l.e.Inputs() {
				arrays = append(arrays, &data.Array{Shape: append([]int{n}, in.Sample...), DType: "<f8", Float: xs[i]})
				names = append(names, in.Name)
			}
			ds, err := data.NewArrays(names, arrays, nil)
			if err != nil {
				t.Fatal(err)
			}
			means, err := InputMeans(l.e, ds, l.st)
			if err != nil {
				t.Fatal(err)
			}
			orig, err := l.e.IntermediatesInputs(xs, n)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for gi, g := range l.st.Groups {
				if !g.Prunable {
					continue
				}
				keep := make([][]int, len(l.st.Groups))
				for i, h := range l.st.Groups {
					for c := 0; c < h.Channels; c++ {
						if i != gi || c%3 == 1 {
							keep[i] = append(keep[i], c)
						}
					}
				}
				out, skipped, err := ApplyCompensated(l.mp, l.st, keep, means)
				if err != nil {
					t.Fatal(err)
				}
				got, err := loadProto(t, out).e.IntermediatesInputs(xs, n)
				if err != nil {
					t.Fatal(err)
				}
				for _, cname := range g.Consumers {
					if slices.Contains(skipped, cname) {
						continue
					}
					// The consumer's output with its bias: the node reading
					// the bias initializer.
					u := l.m.Unit(cname)
					var tensor string
					for _, nd := range l.m.Nodes {
						if slices.Contains(nd.Inputs, u.Bias) {
							tensor = nd.Outputs[0]
						}
					}
					o, p := orig[tensor], got[tensor]
					c := o.Shape[len(o.Shape)-1]
					mo, mp := make([]float64, c), make([]float64, c)
					for i := range o.Data {
						mo[i%c] += o.Data[i]
						mp[i%c] += p.Data[i]
					}
					for j := range mo {
						// The compensated bias is stored in float32.
						if math.Abs(mo[j]-mp[j]) > 1e-5*max(1, math.Abs(mo[j])) {
							t.Errorf("%s (group %s) output %d: sum %.9g, original %.9g", cname, g.Name, j, mp[j], mo[j])
						}
					}
					checked++
				}
			}
			if checked == 0 {
				t.Fatal("no consumer checked")
			}
			t.Logf("%d consumers keep their output means", checked)
		})
	}
}
