package prune

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/plan"
)

func groupByName(t *testing.T, st *Structure, name string) *Group {
	t.Helper()
	for _, g := range st.Groups {
		if g.Name == name {
			return g
		}
	}
	var names []string
	for _, g := range st.Groups {
		names = append(names, g.Name)
	}
	t.Fatalf("no group %q (have %v)", name, names)
	return nil
}

func TestAnalyzeTestdata(t *testing.T) {
	t.Run("mlp", func(t *testing.T) {
		st := load(t, "mlp").st
		if len(st.Groups) != 3 {
			t.Fatalf("%d groups, want 3", len(st.Groups))
		}
		fc1 := groupByName(t, st, "/fc1/Gemm")
		if !fc1.Prunable || fc1.Channels != 256 || !slices.Equal(fc1.Consumers, []string{"/fc2/Gemm"}) {
			t.Errorf("fc1 group %+v", fc1)
		}
		fc3 := groupByName(t, st, "/fc3/Gemm")
		if fc3.Prunable || !strings.Contains(strings.Join(fc3.Reasons, ";"), "graph output") {
			t.Errorf("classifier group %+v should be unprunable because it is the graph output", fc3)
		}
	})
	t.Run("lenet", func(t *testing.T) {
		st := load(t, "lenet").st
		conv2 := groupByName(t, st, "/conv2/Conv")
		if !conv2.Prunable || !slices.Equal(conv2.Consumers, []string{"/fc1/Gemm"}) {
			t.Fatalf("conv2 group %+v", conv2)
		}
		// Flatten turns channel c of the 16×5×5 map into 25 inputs of fc1.
		found := false
		for _, e := range conv2.edits {
			if e.Init == "fc1.weight" {
				found = true
				if e.Axis != 1 || e.Inner != 25 {
					t.Errorf("fc1 input edit %+v, want axis 1 (transB) in blocks of 25", e)
				}
			}
		}
		if !found {
			t.Error("no edit of fc1.weight")
		}
	})
	t.Run("rescnn", func(t *testing.T) {
		st := load(t, "rescnn").st
		res := groupByName(t, st, "/conv2/Conv+/down/Conv")
		if !res.Prunable || res.Channels != 32 {
			t.Fatalf("residual group %+v", res)
		}
		if !slices.Equal(res.Through, []string{"/dw/Conv"}) || !slices.Equal(res.Consumers, []string{"/pw/Conv"}) {
			t.Errorf("residual group through %v consumers %v, want the depthwise conv and pw", res.Through, res.Consumers)
		}
		// The four BatchNorms on the way (bn2, down_bn, dw_bn) lose entries
		// and the depthwise conv's group attribute shrinks.
		var bn, attr int
		for _, e := range res.edits {
			if strings.Contains(e.Init, "bn") {
				bn++
			}
			if e.Attr == "group" {
				attr++
			}
		}
		if bn != 12 || attr != 1 {
			t.Errorf("%d BatchNorm vector edits (want 12) and %d attribute edits (want 1)", bn, attr)
		}
		stem := groupByName(t, st, "/stem/Conv")
		if !slices.Equal(stem.Consumers, []string{"/conv1/Conv", "/down/Conv"}) {
			t.Errorf("stem consumers %v", stem.Consumers)
		}
		r, _ := st.Role("/dw/Conv")
		if !r.Depthwise || r.In != res.Index || r.Out != res.Index {
			t.Errorf("dw role %+v", r)
		}
		if g := groupByName(t, st, "/fc/Gemm"); g.Prunable {
			t.Error("classifier prunable")
		}
		if len(st.Unprunable()) != 1 {
			t.Errorf("unprunable %v, want only the classifier", st.Unprunable())
		}
	})
}

// graph builds small ONNX graphs for tests.
type graph struct {
	g *onnx.GraphProto
	r *rand.Rand
}

func newGraph(in []int64) *graph {
	g := &graph{g: &onnx.GraphProto{Name: "test"}, r: rand.New(rand.NewPCG(3, 3))}
	g.g.Input = append(g.g.Input, vi("input", in))
	return g
}

func vi(name string, shape []int64) *onnx.ValueInfoProto {
	sh := &onnx.TensorShapeProto{}
	for i, d := range shape {
		dim := &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		if i == 0 {
			dim = &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}
		}
		sh.Dim = append(sh.Dim, dim)
	}
	return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: int32(onnx.TensorProto_FLOAT), Shape: sh}}}}
}

func (g *graph) init(name string, shape ...int64) string {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	tp := &onnx.TensorProto{Name: name, Dims: shape, DataType: int32(onnx.TensorProto_FLOAT)}
	for i := int64(0); i < n; i++ {
		tp.RawData = binary.LittleEndian.AppendUint32(tp.RawData, math.Float32bits(float32(g.r.NormFloat64()*0.3)))
	}
	g.g.Initializer = append(g.g.Initializer, tp)
	return name
}

func (g *graph) ints(name string, v ...int64) string {
	tp := &onnx.TensorProto{Name: name, Dims: []int64{int64(len(v))}, DataType: int32(onnx.TensorProto_INT64), Int64Data: v}
	g.g.Initializer = append(g.g.Initializer, tp)
	return name
}

func (g *graph) node(op, name string, in []string, attrs ...*onnx.AttributeProto) string {
	out := name + "_out"
	g.g.Node = append(g.g.Node, &onnx.NodeProto{Name: name, OpType: op, Input: in, Output: []string{out}, Attribute: attrs})
	return out
}

func intAttr(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}
}

func intsAttr(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INTS, Ints: v}
}

func (g *graph) bytes(t *testing.T, out string, shape []int64) []byte {
	t.Helper()
	g.g.Output = []*onnx.ValueInfoProto{vi(out, shape)}
	mp := &onnx.ModelProto{IrVersion: 7, Graph: g.g, OpsetImport: []*onnx.OperatorSetIdProto{{Version: 13}}}
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unsupportedGraph: conv a → Relu → Reshape (to another layout) → conv b;
// conv b → Relu → Transpose → Transpose → conv c → GlobalAveragePool →
// Flatten → Gemm; conv a's channels also feed nothing else. Group a
// (Reshape across the channels) must be unprunable; b (a Transpose that
// keeps the channels on axis 1) and c are prunable.
func unsupportedGraph(t *testing.T) []byte {
	g := newGraph([]int64{1, 1, 8, 8})
	pad := intsAttr("pads", 1, 1, 1, 1)
	a := g.node("Conv", "a", []string{"input", g.init("a.w", 4, 1, 3, 3), g.init("a.b", 4)}, pad)
	a = g.node("Relu", "ra", []string{a})
	a = g.node("Reshape", "reshape", []string{a, g.ints("shape", 0, 8, 8, 4)})
	a = g.node("Transpose", "back", []string{a}, intsAttr("perm", 0, 3, 1, 2))
	b := g.node("Conv", "b", []string{a, g.init("b.w", 6, 4, 3, 3), g.init("b.b", 6)}, pad)
	b = g.node("Relu", "rb", []string{b})
	b = g.node("Transpose", "t1", []string{b}, intsAttr("perm", 0, 1, 3, 2))
	c := g.node("Conv", "c", []string{b, g.init("c.w", 5, 6, 3, 3), g.init("c.b", 5)}, pad)
	c = g.node("Relu", "rc", []string{c})
	c = g.node("GlobalAveragePool", "gap", []string{c})
	c = g.node("Flatten", "flat", []string{c})
	out := g.node("Gemm", "fc", []string{c, g.init("fc.w", 3, 5), g.init("fc.b", 3)}, intAttr("transB", 1))
	return g.bytes(t, out, []int64{1, 3})
}

func TestAnalyzeUnsupported(t *testing.T) {
	l := loadBytes(t, unsupportedGraph(t))
	st := l.st
	a, b, c := groupByName(t, st, "a"), groupByName(t, st, "b"), groupByName(t, st, "c")
	if a.Prunable || !strings.Contains(strings.Join(a.Reasons, ";"), "Reshape") {
		t.Errorf("group a %+v should be unprunable because of the Reshape", a)
	}
	if !b.Prunable || len(b.Consumers) != 1 {
		t.Errorf("group b %+v should be prunable: the Transpose keeps the channels on axis 1", b)
	}
	if !c.Prunable || c.Channels != 5 {
		t.Errorf("group c %+v should be prunable", c)
	}
	if len(st.Unprunable()) != 2 { // a and the classifier
		t.Errorf("unprunable: %v", st.Unprunable())
	}
	// Pruning everything that is allowed leaves a and b intact and runs.
	im := synthImportance(t, l.e, 1)
	p, err := Solve(t.Context(), &Request{Structure: st, Importance: im, Budgets: []plan.Budget{pct(budget.Params, 0.9)}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != "optimal" {
		t.Fatalf("status %s", p.Status)
	}
	keep := p.Keep()
	if len(keep[a.Index]) != a.Channels {
		t.Errorf("unprunable group changed: %v", keep)
	}
	if len(keep[b.Index]) >= b.Channels && len(keep[c.Index]) >= c.Channels {
		t.Errorf("neither b nor c pruned: %v", keep)
	}
	out, err := Apply(l.mp, st, keep)
	if err != nil {
		t.Fatal(err)
	}
	pl := loadProto(t, out)
	if _, err := pl.e.Logits(make([]float64, 64), 1); err != nil {
		t.Fatal(err)
	}
	// Asking Apply to cut an unprunable group is an error, not a corruption.
	bad := slices.Clone(keep)
	bad[a.Index] = []int{0, 1}
	if _, err := Apply(l.mp, st, bad); err == nil || !strings.Contains(err.Error(), "not prunable") {
		t.Errorf("Apply on an unprunable group: %v", err)
	}
}

// TestAnalyzeSharedAndConcat covers a Concat, an unknown operator, a
// grouped (non-depthwise) convolution (its outputs a group of 2
// directions, one per convolution group; its inputs are the Concat's) and
// a constant shared between two nodes.
func TestAnalyzeSharedAndConcat(t *testing.T) {
	g := newGraph([]int64{1, 2, 6, 6})
	pad := intsAttr("pads", 1, 1, 1, 1)
	x := g.node("Conv", "x", []string{"input", g.init("x.w", 4, 2, 3, 3)}, pad)
	y := g.node("Conv", "y", []string{"input", g.init("y.w", 4, 2, 3, 3)}, pad)
	cat := g.node("Concat", "cat", []string{x, y}, intAttr("axis", 1))
	gr := g.node("Conv", "grouped", []string{cat, g.init("gw", 8, 4, 3, 3)}, pad, intAttr("group", 2))
	s := g.init("scale", 1, 8, 1, 1)
	m1 := g.node("Mul", "m1", []string{gr, s})
	u := g.node("Conv", "u", []string{m1, g.init("u.w", 3, 8, 1, 1)})
	m2 := g.node("Mul", "m2", []string{u, g.init("s3", 1, 3, 1, 1)})
	v := g.node("Conv", "v", []string{m2, g.init("v.w", 3, 3, 1, 1)})
	add := g.node("Add", "shared", []string{v, g.init("k", 1, 3, 1, 1)})
	w := g.node("Conv", "w", []string{add, g.init("w.w", 3, 3, 1, 1)})
	add2 := g.node("Add", "shared2", []string{w, "k"})
	gap := g.node("GlobalAveragePool", "gap", []string{add2})
	fl := g.node("Flatten", "fl", []string{gap})
	out := g.node("Gemm", "fc", []string{fl, g.init("fc.w", 2, 3), g.init("fc.b", 2)}, intAttr("transB", 1))
	l := loadBytes(t, g.bytes(t, out, []int64{1, 2}))
	st := l.st
	for name, want := range map[string]string{"x": "Concat", "y": "Concat", "v": `"k"`, "w": `"k"`} {
		gp := groupByName(t, st, name)
		if gp.Prunable || !strings.Contains(strings.Join(gp.Reasons, ";"), want) {
			t.Errorf("group %s: prunable %v, reasons %v; want unprunable mentioning %q", name, gp.Prunable, gp.Reasons, want)
		}
	}
	if gp := groupByName(t, st, "grouped"); !gp.Prunable || gp.Directions != 2 {
		t.Errorf("group grouped %+v, want prunable in 2 directions (its per-channel Mul constant is sliced)", gp)
	}
	if u := groupByName(t, st, "u"); !u.Prunable {
		t.Errorf("group u should be prunable (its per-channel Mul constant is sliced): %v", u.Reasons)
	}
	keep := make([][]int, len(st.Groups))
	for i, gp := range st.Groups {
		for c := 0; c < gp.Channels; c++ {
			if gp.Prunable && c%(gp.Channels/max(gp.Directions, 1)) == 1 {
				continue // channel 1 of every direction
			}
			keep[i] = append(keep[i], c)
		}
	}
	mp, err := Apply(l.mp, st, keep)
	if err != nil {
		t.Fatal(err)
	}
	pl := loadProto(t, mp)
	if _, err := pl.e.Logits(make([]float64, 72), 1); err != nil {
		t.Fatal(err)
	}
}

func loadProto(t *testing.T, mp *onnx.ModelProto) *loaded {
	t.Helper()
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return loadBytes(t, b)
}

// TestAnalyzeAttentionHeads: in the ViT every block has one group of its
// 4 attention heads (q, k and v as sources, 16 columns each, the output
// projection as consumer, the Reshape constants as edits) and one group of
// its 128 FFN rows; the residual stream stays intact.
func TestAnalyzeAttentionHeads(t *testing.T) {
	l := load(t, "fmnist_vit")
	var heads, rows int
	for _, g := range l.st.Groups {
		if !g.Prunable {
			continue
		}
		switch {
		case strings.Contains(g.Name, "/att/q/"):
			heads++
			if g.Channels != 4 || len(g.Sources) != 3 || len(g.Consumers) != 1 || !strings.Contains(g.Consumers[0], "/att/o/") {
				t.Errorf("head group %s: %d channels, sources %v, consumers %v", g.Name, g.Channels, g.Sources, g.Consumers)
			}
			shapes := 0
			for _, e := range g.edits {
				if e.Shape {
					shapes++
				} else if e.Attr == "" && e.Inner != 16 {
					t.Errorf("head group %s: edit of %s in blocks of %d, want 16", g.Name, e.Init, e.Inner)
				}
			}
			if shapes != 4 { // q, k, v split, context merge
				t.Errorf("head group %s: %d Reshape edits, want 4", g.Name, shapes)
			}
		case strings.Contains(g.Name, "/f1/"):
			rows++
			if g.Channels != 128 || len(g.Consumers) != 1 || !strings.Contains(g.Consumers[0], "/f2/") {
				t.Errorf("row group %s: %d channels, consumers %v", g.Name, g.Channels, g.Consumers)
			}
		default:
			t.Errorf("unexpected prunable group %s", g.Name)
		}
	}
	if heads != 2 || rows != 2 {
		t.Errorf("%d head groups and %d row groups, want 2 and 2", heads, rows)
	}
}

// variadicJoinGraph: three convolutions joined by a three-input Sum (a
// residual join), Relu, then three convolutions joined by a Max with a
// per-channel constant (and, with broadcast, a one-channel map: conv q,
// broadcast across the channels) and a Mean with the third, pooled into a
// Gemm.
func variadicJoinGraph(t *testing.T, broadcast bool) []byte {
	g := newGraph([]int64{1, 2, 6, 6})
	pad := intsAttr("pads", 1, 1, 1, 1)
	a := g.node("Conv", "a", []string{"input", g.init("a.w", 4, 2, 3, 3), g.init("a.b", 4)}, pad)
	b := g.node("Conv", "b", []string{"input", g.init("b.w", 4, 2, 1, 1)})
	c := g.node("Conv", "c", []string{"input", g.init("c.w", 4, 2, 3, 3), g.init("c.b", 4)}, pad)
	s := g.node("Sum", "sum", []string{a, b, c})
	r := g.node("Relu", "relu", []string{s})
	d := g.node("Conv", "d", []string{r, g.init("d.w", 3, 4, 3, 3), g.init("d.b", 3)}, pad)
	e := g.node("Conv", "e", []string{r, g.init("e.w", 3, 4, 1, 1)})
	f := g.node("Conv", "f", []string{r, g.init("f.w", 3, 4, 1, 1), g.init("f.b", 3)})
	maxIn := []string{d, e, g.init("k", 1, 3, 1, 1)}
	if broadcast {
		maxIn = append(maxIn, g.node("Conv", "q", []string{r, g.init("q.w", 1, 4, 1, 1)}))
	}
	m := g.node("Max", "max", maxIn)
	n := g.node("Mean", "mean", []string{m, f})
	gap := g.node("GlobalAveragePool", "gap", []string{n})
	fl := g.node("Flatten", "fl", []string{gap})
	out := g.node("Gemm", "fc", []string{fl, g.init("fc.w", 2, 3), g.init("fc.b", 2)}, intAttr("transB", 1))
	return g.bytes(t, out, []int64{1, 2})
}

// TestAnalyzeVariadicJoins: a Sum of three convolution outputs ties their
// channels as an Add does (one group, the join's consumers its consumers),
// as do a Max (its per-channel constant sliced) and a Mean; random cuts of
// both groups give the logits of the original with those channels
// silenced. With a one-channel map broadcast across the Max's channels,
// that map's group is not tied (it stays whole, the others prunable), and
// a plan under a parameter budget is solved, applied and runs.
func TestAnalyzeVariadicJoins(t *testing.T) {
	groups := func(st *Structure) []string {
		var names []string
		for _, g := range st.Groups {
			names = append(names, g.Name)
		}
		return names
	}
	r := rand.New(rand.NewPCG(4, 4))
	for _, broadcast := range []bool{false, true} {
		l := loadBytes(t, variadicJoinGraph(t, broadcast))
		st := l.st
		want, consumers := []string{"a+b+c", "d+e+f", "fc"}, []string{"d", "e", "f"}
		if broadcast {
			want, consumers = []string{"a+b+c", "d+e+f", "q", "fc"}, []string{"d", "e", "f", "q"}
		}
		if got := groups(st); !slices.Equal(got, want) {
			t.Fatalf("broadcast %v: groups %v, want %v", broadcast, got, want)
		}
		sum := groupByName(t, st, "a+b+c")
		if !sum.Prunable || sum.Channels != 4 || !slices.Equal(sum.Consumers, consumers) {
			t.Errorf("broadcast %v: Sum join group %+v, want prunable, 4 channels, consumers %v", broadcast, sum, consumers)
		}
		mx := groupByName(t, st, "d+e+f")
		if !mx.Prunable || mx.Channels != 3 || !slices.Equal(mx.Consumers, []string{"fc"}) {
			t.Errorf("broadcast %v: Max/Mean join group %+v, want prunable, 3 channels, consumer fc", broadcast, mx)
		}
		sliced := false
		for _, e := range mx.edits {
			sliced = sliced || e.Init == "k"
		}
		if !sliced {
			t.Errorf("broadcast %v: the Max's per-channel constant k is not sliced with the group", broadcast)
		}
		if broadcast {
			if q := groupByName(t, st, "q"); q.Prunable || q.Channels != 1 || !strings.Contains(strings.Join(q.Reasons, ";"), "broadcasts the channel of input 3") {
				t.Errorf("one-channel group q %+v, want unprunable: broadcast across the Max's channels", q)
			}
			// The silenced original is no reference here: a removed
			// channel of the Max reads q's channel, not zero.
			p, err := Solve(t.Context(), &Request{Structure: st, Importance: synthImportance(t, l.e, 1), Budgets: []plan.Budget{pct(budget.Params, 0.5)}})
			if err != nil {
				t.Fatal(err)
			}
			if p.Keep() == nil {
				t.Fatalf("status %s", p.Status)
			}
			out, err := Apply(l.mp, st, p.Keep())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := loadProto(t, out).e.Logits(normals(r, 72, 1), 1); err != nil {
				t.Fatal(err)
			}
			t.Logf("plan at 50%% of the parameter range keeps %v channels", keptCounts(p.Keep()))
			continue
		}
		for trial := 0; trial < 4; trial++ {
			keep := randomKeep(r, st)
			out, err := Apply(l.mp, st, keep)
			if err != nil {
				t.Fatal(err)
			}
			pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, l.mp, st, keep))
			for _, n := range []int{1, 3} {
				checkSilenced(t, pl, ref, [][]float64{normals(r, n*72, 1)}, n, zeroTol, fmt.Sprintf("trial %d (keeps %v)", trial, keptCounts(keep)))
			}
		}
	}
}

// TestPruneVariadicTiny runs the pruning pipeline on the torch.onnx export
// with three-input joins (testdata/models/variadic_tiny_op13.onnx): the
// one-channel conv_q map broadcast across the Min's channels is left whole
// for that reason; the spatial ReduceMeans (over H and W, and over W) pass
// the channels through, so the Sum, Max, Min and Mean joins tie conv_a to
// conv_e into one prunable group of 4 channels. Random cuts equal the
// original with those channels silenced and their consumers' columns
// zeroed (a removed channel of the Min reads conv_q's map, so silencing the
// sources alone is no reference), the counts are the cost model's, and
// channel importances estimated on the model's reference inputs feed a
// solve under 70% of the parameters whose plan is applied and runs.
func TestPruneVariadicTiny(t *testing.T) {
	l := load(t, "variadic_tiny_op13")
	q := groupByName(t, l.st, "/conv_q/Conv")
	if q.Prunable || q.Channels != 1 || !strings.Contains(strings.Join(q.Reasons, ";"), "broadcasts the channel of input 1 across 4 channels") {
		t.Errorf("conv_q group %+v, want one channel left whole: broadcast by the Min", q)
	}
	g := groupByName(t, l.st, "/conv_a/Conv+/conv_b/Conv+/conv_c/Conv+/conv_d/Conv+/conv_e/Conv")
	if !g.Prunable || g.Channels != 4 || !slices.Equal(g.Consumers, []string{"/conv_d/Conv", "/conv_e/Conv", "/conv_q/Conv", "/fc/Gemm"}) {
		t.Errorf("joined group %+v, want 4 prunable channels read by conv_d, conv_e, conv_q and fc", g)
	}
	pr, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
		Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 13))
	checkRandomCuts(t, l, r, pr, 4, 64, "", zeroRemovedAll, nil)
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", "variadic_tiny_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	ds, err := z.Match([]string{"input"})
	if err != nil {
		t.Fatal(err)
	}
	im, err := Estimate(t.Context(), l.e, ds, &Settings{Probes: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Solve(t.Context(), &Request{Structure: l.st, Importance: im, Budgets: []plan.Budget{pct(budget.Params, 0.7)}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Keep() == nil {
		t.Fatalf("status %s, want a plan", p.Status)
	}
	if kc := keptCounts(p.Keep()); kc[g.Index] >= g.Channels {
		t.Errorf("plan keeps %v channels, want fewer than %d of the joined group", kc, g.Channels)
	}
	out, err := Apply(l.mp, l.st, p.Keep())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadProto(t, out).e.Logits(normals(r, 2*64, 1), 2); err != nil {
		t.Fatal(err)
	}
}
