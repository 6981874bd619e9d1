//go:build ort

package prune

import (
	"math/rand/v2"
	"testing"
)

// TestRecurrentORT: the recurrent classifiers of rnnNet and birnnNet, the
// zoo's tiny LSTM and GRU (whose zero initial states the pruned model
// drops) and torch's bidirectional exports (testdata/models/birnn_*_tiny.onnx,
// the trained fmnist_bilstm.onnx)
// with random hidden units removed (in a bidirectional layer the same
// number per direction, different units) run in ONNX Runtime, which computes what the
// original with those units silenced computes there (layout 0 only: ONNX
// Runtime rejects layout 1) and what the engine
// computes on the pruned model.
func TestRecurrentORT(t *testing.T) {
	initORT(t)
	var models []*loaded
	nets := 0
	for _, c := range rnnCases {
		if c.layout == 0 { // ONNX Runtime 1.24 runs no layout-1 recurrent node
			models = append(models, loadBytes(t, rnnNet(1, c)))
			nets++
		}
	}
	for _, c := range birnnCases {
		if c.layout == 0 {
			models = append(models, loadBytes(t, birnnNet(1, c)))
			nets++
		}
	}
	for _, name := range []string{"tiny_lstm", "tiny_gru"} {
		for _, op := range zooOpsets {
			models = append(models, loadZoo(t, name, op))
		}
	}
	models = append(models, load(t, "birnn_lstm_tiny"), load(t, "birnn_gru_tiny"), load(t, "fmnist_bilstm"))
	r := rand.New(rand.NewPCG(4, 4))
	for mi, l := range models {
		batches := []int{1, 3}
		if mi < nets {
			batches = []int{1} // batch-1 initial states
		}
		for trial := 0; trial < 2; trial++ {
			keep := randomKeep(r, l.st)
			out, err := Apply(l.mp, l.st, keep)
			if err != nil {
				t.Fatal(err)
			}
			pl := loadProto(t, out)
			for _, n := range batches {
				xs := zooInputs(r, l, n)
				got := runORT(t, out, l, xs, n)
				want := runORT(t, zeroRemoved(t, l.mp, l.st, keep), l, xs, n)
				if d, s := maxDiff(want, got); len(got) != len(want) || d > ortTol*max(s, 1) {
					t.Errorf("model %d, trial %d, batch %d: ONNX Runtime: pruned logits differ from the silenced original's by %.3g (scale %.3g)", mi, trial, n, d, s)
				}
				eng, err := pl.e.LogitsInputs(xs, n)
				if err != nil {
					t.Fatal(err)
				}
				if d, s := maxDiff(eng, got); d > ortTol*max(s, 1) {
					t.Errorf("model %d, trial %d, batch %d: ONNX Runtime and the engine differ on the pruned model by %.3g (scale %.3g)", mi, trial, n, d, s)
				}
			}
		}
	}
}
