//go:build ort

package prune

import (
	"math/rand/v2"
	"testing"

	"github.com/bitplan/bitplan/ort"
)

// TestConvTransposeORT: the decoder net with random ConvTranspose output
// channels (and the channels it reads) removed runs in ONNX Runtime, which
// computes what the original with those channels silenced computes there
// and what the engine computes on the pruned model.
func TestConvTransposeORT(t *testing.T) {
	if err := ort.Init(""); err != nil {
		t.Skipf("ONNX Runtime not available (build with -tags ort and set %s): %v", ort.LibraryEnv, err)
	}
	l := loadBytes(t, convTransposeNet(1))
	r := rand.New(rand.NewPCG(9, 9))
	for trial := 0; trial < 3; trial++ {
		keep := randomKeep(r, l.st)
		out, err := Apply(l.mp, l.st, keep)
		if err != nil {
			t.Fatal(err)
		}
		pl := loadProto(t, out)
		for _, n := range []int{1, 3} {
			x := make([]float64, n*2*5*5)
			for i := range x {
				x[i] = r.Float64()*2 - 1
			}
			xs := [][]float64{x}
			got := runORT(t, out, l, xs, n)
			want := runORT(t, zeroRemoved(t, l.mp, l.st, keep), l, xs, n)
			if d, s := maxDiff(want, got); len(got) != len(want) || d > ortTol*max(s, 1) {
				t.Errorf("trial %d, batch %d: ONNX Runtime: pruned logits differ from the silenced original's by %.3g (scale %.3g)", trial, n, d, s)
			}
			eng, err := pl.e.Logits(x, n)
			if err != nil {
				t.Fatal(err)
			}
			if d, s := maxDiff(eng, got); d > ortTol*max(s, 1) {
				t.Errorf("trial %d, batch %d: ONNX Runtime and the engine differ on the pruned model by %.3g (scale %.3g)", trial, n, d, s)
			}
		}
	}
}
