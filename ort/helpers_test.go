package ort

// The pure-Go helpers of the binding run in every build, so they are tested
// here without ONNX Runtime (and are not dead code in a default build).

import (
	"math"
	"testing"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

func TestCrossEntropy(t *testing.T) {
	z := []float32{1, 3, 2}
	l, ok := crossEntropy(z, 1)
	want := math.Log(math.Exp(1)+math.Exp(3)+math.Exp(2)) - 3
	if math.Abs(l-want) > 1e-12 || !ok {
		t.Errorf("crossEntropy(%v, 1) = %v, %v; want %v, true", z, l, ok, want)
	}
	if _, ok := crossEntropy(z, 2); ok {
		t.Errorf("label 2 counted correct, the arg max is 1")
	}
	// Ties go to the first maximum, as the Go engine counts them.
	if _, ok := crossEntropy([]float32{5, 5}, 1); ok {
		t.Errorf("a tie counted for the second class")
	}
	// Large logits do not overflow.
	if l, _ := crossEntropy([]float32{1000, 0}, 1); math.Abs(l-1000) > 1e-9 {
		t.Errorf("crossEntropy of large logits = %v, want 1000", l)
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
