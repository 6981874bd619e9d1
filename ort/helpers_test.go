package ort

// The pure-Go helpers of the binding run in every build, so they are tested
// here without ONNX Runtime (and are not dead code in a default build).

import (
	"math"
	"testing"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/nn"
)

// scoreOnce scores one batch of n samples with l.
func scoreOnce(t *testing.T, l nn.Loss, ds data.Dataset, z []float32, shape []int) eval.Result {
	t.Helper()
	labels := make([]int, ds.Len())
	if err := ds.Read(0, make([]float64, ds.Len()*data.SampleSize(ds)), labels); err != nil {
		t.Fatal(err)
	}
	sc := newScorer(l, ds)
	if err := sc.add(0, ds.Len(), z, shape, labels, nil); err != nil {
		t.Fatal(err)
	}
	return sc.result()
}

func TestScorerClassLabels(t *testing.T) {
	ds := &data.Memory{Inputs: make([]float64, 4), Labels: []int{1, 2, 1, 1}, Shape: []int{1}}
	z := []float32{1, 3, 2, 1, 3, 2, 5, 5, 0, 1000, 0, 0}
	r := scoreOnce(t, nil, ds, z, []int{3})
	ce := math.Log(math.Exp(1)+math.Exp(3)+math.Exp(2)) - 3
	// Sample 0: label 1 is the arg max; 1: label 2 is not; 2: a tie goes
	// to the first maximum (as the engine counts it), not label 1; 3: large
	// logits do not overflow (−log softmax = 1000).
	want := (ce + (ce + 1) + (math.Log(2*math.Exp(5)+1) - 5) + 1000) / 4
	if math.Abs(r.Loss-want) > 1e-9 || r.Correct != 1 || r.N != 4 || r.Accuracy != 0.25 {
		t.Errorf("class labels: %+v; want loss %v, 1 of 4 correct", r, want)
	}
}

// TestScorerPositions scores a hand-made N×C×H×W output (segmentation
// layout) and the same logits as N×H×W×C, against cross-entropy computed
// pixel by pixel: the mean over the labelled pixels, as PyTorch's
// CrossEntropyLoss(ignore_index=-100). The scorer once read each sample's
// C·H·W values as one row of classes (ONNX Runtime's tiny_unet loss 7.0
// against the simulation's 1.12, accuracy 0).
func TestScorerPositions(t *testing.T) {
	const n, c, h, w = 2, 3, 2, 2
	// Pixel (s, y, x) has the arg max class (s+y+2x)%3 with margin 1+x.
	labels := []int{0, 2, 1, -100, 1, 0, 0, 1}
	nchw := make([]float32, n*c*h*w)
	nhwc := make([]float32, n*c*h*w)
	logit := func(s, k, y, x int) float32 {
		v := float32(k)*0.25 - float32(s)*0.5 + float32(y)
		if k == (s+y+2*x)%3 {
			v += 1 + float32(x)
		}
		return v
	}
	want, correct, scored := 0.0, 0, 0
	for s := 0; s < n; s++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				m := 0.0
				for k := 0; k < c; k++ {
					v := logit(s, k, y, x)
					nchw[((s*c+k)*h+y)*w+x] = v
					nhwc[((s*h+y)*w+x)*c+k] = v
					m += math.Exp(float64(v))
				}
				lab := labels[(s*h+y)*w+x]
				if lab == -100 {
					continue
				}
				want += math.Log(m) - float64(logit(s, lab, y, x))
				scored++
				if lab == (s+y+2*x)%3 {
					correct++
				}
			}
		}
	}
	want /= float64(scored)
	if correct == 0 || correct == scored {
		t.Fatalf("the hand-made labels should be partly right: %d of %d", correct, scored)
	}
	ds := &data.Memory{Inputs: make([]float64, n), Labels: make([]int, n), Shape: []int{1}}
	for _, tc := range []struct {
		name  string
		z     []float32
		shape []int
		axis  int
	}{
		{"N×C×H×W", nchw, []int{c, h, w}, 0},
		{"N×H×W×C", nhwc, []int{h, w, c}, -1},
	} {
		r := scoreOnce(t, nn.PositionLabels{Labels: labels, ClassAxis: tc.axis, Ignore: -100}, ds, tc.z, tc.shape)
		if math.Abs(r.Loss-want) > 1e-6 || r.Correct != correct || r.N != n || math.Abs(r.Accuracy-float64(correct)/float64(scored)) > 1e-12 {
			t.Errorf("%s: %+v; want loss %.6f, %d of %d labelled pixels correct", tc.name, r, want, correct, scored)
		}
	}
	// An output shape that changes between batches is an error, not a
	// misread.
	sc := newScorer(nn.PositionLabels{Labels: labels, Ignore: -100}, ds)
	if err := sc.add(0, 1, nchw[:c*h*w], []int{c, h, w}, []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := sc.add(1, 1, nchw[:c*h*w], []int{c, h * w}, []int{0}, nil); err == nil {
		t.Error("a changed output shape was accepted")
	}
}

func TestSummarize(t *testing.T) {
	ts := []time.Duration{5, 1, 4, 2, 3}
	got := summarize(ts, 8)
	want := Latency{Median: 3, Min: 1, Max: 5, Runs: 5, Batch: 8}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
}

func TestModelIOAndKernels(t *testing.T) {
	b := IdentityModel([]int{2, 3, 4})
	in, sample, out, err := modelIO(b)
	if err != nil || in != "X" || out != "Y" || len(sample) != 2 || sample[0] != 3 || sample[1] != 4 {
		t.Fatalf("modelIO = %q %v %q %v; want X [3 4] Y", in, sample, out, err)
	}
	k, err := countKernels(b)
	if err != nil || len(k) != 1 || k["Identity"] != 1 {
		t.Fatalf("countKernels = %v, %v; want map[Identity:1]", k, err)
	}
	if len(k.Quantized()) != 0 {
		t.Errorf("Identity counted as an integer kernel")
	}

	// A domain is kept in the kernel's name; an initializer is not the
	// data input.
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		t.Fatal(err)
	}
	mp.Graph.Node = append(mp.Graph.Node, &onnx.NodeProto{OpType: "QGemm", Domain: "com.microsoft"})
	mp.Graph.Initializer = []*onnx.TensorProto{{Name: "W"}}
	mp.Graph.Input = append([]*onnx.ValueInfoProto{{Name: "W"}}, mp.Graph.Input...)
	b2, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	if in, _, _, err := modelIO(b2); err != nil || in != "X" {
		t.Errorf("modelIO with an initializer input = %q, %v; want X", in, err)
	}
	k, err = countKernels(b2)
	if err != nil || k["com.microsoft:QGemm"] != 1 || k.Quantized()["com.microsoft:QGemm"] != 1 {
		t.Errorf("countKernels = %v, %v; want com.microsoft:QGemm counted and integer", k, err)
	}

	for _, bad := range [][]byte{{0xff, 0xff}, nil} {
		if _, _, _, err := modelIO(bad); err == nil {
			t.Errorf("modelIO(%x) gave no error", bad)
		}
		if _, err := countKernels(bad); err == nil {
			t.Errorf("countKernels(%x) gave no error", bad)
		}
	}
}
