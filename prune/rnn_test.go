package prune

import (
	"fmt"
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

// rnnCase is one two-layer recurrent classifier of rnnNet.
type rnnCase struct {
	first, second string // "LSTM", "GRU" or "RNN"
	lbr           int64  // the GRUs' linear_before_reset
	layout        int64  // the first layer's layout
}

const rnnBatch, rnnSteps, rnnFeats, rnnH1, rnnH2 = 1, 6, 3, 5, 4

// rnnNet builds x N×T×F (N = 1 fixed: the engine takes batch-1 initial states) → first layer (hidden 5, bias,
// non-zero initial states as initializers; layout 0 after a Transpose,
// or layout 1 on x itself) → Y → Squeeze of the direction axis → second
// layer (hidden 4, no bias, no initial state) → Y_h → Squeeze → Gemm
// (transB) → 2 logits.
func rnnNet(seed uint64, c rnnCase) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	rnd := func(n int, s float64) []float64 { return normals(r, n, s) }
	b := mt.New("rnn", 14).Input("x", rnnBatch, rnnSteps, rnnFeats).Output("logits")
	layer := func(name, kind, in string, feats, h int, bias, states bool, layout int64, outs []string) {
		g := nn.RecurrentGates(kind)
		b.Float(name+".W", []int{1, g * h, feats}, rnd(g*h*feats, 0.6))
		b.Float(name+".R", []int{1, g * h, h}, rnd(g*h*h, 0.6))
		ins := []string{in, name + ".W", name + ".R", "", ""}
		if bias {
			b.Float(name+".B", []int{1, 2 * g * h}, rnd(2*g*h, 0.3))
			ins[3] = name + ".B"
		}
		if states {
			sh := []int{1, rnnBatch, h}
			if layout == 1 {
				sh = []int{rnnBatch, 1, h}
			}
			b.Float(name+".h0", sh, rnd(rnnBatch*h, 0.5))
			ins = append(ins, name+".h0")
			if kind == "LSTM" {
				b.Float(name+".c0", sh, rnd(rnnBatch*h, 0.5))
				ins = append(ins, name+".c0")
			}
		}
		attrs := []*onnx.AttributeProto{mt.Int("hidden_size", int64(h))}
		if kind == "GRU" {
			attrs = append(attrs, mt.Int("linear_before_reset", c.lbr))
		}
		if layout != 0 {
			attrs = append(attrs, mt.Int("layout", layout))
		}
		b.Node(kind, name, ins, outs, attrs...)
	}
	b.Int64("ax0", []int{1}, []int64{0}).Int64("ax1", []int{1}, []int64{1}).Int64("ax2", []int{1}, []int64{2})
	if c.layout == 1 {
		// Y is N×T×D×H: the direction axis 2 goes, then T×N for layer 2.
		layer("l1", c.first, "x", rnnFeats, rnnH1, true, true, 1, []string{"y1"})
		b.Node("Squeeze", "sq1", []string{"y1", "ax2"}, []string{"y1s"})
		b.Node("Transpose", "tr1", []string{"y1s"}, []string{"y1t"}, mt.Ints("perm", 1, 0, 2))
	} else {
		b.Node("Transpose", "tr0", []string{"x"}, []string{"xt"}, mt.Ints("perm", 1, 0, 2))
		layer("l1", c.first, "xt", rnnFeats, rnnH1, true, true, 0, []string{"y1"})
		b.Node("Squeeze", "sq1", []string{"y1", "ax1"}, []string{"y1t"})
	}
	layer("l2", c.second, "y1t", rnnH1, rnnH2, false, false, 0, []string{"", "h2"})
	b.Node("Squeeze", "sq2", []string{"h2", "ax0"}, []string{"h2s"})
	b.Float("fc.w", []int{2, rnnH2}, rnd(2*rnnH2, 0.7)).Float("fc.b", []int{2}, rnd(2, 0.1))
	b.Node("Gemm", "fc", []string{"h2s", "fc.w", "fc.b"}, []string{"logits"}, mt.Int("transB", 1))
	return b.Bytes()
}

var rnnCases = []rnnCase{
	{first: "LSTM", second: "LSTM"},
	{first: "GRU", second: "GRU", lbr: 1},
	{first: "GRU", second: "LSTM", lbr: 0},
	{first: "LSTM", second: "GRU", layout: 1},
	{first: "RNN", second: "GRU", lbr: 0},
}

func (c rnnCase) String() string {
	return fmt.Sprintf("%s-%s/lbr%d/layout%d", c.first, c.second, c.lbr, c.layout)
}

// TestRecurrentChannels: the hidden units of a recurrent layer (LSTM, GRU
// with either linear_before_reset, RNN; layouts 0 and 1; initial states
// as initializers) are a prunable group whose sources are its W and R,
// read by the next layer's W (its input features) or the classifier. For
// random kept sets the written model computes what the original computes
// with the removed units silenced (their rows of W, R and B and their
// initial states zero: they then stay zero), and its parameter and FLOP
// counts — R's quadratic in the units kept — are the cost model's.
func TestRecurrentChannels(t *testing.T) {
	for _, c := range rnnCases {
		t.Run(c.String(), func(t *testing.T) {
			l := loadBytes(t, rnnNet(1, c))
			g1, g2 := groupOf(l.st, "l1/W"), groupOf(l.st, "l2/W")
			if g1 == nil || !g1.Prunable || g1.Channels != rnnH1 || !slices.Equal(g1.Sources, []string{"l1/W", "l1/R"}) || !slices.Equal(g1.Consumers, []string{"l2/W"}) {
				t.Fatalf("first layer's group %+v, want %d prunable units of l1/W and l1/R read by l2/W; unprunable:\n%s", g1, rnnH1, strings.Join(l.st.Unprunable(), "\n"))
			}
			if g2 == nil || !g2.Prunable || g2.Channels != rnnH2 || !slices.Equal(g2.Consumers, []string{"fc"}) {
				t.Fatalf("second layer's group %+v, want %d prunable units read by fc", g2, rnnH2)
			}
			p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
				Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, uint64(len(c.String()))))
			x := make([]float64, rnnBatch*rnnSteps*rnnFeats)
			for i := range x {
				x[i] = r.Float64()*2 - 1
			}
			orig := mustLogits(t, l, x, rnnBatch)
			for trial := 0; trial < 6; trial++ {
				keep := randomKeep(r, l.st)
				if trial == 0 {
					keep[g1.Index], keep[g2.Index] = []int{r.IntN(rnnH1)}, []int{r.IntN(rnnH2)}
				}
				out, err := Apply(l.mp, l.st, keep)
				if err != nil {
					t.Fatal(err)
				}
				pl := loadProto(t, out)
				got := mustLogits(t, pl, x, rnnBatch)
				want := mustLogits(t, loadProto(t, zeroRemoved(t, l.mp, l.st, keep)), x, rnnBatch)
				if d, s := maxDiff(want, got); len(got) != len(want) || d > zeroTol*max(s, 1) {
					t.Errorf("trial %d (keeps %v): pruned logits differ from the silenced original's by %.3g (scale %.3g)", trial, keep, d, s)
				}
				if d, _ := maxDiff(orig, want); trial == 0 && d == 0 {
					t.Error("silencing units changed nothing: the test cannot see a wrong cut")
				}
				checkCounts(t, p, pl.m, keep, "trial "+strconv.Itoa(trial))
				k1 := len(keep[g1.Index])
				if u := pl.m.Unit("l1/R"); u == nil || !slices.Equal(u.WeightShape, []int{1, nn.RecurrentGates(c.first) * k1, k1}) {
					t.Errorf("trial %d: pruned R of the first layer %v, want 1×%d×%d", trial, u.WeightShape, nn.RecurrentGates(c.first)*k1, k1)
				}
			}
		})
	}
}

// TestZooRecurrentApply: in the zoo's tiny LSTM and GRU (torch's export:
// initial states from a ConstantOfShape of a computed shape, Y squeezed,
// transposed and its last step gathered into the classifier) the 12
// hidden units are a prunable group read by the classifier, at every
// committed opset; in torch's bidirectional two-layer export
// (testdata/models/birnn_*_tiny.onnx: Y transposed to [T, N, 2, H] and
// reshaped to [T, N, 2·H]) each layer's 2 × 5 units, per direction, are a
// group of 10 channels (Directions 2) read by the next layer's W or the
// classifier, forward unit k as input k and backward unit k as input
// 5 + k. A random cut (the directions keeping the same number of units,
// each its own) drops the zero initial states (and the shape arithmetic
// that made them) and equals the silenced original at batch sizes 1 and
// 3; its counts are the cost model's. The trained two-layer bidirectional
// LSTM testdata/models/fmnist_bilstm.onnx (2 × 32 units per layer) is
// analysed and cut the same way.
func TestZooRecurrentApply(t *testing.T) {
	type tc struct {
		name      string
		l         func(t *testing.T) *loaded
		consumers []string
		channels  int
		dirs      int
	}
	var cases []tc
	for _, name := range []string{"tiny_lstm", "tiny_gru"} {
		for _, op := range zooOpsets {
			cases = append(cases, tc{name + "/" + op, func(t *testing.T) *loaded { return loadZoo(t, name, op) }, []string{"/fc/Gemm"}, 12, 0})
		}
	}
	for _, kind := range []string{"LSTM", "GRU"} {
		name := "birnn_" + strings.ToLower(kind) + "_tiny"
		cases = append(cases, tc{name, func(t *testing.T) *loaded { return load(t, name) }, []string{"/rnn/" + kind + "_1/W", "/fc/Gemm"}, 10, 2})
	}
	cases = append(cases, tc{"fmnist_bilstm", func(t *testing.T) *loaded { return load(t, "fmnist_bilstm") }, []string{"/lstm/LSTM_1/W", "/fc/Gemm"}, 64, 2})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := c.l(t)
			var consumers []string
			for _, g := range l.st.Groups {
				if g.Prunable {
					if g.Channels != c.channels || g.Directions != c.dirs || len(g.Sources) != 2 || len(g.Consumers) != 1 {
						t.Errorf("hidden group %s: %d channels in %d directions, sources %v, consumers %v; want %d in %d", g.Name, g.Channels, g.Directions, g.Sources, g.Consumers, c.channels, c.dirs)
					}
					consumers = append(consumers, g.Consumers...)
				}
			}
			if !slices.Equal(consumers, c.consumers) {
				t.Fatalf("prunable groups read by %v, want %v; unprunable:\n%s", consumers, c.consumers, strings.Join(l.st.Unprunable(), "\n"))
			}
			p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
				Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(7, uint64(len(c.name))))
			for trial := 0; trial < 3; trial++ {
				keep := randomKeep(r, l.st)
				out, err := Apply(l.mp, l.st, keep)
				if err != nil {
					t.Fatal(err)
				}
				cutAll := true // else an intact layer keeps its initial state
				for i, g := range l.st.Groups {
					cutAll = cutAll && (!g.Prunable || len(keep[i]) < g.Channels)
				}
				for _, n := range out.Graph.Node {
					if n.GetOpType() == "ConstantOfShape" && cutAll {
						t.Errorf("trial %d: ConstantOfShape %s left in the pruned model", trial, n.GetName())
					}
				}
				pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
				for _, n := range []int{1, 3} {
					xs := zooInputs(r, l, n)
					checkSilenced(t, pl, ref, xs, n, zeroTol, fmt.Sprintf("trial %d", trial))
				}
				checkCounts(t, p, pl.m, keep, "trial "+strconv.Itoa(trial))
			}
		})
	}
}

// TestRecurrentImportance: a hidden unit's HAP statistics gather its rows
// of every gate of W (and both halves of B) and R: n_k = gates·(I + H) +
// 2·gates for the first layer of rnnNet.
func TestRecurrentImportance(t *testing.T) {
	l := loadBytes(t, rnnNet(1, rnnCases[0]))
	im := synthImportance(t, l.e, 2)
	for i, u := range l.m.Units {
		want := map[string]int{"l1/W": 4*rnnFeats + 8, "l1/R": 4 * rnnH1, "l2/W": 4 * rnnH1, "l2/R": 4 * rnnH2}[u.Name]
		if want == 0 {
			continue
		}
		cs := im.Units[i]
		if len(cs.Size) != map[bool]int{true: rnnH1, false: rnnH2}[strings.HasPrefix(u.Name, "l1")] {
			t.Fatalf("%s: %d channel statistics", u.Name, len(cs.Size))
		}
		for k, n := range cs.Size {
			if n != want {
				t.Errorf("%s unit %d: block of %d parameters, want %d", u.Name, k, n, want)
			}
		}
	}
}

// TestZooCacheRecurrent analyses the zoo's large LSTM and GRU (two layers
// of 256 hidden units over 50 steps) when $BITPLAN_ZOO_DIR holds them
// (scripts/zoo.py --large --out DIR): both layers are prunable groups of
// 256 units, and a random cut equals the silenced original (float32
// engine) with the cost model's counts.
func TestZooCacheRecurrent(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("BITPLAN_ZOO_DIR not set (make the large zoo with scripts/zoo.py --large --out DIR)")
	}
	for _, name := range []string{"lstm", "gru"} {
		for _, op := range []string{"op13", "op17"} {
			t.Run(name+"/"+op, func(t *testing.T) {
				b, err := os.ReadFile(filepath.Join(dir, name+"_"+op+".onnx"))
				if err != nil {
					t.Fatalf("%v (make the large zoo with /usr/bin/python3 scripts/zoo.py --large --out DIR)", err)
				}
				l := loadBytes(t, b)
				var prunable int
				for _, g := range l.st.Groups {
					if g.Prunable {
						prunable++
						if g.Channels != 256 {
							t.Errorf("group %s: %d channels, want 256", g.Name, g.Channels)
						}
					}
				}
				if prunable != 2 {
					t.Fatalf("%d prunable groups, want 2; unprunable:\n%s", prunable, strings.Join(l.st.Unprunable(), "\n"))
				}
				p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
					Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(9, 9))
				keep := randomKeep(r, l.st)
				out, err := Apply(l.mp, l.st, keep)
				if err != nil {
					t.Fatal(err)
				}
				pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
				checkSilenced(t, pl, ref, zooInputs(r, l, 2), 2, float32Tol, "random cut")
				checkCounts(t, p, pl.m, keep, "random cut")
			})
		}
	}
}

// stateNet is x N×4×3 (dynamic batch) → Transpose → LSTM (hidden 5) whose
// initial_h is ConstantOfShape(fill) of [1, N, 5] computed from x's shape
// (as torch exports it), with peepholes P when peep → Y_h → Squeeze →
// Gemm → 2 logits.
func stateNet(fill float64, peep bool) []byte {
	r := rand.New(rand.NewPCG(2, 2))
	b := mt.New("state", 13).Input("x", -1, 4, 3).Output("logits")
	b.Float("W", []int{1, 20, 3}, normals(r, 60, 0.5)).Float("R", []int{1, 20, 5}, normals(r, 100, 0.5))
	b.Int64("zero", []int{1}, []int64{0}).Int64("dirs", []int{1}, []int64{1}).Int64("hidden", []int{1}, []int64{5})
	b.Node("Shape", "shape", []string{"x"}, []string{"sh"})
	b.Node("Gather", "batch", []string{"sh", "zero"}, []string{"n"})
	b.Node("Concat", "cat", []string{"dirs", "n", "hidden"}, []string{"hshape"}, mt.Int("axis", 0))
	b.Node("ConstantOfShape", "h0", []string{"hshape"}, []string{"h0"}, mt.TensorFloat("value", []int{1}, []float64{fill}))
	b.Node("Transpose", "tr", []string{"x"}, []string{"xt"}, mt.Ints("perm", 1, 0, 2))
	ins := []string{"xt", "W", "R", "", "", "h0"}
	if peep {
		b.Float("P", []int{1, 15}, normals(r, 15, 0.3))
		ins = append(ins, "", "P")
	}
	b.Node("LSTM", "lstm", ins, []string{"", "yh"}, mt.Int("hidden_size", 5))
	b.Node("Squeeze", "sq", []string{"yh", "zero"}, []string{"h"})
	b.Float("fc.w", []int{2, 5}, normals(r, 10, 0.5))
	b.Node("Gemm", "fc", []string{"h", "fc.w"}, []string{"logits"}, mt.Int("transB", 1))
	return b.Bytes()
}

// TestRecurrentDeclined: a zero initial state computed at run time is
// dropped (the layer prunable, its cut equal to the silenced original at
// batch sizes 1 and 3), but a non-zero one, and peepholes, leave the
// hidden units intact with the reason listed.
func TestRecurrentDeclined(t *testing.T) {
	l := loadBytes(t, stateNet(0, false))
	g := groupOf(l.st, "lstm/W")
	if g == nil || !g.Prunable {
		t.Fatalf("zero initial state: group %+v, want prunable", g)
	}
	keep := randomKeep(rand.New(rand.NewPCG(1, 1)), l.st)
	keep[g.Index] = []int{0, 3}
	out, err := Apply(l.mp, l.st, keep)
	if err != nil {
		t.Fatal(err)
	}
	pl, ref := loadProto(t, out), loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
	r := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{1, 3} {
		checkSilenced(t, pl, ref, zooInputs(r, l, n), n, zeroTol, "zero initial state dropped")
	}
	for _, c := range []struct {
		fill float64
		peep bool
		want string
	}{{0.5, false, "is not a zero ConstantOfShape"}, {0, true, "peepholes"}} {
		// The engine runs no peepholes: analyse only.
		mp := &onnx.ModelProto{}
		if err := proto.Unmarshal(stateNet(c.fill, c.peep), mp); err != nil {
			t.Fatal(err)
		}
		_, m, err := model.NormalizeProto(mp)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Analyze(m)
		if err != nil {
			t.Fatal(err)
		}
		g := groupOf(st, "lstm/W")
		listed := strings.Join(st.Unprunable(), "\n")
		if g == nil || g.Prunable || !strings.Contains(listed, c.want) {
			t.Errorf("fill %g, peepholes %v: group %+v, want unprunable, listed with %q:\n%s", c.fill, c.peep, g, c.want, listed)
		}
	}
}
