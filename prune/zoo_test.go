package prune

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/budget"
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
// are heads (the fused q/k/v projection's groups) and the FFN row groups.
func headGroups(st *Structure) (heads, rows []*Group) {
	for _, g := range st.Groups {
		if !g.Prunable {
			continue
		}
		if strings.Contains(g.Name, "qkv") {
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
						scale, diff := 0.0, 0.0
						for i := range want {
							scale = max(scale, math.Abs(want[i]))
							diff = max(diff, math.Abs(want[i]-got[i]))
						}
						if len(got) != len(want) || diff > zeroTol*max(scale, 1) {
							t.Errorf("trial %d, batch %d: pruned logits differ from the silenced original by %.3g (scale %.3g)", trial, n, diff, scale)
						}
					}
					kc := make([]int, len(keep))
					for g := range keep {
						kc[g] = len(keep[g])
					}
					v, err := p.exact(kc, p.uniformBits(32))
					if err != nil {
						t.Fatal(err)
					}
					params, macs := unitTotals(pl.m)
					if float64(params) != v[0] || float64(2*macs) != v[1] {
						t.Errorf("trial %d: written model has %d params and %d FLOPs, the cost model says %.0f and %.0f", trial, params, 2*macs, v[0], v[1])
					}
				}
			})
		}
	}
}
