//go:build ort

package prune

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/ort"
)

// ortTol bounds the float32 ONNX Runtime logits of the pruned model against
// the silenced original's in ONNX Runtime and against the engine's
// (float64), relative to the largest logit (at least 1).
const ortTol = 1e-4

// runORT runs a model with every input of the engine's (float32 image or
// int64 token ids and mask) in ONNX Runtime and returns the first output.
// It talks to the runtime directly: package ort's Session takes one float
// input.
func runORT(t *testing.T, mp *onnx.ModelProto, l *loaded, xs [][]float64, n int) []float64 {
	t.Helper()
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var vals []ortgo.Value
	for i, in := range l.e.Inputs() {
		shape := ortgo.Shape{int64(n)}
		for _, d := range in.Sample {
			shape = append(shape, int64(d))
		}
		var v ortgo.Value
		if in.Integer {
			x := make([]int64, len(xs[i]))
			for j := range x {
				x[j] = int64(xs[i][j])
			}
			v, err = ortgo.NewTensor(shape, x)
		} else {
			x := make([]float32, len(xs[i]))
			for j := range x {
				x[j] = float32(xs[i][j])
			}
			v, err = ortgo.NewTensor(shape, x)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer v.Destroy()
		names = append(names, in.Name)
		vals = append(vals, v)
	}
	out := l.m.Outputs[0].Name
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(b, names, []string{out}, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime rejects the model: %v", err)
	}
	defer s.Destroy()
	outs := []ortgo.Value{nil}
	if err := s.Run(vals, outs); err != nil {
		t.Fatal(err)
	}
	defer outs[0].Destroy()
	z := outs[0].(*ortgo.Tensor[float32]).GetData()
	res := make([]float64, len(z))
	for i, v := range z {
		res[i] = float64(v)
	}
	return res
}

// checkORT reports when ONNX Runtime's logits of the pruned model out (pl
// loaded) on inputs xs (n samples) differ from its logits of the silenced
// original ref, or from the engine's on pl, by more than ortTol relative
// to their scale (at least 1).
func checkORT(t *testing.T, l, pl *loaded, out, ref *onnx.ModelProto, xs [][]float64, n int, label string) {
	t.Helper()
	got := runORT(t, out, l, xs, n)
	want := runORT(t, ref, l, xs, n)
	if d, s := maxDiff(want, got); len(got) != len(want) || d > ortTol*max(s, 1) {
		t.Errorf("%s, batch %d: ONNX Runtime: pruned logits differ from the silenced original's by %.3g (scale %.3g)", label, n, d, s)
	}
	eng, err := pl.e.LogitsInputs(xs, n)
	if err != nil {
		t.Fatal(err)
	}
	if d, s := maxDiff(eng, got); d > ortTol*max(s, 1) {
		t.Errorf("%s, batch %d: ONNX Runtime and the engine differ on the pruned model by %.3g (scale %.3g)", label, n, d, s)
	}
}

// TestZooHeadsORT: the zoo transformers (and mha_tiny, torch's
// MultiheadAttention export) with random heads and rows
// removed run in ONNX Runtime (constant Slice bounds and Reshape shapes,
// the shape arithmetic gone) at batch sizes 1 and 3, and compute what
// the original with those heads and rows silenced computes there, and what
// the engine computes on the pruned model.
func TestZooHeadsORT(t *testing.T) {
	initORT(t)
	for _, name := range []string{"tiny_vit", "tiny_bert", "mha_tiny"} {
		for _, op := range zooOpsets {
			if name == "mha_tiny" && op != "op13" {
				continue
			}
			t.Run(name+"/"+op, func(t *testing.T) {
				var l *loaded
				if name == "mha_tiny" { // testdata/models: torch's MultiheadAttention
					l = load(t, name)
				} else {
					l = loadZoo(t, name, op)
				}
				r := rand.New(rand.NewPCG(7, uint64(len(name)+len(op))))
				heads, _ := headGroups(l.st)
				for trial := 0; trial < 2; trial++ {
					keep := randomKeep(r, l.st)
					for _, g := range heads {
						if trial == 0 {
							keep[g.Index] = []int{r.IntN(g.Channels)}
						}
					}
					out, err := Apply(l.mp, l.st, keep)
					if err != nil {
						t.Fatal(err)
					}
					silenced := zeroRemoved(t, l.mp, l.st, keep)
					pl := loadProto(t, out)
					for _, n := range []int{1, 3} {
						checkORT(t, l, pl, out, silenced, zooInputs(r, l, n), n, fmt.Sprintf("trial %d", trial))
					}
				}
			})
		}
	}
}

// initORT loads ONNX Runtime or skips the test, saying how to install it
// (ort.Init's error carries ort.Install).
func initORT(t *testing.T) {
	t.Helper()
	if err := ort.Init(""); err != nil {
		t.Skipf("ONNX Runtime not available (set %s): %v", ort.LibraryEnv, err)
	}
}
