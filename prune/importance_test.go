package prune

import (
	"math"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/sensitivity"
)

// TestImportanceVsExact compares the Hutchinson channel traces of lenet's
// first convolution (6 channels of 25 weights and a bias) with the exact
// traces from hessian.ExactDiagonal on the same per-channel operator, and
// checks the importance formula on the exact traces.
func TestImportanceVsExact(t *testing.T) {
	l := load(t, "lenet")
	ds, err := data.MNIST(data.Train, 16)
	if err != nil {
		t.Fatal(err) // MNIST ships with the GoMNIST module: missing data is a failure
	}
	op, err := l.e.ChannelOperator(ds)
	if err != nil {
		t.Fatal(err)
	}
	const probes = 48
	im, err := Estimate(t.Context(), l.e, ds, &Settings{Probes: probes, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if im.Probes != probes || im.Samples != 16 || im.Method != "hutchinson" {
		t.Errorf("importance metadata %+v", im)
	}
	blocks := op.Blocks()
	conv1 := im.Units[0]
	worst := 0.0
	for c := 0; c < 6; c++ {
		b := blocks[c]
		diag, err := hessian.ExactDiagonal(t.Context(), op, b, 1)
		if err != nil {
			t.Fatal(err)
		}
		exact := 0.0
		for _, v := range diag {
			exact += v
		}
		est, se := conv1.Trace[c], conv1.StdErr[c]
		z := math.Abs(est-exact) / se
		worst = max(worst, z)
		// Seeded: a 4.5σ miss in one of six channels has probability ~4e-5.
		if z > 4.5 {
			t.Errorf("channel %d: Hutchinson %.4g ± %.2g, exact %.4g (%.1fσ)", c, est, se, exact, z)
		}
		// The importance on the exact trace is Tr/n·‖W_c‖².
		w := l.e.Theta()
		sq := 0.0
		for i := b.Offset; i < b.End(); i++ {
			sq += w[op.Perm[i]] * w[op.Perm[i]]
		}
		if sq != conv1.SqNorm[c] || b.Size != conv1.Size[c] {
			t.Errorf("channel %d: norm %.6g size %d, want %.6g and %d", c, conv1.SqNorm[c], conv1.Size[c], sq, b.Size)
		}
		ex := &Importance{Units: []ChannelStats{conv1}}
		ex.Units[0].Trace = append([]float64(nil), conv1.Trace...)
		ex.Units[0].Trace[c] = exact
		got, _ := ex.Channel(0, c)
		if want := math.Abs(exact) / float64(b.Size) * sq; math.Abs(got-want) > 1e-12*math.Abs(want) {
			t.Errorf("channel %d: importance %.6g, want %.6g", c, got, want)
		}
	}
	t.Logf("largest deviation from the exact traces: %.2f standard errors", worst)
}

func TestSignPolicies(t *testing.T) {
	im := &Importance{Units: []ChannelStats{{Trace: []float64{-2, 3}, StdErr: []float64{1, 1}, Size: []int{2, 2}, SqNorm: []float64{4, 4}}}}
	for _, c := range []struct {
		s    Sign
		want float64
	}{{Abs, 4}, {Clamp, 0}, {Signed, -4}} {
		im.Sign = c.s
		if v, se := im.Channel(0, 0); v != c.want || se != 2 {
			t.Errorf("%v: importance %v ± %v, want %v ± 2", c.s, v, se, c.want)
		}
		if s, err := ParseSign(c.s.String()); err != nil || s != c.s {
			t.Errorf("ParseSign(%q) = %v, %v", c.s, s, err)
		}
	}
	if _, err := ParseSign("square"); err == nil {
		t.Error("ParseSign accepted square")
	}
}

// TestDeltaSq checks the per-channel quantization errors against the
// sensitivity package's per-channel quantizer on the whole tensor: with
// one range per channel the tensor's error is the sum of the channels'.
func TestDeltaSq(t *testing.T) {
	l := load(t, "lenet")
	im := synthImportance(t, l.e, 1)
	if err := im.AddDeltaSq([]int{4, 8}); err != nil {
		t.Fatal(err)
	}
	for i, u := range l.e.Units() {
		w, _ := l.e.Weights(u.Name)
		for _, b := range []int{4, 8} {
			want, err := sensitivity.Quantizer{Bits: b}.DeltaSq(w, sensitivity.Layout{Shape: u.WeightShape, Axis: 0})
			if err != nil {
				t.Fatal(err)
			}
			got := 0.0
			for _, d := range im.Units[i].DeltaSq[b] {
				got += d
			}
			if math.Abs(got-want) > 1e-9*want {
				t.Errorf("%s at %d bits: Σ channel Δ² %.9g, tensor Δ² %.9g", u.Name, b, got, want)
			}
		}
	}
}

func TestEstimateErrors(t *testing.T) {
	l := load(t, "lenet")
	ds, err := data.MNIST(data.Train, 4)
	if err != nil {
		t.Fatal(err) // MNIST ships with the GoMNIST module: missing data is a failure
	}
	if _, err := Estimate(t.Context(), l.e, ds, &Settings{Probes: 1}); err == nil {
		t.Error("one probe accepted")
	}
	bad, _ := data.NewMemory(make([]float64, 10), []int{0}, []int{10})
	if _, err := Estimate(t.Context(), l.e, bad, nil); err == nil {
		t.Error("wrong sample shape accepted")
	}
	if _, err := FromTraces(l.e, channelBlocks(l.e)[:3], make([]hessian.Estimate, 3)); err == nil {
		t.Error("missing channel estimates accepted")
	}
}
