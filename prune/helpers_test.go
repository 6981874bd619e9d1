package prune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// The models are the repository's testdata/models (MNIST, N×1×28×28 input,
// see testdata/models/README.md there), read from their place in the
// module.
func modelPath(name string) string {
	return filepath.Join("..", "testdata", "models", name+".onnx")
}

type loaded struct {
	m  *model.Model
	mp *onnx.ModelProto
	e  *nn.Engine
	st *Structure
}

func load(t testing.TB, name string) *loaded {
	t.Helper()
	b, err := os.ReadFile(modelPath(name))
	if err != nil {
		t.Fatalf("committed model %s missing: %v", name, err)
	}
	return loadBytes(t, b)
}

func loadBytes(t testing.TB, b []byte) *loaded {
	t.Helper()
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		t.Fatal(err)
	}
	// Pruning edits the normalised graph (node positions, initializer
	// names), as the command does.
	mp, m, err := model.NormalizeProto(mp)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Analyze(m)
	if err != nil {
		t.Fatal(err)
	}
	return &loaded{m: m, mp: mp, e: e, st: st}
}

// analyzeProto normalises a copy of mp (normalisation edits the proto) and
// analyses it without building an engine; it returns the normalised proto,
// the one Apply edits.
func analyzeProto(t testing.TB, mp *onnx.ModelProto) (*onnx.ModelProto, *Structure) {
	t.Helper()
	mp, m, err := model.NormalizeProto(proto.Clone(mp).(*onnx.ModelProto))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Analyze(m)
	if err != nil {
		t.Fatal(err)
	}
	return mp, st
}

// refLogits reads the arrays "input" and "logits" of the committed
// reference archive path (a test fails when it is missing).
func refLogits(t testing.TB, path string) (x, logits *data.Array) {
	t.Helper()
	z, err := data.OpenNPZ(path)
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	if x, err = z.Array("input"); err != nil {
		t.Fatal(err)
	}
	if logits, err = z.Array("logits"); err != nil {
		t.Fatal(err)
	}
	return x, logits
}

// channelBlocks returns the ChannelOperator's block names and sizes
// without a dataset.
func channelBlocks(e *nn.Engine) []hessian.Block {
	var bs []hessian.Block
	for _, u := range e.Units() {
		for c, idx := range u.OutputChannelIndices() {
			bs = append(bs, hessian.Block{Name: fmt.Sprintf("%s/%d", u.Name, c), Size: len(idx)})
		}
	}
	return bs
}

// synthImportance returns importances from seeded random channel traces
// (log-uniform over three decades, a few negative).
func synthImportance(t testing.TB, e *nn.Engine, seed uint64) *Importance {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	bs := channelBlocks(e)
	est := make([]hessian.Estimate, len(bs))
	for i, b := range bs {
		v := float64(b.Size) * math.Pow(10, -3*r.Float64())
		if r.IntN(10) == 0 {
			v = -v / 10
		}
		est[i] = hessian.Estimate{Name: b.Name, Size: b.Size, Trace: v, StdErr: 0.1 * math.Abs(v)}
	}
	im, err := FromTraces(e, bs, est)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// unitTotals sums the units' params and MACs of an imported model.
func unitTotals(m *model.Model) (params, macs int64) {
	for _, u := range m.Units {
		params += u.Params
		macs += u.MACs
	}
	return params, macs
}

// costTotals is unitTotals with the MACs of the activation × activation
// MatMuls (Q·Kᵀ, P·V) added, as the cost model's FLOPs count them.
func costTotals(m *model.Model) (params, macs int64) {
	params, macs = unitTotals(m)
	for _, a := range m.ActMatMuls() {
		macs += a.MACs
	}
	return params, macs
}

// keptCounts returns the number of channels every group keeps.
func keptCounts(keep [][]int) []int {
	kc := make([]int, len(keep))
	for g := range keep {
		kc[g] = len(keep[g])
	}
	return kc
}

// checkCounts reports when the written model m's parameter and FLOP counts
// (costTotals) differ from the cost model's exact counts of p for the
// kept channels at 32 bits.
func checkCounts(t *testing.T, p *problem, m *model.Model, keep [][]int, label string) {
	t.Helper()
	v, err := p.exact(keptCounts(keep), p.uniformBits(32))
	if err != nil {
		t.Fatal(err)
	}
	params, macs := costTotals(m)
	if float64(params) != v[0] || float64(2*macs) != v[1] {
		t.Errorf("%s (keeps %v): written model has %d params and %d FLOPs, the cost model says %.0f and %.0f", label, keptCounts(keep), params, 2*macs, v[0], v[1])
	}
}

// checkSilenced reports when the pruned model pl's logits on inputs xs (n
// samples) differ from the silenced original ref's by more than tol
// relative to their scale (at least 1).
func checkSilenced(t *testing.T, pl, ref *loaded, xs [][]float64, n int, tol float64, label string) {
	t.Helper()
	got, err := pl.e.LogitsInputs(xs, n)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.e.LogitsInputs(xs, n)
	if err != nil {
		t.Fatal(err)
	}
	if d, s := maxDiff(want, got); len(got) != len(want) || d > tol*max(s, 1) {
		t.Errorf("%s, batch %d: pruned logits differ from the silenced original's by %.3g (scale %.3g)", label, n, d, s)
	}
}

// checkRandomCuts applies trials random kept sets (randomKeep) to l and
// reports where the pruned model's logits on normal inputs (sample values
// per sample) at batch sizes 1 and 3 differ from those of ref's reference
// (zeroRemoved or zeroRemovedAll) by more than zeroTol, or its counts from
// the cost model's (p). each, when not nil, checks more of every pruned
// model.
func checkRandomCuts(t *testing.T, l *loaded, r *rand.Rand, p *problem, trials, sample int, label string,
	ref func(*testing.T, *onnx.ModelProto, *Structure, [][]int) *onnx.ModelProto, each func(keep [][]int, pl *loaded, label string)) {
	t.Helper()
	for trial := 0; trial < trials; trial++ {
		keep := randomKeep(r, l.st)
		out, err := Apply(l.mp, l.st, keep)
		if err != nil {
			t.Fatal(err)
		}
		pl, want := loadProto(t, out), loadProto(t, ref(t, l.mp, l.st, keep))
		lb := fmt.Sprintf("%strial %d", label, trial)
		for _, n := range []int{1, 3} {
			checkSilenced(t, pl, want, [][]float64{normals(r, n*sample, 1)}, n, zeroTol, lb)
		}
		checkCounts(t, p, pl.m, keep, lb)
		if each != nil {
			each(keep, pl, lb)
		}
	}
}

// normals returns n normal samples of standard deviation s.
func normals(r *rand.Rand, n int, s float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = s * r.NormFloat64()
	}
	return v
}

// prunedMatchesSilenced applies keep to l and requires the pruned model's
// logits on the n samples x to equal, within zeroTol of their scale, those
// of the original with the removed channels silenced (zeroRemoved); what
// names the case in messages. It returns the pruned model.
func prunedMatchesSilenced(t *testing.T, l *loaded, keep [][]int, x []float64, n int, what string) *loaded {
	t.Helper()
	out, err := Apply(l.mp, l.st, keep)
	if err != nil {
		t.Fatal(err)
	}
	pl := loadProto(t, out)
	got, err := pl.e.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	ref := loadProto(t, zeroRemoved(t, l.mp, l.st, keep))
	want, err := ref.e.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	scale, diff := 0.0, 0.0
	for i := range want {
		scale = max(scale, math.Abs(want[i]))
		diff = max(diff, math.Abs(want[i]-got[i]))
	}
	if diff > zeroTol*max(scale, 1) {
		t.Errorf("%s: pruned logits differ from the silenced original by %.3g (scale %.3g)", what, diff, scale)
	}
	return pl
}
