package nn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
)

// liveCase is a model with a few samples for the recycling tests.
type liveCase struct {
	name string
	m    *model.Model
	ds   data.Dataset
	loss Loss
}

// liveCases returns the testdata models (random inputs, class labels)
// and the zoo's tiny models at opsets 13 and 17 (their committed inputs,
// class or per-position labels): convolutions, BatchNorm, pooling,
// attention, LayerNorm (decomposed at 13, a composite at 17), LSTM, GRU,
// ConvTranspose, Resize.
func liveCases(t *testing.T) []liveCase {
	t.Helper()
	var cases []liveCase
	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"lenet", "mlp", "rescnn", "fashion_cnn", "fmnist_mbv2", "fmnist_vit"} {
		m, err := model.Load(filepath.Join("..", "testdata", "models", name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		probe, err := New(m, &Options{Precision: Float64})
		if err != nil {
			t.Fatal(err)
		}
		const n = 3
		size := 1
		for _, d := range probe.SampleShape() {
			size *= d
		}
		x := make([]float64, n*size)
		for i := range x {
			x[i] = r.Float64()
		}
		y := make([]int, n)
		for i := range y {
			y[i] = r.IntN(probe.Classes())
		}
		ds, err := data.NewMemory(x, y, probe.SampleShape())
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, liveCase{name, m, ds, ClassLabels{}})
		if name == "lenet" {
			cases = append(cases, liveCase{name + "/kl", m, ds, KL{}})
		}
	}
	for _, name := range []string{"tiny_bert", "tiny_vit", "tiny_resnet", "tiny_unet", "tiny_quartznet", "tiny_lstm", "tiny_gru"} {
		for _, opset := range []int{13, 17} {
			dir := filepath.Join("..", "testdata", "zoo", name)
			m, err := model.Load(filepath.Join(dir, fmt.Sprintf("op%d.onnx", opset)))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			var arrays []*data.Array
			for _, in := range m.Inputs {
				names = append(names, in.Name)
				arrays = append(arrays, readNPY(t, filepath.Join(dir, in.Name+".npy")))
			}
			n := arrays[0].Shape[0]
			loss := lossFor(m)
			probe, err := New(m, &Options{Precision: Float64, Loss: loss})
			if err != nil {
				t.Fatal(err)
			}
			y := make([]int, n)
			for i := range y {
				y[i] = r.IntN(probe.Classes())
			}
			if pl, ok := loss.(PositionLabels); ok {
				out := probe.OutputShape()
				per := 1
				for _, d := range out {
					per *= d
				}
				pl.Labels = make([]int, n*per/out[0])
				for i := range pl.Labels {
					pl.Labels[i] = r.IntN(out[0])
					if i%5 == 0 {
						pl.Labels[i] = pl.Ignore
					}
				}
				loss = pl
				clear(y)
			}
			ds, err := data.NewArrays(names, arrays, y)
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, liveCase{fmt.Sprintf("%s/op%d", name, opset), m, ds, loss})
		}
	}
	return cases
}

// liveResults are everything a pass computes, for bit-exact comparison.
type liveResults struct {
	eval, grad Eval
	logits, g  []float64
	hv, block  [][]float64
	// input holds the products with respect to the middle unit's input
	// (InputHVP), chunk after chunk.
	input [][]float64
}

// liveRun computes an evaluation (with an input quantizer on the middle
// unit), a gradient, two products, two products restricted to the middle
// unit's block (a pass starting late), the same four one direction at a
// time, two products with respect to that unit's input (InputHVP) and
// logits, with buffer check ck.
func liveRun(t *testing.T, c liveCase, prec Precision, ck bufferCheck) liveResults {
	t.Helper()
	e, err := New(c.m, &Options{Precision: prec, BatchSize: 2, Workers: 1, Loss: c.loss, check: ck})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var res liveResults
	mid := e.units[len(e.units)/2]
	if mid.HasInput {
		if err := e.SetInputQuantizer(mid.Name, func(x []float64) {
			for i, v := range x {
				x[i] = math.Round(v*16) / 16
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if res.eval, err = e.Evaluate(ctx, c.ds); err != nil {
		t.Fatal(err)
	}
	if mid.HasInput {
		if err := e.SetInputQuantizer(mid.Name, nil); err != nil {
			t.Fatal(err)
		}
	}
	res.g = make([]float64, e.Dim())
	if res.grad, err = e.Gradient(ctx, c.ds, res.g); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	vs, block := make([][]float64, 2), make([][]float64, 2)
	res.hv, res.block = make([][]float64, 2), make([][]float64, 2)
	for j := range vs {
		vs[j], res.hv[j] = make([]float64, e.Dim()), make([]float64, e.Dim())
		block[j], res.block[j] = make([]float64, mid.Size), make([]float64, mid.Size)
		for i := range vs[j] {
			vs[j][i] = float64(2*r.IntN(2) - 1)
		}
		for i := range block[j] {
			block[j][i] = r.NormFloat64()
		}
	}
	if err := e.HVP(ctx, c.ds, res.hv, vs); err != nil {
		t.Fatal(err)
	}
	lo, hi := mid.Offset, mid.Offset+mid.Size
	if _, err := e.pass(ctx, c.ds, modeHVP, block, nil, res.block, lo, lo, hi); err != nil {
		t.Fatal(err)
	}
	// One direction at a time (modeHVP1: backward fused into R-backward).
	for j := range vs {
		hv, bl := make([]float64, e.Dim()), make([]float64, mid.Size)
		if err := e.HVP(ctx, c.ds, [][]float64{hv}, vs[j:j+1]); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pass(ctx, c.ds, modeHVP, block[j:j+1], nil, [][]float64{bl}, lo, lo, hi); err != nil {
			t.Fatal(err)
		}
		res.hv, res.block = append(res.hv, hv), append(res.block, bl)
	}
	if mid.HasInput {
		fill := func(ch *InputChunk) {
			for j := range ch.V {
				for q := range ch.V[j][0] {
					ch.V[j][0][q] = float64((q+j)%3 - 1)
				}
			}
		}
		take := func(ch *InputChunk) error {
			for j := range ch.HV {
				res.input = append(res.input, append([]float64(nil), ch.HV[j][0]...))
			}
			return nil
		}
		if err := e.InputHVP(ctx, c.ds, []string{mid.Name}, []int{-1, 0}, fill, take); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.inputs) == 1 {
		if m, ok := c.ds.(*data.Memory); ok {
			size := len(m.Inputs) / m.Len()
			if res.logits, err = e.Logits(m.Inputs[:2*size], 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	return res
}

// same reports the first difference between two results ("" when they
// are equal bit for bit and free of NaN).
func (a liveResults) same(b liveResults) string {
	if a.eval != b.eval || a.grad != b.grad {
		return fmt.Sprintf("evaluations %+v, %+v and %+v, %+v", a.eval, a.grad, b.eval, b.grad)
	}
	vecs := func(name string, x, y []float64) string {
		if len(x) != len(y) {
			return fmt.Sprintf("%s: lengths %d and %d", name, len(x), len(y))
		}
		for i := range x {
			if x[i] != y[i] || math.IsNaN(x[i]) {
				return fmt.Sprintf("%s[%d]: %v and %v", name, i, x[i], y[i])
			}
		}
		return ""
	}
	if d := vecs("logits", a.logits, b.logits); d != "" {
		return d
	}
	if d := vecs("gradient", a.g, b.g); d != "" {
		return d
	}
	if len(a.input) != len(b.input) {
		return fmt.Sprintf("%d and %d input products", len(a.input), len(b.input))
	}
	for j := range a.input {
		if d := vecs(fmt.Sprintf("input H·v%d", j), a.input[j], b.input[j]); d != "" {
			return d
		}
	}
	for j := range a.hv {
		if d := vecs(fmt.Sprintf("H·v%d", j), a.hv[j], b.hv[j]); d != "" {
			return d
		}
		if d := vecs(fmt.Sprintf("block H·v%d", j), a.block[j], b.block[j]); d != "" {
			return d
		}
	}
	return ""
}

// TestRecyclingKeepsResults checks that recycling buffers changes no
// result: on every model, in float64 and float32, the evaluation, the
// gradient, products (full, restricted to one block, and with respect to
// a unit's input) and logits with
// recycled buffers, and with recycled buffers poisoned by NaN and never
// reused (so a buffer read after the schedule gave it back shows), equal
// bit for bit those of keeping every buffer.
func TestRecyclingKeepsResults(t *testing.T) {
	for _, c := range liveCases(t) {
		for _, prec := range []Precision{Float64, Float32} {
			keep := liveRun(t, c, prec, checkKeep)
			if d := keep.same(liveRun(t, c, prec, checkPoison)); d != "" {
				t.Errorf("%s/%v: with poisoned recycled buffers: %s", c.name, prec, d)
			}
			if d := keep.same(liveRun(t, c, prec, checkNone)); d != "" {
				t.Errorf("%s/%v: with recycled buffers: %s", c.name, prec, d)
			}
		}
	}
}

// TestRecyclingCatchesEarlyGive shows that the poisoned run catches a
// buffer given back too early: with a schedule that gives every value
// back right after its producer's forward step, the gradient differs from
// the reference.
func TestRecyclingCatchesEarlyGive(t *testing.T) {
	c := liveCases(t)[0] // lenet
	e, err := New(c.m, &Options{Precision: Float64, BatchSize: 2, Workers: 1, check: checkPoison})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.plan(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range []mode{modeGrad} {
		sc := p.sched[md]
		moved := 0
		for tt := range sc.give {
			kept := sc.give[tt][:0]
			for _, b := range sc.give[tt] {
				if b.kind == bufVal && b.slot != p.out && tt > p.tValidate() {
					// Give it back after its first event instead.
					for f := range sc.take {
						for _, x := range sc.take[f] {
							if x == b {
								sc.give[f] = append(sc.give[f], b)
								moved++
							}
						}
					}
					continue
				}
				kept = append(kept, b)
			}
			sc.give[tt] = kept
		}
		if moved == 0 {
			t.Fatal("no value is read by the backward pass")
		}
	}
	g := make([]float64, e.Dim())
	if _, err := e.Gradient(context.Background(), c.ds, g); err != nil {
		t.Fatal(err)
	}
	ref := liveRun(t, c, Float64, checkKeep)
	for i := range g {
		if g[i] != ref.g[i] {
			return
		}
	}
	t.Error("giving values back before the backward pass read them changed no gradient component")
}

// TestPoolHoldsPredictedBytes checks the memory plan against the pool: on
// every model, after an evaluation, a gradient, a product with one
// direction and products with two on one chunk,
// the bytes the work's pool made equal the plan's prediction for the modes
// run so far (the most buffers of each length live at one event), and the
// recycled buffers take less memory than keeping every buffer did.
func TestPoolHoldsPredictedBytes(t *testing.T) {
	ctx := context.Background()
	for _, c := range liveCases(t) {
		for _, prec := range []Precision{Float64, Float32} {
			n := c.ds.Len()
			e, err := New(c.m, &Options{Precision: prec, BatchSize: n, Workers: 1, Loss: c.loss})
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.plan(n)
			if err != nil {
				t.Fatal(err)
			}
			elem := int64(8)
			if e.Precision() == Float32 {
				elem = 4
			}
			held := func() int64 {
				p.mu.Lock()
				defer p.mu.Unlock()
				if len(p.free) != 1 {
					t.Fatalf("%s: %d works, want 1", c.name, len(p.free))
				}
				switch w := p.free[0].(type) {
				case *work[float64]:
					return w.pool.held
				case *work[float32]:
					return w.pool.held
				}
				return -1
			}
			if _, err := e.Evaluate(ctx, c.ds); err != nil {
				t.Fatal(err)
			}
			if got, want := held(), p.poolPeak(elem, modeEval); got != want {
				t.Errorf("%s/%v: after an evaluation the pool holds %d bytes, the plan predicts %d", c.name, prec, got, want)
			}
			g := make([]float64, e.Dim())
			if _, err := e.Gradient(ctx, c.ds, g); err != nil {
				t.Fatal(err)
			}
			if got, want := held(), p.poolPeak(elem, modeEval, modeGrad); got != want {
				t.Errorf("%s/%v: after a gradient the pool holds %d bytes, the plan predicts %d", c.name, prec, got, want)
			}
			v := make([]float64, e.Dim())
			for i := range v {
				v[i] = float64(i%3) - 1
			}
			if err := e.HVP(ctx, c.ds, [][]float64{g}, [][]float64{v}); err != nil {
				t.Fatal(err)
			}
			if got, want := held(), p.poolPeak(elem, modeEval, modeGrad, modeHVP1); got != want {
				t.Errorf("%s/%v: after a product the pool holds %d bytes, the plan predicts %d", c.name, prec, got, want)
			}
			if err := e.HVP(ctx, c.ds, [][]float64{g, make([]float64, e.Dim())}, [][]float64{v, v}); err != nil {
				t.Fatal(err)
			}
			if got, want := held(), p.poolBytes; got != want {
				t.Errorf("%s/%v: after products the pool holds %d bytes, the plan predicts %d", c.name, prec, got, want)
			}
			if all := keptBytes(p, elem); p.poolBytes >= all {
				t.Errorf("%s/%v: recycled buffers take %d bytes, keeping all took %d", c.name, prec, p.poolBytes, all)
			} else if prec == Float64 {
				t.Logf("%s: buffers %.1f kB recycled, %.1f kB kept (%.2f×)", c.name, float64(p.poolBytes)/1e3, float64(all)/1e3, float64(all)/float64(p.poolBytes))
			}
		}
	}
}

// keptBytes is what keeping every buffer takes: a value per activation,
// and R-value, adjoint and R-adjoint where θ flows.
func keptBytes(p *plan, elem int64) int64 {
	var b int64
	for _, s := range p.slots {
		if s.kind == kAct && s.alias < 0 {
			n := int64(s.size)
			if s.theta {
				n *= 4
			}
			b += elem * n
		}
	}
	return b
}
