package op

import (
	"fmt"
	"math"
	"slices"
)

// LSTM, GRU and RNN (ONNX semantics, default activations) have a
// hand-written kernel (class Custom, rnnKernel): forward, R-forward,
// backward and R-backward of the whole sequence, so that exact
// Hessian-vector products cost a few BLAS products per step. Everything
// that does not depend on the previous step is one matrix product over all
// steps and samples of the batch — the input projection X Wᵀ, the weight
// gradients Ḡᵀ X and Ḡᵀ H_{t−1}, the input adjoint Ḡ W and the
// direction's terms X V_Wᵀ, H_{t−1} V_Rᵀ, Ḡ V_R — and only the recurrent
// products H_{t−1} Rᵀ and Ḡ_t R (and their R-values) run step by step, on
// the whole batch. The forward pass keeps the gate activations and the
// states, the backward pass the states' adjoints, so the derivative passes
// evaluate no activation again; the kernel allocates nothing per pass.
// Unrolled over registered primitives (the form rnn_ref_test.go keeps as
// the reference), the same operators held four buffers per intermediate of
// every step, and building and zeroing them dominated: on the large zoo
// LSTM at 2 samples, bitplan trace, plan and eval took 52, 51 and 17 s of
// user CPU, 14, 15 and 0.1 s with this kernel (gonum's BLAS, loaded
// machine); the kernel alone computes an H·v in 0.5–0.8 (2 samples) and 0.95
// (32) of the unrolled form's CPU time, both near the BLAS's peak.
//
// With X_t the input at step t, H_{t−1} the previous hidden state and the
// weights of one direction (ONNX's gate order),
//
//	LSTM (i, o, f, c):  G = X_t Wᵀ + H_{t−1} Rᵀ + Wb + Rb,
//	                    i, o, f = σ(G_i), σ(G_o), σ(G_f),  c̃ = tanh(G_c),
//	                    C_t = f ⊙ C_{t−1} + i ⊙ c̃,  H_t = o ⊙ tanh(C_t)
//	GRU (z, r, h):      z = σ(X_t W_zᵀ + H_{t−1} R_zᵀ + Wb_z + Rb_z), r likewise,
//	                    h̃ = tanh(X_t W_hᵀ + r ⊙ (H_{t−1} R_hᵀ + Rb_h) + Wb_h)   (linear_before_reset ≠ 0)
//	                    h̃ = tanh(X_t W_hᵀ + (r ⊙ H_{t−1}) R_hᵀ + Rb_h + Wb_h)   (linear_before_reset = 0)
//	                    H_t = (1 − z) ⊙ h̃ + z ⊙ H_{t−1}
//	RNN:                H_t = tanh(X_t Wᵀ + H_{t−1} Rᵀ + Wb + Rb)
//
// Directions forward, reverse and bidirectional (the reverse direction
// runs t = T−1 … 0 and writes Y at its own t), initial states initial_h
// and initial_c (zero when absent), both layouts (0: X T×N×I, Y T×D×N×H;
// 1: X N×T×I, Y N×T×D×H) and the outputs Y, Y_h (and Y_c). Not
// supported, with an error naming the attribute or input: other
// activations, clip, input_forget, peepholes (P) and sequence_lens other
// than the full length.
func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	hs := func(v int64) *Attr { return &Attr{Name: "hidden_size", Type: AttrInt, Int: v} }
	dir := func(d string) *Attr { return &Attr{Name: "direction", Type: AttrString, String: d} }
	layout1 := &Attr{Name: "layout", Type: AttrInt, Int: 1}
	absent := CaseInput{Absent: true}
	full := CaseInput{Shape: []int{2}, Ints: []int64{3, 3}}
	Register(&Def{Type: "LSTM", Since: 7, Infer: inferRNN, Exec: Both(newRNN[float64], newRNN[float32]), Class: Custom, Units: rnnUnits,
		Cases: []Case{
			{Name: "forward, bias, torch-style zero states", Attrs: []*Attr{hs(3)},
				Inputs: []CaseInput{x(3, 2, 2), x(1, 12, 2), x(1, 12, 3), x(1, 24), absent,
					{Shape: []int{1, 2, 3}, Const: make([]float64, 6)}, {Shape: []int{1, 2, 3}, Const: make([]float64, 6)}},
				Outputs: 3, Want: []int{3, 1, 2, 3}},
			{Name: "bidirectional, initial states, sequence_lens", Attrs: []*Attr{hs(2), dir("bidirectional")},
				Inputs:  []CaseInput{x(3, 2, 2), x(2, 8, 2), x(2, 8, 2), x(2, 16), full, x(2, 2, 2), x(2, 2, 2)},
				Outputs: 3, Want: []int{3, 2, 2, 2}},
			{Name: "reverse, layout 1, no bias", Opset: 14, Attrs: []*Attr{hs(2), dir("reverse"), layout1},
				Inputs: []CaseInput{x(2, 3, 2), x(1, 8, 2), x(1, 8, 2)}, Outputs: 2, Want: []int{2, 3, 1, 2}},
		}})
	Register(&Def{Type: "GRU", Since: 7, Infer: inferRNN, Exec: Both(newRNN[float64], newRNN[float32]), Class: Custom, Units: rnnUnits,
		Cases: []Case{
			{Name: "forward, linear_before_reset (torch)", Attrs: []*Attr{hs(3), {Name: "linear_before_reset", Type: AttrInt, Int: 1}},
				Inputs:  []CaseInput{x(3, 2, 2), x(1, 9, 2), x(1, 9, 3), x(1, 18), absent, {Shape: []int{1, 2, 3}, Const: make([]float64, 6)}},
				Outputs: 2, Want: []int{3, 1, 2, 3}},
			{Name: "bidirectional, reset before the product, initial state", Attrs: []*Attr{hs(2), dir("bidirectional")},
				Inputs:  []CaseInput{x(3, 2, 2), x(2, 6, 2), x(2, 6, 2), x(2, 12), absent, x(2, 2, 2)},
				Outputs: 2, Want: []int{3, 2, 2, 2}},
		}})
	Register(&Def{Type: "RNN", Since: 7, Infer: inferRNN, Exec: Both(newRNN[float64], newRNN[float32]), Class: Custom, Units: rnnUnits,
		Cases: []Case{
			{Name: "bidirectional with bias", Attrs: []*Attr{hs(2), dir("bidirectional")},
				Inputs: []CaseInput{x(3, 2, 2), x(2, 2, 2), x(2, 2, 2), x(2, 4)}, Outputs: 2, Want: []int{3, 2, 2, 2}},
		}})
}

// rnnGates returns the number of gate blocks of a recurrent operator.
func rnnGates(typ string) int {
	switch typ {
	case "LSTM":
		return 4
	case "GRU":
		return 3
	}
	return 1
}

// rnnGeom is the resolved geometry of a recurrent node.
type rnnGeom struct {
	seq, batch, in, hidden, dirs int
	layout                       int64
	dir                          string
}

func rnnGeometry(n *Node, x []int, w []int) (rnnGeom, error) {
	var g rnnGeom
	if len(x) != 3 {
		return g, fmt.Errorf("%s: input has shape %v, want seq×batch×features (or batch×seq×features with layout 1)", n.Label(), x)
	}
	h, err := n.AttrInt("hidden_size", 0)
	if err != nil {
		return g, err
	}
	gates := rnnGates(n.Op)
	if h <= 0 {
		if len(w) == 3 && w[1]%gates == 0 {
			h = int64(w[1] / gates)
		} else {
			return g, AttrError(n, "hidden_size", "is %d, want > 0", h)
		}
	}
	if g.dir, err = n.AttrString("direction", "forward"); err != nil {
		return g, err
	}
	switch g.dir {
	case "forward", "reverse":
		g.dirs = 1
	case "bidirectional":
		g.dirs = 2
	default:
		return g, AttrError(n, "direction", "is %q, want forward, reverse or bidirectional", g.dir)
	}
	if g.layout, err = n.AttrInt("layout", 0); err != nil {
		return g, err
	}
	if g.layout != 0 && g.layout != 1 {
		return g, AttrError(n, "layout", "is %d, want 0 or 1", g.layout)
	}
	g.seq, g.batch, g.in, g.hidden = x[0], x[1], x[2], int(h)
	if g.layout == 1 {
		g.seq, g.batch = x[1], x[0]
	}
	if w != nil && (len(w) != 3 || w[0] != g.dirs || w[1] != gates*g.hidden || w[2] != g.in) {
		return g, fmt.Errorf("%s: weight W has shape %v, want %d×%d×%d (directions × %d·hidden × input)", n.Label(), w, g.dirs, gates*g.hidden, g.in, gates)
	}
	return g, nil
}

// inferRNN gives Y (T×D×N×H, or N×T×D×H with layout 1) and the final
// states (D×N×H, or N×D×H).
func inferRNN(n *Node, s *Shapes) error {
	x, ok := s.dims(n.Input(0))
	if !ok {
		return nil
	}
	w, _ := s.dims(n.Input(1))
	g, err := rnnGeometry(n, x, w)
	if err != nil {
		return err
	}
	t := s.Types[n.Input(0)]
	y := []int{g.seq, g.dirs, g.batch, g.hidden}
	state := []int{g.dirs, g.batch, g.hidden}
	if g.layout == 1 {
		y = []int{g.batch, g.seq, g.dirs, g.hidden}
		state = []int{g.batch, g.dirs, g.hidden}
	}
	for i, o := range n.Outputs {
		if i == 0 {
			s.Set(o, y, t)
		} else {
			s.Set(o, slices.Clone(state), t)
		}
	}
	return nil
}

// rnnUnits gives the two quantizable weights of a recurrent node, W (with
// the bias B, which holds Wb and Rb) and R, each quantized per gate row
// (ChannelAxis 1 of D×gates·H×…: one scale per hidden unit and gate,
// shared by the directions) and counted per direction (OutChannels), with
// MACs for the node's sequence length:
//
//	W: T·D·gates·H·I,  R: T·D·gates·H·H   multiply-accumulates per sample.
func rnnUnits(n *Node, g UnitGraph) ([]*UnitSpec, error) {
	w, r := g.FloatConst(n.Input(1)), g.FloatConst(n.Input(2))
	var out []*UnitSpec
	x := g.Dims(n.Input(0))
	var geom rnnGeom
	known := false
	if x != nil && w != nil {
		var err error
		if geom, err = rnnGeometry(n, x, w.Shape); err != nil {
			return nil, unitErr("%s", err.Error())
		}
		known = true
	}
	gates := int64(rnnGates(n.Op))
	if w != nil {
		u := &UnitSpec{Suffix: "/W", WeightInput: 1, DataInput: 0, BiasInput: -1, OutChannels: w.Shape[0], Group: 1, ChannelAxis: 1}
		if b := n.Input(3); b != "" && g.FloatConst(b) != nil {
			u.BiasInput = 3
		}
		if known {
			t, d, h, i := int64(geom.seq), int64(geom.dirs), int64(geom.hidden), int64(geom.in)
			u.ShapeKnown = true
			u.MACs, u.InElems, u.OutElems = t*d*gates*h*i, t*i, t*d*gates*h
		}
		out = append(out, u)
	}
	if r != nil {
		if len(r.Shape) != 3 {
			return nil, unitErr("%s: weight R %q has shape %v, want directions × %d·hidden × hidden", n.Label(), r.Name, r.Shape, gates)
		}
		u := &UnitSpec{Suffix: "/R", WeightInput: 2, DataInput: -1, BiasInput: -1, OutChannels: r.Shape[0], Group: 1, ChannelAxis: 1}
		if known {
			t, d, h := int64(geom.seq), int64(geom.dirs), int64(geom.hidden)
			u.ShapeKnown = true
			u.MACs, u.InElems, u.OutElems = t*d*gates*h*h, t*d*h, t*d*gates*h
		}
		out = append(out, u)
	}
	return out, nil
}

// rnnDefaults are the default activations of each operator, per direction.
var rnnDefaults = map[string][]string{"LSTM": {"Sigmoid", "Tanh", "Tanh"}, "GRU": {"Sigmoid", "Tanh"}, "RNN": {"Tanh"}}

func checkRNNAttrs(n *Node, dirs int) error {
	if a, ok := n.Attrs["activations"]; ok {
		def := rnnDefaults[n.Op]
		want := slices.Clone(def)
		if dirs == 2 {
			want = append(want, def...)
		}
		if !slices.Equal(a.Strings, want) && !(dirs == 2 && slices.Equal(a.Strings, def)) {
			return AttrError(n, "activations", "is %v; only the defaults %v are supported", a.Strings, want)
		}
	}
	for _, name := range []string{"clip", "activation_alpha", "activation_beta"} {
		if _, ok := n.Attrs[name]; ok {
			return AttrError(n, name, "is set; not supported (only the default activations without clipping)")
		}
	}
	if f, err := n.AttrInt("input_forget", 0); err != nil {
		return err
	} else if f != 0 {
		return AttrError(n, "input_forget", "is %d; only 0 is supported", f)
	}
	return nil
}

// Recurrent cells.
const (
	cellLSTM = iota
	cellGRU
	cellRNN
)

// rnnKernel runs one LSTM, GRU or RNN node over its whole sequence. All
// per-step quantities are kept time-major (row t·N + n of a T·N-row
// matrix, whatever the layout), per direction, in the kernel's state
// (rnnDir). With G the gate block (i, o, f, c for LSTM; z, r, h for GRU),
// P the pre-activations and ⊙ elementwise, its derivative passes are
//
//	LSTM:  H̄_t = Ȳ_t + Ḡ_{t+1} R,  C̄_t = C̄_{t+1} ⊙ f_{t+1} + H̄_t ⊙ o ⊙ (1 − τ²)   (τ = tanh C_t)
//	       Ḡ_o = H̄ ⊙ τ ⊙ σ′,  Ḡ_i = C̄ ⊙ c̃ ⊙ σ′,  Ḡ_f = C̄ ⊙ C_{t−1} ⊙ σ′,  Ḡ_c = C̄ ⊙ i ⊙ (1 − c̃²)
//	GRU:   H̄_t = Ȳ_t + H̄_{t+1} ⊙ z_{t+1} + Ḡʰ_{t+1} R,  ā = H̄ ⊙ (1 − z) ⊙ (1 − h̃²),
//	       Ḡ_z = H̄ ⊙ (H_{t−1} − h̃) ⊙ σ′,  Ḡ_r = r̄ ⊙ σ′  with r̄ = ā ⊙ (H_{t−1} R_hᵀ + Rb_h)
//	       (linear_before_reset) or q̄ ⊙ H_{t−1} with q̄ = ā R_h (then H̄_{t−1} also
//	       takes q̄ ⊙ r),
//	W̄ = Σ_t Ḡ_tᵀ X_t,  R̄ = Σ_t Ḡʰ_tᵀ H_{t−1},  X̄_t = Ḡ_t W,
//
// (Ḡʰ, the adjoint of the recurrent product, is Ḡ but for GRU's candidate
// block with linear_before_reset: ā ⊙ r), the R-forward pass the
// directional derivative of the forward recursion (R{P} = R{X} Wᵀ + X V_Wᵀ
// + R{H_{t−1}} Rᵀ + H_{t−1} V_Rᵀ + V_B, then the cell's product rule) and
// the R-backward pass the directional derivative of the backward recursion,
// whose second-order terms are those of σ, tanh and the products of the
// cell (Pearlmutter 1994).
type rnnKernel[T Real] struct {
	cell          int
	lbr           bool // GRU's linear_before_reset
	seq, n, in, h int  // T, N, I, H
	dirs, gates   int
	layout1       bool
	reverse       bool // a single direction, reverse
	x, w, r, b    int  // input slots (b: -1 when absent)
	h0, c0        int
	y, yh, yc     int // output slots (-1 when omitted)
	st            int // the state's index in Work.State
}

// rnnDir is the state of one direction: the forward pass's activations and
// states, the R-forward pass's R-values and the backward pass's adjoints,
// each T·N rows, the states (T+1)·N rows with the initial state first
// (forward direction) or last (reverse direction).
type rnnDir[T Real] struct {
	act      []T // T·N × G·H activations: LSTM i, o, f σ and c̃ tanh; GRU z, r, h̃; RNN H
	ph       []T // GRU: T·N × 3H recurrent products H_{t−1} Rᵀ + Rb (linear_before_reset = 0: the candidate block (r ⊙ H_{t−1}) R_hᵀ + Rb_h)
	q        []T // GRU with linear_before_reset = 0: T·N × H, r ⊙ H_{t−1}
	hs, cs   []T // (T+1)·N × H hidden (and LSTM cell) states
	tc       []T // LSTM: T·N × H, tanh C_t
	rp, rph  []T // R{P} (GRU: of the input part X Wᵀ + Wb) and GRU's R{ph}
	rq       []T // GRU with linear_before_reset = 0: R{q}
	rhs, rcs []T // R-values of the states, laid out as hs and cs
	dp, dph  []T // T·N × G·H adjoints of P (GRU: of the input part) and of the recurrent product
	dq       []T // GRU with linear_before_reset = 0: the adjoint of q
	dh, dc   []T // T·N × H adjoints of H_t and (LSTM) C_t
}

// rnnState is a kernel's per-work state: one rnnDir per direction and
// whether the last backward pass had adjoints (adj) and the last
// R-forward pass R-values (rv); false means identically zero.
type rnnState[T Real] struct {
	dirs    []rnnDir[T]
	adj, rv bool
}

// Scratch buffers of the recurrent kernel (Work.Scratch indices).
const (
	rnnScrX    = iota // X time-major (layout 1)
	rnnScrRX          // R{X} time-major (layout 1)
	rnnScrDX          // X̄ or R{X̄} time-major (layout 1)
	rnnScrStep        // N × G·H, one step's recurrent product
	rnnScrCarH        // N × H, the adjoint carried to the previous step (and its R-value)
	rnnScrCarC        // N × H, LSTM's cell-state adjoint carried back
	rnnScrRDP         // T·N × G·H, R{Ḡ}
	rnnScrRDPH        // T·N × G·H, GRU's R{Ḡʰ}
	rnnScrDPV         // T·N × H, Ḡʰ V_R
	rnnScrDAV         // T·N × H, GRU (linear_before_reset = 0): ā V_R_h
	rnnScratches
)

// checkRNNInputs checks a recurrent node's R, B, sequence_lens, peephole
// and initial-state inputs against its geometry (errors name the input) and
// returns its gate count, hidden size and linear_before_reset attribute.
func checkRNNInputs(b *Build, g rnnGeom) (gates, h int, lbr int64, err error) {
	n := b.Node
	gates, h = rnnGates(n.Op), g.hidden
	if rs := b.Shape(b.In[2]); !slices.Equal(rs, []int{g.dirs, gates * h, h}) {
		return 0, 0, 0, fmt.Errorf("weight R has shape %v, want %v", rs, []int{g.dirs, gates * h, h})
	}
	if s := b.Input(3); s >= 0 && !slices.Equal(b.Shape(s), []int{g.dirs, 2 * gates * h}) {
		return 0, 0, 0, fmt.Errorf("bias B has shape %v, want %v", b.Shape(s), []int{g.dirs, 2 * gates * h})
	}
	if s := b.Input(4); s >= 0 {
		v, ok := b.Const(s)
		if !ok {
			return 0, 0, 0, fmt.Errorf("sequence_lens is computed; only a constant equal to the sequence length %d is supported", g.seq)
		}
		for _, l := range v {
			if int(l) != g.seq {
				return 0, 0, 0, fmt.Errorf("sequence_lens %v: only sequences of the full length %d are supported", v, g.seq)
			}
		}
	}
	if n.Op == "LSTM" && b.Input(7) >= 0 {
		return 0, 0, 0, fmt.Errorf("peephole weights (input P) are not supported")
	}
	state := []int{g.dirs, g.batch, h}
	if g.layout == 1 {
		state = []int{g.batch, g.dirs, h}
	}
	for _, j := range []int{5, 6} {
		if s := b.Input(j); s >= 0 && !slices.Equal(b.Shape(s), state) {
			return 0, 0, 0, fmt.Errorf("initial state input %d has shape %v, want %v", j, b.Shape(s), state)
		}
	}
	lbr, err = n.AttrInt("linear_before_reset", 0)
	return gates, h, lbr, err
}

// newRNN builds the kernel of an LSTM, GRU or RNN node, checking its
// shapes and attributes first; errors name the input or attribute.
func newRNN[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 || b.Input(1) < 0 || b.Input(2) < 0 {
		return nil, fmt.Errorf("inputs X, W and R are required")
	}
	g, err := rnnGeometry(n, b.Shape(b.In[0]), b.Shape(b.In[1]))
	if err != nil {
		return nil, err
	}
	if err := checkRNNAttrs(n, g.dirs); err != nil {
		return nil, err
	}
	gates, h, lbr, err := checkRNNInputs(b, g)
	if err != nil {
		return nil, err
	}
	out := func(j int) int {
		if j < len(b.Out) {
			return b.Out[j]
		}
		return -1
	}
	k := &rnnKernel[T]{cell: cellRNN, lbr: lbr != 0, seq: g.seq, n: g.batch, in: g.in, h: h, dirs: g.dirs, gates: gates,
		layout1: g.layout == 1, reverse: g.dir == "reverse", x: b.In[0], w: b.In[1], r: b.In[2], b: b.Input(3),
		h0: b.Input(5), c0: -1, y: out(0), yh: out(1), yc: -1, st: b.State}
	switch n.Op {
	case "LSTM":
		k.cell, k.c0, k.yc = cellLSTM, b.Input(6), out(2)
	case "GRU":
		k.cell = cellGRU
	}
	return k, nil
}

// Retains: the derivative passes read the inputs' values (X, W, R) and,
// in R-backward, their R-values; everything else they need (activations,
// states, the states' adjoints) is in the kernel's state.
func (k *rnnKernel[T]) Retains() Retains { return Retains{InVal: true, InRV: true} }

func (k *rnnKernel[T]) sizes() (tn, gh, nh int) { return k.seq * k.n, k.gates * k.h, k.n * k.h }

// dirArrays lists the state arrays of one direction with their lengths.
func (k *rnnKernel[T]) dirArrays(d *rnnDir[T]) []struct {
	p *[]T
	n int
} {
	tn, gh, nh := k.sizes()
	type arr = struct {
		p *[]T
		n int
	}
	states := (k.seq + 1) * nh
	a := []arr{{&d.act, tn * gh}, {&d.hs, states}, {&d.rp, tn * gh}, {&d.rhs, states}, {&d.dp, tn * gh}, {&d.dh, tn * k.h}}
	switch k.cell {
	case cellLSTM:
		a = append(a, arr{&d.cs, states}, arr{&d.tc, tn * k.h}, arr{&d.rcs, states}, arr{&d.dc, tn * k.h})
	case cellGRU:
		a = append(a, arr{&d.ph, tn * gh}, arr{&d.rph, tn * gh})
		if k.lbr {
			a = append(a, arr{&d.dph, tn * gh})
		} else {
			a = append(a, arr{&d.q, tn * k.h}, arr{&d.rq, tn * k.h}, arr{&d.dq, tn * k.h})
		}
	}
	return a
}

// NewState allocates the per-direction arrays.
func (k *rnnKernel[T]) NewState() any {
	s := &rnnState[T]{dirs: make([]rnnDir[T], k.dirs)}
	for i := range s.dirs {
		d := &s.dirs[i]
		for _, a := range k.dirArrays(d) {
			*a.p = make([]T, a.n)
		}
		if k.cell == cellGRU && !k.lbr {
			d.dph = d.dp // the adjoint of the recurrent products is Ḡ itself
		}
	}
	return s
}

// StateBytes counts the per-direction arrays.
func (k *rnnKernel[T]) StateBytes() int64 {
	var d rnnDir[T]
	var n int64
	for _, a := range k.dirArrays(&d) {
		n += int64(a.n)
	}
	return int64(k.dirs) * n * SizeOf[T]()
}

// ScratchSizes gives the lengths of the rnnScr* buffers.
func (k *rnnKernel[T]) ScratchSizes() []int {
	tn, gh, nh := k.sizes()
	tni := 0
	if k.layout1 {
		tni = tn * k.in
	}
	sz := make([]int, rnnScratches)
	sz[rnnScrX], sz[rnnScrRX], sz[rnnScrDX] = tni, tni, tni
	sz[rnnScrStep], sz[rnnScrCarH], sz[rnnScrCarC] = k.n*gh, nh, nh
	sz[rnnScrRDP], sz[rnnScrRDPH], sz[rnnScrDPV], sz[rnnScrDAV] = tn*gh, tn*gh, tn*k.h, tn*k.h
	return sz
}

// rev reports whether direction d runs t = T−1 … 0.
func (k *rnnKernel[T]) rev(d int) bool { return k.reverse || d == 1 }

// cur and prev are the offsets in hs (and cs, rhs, rcs) of the state at
// time t and of the one before it in the direction's order.
func (k *rnnKernel[T]) cur(d, t int) int {
	if k.rev(d) {
		return t * k.n * k.h
	}
	return (t + 1) * k.n * k.h
}

func (k *rnnKernel[T]) prev(d, t int) int {
	if k.rev(d) {
		return (t + 1) * k.n * k.h
	}
	return t * k.n * k.h
}

// initial is the offset of the initial state in hs.
func (k *rnnKernel[T]) initial(d int) int {
	if k.rev(d) {
		return k.seq * k.n * k.h
	}
	return 0
}

// prevAll is the offset of H_{t−1} for all t (T·N rows, time-major).
func (k *rnnKernel[T]) prevAll(d int) int {
	if k.rev(d) {
		return k.n * k.h
	}
	return 0
}

// step returns the time of the i-th step of direction d.
func (k *rnnKernel[T]) step(d, i int) int {
	if k.rev(d) {
		return k.seq - 1 - i
	}
	return i
}

// yOff is the offset of row (t, d, n) of Y; sOff of row (d, n) of a state
// tensor (initial_h, Y_h, …).
func (k *rnnKernel[T]) yOff(t, d, n int) int {
	if k.layout1 {
		return ((n*k.seq+t)*k.dirs + d) * k.h
	}
	return ((t*k.dirs+d)*k.n + n) * k.h
}

func (k *rnnKernel[T]) sOff(d, n int) int {
	if k.layout1 {
		return (n*k.dirs + d) * k.h
	}
	return (d*k.n + n) * k.h
}

// timeMajor returns x (N×T×I with layout 1) as T×N×I, in scratch buffer
// i; x itself with layout 0; nil for nil.
func (k *rnnKernel[T]) timeMajor(w *Work[T], x []T, i int) []T {
	if x == nil || !k.layout1 {
		return x
	}
	tm := w.Scratch(i, len(x))
	for n := 0; n < k.n; n++ {
		for t := 0; t < k.seq; t++ {
			copy(tm[(t*k.n+n)*k.in:(t*k.n+n+1)*k.in], x[(n*k.seq+t)*k.in:(n*k.seq+t+1)*k.in])
		}
	}
	return tm
}

// addX adds a time-major T·N×I adjoint into dx (in X's layout).
func (k *rnnKernel[T]) addX(dx, tm []T) {
	for n := 0; n < k.n; n++ {
		for t := 0; t < k.seq; t++ {
			AddTo(dx[(n*k.seq+t)*k.in:(n*k.seq+t+1)*k.in], tm[(t*k.n+n)*k.in:(t*k.n+n+1)*k.in])
		}
	}
}

// xAdjoint adds time-major products into X's adjoint dx (nil: none
// wanted): f accumulates them (β = 1) into dx itself with layout 0, into a
// zeroed time-major scratch buffer added to dx with layout 1.
func (k *rnnKernel[T]) xAdjoint(w *Work[T], dx []T, f func(dst []T)) {
	if dx == nil {
		return
	}
	if !k.layout1 {
		f(dx)
		return
	}
	tm := w.Scratch(rnnScrDX, len(dx))
	clear(tm)
	f(tm)
	k.addX(dx, tm)
}

// weights returns direction d's W (G·H×I), R (G·H×H) and the two halves
// of B (nil when b is nil).
func (k *rnnKernel[T]) weights(w, r, b []T, d int) (wd, rd, wb, rb []T) {
	gh := k.gates * k.h
	if w != nil {
		wd = w[d*gh*k.in : (d+1)*gh*k.in]
	}
	if r != nil {
		rd = r[d*gh*k.h : (d+1)*gh*k.h]
	}
	if b != nil {
		wb, rb = b[2*d*gh:(2*d+1)*gh], b[(2*d+1)*gh:(2*d+2)*gh]
	}
	return
}

// val returns b[s] (a Work's values, R-values, adjoints or R-adjoints), or
// nil for an absent slot.
func val[T Real](b [][]T, s int) []T {
	if s < 0 {
		return nil
	}
	return b[s]
}

// getState copies direction d's rows of a state tensor (initial_h) into
// an N×H block; zeros for nil.
func (k *rnnKernel[T]) getState(dst, src []T, d int) {
	if src == nil {
		clear(dst)
		return
	}
	for n := 0; n < k.n; n++ {
		copy(dst[n*k.h:(n+1)*k.h], src[k.sOff(d, n):k.sOff(d, n)+k.h])
	}
}

// putState writes an N×H block as direction d's rows of a state tensor.
func (k *rnnKernel[T]) putState(dst, src []T, d int) {
	if dst == nil {
		return
	}
	for n := 0; n < k.n; n++ {
		copy(dst[k.sOff(d, n):k.sOff(d, n)+k.h], src[n*k.h:(n+1)*k.h])
	}
}

// addState adds an N×H block into direction d's rows of a state adjoint.
func (k *rnnKernel[T]) addState(dst, src []T, d int) {
	if dst == nil {
		return
	}
	for n := 0; n < k.n; n++ {
		AddTo(dst[k.sOff(d, n):k.sOff(d, n)+k.h], src[n*k.h:(n+1)*k.h])
	}
}

// putY writes the time-major states of direction d (T·N×H from hs at the
// direction's current-state offsets) into Y.
func (k *rnnKernel[T]) putY(y, hs []T, d int) {
	if y == nil {
		return
	}
	for t := 0; t < k.seq; t++ {
		c := k.cur(d, t)
		for n := 0; n < k.n; n++ {
			copy(y[k.yOff(t, d, n):k.yOff(t, d, n)+k.h], hs[c+n*k.h:c+(n+1)*k.h])
		}
	}
}

// sigmoid and tanh are evaluated in float64 as the Sigmoid and Tanh
// operators are.
func sigmoid[T Real](x T) T { return T(1 / (1 + math.Exp(-float64(x)))) }
func tanh[T Real](x T) T    { return T(math.Tanh(float64(x))) }

// addBias adds bias (G·H, or the sum of two) to every row of m.
func addBias[T Real](m []T, cols int, b1, b2 []T) {
	if b1 == nil {
		return
	}
	for r := 0; r < len(m)/cols; r++ {
		row := m[r*cols : (r+1)*cols]
		if b2 == nil {
			AddTo(row, b1)
			continue
		}
		for j := range row {
			row[j] += b1[j] + b2[j]
		}
	}
}

// colSums adds the column sums of the rows×cols block of m (leading
// dimension ld) into dst.
func colSums[T Real](dst, m []T, rows, cols, ld int) {
	if dst == nil {
		return
	}
	for r := 0; r < rows; r++ {
		AddTo(dst[:cols], m[r*ld:r*ld+cols])
	}
}

func (k *rnnKernel[T]) state(w *Work[T]) *rnnState[T] { return w.State[k.st].(*rnnState[T]) }

// mm is Gemm with α = 1.
func mm[T Real](ta, tb bool, m, n, kk int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	Gemm(ta, tb, m, n, kk, 1, a, lda, b, ldb, beta, c, ldc)
}

func (k *rnnKernel[T]) Forward(w *Work[T]) {
	s := k.state(w)
	tn, gh, nh := k.sizes()
	H, N := k.h, k.n
	x := k.timeMajor(w, w.Val[k.x], rnnScrX)
	tmp := w.Scratch(rnnScrStep, N*gh)
	for d := range s.dirs {
		st := &s.dirs[d]
		wd, rd, wb, rb := k.weights(w.Val[k.w], w.Val[k.r], val(w.Val, k.b), d)
		// The input projection of every step: X Wᵀ + bias.
		mm(false, true, tn, gh, k.in, x, k.in, wd, k.in, 0, st.act, gh)
		if k.cell == cellGRU {
			addBias(st.act, gh, wb, nil)
		} else {
			addBias(st.act, gh, wb, rb)
		}
		k.getState(st.hs[k.initial(d):k.initial(d)+nh], val(w.Val, k.h0), d)
		if k.cell == cellLSTM {
			k.getState(st.cs[k.initial(d):k.initial(d)+nh], val(w.Val, k.c0), d)
		}
		for i := 0; i < k.seq; i++ {
			t := k.step(d, i)
			a := st.act[t*N*gh : (t+1)*N*gh]
			hp, hc := st.hs[k.prev(d, t):k.prev(d, t)+nh], st.hs[k.cur(d, t):k.cur(d, t)+nh]
			switch k.cell {
			case cellLSTM:
				mm(false, true, N, gh, H, hp, H, rd, H, 0, tmp, gh)
				cp, cc := st.cs[k.prev(d, t):k.prev(d, t)+nh], st.cs[k.cur(d, t):k.cur(d, t)+nh]
				tc := st.tc[t*nh : (t+1)*nh]
				for n := 0; n < N; n++ {
					row, pr := a[n*gh:(n+1)*gh], tmp[n*gh:(n+1)*gh]
					for j := range row {
						row[j] = pr[j] + row[j]
					}
					ig, og, fg, cg := row[:H], row[H:2*H], row[2*H:3*H], row[3*H:]
					for j := 0; j < H; j++ {
						ig[j], og[j], fg[j], cg[j] = sigmoid(ig[j]), sigmoid(og[j]), sigmoid(fg[j]), tanh(cg[j])
						c := fg[j]*cp[n*H+j] + ig[j]*cg[j]
						cc[n*H+j] = c
						tc[n*H+j] = tanh(c)
						hc[n*H+j] = og[j] * tc[n*H+j]
					}
				}
			case cellGRU:
				ph := st.ph[t*N*gh : (t+1)*N*gh]
				if k.lbr {
					mm(false, true, N, gh, H, hp, H, rd, H, 0, ph, gh)
					addBias(ph, gh, rb, nil)
				} else {
					mm(false, true, N, 2*H, H, hp, H, rd, H, 0, ph, gh)
					if rb != nil {
						for n := 0; n < N; n++ {
							AddTo(ph[n*gh:n*gh+2*H], rb[:2*H])
						}
					}
				}
				q := st.q
				if q != nil {
					q = q[t*nh : (t+1)*nh]
				}
				for n := 0; n < N; n++ {
					row, pr := a[n*gh:(n+1)*gh], ph[n*gh:(n+1)*gh]
					z, r := row[:H], row[H:2*H]
					for j := 0; j < H; j++ {
						z[j] = sigmoid(z[j] + pr[j])
						r[j] = sigmoid(r[j] + pr[H+j])
					}
					if !k.lbr {
						for j := 0; j < H; j++ {
							q[n*H+j] = r[j] * hp[n*H+j]
						}
					}
				}
				if !k.lbr {
					// The candidate's product (r ⊙ H_{t−1}) R_hᵀ + Rb_h.
					mm(false, true, N, H, H, q, H, rd[2*H*H:], H, 0, ph[2*H:], gh)
					if rb != nil {
						for n := 0; n < N; n++ {
							AddTo(ph[n*gh+2*H:(n+1)*gh], rb[2*H:])
						}
					}
				}
				for n := 0; n < N; n++ {
					row, pr := a[n*gh:(n+1)*gh], ph[n*gh:(n+1)*gh]
					z, r, c := row[:H], row[H:2*H], row[2*H:]
					for j := 0; j < H; j++ {
						if k.lbr {
							c[j] = tanh(c[j] + r[j]*pr[2*H+j])
						} else {
							c[j] = tanh(c[j] + pr[2*H+j])
						}
						hc[n*H+j] = c[j] + z[j]*(hp[n*H+j]-c[j])
					}
				}
			default:
				mm(false, true, N, gh, H, hp, H, rd, H, 0, tmp, gh)
				for j := range a {
					a[j] = tanh(tmp[j] + a[j])
				}
				copy(hc, a)
			}
		}
		k.putY(val(w.Val, k.y), st.hs, d)
		last := k.cur(d, k.step(d, k.seq-1))
		k.putState(val(w.Val, k.yh), st.hs[last:last+nh], d)
		if k.cell == cellLSTM {
			k.putState(val(w.Val, k.yc), st.cs[last:last+nh], d)
		}
	}
}

// anyOf reports that some listed slot has a buffer in b.
func anyOf[T Real](b [][]T, slots ...int) bool {
	for _, s := range slots {
		if s >= 0 && b[s] != nil {
			return true
		}
	}
	return false
}

// clearAll zeroes the listed arrays.
func clearAll[T Real](arrays ...[]T) {
	for _, a := range arrays {
		clear(a)
	}
}

// rows returns rows [t·N, (t+1)·N) of a T·N × cols array (nil for nil).
func (k *rnnKernel[T]) rows(a []T, t, cols int) []T {
	if a == nil {
		return nil
	}
	return a[t*k.n*cols : (t+1)*k.n*cols]
}

func (k *rnnKernel[T]) Backward(w *Work[T]) {
	s := k.state(w)
	if !anyOf(w.Adj, k.y, k.yh, k.yc) {
		s.adj = false
		return
	}
	s.adj = true
	tn, gh, nh := k.sizes()
	H, N := k.h, k.n
	yAdj := val(w.Adj, k.y)
	carH, carC := w.Scratch(rnnScrCarH, nh), w.Scratch(rnnScrCarC, nh)
	x := k.timeMajor(w, w.Val[k.x], rnnScrX)
	for d := range s.dirs {
		st := &s.dirs[d]
		wd, rd, _, _ := k.weights(w.Val[k.w], w.Val[k.r], nil, d)
		k.getState(carH, val(w.Adj, k.yh), d)
		if k.cell == cellLSTM {
			k.getState(carC, val(w.Adj, k.yc), d)
		}
		for i := k.seq - 1; i >= 0; i-- {
			t := k.step(d, i)
			a, dp, dh := k.rows(st.act, t, gh), k.rows(st.dp, t, gh), k.rows(st.dh, t, H)
			hp := st.hs[k.prev(d, t) : k.prev(d, t)+nh]
			for n := 0; n < N; n++ {
				row := dh[n*H : (n+1)*H]
				copy(row, carH[n*H:(n+1)*H])
				if yAdj != nil {
					AddTo(row, yAdj[k.yOff(t, d, n):k.yOff(t, d, n)+H])
				}
			}
			switch k.cell {
			case cellLSTM:
				tc, dc := k.rows(st.tc, t, H), k.rows(st.dc, t, H)
				cp := st.cs[k.prev(d, t) : k.prev(d, t)+nh]
				for n := 0; n < N; n++ {
					ar, pr := a[n*gh:(n+1)*gh], dp[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q := n*H + j
						ig, og, fg, cg := ar[j], ar[H+j], ar[2*H+j], ar[3*H+j]
						c := carC[q] + dh[q]*og*(1-tc[q]*tc[q])
						dc[q] = c
						pr[j] = c * cg * ig * (1 - ig)
						pr[H+j] = dh[q] * tc[q] * og * (1 - og)
						pr[2*H+j] = c * cp[q] * fg * (1 - fg)
						pr[3*H+j] = c * ig * (1 - cg*cg)
						carC[q] = c * fg
					}
				}
				mm(false, false, N, H, gh, dp, gh, rd, H, 0, carH, H)
			case cellGRU:
				ph, dph := k.rows(st.ph, t, gh), k.rows(st.dph, t, gh)
				for n := 0; n < N; n++ {
					ar, pr, hr, dr := a[n*gh:(n+1)*gh], ph[n*gh:(n+1)*gh], dp[n*gh:(n+1)*gh], dph[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q := n*H + j
						z, r, c := ar[j], ar[H+j], ar[2*H+j]
						da := dh[q] * (1 - z) * (1 - c*c)
						hr[j] = dh[q] * (hp[q] - c) * z * (1 - z)
						hr[2*H+j] = da
						carH[q] = dh[q] * z
						if k.lbr {
							hr[H+j] = da * pr[2*H+j] * r * (1 - r)
							dr[j], dr[H+j], dr[2*H+j] = hr[j], hr[H+j], da*r
						}
					}
				}
				if k.lbr {
					mm(false, false, N, H, gh, dph, gh, rd, H, 1, carH, H)
					break
				}
				dq := k.rows(st.dq, t, H)
				mm(false, false, N, H, H, dp[2*H:], gh, rd[2*H*H:], H, 0, dq, H)
				for n := 0; n < N; n++ {
					ar, hr := a[n*gh:(n+1)*gh], dp[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q, r := n*H+j, ar[H+j]
						hr[H+j] = dq[q] * hp[q] * r * (1 - r)
						carH[q] += dq[q] * r
					}
				}
				mm(false, false, N, H, 2*H, dp, gh, rd, H, 1, carH, H)
			default:
				for q := range dp {
					dp[q] = dh[q] * (1 - a[q]*a[q])
				}
				mm(false, false, N, H, gh, dp, gh, rd, H, 0, carH, H)
			}
		}
		k.addState(val(w.Adj, k.h0), carH, d)
		if k.cell == cellLSTM {
			k.addState(val(w.Adj, k.c0), carC, d)
		}
		// The parameters' and the input's adjoints over all steps at once.
		dw, dr, dwb, drb := k.weights(w.Adj[k.w], w.Adj[k.r], val(w.Adj, k.b), d)
		if dw != nil {
			mm(true, false, gh, k.in, tn, st.dp, gh, x, k.in, 1, dw, k.in)
		}
		hprev := st.hs[k.prevAll(d) : k.prevAll(d)+tn*H]
		if dr != nil {
			if k.cell == cellGRU && !k.lbr {
				mm(true, false, 2*H, H, tn, st.dp, gh, hprev, H, 1, dr, H)
				mm(true, false, H, H, tn, st.dp[2*H:], gh, st.q, H, 1, dr[2*H*H:], H)
			} else {
				mm(true, false, gh, H, tn, st.dph0(), gh, hprev, H, 1, dr, H)
			}
		}
		colSums(dwb, st.dp, tn, gh, gh)
		colSums(drb, st.dph0(), tn, gh, gh)
		k.xAdjoint(w, w.Adj[k.x], func(dst []T) { mm(false, false, tn, k.in, gh, st.dp, gh, wd, k.in, 1, dst, k.in) })
	}
}

// dph0 is the adjoint of the recurrent products: dph for GRU, dp (the
// same pre-activations) for LSTM and RNN.
func (d *rnnDir[T]) dph0() []T {
	if d.dph != nil {
		return d.dph
	}
	return d.dp
}

func (k *rnnKernel[T]) RForward(w *Work[T]) {
	s := k.state(w)
	if !anyOf(w.RV, k.y, k.yh, k.yc) {
		s.rv = false
		return
	}
	if !anyOf(w.RV, k.x, k.w, k.r, k.b, k.h0, k.c0) {
		s.rv = false
		for _, o := range []int{k.y, k.yh, k.yc} {
			if o >= 0 {
				clear(w.RV[o])
			}
		}
		return
	}
	s.rv = true
	tn, gh, nh := k.sizes()
	H, N := k.h, k.n
	x := k.timeMajor(w, w.Val[k.x], rnnScrX)
	rx := k.timeMajor(w, w.RV[k.x], rnnScrRX)
	for d := range s.dirs {
		st := &s.dirs[d]
		wd, rd, _, _ := k.weights(w.Val[k.w], w.Val[k.r], nil, d)
		vw, vr, vwb, vrb := k.weights(w.RV[k.w], w.RV[k.r], val(w.RV, k.b), d)
		hprev := st.hs[k.prevAll(d) : k.prevAll(d)+tn*H]
		// Every term that does not depend on the previous step's R-value.
		clear(st.rp)
		if rx != nil {
			mm(false, true, tn, gh, k.in, rx, k.in, wd, k.in, 0, st.rp, gh)
		}
		if vw != nil {
			mm(false, true, tn, gh, k.in, x, k.in, vw, k.in, 1, st.rp, gh)
		}
		if k.cell == cellGRU {
			addBias(st.rp, gh, vwb, nil)
			clear(st.rph)
			if vr != nil {
				if k.lbr {
					mm(false, true, tn, gh, H, hprev, H, vr, H, 1, st.rph, gh)
				} else {
					mm(false, true, tn, 2*H, H, hprev, H, vr, H, 1, st.rph, gh)
					mm(false, true, tn, H, H, st.q, H, vr[2*H*H:], H, 1, st.rph[2*H:], gh)
				}
			}
			addBias(st.rph, gh, vrb, nil)
		} else {
			addBias(st.rp, gh, vwb, vrb)
			if vr != nil {
				mm(false, true, tn, gh, H, hprev, H, vr, H, 1, st.rp, gh)
			}
		}
		k.getState(st.rhs[k.initial(d):k.initial(d)+nh], val(w.RV, k.h0), d)
		if k.cell == cellLSTM {
			k.getState(st.rcs[k.initial(d):k.initial(d)+nh], val(w.RV, k.c0), d)
		}
		for i := 0; i < k.seq; i++ {
			t := k.step(d, i)
			a, rp := k.rows(st.act, t, gh), k.rows(st.rp, t, gh)
			hp := st.hs[k.prev(d, t) : k.prev(d, t)+nh]
			rhp, rhc := st.rhs[k.prev(d, t):k.prev(d, t)+nh], st.rhs[k.cur(d, t):k.cur(d, t)+nh]
			switch k.cell {
			case cellLSTM:
				mm(false, true, N, gh, H, rhp, H, rd, H, 1, rp, gh)
				tc := k.rows(st.tc, t, H)
				cp := st.cs[k.prev(d, t) : k.prev(d, t)+nh]
				rcp, rcc := st.rcs[k.prev(d, t):k.prev(d, t)+nh], st.rcs[k.cur(d, t):k.cur(d, t)+nh]
				for n := 0; n < N; n++ {
					ar, pr := a[n*gh:(n+1)*gh], rp[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q := n*H + j
						ig, og, fg, cg := ar[j], ar[H+j], ar[2*H+j], ar[3*H+j]
						ri, ro, rf, rg := ig*(1-ig)*pr[j], og*(1-og)*pr[H+j], fg*(1-fg)*pr[2*H+j], (1-cg*cg)*pr[3*H+j]
						rc := rf*cp[q] + fg*rcp[q] + ri*cg + ig*rg
						rcc[q] = rc
						rhc[q] = ro*tc[q] + og*(1-tc[q]*tc[q])*rc
					}
				}
			case cellGRU:
				ph, rph := k.rows(st.ph, t, gh), k.rows(st.rph, t, gh)
				if k.lbr {
					mm(false, true, N, gh, H, rhp, H, rd, H, 1, rph, gh)
				} else {
					mm(false, true, N, 2*H, H, rhp, H, rd, H, 1, rph, gh)
					rq := k.rows(st.rq, t, H)
					for n := 0; n < N; n++ {
						ar, pr, hr := a[n*gh:(n+1)*gh], rp[n*gh:(n+1)*gh], rph[n*gh:(n+1)*gh]
						for j := 0; j < H; j++ {
							q, r := n*H+j, ar[H+j]
							rq[q] = r*(1-r)*(pr[H+j]+hr[H+j])*hp[q] + r*rhp[q]
						}
					}
					mm(false, true, N, H, H, rq, H, rd[2*H*H:], H, 1, rph[2*H:], gh)
				}
				for n := 0; n < N; n++ {
					ar, pr, hr, phr := a[n*gh:(n+1)*gh], rp[n*gh:(n+1)*gh], rph[n*gh:(n+1)*gh], ph[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q := n*H + j
						z, r, c := ar[j], ar[H+j], ar[2*H+j]
						rz := z * (1 - z) * (pr[j] + hr[j])
						var ra T
						if k.lbr {
							rr := r * (1 - r) * (pr[H+j] + hr[H+j])
							ra = pr[2*H+j] + rr*phr[2*H+j] + r*hr[2*H+j]
						} else {
							ra = pr[2*H+j] + hr[2*H+j]
						}
						rc := (1 - c*c) * ra
						rhc[q] = rc + rz*(hp[q]-c) + z*(rhp[q]-rc)
					}
				}
			default:
				mm(false, true, N, gh, H, rhp, H, rd, H, 1, rp, gh)
				for q := range rp {
					rhc[q] = (1 - a[q]*a[q]) * rp[q]
				}
			}
		}
		k.putY(val(w.RV, k.y), st.rhs, d)
		last := k.cur(d, k.step(d, k.seq-1))
		k.putState(val(w.RV, k.yh), st.rhs[last:last+nh], d)
		if k.cell == cellLSTM {
			k.putState(val(w.RV, k.yc), st.rcs[last:last+nh], d)
		}
	}
}

func (k *rnnKernel[T]) RBackward(w *Work[T]) {
	s := k.state(w)
	if !anyOf(w.RAdj, k.y, k.yh, k.yc) {
		return
	}
	for i := range s.dirs {
		st := &s.dirs[i]
		if !s.adj {
			clearAll(st.dp, st.dph, st.dq, st.dh, st.dc)
		}
		if !s.rv {
			clearAll(st.rp, st.rph, st.rq, st.rhs, st.rcs)
		}
	}
	tn, gh, nh := k.sizes()
	H, N := k.h, k.n
	ry := val(w.RAdj, k.y)
	rcH, rcC := w.Scratch(rnnScrCarH, nh), w.Scratch(rnnScrCarC, nh)
	tmp := w.Scratch(rnnScrStep, N*gh)
	rdpAll := w.Scratch(rnnScrRDP, tn*gh)
	rdphAll := rdpAll
	if k.cell == cellGRU && k.lbr {
		rdphAll = w.Scratch(rnnScrRDPH, tn*gh)
	}
	dpvAll, davAll := w.Scratch(rnnScrDPV, tn*H), w.Scratch(rnnScrDAV, tn*H)
	x := k.timeMajor(w, w.Val[k.x], rnnScrX)
	rx := k.timeMajor(w, w.RV[k.x], rnnScrRX)
	for d := range s.dirs {
		st := &s.dirs[d]
		wd, rd, _, _ := k.weights(w.Val[k.w], w.Val[k.r], nil, d)
		vw, vr, _, _ := k.weights(w.RV[k.w], w.RV[k.r], nil, d)
		// Ḡʰ V_R (and GRU's ā V_R_h) for every step.
		if vr != nil {
			if k.cell == cellGRU && !k.lbr {
				mm(false, false, tn, H, 2*H, st.dp, gh, vr, H, 0, dpvAll, H)
				mm(false, false, tn, H, H, st.dp[2*H:], gh, vr[2*H*H:], H, 0, davAll, H)
			} else {
				mm(false, false, tn, H, gh, st.dph0(), gh, vr, H, 0, dpvAll, H)
			}
		}
		k.getState(rcH, val(w.RAdj, k.yh), d)
		if k.cell == cellLSTM {
			k.getState(rcC, val(w.RAdj, k.yc), d)
		}
		for i := k.seq - 1; i >= 0; i-- {
			t := k.step(d, i)
			a, rp, dh := k.rows(st.act, t, gh), k.rows(st.rp, t, gh), k.rows(st.dh, t, H)
			rdp, rdph := k.rows(rdpAll, t, gh), k.rows(rdphAll, t, gh)
			hp := st.hs[k.prev(d, t) : k.prev(d, t)+nh]
			rhp, rhc := st.rhs[k.prev(d, t):k.prev(d, t)+nh], st.rhs[k.cur(d, t):k.cur(d, t)+nh]
			// R{H̄_t} = carried + R{Ȳ_t}, into rcH.
			if ry != nil {
				for n := 0; n < N; n++ {
					AddTo(rcH[n*H:(n+1)*H], ry[k.yOff(t, d, n):k.yOff(t, d, n)+H])
				}
			}
			switch k.cell {
			case cellLSTM:
				tc, dc := k.rows(st.tc, t, H), k.rows(st.dc, t, H)
				cp := st.cs[k.prev(d, t) : k.prev(d, t)+nh]
				rcp, rcc := st.rcs[k.prev(d, t):k.prev(d, t)+nh], st.rcs[k.cur(d, t):k.cur(d, t)+nh]
				for n := 0; n < N; n++ {
					ar, pr, rpr := a[n*gh:(n+1)*gh], rp[n*gh:(n+1)*gh], rdp[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q := n*H + j
						ig, og, fg, cg := ar[j], ar[H+j], ar[2*H+j], ar[3*H+j]
						si, so, sf, tg := ig*(1-ig), og*(1-og), fg*(1-fg), 1-cg*cg
						ri, ro, rf, rg := si*pr[j], so*pr[H+j], sf*pr[2*H+j], tg*pr[3*H+j]
						tt := 1 - tc[q]*tc[q]
						rt := tt * rcc[q]
						rdh, hb, cb := rcH[q], dh[q], dc[q]
						rc := rcC[q] + rdh*og*tt + hb*ro*tt - 2*hb*og*tc[q]*rt
						rpr[j] = rc*cg*si + cb*rg*si + cb*cg*(1-2*ig)*ri
						rpr[H+j] = rdh*tc[q]*so + hb*rt*so + hb*tc[q]*(1-2*og)*ro
						rpr[2*H+j] = rc*cp[q]*sf + cb*rcp[q]*sf + cb*cp[q]*(1-2*fg)*rf
						rpr[3*H+j] = rc*ig*tg + cb*ri*tg - 2*cb*ig*cg*rg
						rcC[q] = rc*fg + cb*rf
					}
				}
				k.carry(rcH, rdp, gh, rd, dpvAll, t, vr != nil, 0)
			case cellGRU:
				ph, rph := k.rows(st.ph, t, gh), k.rows(st.rph, t, gh)
				for n := 0; n < N; n++ {
					ar, pr, hr, phr := a[n*gh:(n+1)*gh], rp[n*gh:(n+1)*gh], rph[n*gh:(n+1)*gh], ph[n*gh:(n+1)*gh]
					rpr, rhr := rdp[n*gh:(n+1)*gh], rdph[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q := n*H + j
						z, r, c := ar[j], ar[H+j], ar[2*H+j]
						sz, sr, tcc := z*(1-z), r*(1-r), 1-c*c
						rz, rr := sz*(pr[j]+hr[j]), sr*(pr[H+j]+hr[H+j])
						var ra T
						if k.lbr {
							ra = pr[2*H+j] + rr*phr[2*H+j] + r*hr[2*H+j]
						} else {
							ra = pr[2*H+j] + hr[2*H+j]
						}
						rc := tcc * ra
						hb, rdh := dh[q], rcH[q]
						dht, dz := hb*(1-z), hb*(hp[q]-c)
						da := dht * tcc
						rdht := rdh*(1-z) - hb*rz
						rdz := rdh*(hp[q]-c) + hb*(rhp[q]-rc)
						rda := rdht*tcc - 2*dht*c*rc
						rpr[j] = rdz*sz + dz*(1-2*z)*rz
						rpr[2*H+j] = rda
						rcH[q] = rdh*z + hb*rz
						if k.lbr {
							dr := da * phr[2*H+j]
							rdr := rda*phr[2*H+j] + da*hr[2*H+j]
							rpr[H+j] = rdr*sr + dr*(1-2*r)*rr
							rhr[j], rhr[H+j], rhr[2*H+j] = rpr[j], rpr[H+j], rda*r+da*rr
						}
					}
				}
				if k.lbr {
					k.carry(rcH, rdph, gh, rd, dpvAll, t, vr != nil, 1)
					break
				}
				// R{q̄} = R{ā} R_h + ā V_R_h, then R{r̄} and the carry.
				rdq := tmp[:nh]
				mm(false, false, N, H, H, rdp[2*H:], gh, rd[2*H*H:], H, 0, rdq, H)
				if vr != nil {
					AddTo(rdq, k.rows(davAll, t, H))
				}
				dq := k.rows(st.dq, t, H)
				for n := 0; n < N; n++ {
					ar, pr, hr, rpr := a[n*gh:(n+1)*gh], rp[n*gh:(n+1)*gh], rph[n*gh:(n+1)*gh], rdp[n*gh:(n+1)*gh]
					for j := 0; j < H; j++ {
						q, r := n*H+j, ar[H+j]
						sr := r * (1 - r)
						rr := sr * (pr[H+j] + hr[H+j])
						dr := dq[q] * hp[q]
						rdr := rdq[q]*hp[q] + dq[q]*rhp[q]
						rpr[H+j] = rdr*sr + dr*(1-2*r)*rr
						rcH[q] += rdq[q]*r + dq[q]*rr
					}
				}
				k.carryK(rcH, rdp, gh, 2*H, rd, dpvAll, t, vr != nil)
			default:
				for q := range rdp {
					rdp[q] = rcH[q]*(1-a[q]*a[q]) - 2*dh[q]*a[q]*rhc[q]
				}
				k.carry(rcH, rdp, gh, rd, dpvAll, t, vr != nil, 0)
			}
		}
		k.addState(val(w.RAdj, k.h0), rcH, d)
		if k.cell == cellLSTM {
			k.addState(val(w.RAdj, k.c0), rcC, d)
		}
		// The R-adjoints of the parameters and the input over all steps.
		dw, dr, dwb, drb := k.weights(w.RAdj[k.w], w.RAdj[k.r], val(w.RAdj, k.b), d)
		if dw != nil {
			mm(true, false, gh, k.in, tn, rdpAll, gh, x, k.in, 1, dw, k.in)
			if rx != nil {
				mm(true, false, gh, k.in, tn, st.dp, gh, rx, k.in, 1, dw, k.in)
			}
		}
		hprev := st.hs[k.prevAll(d) : k.prevAll(d)+tn*H]
		rhprev := st.rhs[k.prevAll(d) : k.prevAll(d)+tn*H]
		if dr != nil {
			if k.cell == cellGRU && !k.lbr {
				mm(true, false, 2*H, H, tn, rdpAll, gh, hprev, H, 1, dr, H)
				mm(true, false, H, H, tn, rdpAll[2*H:], gh, st.q, H, 1, dr[2*H*H:], H)
				if s.rv {
					mm(true, false, 2*H, H, tn, st.dp, gh, rhprev, H, 1, dr, H)
					mm(true, false, H, H, tn, st.dp[2*H:], gh, st.rq, H, 1, dr[2*H*H:], H)
				}
			} else {
				mm(true, false, gh, H, tn, rdphAll, gh, hprev, H, 1, dr, H)
				if s.rv {
					mm(true, false, gh, H, tn, st.dph0(), gh, rhprev, H, 1, dr, H)
				}
			}
		}
		colSums(dwb, rdpAll, tn, gh, gh)
		colSums(drb, rdphAll, tn, gh, gh)
		k.xAdjoint(w, w.RAdj[k.x], func(dst []T) {
			mm(false, false, tn, k.in, gh, rdpAll, gh, wd, k.in, 1, dst, k.in)
			if vw != nil {
				mm(false, false, tn, k.in, gh, st.dp, gh, vw, k.in, 1, dst, k.in)
			}
		})
	}
}

// carry sets the R-adjoint carried to the previous step, rc = β·rc +
// R{Ḡʰ_t} R + (Ḡʰ V_R)_t (β = 0 or 1: GRU's direct term is already in rc).
func (k *rnnKernel[T]) carry(rc, rdph []T, gh int, rd, dpv []T, t int, hasV bool, beta T) {
	mm(false, false, k.n, k.h, gh, rdph, gh, rd, k.h, beta, rc, k.h)
	if hasV {
		AddTo(rc, k.rows(dpv, t, k.h))
	}
}

// carryK is carry over the first kk columns of R{Ḡʰ_t} (GRU's z and r
// blocks), always accumulating.
func (k *rnnKernel[T]) carryK(rc, rdp []T, gh, kk int, rd, dpv []T, t int, hasV bool) {
	mm(false, false, k.n, k.h, kk, rdp, gh, rd, k.h, 1, rc, k.h)
	if hasV {
		AddTo(rc, k.rows(dpv, t, k.h))
	}
}
