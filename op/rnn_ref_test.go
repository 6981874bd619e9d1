package op

import (
	"fmt"
)

// The unrolled form of LSTM, GRU and RNN over registered primitives
// (Gather, Gemm, Slice, Sigmoid, Tanh, Add, Sub, Mul, Concat, Reshape,
// Transpose), whose passes follow from the primitives' rules (class
// Composite). It was the operators' kernel before the hand-written one
// (rnn.go) and is kept as its reference: TestRNNMatchesUnrolled compares
// the two on every pass.
var refRNN = Compose(expandRNN)

// maxUnrolled bounds the steps × directions a recurrent node is unrolled
// into (each step is about twenty primitive nodes).
const maxUnrolled = 1 << 14

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
	gates, h, lbr, err := checkRNNInputs(b, g)
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
