package op

import (
	"fmt"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
)

// rnnConfig is one recurrent node to test or time.
type rnnConfig struct {
	op                           string // LSTM, GRU or RNN
	seq, batch, in, hidden       int
	dir                          string
	layout                       int64
	lbr                          int64 // GRU's linear_before_reset
	bias, h0, c0                 bool  // optional inputs present
	constStates                  bool  // h0 and c0 constant zeros (torch's export)
	noXGrad, noStateRV, noYAdj   bool  // nil input adjoint / R-values, nil Y adjoint
	noYhAdj, noYcOut, noRVParams bool
	noRV, noAdj                  bool // no input R-values at all; output R-adjoints without adjoints
}

func (c rnnConfig) String() string {
	return fmt.Sprintf("%s/T%d/N%d/I%d/H%d/%s/layout%d/lbr%d/b%v/h%v/c%v", c.op, c.seq, c.batch, c.in, c.hidden,
		c.dir, c.layout, c.lbr, c.bias, c.h0, c.c0)
}

// rnnRig is one recurrent node as a plan of its own: inputs X, W, R, B,
// sequence_lens (absent), initial_h, initial_c, then outputs Y, Y_h, Y_c,
// with random values, R-values, adjoints and R-adjoints.
type rnnRig struct {
	cfg   rnnConfig
	b     *Build
	slots *testSlots
	// per slot: values, input R-values, output adjoints and R-adjoints.
	val, rv, adj, radj [][]float64
	ins, outs          []int // present input and output slots
	grads              []int // input slots with an adjoint (differentiable, not constant)
}

func newRNNRig(c rnnConfig, seed uint64) *rnnRig {
	rng := rand.New(rand.NewPCG(seed, 7))
	gates := rnnGates(c.op)
	dirs := 1
	if c.dir == "bidirectional" {
		dirs = 2
	}
	x := []int{c.seq, c.batch, c.in}
	y := []int{c.seq, dirs, c.batch, c.hidden}
	st := []int{dirs, c.batch, c.hidden}
	if c.layout == 1 {
		x = []int{c.batch, c.seq, c.in}
		y = []int{c.batch, c.seq, dirs, c.hidden}
		st = []int{c.batch, dirs, c.hidden}
	}
	nd := &Node{Op: c.op, Name: "rnn", Attrs: map[string]*Attr{
		"hidden_size": {Name: "hidden_size", Type: AttrInt, Int: int64(c.hidden)},
		"direction":   {Name: "direction", Type: AttrString, String: c.dir},
	}}
	if c.layout != 0 {
		nd.Attrs["layout"] = &Attr{Name: "layout", Type: AttrInt, Int: c.layout}
	}
	if c.op == "GRU" {
		nd.Attrs["linear_before_reset"] = &Attr{Name: "linear_before_reset", Type: AttrInt, Int: c.lbr}
	}
	r := &rnnRig{cfg: c, slots: &testSlots{}}
	r.b = &Build{Node: nd, Opset: 14, Slots: r.slots}
	add := func(shape []int, isConst bool) int {
		s := len(r.slots.shapes)
		r.slots.shapes = append(r.slots.shapes, shape)
		r.slots.names = append(r.slots.names, fmt.Sprintf("s%d", s))
		v := make([]float64, Numel(shape))
		if !isConst {
			for i := range v {
				v[i] = rng.Float64()*2 - 1
			}
		}
		var cv []float64
		if isConst {
			cv = v
		}
		r.slots.consts = append(r.slots.consts, cv)
		r.val = append(r.val, v)
		return s
	}
	input := func(shape []int, present, isConst bool) {
		if !present {
			r.b.In = append(r.b.In, -1)
			return
		}
		s := add(shape, isConst)
		r.b.In = append(r.b.In, s)
		r.ins = append(r.ins, s)
		if !isConst {
			r.grads = append(r.grads, s)
		}
	}
	input(x, true, false)
	input([]int{dirs, gates * c.hidden, c.in}, true, false)
	input([]int{dirs, gates * c.hidden, c.hidden}, true, false)
	input([]int{dirs, 2 * gates * c.hidden}, c.bias, false)
	input(nil, false, false)
	input(st, c.h0, c.constStates)
	if c.op == "LSTM" {
		input(st, c.c0, c.constStates)
	}
	nout := 2
	if c.op == "LSTM" && !c.noYcOut {
		nout = 3
	}
	for j := 0; j < nout; j++ {
		shape := st
		if j == 0 {
			shape = y
		}
		s := add(shape, false)
		r.b.Out = append(r.b.Out, s)
		r.outs = append(r.outs, s)
	}
	n := len(r.slots.shapes)
	r.rv, r.adj, r.radj = make([][]float64, n), make([][]float64, n), make([][]float64, n)
	randn := func(size int) []float64 {
		v := make([]float64, size)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	for k, s := range r.grads {
		if c.noRV || (c.noStateRV && k >= 4) || (c.noRVParams && (k == 1 || k == 2)) {
			continue
		}
		r.rv[s] = randn(len(r.val[s]))
	}
	for j, s := range r.outs {
		if (j == 0 && c.noYAdj) || (j == 1 && c.noYhAdj) {
			continue
		}
		r.adj[s], r.radj[s] = randn(len(r.val[s])), randn(len(r.val[s]))
		if c.noAdj {
			r.adj[s] = nil
		}
	}
	return r
}

// rnnResult is what the four passes leave: the outputs' values and
// R-values, the inputs' adjoints and R-adjoints.
type rnnResult struct {
	y, ry, gx, rgx [][]float64
}

// work returns a fresh Work with the rig's values, input R-values, output
// adjoints and R-adjoints, and adjoint buffers for the differentiable
// inputs (none for X with noXGrad).
func rnnWork[T Real](r *rnnRig, k Kernel[T]) *Work[T] {
	n := len(r.slots.shapes)
	w := &Work[T]{Val: make([][]T, n), RV: make([][]T, n), Adj: make([][]T, n), RAdj: make([][]T, n), State: []any{nil}}
	if st, ok := k.(Stateful); ok {
		w.State[0] = st.NewState()
	}
	for _, s := range r.ins {
		w.Val[s] = Convert[T](r.val[s])
		if v := r.rv[s]; v != nil {
			w.RV[s] = Convert[T](v)
		}
	}
	for k, s := range r.grads {
		if k == 0 && r.cfg.noXGrad {
			continue
		}
		w.Adj[s], w.RAdj[s] = make([]T, len(r.val[s])), make([]T, len(r.val[s]))
	}
	for _, s := range r.outs {
		w.Val[s], w.RV[s] = make([]T, len(r.val[s])), make([]T, len(r.val[s]))
		if a := r.adj[s]; a != nil {
			w.Adj[s] = Convert[T](a)
		}
		if a := r.radj[s]; a != nil {
			w.RAdj[s] = Convert[T](a)
		}
	}
	return w
}

// hvp runs forward, backward, R-forward and R-backward (the engine's
// order for a Hessian-vector product) and collects the results.
func (r *rnnRig) hvp(k Kernel[float64]) rnnResult {
	w := rnnWork(r, k)
	k.Forward(w)
	k.Backward(w)
	k.RForward(w)
	k.RBackward(w)
	var res rnnResult
	for _, s := range r.outs {
		res.y, res.ry = append(res.y, clone64(w.Val[s])), append(res.ry, clone64(w.RV[s]))
	}
	for _, s := range r.grads {
		res.gx, res.rgx = append(res.gx, clone64(w.Adj[s])), append(res.rgx, clone64(w.RAdj[s]))
	}
	return res
}

func clone64(v []float64) []float64 { return append([]float64(nil), v...) }

// cpuTime returns the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRNNHVP times one Hessian-vector product (forward, backward,
// R-forward and R-backward, float64) through an LSTM and a GRU of the
// large zoo's geometry (scripts/zoo.py: hidden 256, 50 steps, the second
// layer's 256 inputs) at 2 samples (bitplan trace --samples 2) and at the
// engine's default chunk of 32, by the kernel and by the unrolled
// reference it replaced.
func BenchmarkRNNHVP(b *testing.B) {
	for _, typ := range []string{"LSTM", "GRU"} {
		for _, n := range []int{2, 32} {
			c := rnnConfig{op: typ, seq: 50, batch: n, in: 256, hidden: 256, dir: "forward", lbr: 1, bias: true, h0: true, c0: true, constStates: true}
			for _, impl := range []struct {
				name string
				exec *Exec
			}{{"kernel", Lookup(typ, 14).Exec}, {"unrolled", refRNN}} {
				b.Run(fmt.Sprintf("%s/N%d/%s", typ, n, impl.name), func(b *testing.B) {
					r := newRNNRig(c, 1)
					k, err := NewKernel[float64](impl.exec, r.b)
					if err != nil {
						b.Fatal(err)
					}
					w := rnnWork(r, k)
					cpu0 := cpuTime()
					for b.Loop() {
						k.Forward(w)
						k.Backward(w)
						k.RForward(w)
						k.RBackward(w)
					}
					// CPU time says more than wall time on a shared machine.
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
					if math.IsNaN(float64(w.RAdj[r.grads[1]][0])) {
						b.Fatal("NaN")
					}
				})
			}
		}
	}
}

// rnnTol bounds the difference between the kernel and the unrolled
// reference, relative to the largest entry of each buffer: the two sum
// the same products in other orders (one GEMM over all steps against one
// per step), so only rounding separates them.
const rnnTol = 1e-12

// rnnConfigs are the small nodes TestRNNMatchesUnrolled runs: every cell,
// direction, layout, optional input and missing buffer.
func rnnConfigs() []rnnConfig {
	var cs []rnnConfig
	base := rnnConfig{seq: 4, batch: 3, in: 5, hidden: 3, dir: "forward", bias: true, h0: true, c0: true}
	for _, cell := range []struct {
		op  string
		lbr int64
	}{{"LSTM", 0}, {"GRU", 1}, {"GRU", 0}, {"RNN", 0}} {
		for _, dir := range []string{"forward", "reverse", "bidirectional"} {
			for _, layout := range []int64{0, 1} {
				c := base
				c.op, c.lbr, c.dir, c.layout = cell.op, cell.lbr, dir, layout
				cs = append(cs, c)
			}
		}
		c := base
		c.op, c.lbr = cell.op, cell.lbr
		for _, f := range []func(*rnnConfig){
			func(c *rnnConfig) { c.bias, c.h0, c.c0 = false, false, false },
			func(c *rnnConfig) { c.constStates = true },
			func(c *rnnConfig) { c.noXGrad, c.noStateRV = true, true },
			func(c *rnnConfig) { c.noYAdj = true },
			func(c *rnnConfig) { c.noYhAdj, c.noYcOut = true, true },
			func(c *rnnConfig) { c.noRVParams, c.noStateRV = true, true },
			func(c *rnnConfig) { c.seq, c.batch = 1, 1 },
			func(c *rnnConfig) { c.noRV = true },
			func(c *rnnConfig) { c.noAdj = true },
		} {
			v := c
			f(&v)
			cs = append(cs, v)
		}
	}
	return cs
}

// TestRNNMatchesUnrolled checks the recurrent kernel against the unrolled
// composite it replaced (rnn_ref_test.go) on every pass: the outputs, their
// R-values, the inputs' adjoints and R-adjoints, in float64.
func TestRNNMatchesUnrolled(t *testing.T) {
	for i, c := range rnnConfigs() {
		t.Run(fmt.Sprintf("%d/%v", i, c), func(t *testing.T) {
			if err := compareRNN(c, uint64(i)+1, rnnTol); err != nil {
				t.Error(err)
			}
		})
	}
}

// compareRNN runs config c through the registered kernel and the unrolled
// reference and returns the first buffer on which they differ by more than
// tol relative to the buffer's largest entry.
func compareRNN(c rnnConfig, seed uint64, tol float64) error {
	r := newRNNRig(c, seed)
	got, err := NewKernel[float64](Lookup(c.op, 14).Exec, r.b)
	if err != nil {
		return err
	}
	want, err := NewKernel[float64](refRNN, r.b)
	if err != nil {
		return err
	}
	g, w := r.hvp(got), r.hvp(want)
	for _, p := range []struct {
		what string
		a, b [][]float64
	}{{"output", g.y, w.y}, {"output R-value", g.ry, w.ry}, {"input adjoint", g.gx, w.gx}, {"input R-adjoint", g.rgx, w.rgx}} {
		for j := range p.a {
			if err := nearRel(p.a[j], p.b[j], tol); err != nil {
				return fmt.Errorf("%s %d: %v", p.what, j, err)
			}
		}
	}
	return nil
}

// nearRel compares a with the reference b entrywise, relative to b's
// largest entry.
func nearRel(a, b []float64, tol float64) error {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return fmt.Errorf("have %d entries (nil %v), want %d (nil %v)", len(a), a == nil, len(b), b == nil)
	}
	scale := 0.0
	for _, v := range b {
		scale = max(scale, math.Abs(v))
	}
	for i := range a {
		if d := math.Abs(a[i] - b[i]); !(d <= tol*scale) {
			return fmt.Errorf("entry %d is %.17g, want %.17g (difference %.3g, largest entry %.3g)", i, a[i], b[i], d, scale)
		}
	}
	return nil
}
