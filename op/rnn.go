package op

import (
	"fmt"
	"slices"
)

// LSTM, GRU and RNN (ONNX semantics, default activations) are composites
// unrolled over the sequence into registered primitives — Gather (the time
// step and the direction's weights), Gemm, Slice (the gates), Sigmoid,
// Tanh, Add, Sub, Mul, Concat, Reshape, Transpose — so their forward,
// R-forward, backward and R-backward passes, and hence exact
// Hessian-vector products, follow from the primitives' rules (class
// Composite). A hand-written recurrent kernel would save the small copies
// of the per-step picks, but every product is already one BLAS call per
// step and gate block, and the unrolled form needs no second-order
// algebra of its own.
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
	Register(&Def{Type: "LSTM", Since: 7, Infer: inferRNN, Exec: Compose(expandRNN), Class: Composite, Units: rnnUnits,
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
	Register(&Def{Type: "GRU", Since: 7, Infer: inferRNN, Exec: Compose(expandRNN), Class: Composite, Units: rnnUnits,
		Cases: []Case{
			{Name: "forward, linear_before_reset (torch)", Attrs: []*Attr{hs(3), {Name: "linear_before_reset", Type: AttrInt, Int: 1}},
				Inputs:  []CaseInput{x(3, 2, 2), x(1, 9, 2), x(1, 9, 3), x(1, 18), absent, {Shape: []int{1, 2, 3}, Const: make([]float64, 6)}},
				Outputs: 2, Want: []int{3, 1, 2, 3}},
			{Name: "bidirectional, reset before the product, initial state", Attrs: []*Attr{hs(2), dir("bidirectional")},
				Inputs:  []CaseInput{x(3, 2, 2), x(2, 6, 2), x(2, 6, 2), x(2, 12), absent, x(2, 2, 2)},
				Outputs: 2, Want: []int{3, 2, 2, 2}},
		}})
	Register(&Def{Type: "RNN", Since: 7, Infer: inferRNN, Exec: Compose(expandRNN), Class: Composite, Units: rnnUnits,
		Cases: []Case{
			{Name: "bidirectional with bias", Attrs: []*Attr{hs(2), dir("bidirectional")},
				Inputs: []CaseInput{x(3, 2, 2), x(2, 2, 2), x(2, 2, 2), x(2, 4)}, Outputs: 2, Want: []int{3, 2, 2, 2}},
		}})
}

// maxUnrolled bounds the steps × directions a recurrent node is unrolled
// into (each step is about twenty primitive nodes).
const maxUnrolled = 1 << 14

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

// expander builds an Expansion with generated tensor names.
type expander struct {
	nodes []*Node
	k     int
}

func (e *expander) name() string {
	e.k++
	return fmt.Sprintf("t%d", e.k)
}

// add appends a node with the given attributes and returns its output.
func (e *expander) add(op string, attrs []*Attr, ins ...string) string {
	return e.addTo(e.name(), op, attrs, ins...)
}

func (e *expander) addTo(out, op string, attrs []*Attr, ins ...string) string {
	n := &Node{Op: op, Inputs: ins, Outputs: []string{out}, Attrs: map[string]*Attr{}}
	for _, a := range attrs {
		n.Attrs[a.Name] = a
	}
	e.nodes = append(e.nodes, n)
	return out
}

// constant adds a Constant node holding t.
func (e *expander) constant(t *Tensor) string {
	return e.add("Constant", []*Attr{{Name: "value", Type: AttrTensor, Tensor: t}})
}

func (e *expander) ints(v ...int64) string {
	return e.constant(&Tensor{Type: Int64, Shape: []int{len(v)}, Int: v})
}

func (e *expander) scalar(v int64) string {
	return e.constant(&Tensor{Type: Int64, Shape: []int{}, Int: []int64{v}})
}

// gather picks index i of axis 0 (dropping the axis).
func (e *expander) gather(x string, i int) string {
	return e.add("Gather", []*Attr{{Name: "axis", Type: AttrInt}}, x, e.scalar(int64(i)))
}

// slice takes [lo, hi) of axis.
func (e *expander) slice(x string, axis, lo, hi int) string {
	return e.add("Slice", nil, x, e.ints(int64(lo)), e.ints(int64(hi)), e.ints(int64(axis)))
}

// gemm is a·bᵀ (+ c).
func (e *expander) gemm(a, b, c string) string {
	tb := []*Attr{{Name: "transB", Type: AttrInt, Int: 1}}
	if c == "" {
		return e.add("Gemm", tb, a, b)
	}
	return e.add("Gemm", tb, a, b, c)
}

func (e *expander) transpose(x string, perm ...int64) string {
	return e.add("Transpose", []*Attr{{Name: "perm", Type: AttrInts, Ints: perm}}, x)
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

// expandRNN unrolls a recurrent node over its sequence.
func expandRNN(b *Build) (*Expansion, error) {
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
	if g.seq*g.dirs > maxUnrolled {
		return nil, fmt.Errorf("%d steps in %d directions: at most %d steps are unrolled", g.seq, g.dirs, maxUnrolled)
	}
	gates, h := rnnGates(n.Op), g.hidden
	if rs := b.Shape(b.In[2]); !slices.Equal(rs, []int{g.dirs, gates * h, h}) {
		return nil, fmt.Errorf("weight R has shape %v, want %v", rs, []int{g.dirs, gates * h, h})
	}
	if s := b.Input(3); s >= 0 && !slices.Equal(b.Shape(s), []int{g.dirs, 2 * gates * h}) {
		return nil, fmt.Errorf("bias B has shape %v, want %v", b.Shape(s), []int{g.dirs, 2 * gates * h})
	}
	if s := b.Input(4); s >= 0 {
		v, ok := b.Const(s)
		if !ok {
			return nil, fmt.Errorf("sequence_lens is computed; only a constant equal to the sequence length %d is supported", g.seq)
		}
		for _, l := range v {
			if int(l) != g.seq {
				return nil, fmt.Errorf("sequence_lens %v: only sequences of the full length %d are supported", v, g.seq)
			}
		}
	}
	if n.Op == "LSTM" && b.Input(7) >= 0 {
		return nil, fmt.Errorf("peephole weights (input P) are not supported")
	}
	state := []int{g.dirs, g.batch, h}
	if g.layout == 1 {
		state = []int{g.batch, g.dirs, h}
	}
	for _, j := range []int{5, 6} {
		if s := b.Input(j); s >= 0 && !slices.Equal(b.Shape(s), state) {
			return nil, fmt.Errorf("initial state input %d has shape %v, want %v", j, b.Shape(s), state)
		}
	}
	lbr, err := n.AttrInt("linear_before_reset", 0)
	if err != nil {
		return nil, err
	}

	e := &expander{}
	x := "$0"
	h0, c0 := "", ""
	if b.Input(5) >= 0 {
		h0 = "$5"
	}
	if n.Op == "LSTM" && b.Input(6) >= 0 {
		c0 = "$6"
	}
	if g.layout == 1 {
		x = e.transpose(x, 1, 0, 2)
		if h0 != "" {
			h0 = e.transpose(h0, 1, 0, 2)
		}
		if c0 != "" {
			c0 = e.transpose(c0, 1, 0, 2)
		}
	}
	zeros := ""
	steps := make([]string, g.seq)
	for t := range steps {
		steps[t] = e.gather(x, t)
	}
	ys := make([][]string, g.seq) // ys[t][d]
	for t := range ys {
		ys[t] = make([]string, g.dirs)
	}
	lastH, lastC := make([]string, g.dirs), make([]string, g.dirs)
	for d := 0; d < g.dirs; d++ {
		w, r := e.gather("$1", d), e.gather("$2", d)
		wb, rb := "", ""
		if b.Input(3) >= 0 {
			bd := e.gather("$3", d)
			wb, rb = e.slice(bd, 0, 0, gates*h), e.slice(bd, 0, gates*h, 2*gates*h)
		}
		initial := func(s string) string {
			if s != "" {
				return e.gather(s, d)
			}
			if zeros == "" {
				zeros = e.constant(&Tensor{Type: Float, Shape: []int{g.batch, h}, Float: make([]float64, g.batch*h)})
			}
			return zeros
		}
		// LSTM and RNN add both biases to the input product.
		bsum := ""
		if wb != "" && n.Op != "GRU" {
			bsum = e.add("Add", nil, wb, rb)
		}
		hp, cp := initial(h0), ""
		if n.Op == "LSTM" {
			cp = initial(c0)
		}
		// GRU's candidate with the reset before the product needs R_h and
		// Rb_h apart from the z and r blocks.
		var rzr, rh, rbzr, rbh string
		if n.Op == "GRU" && lbr == 0 {
			rzr, rh = e.slice(r, 0, 0, 2*h), e.slice(r, 0, 2*h, 3*h)
			if rb != "" {
				rbzr, rbh = e.slice(rb, 0, 0, 2*h), e.slice(rb, 0, 2*h, 3*h)
			}
		}
		reverse := g.dir == "reverse" || d == 1
		for i := 0; i < g.seq; i++ {
			t := i
			if reverse {
				t = g.seq - 1 - i
			}
			gate := func(v string, k int) string { return e.slice(v, 1, k*h, (k+1)*h) }
			switch n.Op {
			case "LSTM":
				gsum := e.gemm(hp, r, e.gemm(steps[t], w, bsum))
				ig := e.add("Sigmoid", nil, gate(gsum, 0))
				og := e.add("Sigmoid", nil, gate(gsum, 1))
				fg := e.add("Sigmoid", nil, gate(gsum, 2))
				cg := e.add("Tanh", nil, gate(gsum, 3))
				cp = e.add("Add", nil, e.add("Mul", nil, fg, cp), e.add("Mul", nil, ig, cg))
				hp = e.add("Mul", nil, og, e.add("Tanh", nil, cp))
			case "GRU":
				gx := e.gemm(steps[t], w, wb)
				var z, rr, cand string
				if lbr != 0 {
					gh := e.gemm(hp, r, rb)
					z = e.add("Sigmoid", nil, e.add("Add", nil, gate(gx, 0), gate(gh, 0)))
					rr = e.add("Sigmoid", nil, e.add("Add", nil, gate(gx, 1), gate(gh, 1)))
					cand = e.add("Add", nil, gate(gx, 2), e.add("Mul", nil, rr, gate(gh, 2)))
				} else {
					gh := e.gemm(hp, rzr, rbzr)
					z = e.add("Sigmoid", nil, e.add("Add", nil, gate(gx, 0), gate(gh, 0)))
					rr = e.add("Sigmoid", nil, e.add("Add", nil, gate(gx, 1), gate(gh, 1)))
					cand = e.add("Add", nil, gate(gx, 2), e.gemm(e.add("Mul", nil, rr, hp), rh, rbh))
				}
				ht := e.add("Tanh", nil, cand)
				// H = h̃ + z ⊙ (H_{t−1} − h̃)
				hp = e.add("Add", nil, ht, e.add("Mul", nil, z, e.add("Sub", nil, hp, ht)))
			default:
				hp = e.add("Tanh", nil, e.gemm(hp, r, e.gemm(steps[t], w, bsum)))
			}
			ys[t][d] = hp
		}
		lastH[d], lastC[d] = hp, cp
	}
	concat := func(parts []string) string {
		return e.add("Concat", []*Attr{{Name: "axis", Type: AttrInt}}, parts...)
	}
	// stack concatenates parts along axis 0 and reshapes them into out
	// (layout 0) or into shape and then out by the permutation (layout 1).
	stack := func(out string, parts []string, perm []int64, shape ...int64) {
		c := concat(parts)
		if g.layout == 0 {
			e.addTo(out, "Reshape", nil, c, e.ints(shape...))
			return
		}
		e.addTo(out, "Transpose", []*Attr{{Name: "perm", Type: AttrInts, Ints: perm}}, e.add("Reshape", nil, c, e.ints(shape...)))
	}
	var all []string
	for _, row := range ys {
		all = append(all, row...)
	}
	stack("$out", all, []int64{2, 0, 1, 3}, int64(g.seq), int64(g.dirs), int64(g.batch), int64(h))
	finals := [][]string{lastH}
	if n.Op == "LSTM" {
		finals = append(finals, lastC)
	}
	for j, f := range finals {
		if j+1 < len(b.Out) && b.Out[j+1] >= 0 {
			stack(fmt.Sprintf("$out%d", j+1), f, []int64{1, 0, 2}, int64(g.dirs), int64(g.batch), int64(h))
		}
	}
	return &Expansion{Nodes: e.nodes}, nil
}
