package prune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/hessian"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/plan"
)

// birnnCase is one two-layer bidirectional classifier of birnnNet.
type birnnCase struct {
	first, second string // "LSTM", "GRU" or "RNN"
	layout        int64
	// gather takes the second layer's backward final state (Y_h gathered
	// along the directions, torch's h_n[-1]) instead of both.
	gather bool
}

const birnnSteps, birnnFeats, birnnH1, birnnH2 = 5, 3, 4, 3

func (c birnnCase) String() string {
	return fmt.Sprintf("%s-%s/layout%d/gather%v", c.first, c.second, c.layout, c.gather)
}

// birnnNet builds x 1×T×F (Transpose to T×1×F with layout 0) → bidirectional first
// layer (hidden 4, bias, non-zero initial states as initializers) → Y
// (T×2×1×4; Transpose to T×1×2×4 — with layout 1 Y is already 1×T×2×4) →
// Reshape to [0, 0, −1] (the directions merged with the units, as torch
// exports them) → bidirectional second layer (hidden 3, no bias) → Y_h
// (2×1×3 or 1×2×3) → both directions merged into 6 features, or (gather)
// the backward one's 3 → Gemm (transB) → 2 logits.
func birnnNet(seed uint64, c birnnCase) []byte {
	r := rand.New(rand.NewPCG(seed, 13))
	rnd := func(n int, s float64) []float64 { return normals(r, n, s) }
	b := mt.New("birnn", 14).Input("x", 1, birnnSteps, birnnFeats).Output("logits")
	layer := func(name, kind, in string, feats, h int, bias bool, outs []string) {
		g := nn.RecurrentGates(kind)
		b.Float(name+".W", []int{2, g * h, feats}, rnd(2*g*h*feats, 0.6))
		b.Float(name+".R", []int{2, g * h, h}, rnd(2*g*h*h, 0.6))
		ins := []string{in, name + ".W", name + ".R", "", ""}
		if bias {
			b.Float(name+".B", []int{2, 2 * g * h}, rnd(4*g*h, 0.3))
			ins[3] = name + ".B"
			sh := []int{2, 1, h}
			if c.layout == 1 {
				sh = []int{1, 2, h}
			}
			b.Float(name+".h0", sh, rnd(2*h, 0.5))
			ins = append(ins, name+".h0")
			if kind == "LSTM" {
				b.Float(name+".c0", sh, rnd(2*h, 0.5))
				ins = append(ins, name+".c0")
			}
		}
		attrs := []*onnx.AttributeProto{mt.Int("hidden_size", int64(h)), mt.String("direction", "bidirectional")}
		if c.layout != 0 {
			attrs = append(attrs, mt.Int("layout", c.layout))
		}
		b.Node(kind, name, ins, outs, attrs...)
	}
	b.Int64("merge", []int{3}, []int64{0, 0, -1}).Int64("flat", []int{2}, []int64{0, -1}).Int64("one", nil, []int64{1})
	in := "x"
	if c.layout == 0 {
		b.Node("Transpose", "tr0", []string{"x"}, []string{"xt"}, mt.Ints("perm", 1, 0, 2))
		in = "xt"
	}
	layer("l1", c.first, in, birnnFeats, birnnH1, true, []string{"y1"})
	y := "y1"
	if c.layout == 0 {
		b.Node("Transpose", "tr1", []string{"y1"}, []string{"y1t"}, mt.Ints("perm", 0, 2, 1, 3))
		y = "y1t"
	}
	b.Node("Reshape", "merge1", []string{y, "merge"}, []string{"y1m"})
	layer("l2", c.second, "y1m", 2*birnnH1, birnnH2, false, []string{"", "h2"})
	feats := 2 * birnnH2
	dirAxis := int64(0)
	if c.layout == 1 {
		dirAxis = 1
	}
	switch {
	case c.gather:
		b.Node("Gather", "last", []string{"h2", "one"}, []string{"h"}, mt.Int("axis", dirAxis))
		feats = birnnH2
	case c.layout == 0:
		b.Node("Transpose", "tr2", []string{"h2"}, []string{"h2t"}, mt.Ints("perm", 1, 0, 2))
		b.Node("Reshape", "merge2", []string{"h2t", "flat"}, []string{"h"})
	default:
		b.Node("Reshape", "merge2", []string{"h2", "flat"}, []string{"h"})
	}
	b.Float("fc.w", []int{2, feats}, rnd(2*feats, 0.7)).Float("fc.b", []int{2}, rnd(2, 0.1))
	b.Node("Gemm", "fc", []string{"h", "fc.w", "fc.b"}, []string{"logits"}, mt.Int("transB", 1))
	return b.Bytes()
}

var birnnCases = []birnnCase{
	{first: "LSTM", second: "GRU"},
	{first: "GRU", second: "RNN"},
	{first: "RNN", second: "LSTM", layout: 1},
	{first: "LSTM", second: "LSTM", gather: true},
	{first: "GRU", second: "GRU", layout: 1, gather: true},
}

// TestBidirectionalDirections: a bidirectional layer's hidden units are D·H
// channels (Directions 2), forward unit k being channel k and backward
// unit k channel H + k; where the second layer's final state is gathered
// along the directions (only the backward one read) its directions are
// tied instead (H channels), the first layer's not. For random kept sets
// of the same size in each direction but different units the written
// model computes what the original computes with the removed units
// silenced (rows of W, R and B, R's columns and initial states of the
// removed units of each direction zero), its parameter and FLOP counts are
// the cost model's, and R is 2×gates·n×n for n units kept per direction.
// Kept sets of different sizes are refused.
func TestBidirectionalDirections(t *testing.T) {
	for _, c := range birnnCases {
		t.Run(c.String(), func(t *testing.T) {
			l := loadBytes(t, birnnNet(1, c))
			g1, g2 := groupOf(l.st, "l1/W"), groupOf(l.st, "l2/W")
			if g1 == nil || !g1.Prunable || g1.Channels != 2*birnnH1 || g1.Directions != 2 || !slices.Equal(g1.Consumers, []string{"l2/W"}) {
				t.Fatalf("first layer's group %+v, want 2×%d prunable units read by l2/W; unprunable:\n%s", g1, birnnH1, strings.Join(l.st.Unprunable(), "\n"))
			}
			ch2, d2 := 2*birnnH2, 2
			if c.gather {
				ch2, d2 = birnnH2, 0
			}
			if g2 == nil || !g2.Prunable || g2.Channels != ch2 || g2.Directions != d2 || !slices.Equal(g2.Consumers, []string{"fc"}) {
				t.Fatalf("second layer's group %+v, want %d prunable units in %d directions read by fc; unprunable:\n%s", g2, ch2, d2, strings.Join(l.st.Unprunable(), "\n"))
			}
			p, err := prepare(&Request{Structure: l.st, Importance: synthImportance(t, l.e, 1),
				Budgets: []plan.Budget{pct(budget.Params, 1), pct(budget.FLOPs, 1)}})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(5, uint64(len(c.String()))))
			x := make([]float64, birnnSteps*birnnFeats)
			for i := range x {
				x[i] = r.Float64()*2 - 1
			}
			orig := mustLogits(t, l, x, 1)
			differ := 0
			for trial := 0; trial < 6; trial++ {
				keep := randomKeep(r, l.st)
				if trial == 0 { // one unit per direction, different ones
					k := r.IntN(birnnH1)
					keep[g1.Index] = []int{k, birnnH1 + (k+1+r.IntN(birnnH1-1))%birnnH1}
				}
				if ds := perDirection(g1, keep[g1.Index]); !slices.Equal(ds[0], ds[1]) {
					differ++
				}
				out, err := Apply(l.mp, l.st, keep)
				if err != nil {
					t.Fatal(err)
				}
				pl := loadProto(t, out)
				got := mustLogits(t, pl, x, 1)
				want := mustLogits(t, loadProto(t, zeroRemoved(t, l.mp, l.st, keep)), x, 1)
				if d, s := maxDiff(want, got); len(got) != len(want) || d > zeroTol*max(s, 1) {
					t.Errorf("trial %d (keeps %v): pruned logits differ from the silenced original's by %.3g (scale %.3g)", trial, keep, d, s)
				}
				if d, _ := maxDiff(orig, want); trial == 0 && d == 0 {
					t.Error("silencing units changed nothing: the test cannot see a wrong cut")
				}
				checkCounts(t, p, pl.m, keep, "trial "+strconv.Itoa(trial))
				n := len(keep[g1.Index]) / 2
				if u := pl.m.Unit("l1/R"); u == nil || !slices.Equal(u.WeightShape, []int{2, nn.RecurrentGates(c.first) * n, n}) {
					t.Errorf("trial %d: pruned R of the first layer %v, want 2×%d×%d", trial, u.WeightShape, nn.RecurrentGates(c.first)*n, n)
				}
			}
			if differ < 3 {
				t.Errorf("only %d of 6 trials kept different units in the two directions", differ)
			}
			bad := []int{0, 1, birnnH1} // 2 forward, 1 backward
			keep := randomKeep(r, l.st)
			keep[g1.Index] = bad
			if _, err := Apply(l.mp, l.st, keep); err == nil || !strings.Contains(err.Error(), "same number") {
				t.Errorf("kept units %v (2 forward, 1 backward): error %v, want one about the same number per direction", bad, err)
			}
		})
	}
}

// TestBidirectionalHAP: with channel traces that rank the forward units
// 0 < 1 < 2 < 3 and the backward ones the other way round (Tr(H_cc) two
// decades apart from unit to unit, so ‖W_c‖² does not reorder them), a
// plan that keeps n units per direction of the first layer keeps the
// forward units H−n..H−1 and the backward units 0..n−1: each direction
// by its own importances, both of the same number. Its Ω is the sum of
// the removed channels' HAP importances, and the plan's group reports the
// 2 directions.
func TestBidirectionalHAP(t *testing.T) {
	for _, mode := range []Mode{ILP, Threshold, Magnitude} {
		t.Run(string(mode), func(t *testing.T) {
			l := loadBytes(t, birnnNet(2, birnnCases[0]))
			g := groupOf(l.st, "l1/W")
			bs := channelBlocks(l.e)
			est := make([]hessian.Estimate, len(bs))
			for i, b := range bs {
				v := float64(b.Size) * 1e-6
				if unit, ch, ok := strings.Cut(b.Name, "/W/"); ok && unit == "l1" {
					c, _ := strconv.Atoi(ch)
					d, k := c/birnnH1, c%birnnH1
					if d == 1 {
						k = birnnH1 - 1 - k
					}
					v = float64(b.Size) * math.Pow(100, float64(k))
				}
				est[i] = hessian.Estimate{Name: b.Name, Size: b.Size, Trace: v}
			}
			im, err := FromTraces(l.e, bs, est)
			if err != nil {
				t.Fatal(err)
			}
			if mode == Magnitude {
				// L1 ranks by the weights: scale them the same way.
				for i, u := range l.m.Units {
					if u.Name == "l1/W" {
						for c := range im.Units[i].L1 {
							d, k := c/birnnH1, c%birnnH1
							if d == 1 {
								k = birnnH1 - 1 - k
							}
							im.Units[i].L1[c] = math.Pow(100, float64(k))
						}
					}
				}
			}
			pl, err := Solve(t.Context(), &Request{Structure: l.st, Importance: im, Mode: mode, Budgets: []plan.Budget{pct(budget.Params, 0.5)}})
			if err != nil {
				t.Fatal(err)
			}
			if pl.Status == "infeasible" {
				t.Fatalf("plan %s", pl.Status)
			}
			if d := pl.Pruning.Groups[g.Index].Directions; d != 2 {
				t.Errorf("the plan's group %s reports %d directions, want 2", g.Name, d)
			}
			keep := pl.Keep()[g.Index]
			ds := perDirection(g, keep)
			if ds == nil {
				t.Fatalf("kept %v: the directions keep different numbers", keep)
			}
			n := len(ds[0])
			var fwd, bwd []int
			for k := 0; k < n; k++ {
				fwd, bwd = append(fwd, birnnH1-n+k), append(bwd, k)
			}
			if n == 0 || n == birnnH1 || !slices.Equal(ds[0], fwd) || !slices.Equal(ds[1], bwd) {
				t.Errorf("kept forward %v and backward %v, want %v and %v (n between 1 and %d)", ds[0], ds[1], fwd, bwd, birnnH1-1)
			}
			if mode == ILP {
				p, err := prepare(&Request{Structure: l.st, Importance: im, Budgets: []plan.Budget{pct(budget.Params, 0.5)}})
				if err != nil {
					t.Fatal(err)
				}
				h, _ := GroupScores(l.st, im, g, HAP)
				var want float64
				for c := range h {
					if !slices.Contains(keep, c) {
						want += h[c]
					}
				}
				for _, d := range p.decs {
					if d.group != g.Index {
						continue
					}
					for _, ch := range d.choices {
						if ch.keep == len(keep) && math.Abs(ch.omegaPrune-want) > 1e-9*max(want, 1) {
							t.Errorf("choice keeping %d: Ω %.6g, the removed channels' importances sum to %.6g", ch.keep, ch.omegaPrune, want)
						}
						if ch.keep%2 != 0 {
							t.Errorf("choice keeping %d channels of 2 directions", ch.keep)
						}
					}
				}
			}
		})
	}
}
