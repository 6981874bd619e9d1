package model

import (
	"math"
	"strings"

	"github.com/bitplan/bitplan/op"
)

// The kinds of a NonLinear.
const (
	GELU      = "gelu"
	Softmax   = "softmax"
	LayerNorm = "layernorm"
)

// NonLinear is a GELU, Softmax or LayerNorm of the graph in a form whose
// output an integer-only approximation can replace: the node whose first
// output is replaced, the input it is computed from, and the row the
// function normalises over.
type NonLinear struct {
	// Kind is GELU, Softmax or LayerNorm.
	Kind string
	// Node is the index of the node whose output is replaced, Name its name
	// (the first output's name when it has none), Input the index of the
	// node's input the function is computed from:
	//   - GELU: a Gelu node (opset 20), or the Mul(x, 1 + Erf(x/√2)) of an
	//     exported exact GELU, whose output is 2·GELU(x) (the 0.5 follows);
	//   - Softmax: a Softmax over the last axis;
	//   - LayerNorm: a LayerNormalization over the last axis (output γ·n(x)
	//     + β with Gamma, Beta), or the Div((x − mean), √(var + ε)) of a
	//     decomposed one (output n(x), its γ and β follow).
	Node  int
	Name  string
	Input int
	// Row is the length of the last axis (the softmax's or normalisation's
	// row; GELU's too, unused); Elems the elements per sample.
	Row   int
	Elems int64
	// Gamma and Beta are a LayerNormalization node's scale and bias inputs
	// ("" when absent or for the other forms).
	Gamma, Beta string
	// Block is the name prefix the node belongs to: its path up to the
	// first component with an index ("/layers.0" of
	// "/layers.0/att/Softmax", "/blocks/blocks.1" of
	// "/blocks/blocks.1/Mul"), else its first component, "" for a node
	// without a path.
	Block string
}

// NonLinears returns the model's GELU, Softmax and LayerNorm nodes in the
// forms NonLinear lists, in node order. Shapes must be known (the model
// inferred or specialised); a node of unknown shape, a Softmax or
// LayerNormalization over another axis, or another GELU form (the tanh
// approximation) is not listed.
func (m *Model) NonLinears() []NonLinear {
	prod := m.Producers()
	var out []NonLinear
	dims := func(name string) []int {
		if m.Shapes == nil {
			return nil
		}
		return m.Shapes.Dims[name]
	}
	add := func(kind string, n *Node, input int) {
		d := dims(n.Inputs[input])
		if len(d) == 0 {
			return
		}
		nl := NonLinear{Kind: kind, Node: n.Index, Name: n.Name, Input: input, Row: d[len(d)-1], Elems: int64(op.Numel(d))}
		if nl.Name == "" {
			nl.Name = n.Outputs[0]
		}
		if len(d) >= 2 && d[0] > 0 {
			nl.Elems /= int64(d[0])
		}
		nl.Block = blockOf(n.Name)
		if kind == LayerNorm && n.Op == "LayerNormalization" {
			nl.Gamma, nl.Beta = n.Input(1), n.Input(2)
		}
		out = append(out, nl)
	}
	lastAxis := func(n *Node, def int64) bool {
		d := dims(n.Input(0))
		ax, err := n.AttrInt("axis", def)
		return err == nil && d != nil && (ax == -1 || ax == int64(len(d)-1))
	}
	for _, n := range m.Nodes {
		if !op.IsDefault(n.Domain) || len(n.Outputs) == 0 || len(n.Inputs) == 0 {
			continue
		}
		switch n.Op {
		case "Softmax":
			def := int64(-1)
			if m.Opset < 13 {
				def = 1 // the 2-D coerced axis: the last one only for rank 2
			}
			if lastAxis(n, def) {
				add(Softmax, n, 0)
			}
		case "LayerNormalization":
			if lastAxis(n, -1) {
				add(LayerNorm, n, 0)
			}
		case "Gelu":
			if a, err := n.AttrString("approximate", "none"); err == nil && a == "none" {
				add(GELU, n, 0)
			}
		case "Mul":
			for x := 0; x < 2 && len(n.Inputs) == 2; x++ {
				if m.isGELUFactor(n.Inputs[1-x], n.Inputs[x], prod) {
					add(GELU, n, x)
					break
				}
			}
		case "Div":
			if len(n.Inputs) == 2 && m.isDecomposedLN(n, prod) && lastAxis(prod[n.Inputs[0]], -1) {
				add(LayerNorm, n, 0)
			}
		}
	}
	return out
}

// blockOf returns the block a node name belongs to: the path up to its
// first component that ends in ".<index>" ("/blocks/blocks.1/att/Softmax"
// → "/blocks/blocks.1", "/layers.0/f1/MatMul" → "/layers.0", a PyTorch
// ModuleList or Sequential entry), else up to its second "/" ("/norm/Div"
// → "/norm"), or "" for a name without a path.
func blockOf(name string) string {
	if !strings.HasPrefix(name, "/") {
		return ""
	}
	parts := strings.Split(name[1:], "/")
	for i, p := range parts[:len(parts)-1] {
		if j := strings.LastIndexByte(p, '.'); j >= 0 && j+1 < len(p) && strings.Trim(p[j+1:], "0123456789") == "" {
			return "/" + strings.Join(parts[:i+1], "/")
		}
	}
	if len(parts) > 1 {
		return "/" + parts[0]
	}
	return ""
}

// scalar returns the value of a one-element constant.
func (m *Model) scalar(name string) (float64, bool) {
	t := m.Initializers[name]
	if t == nil && m.Shapes != nil {
		t = m.Shapes.Values[name]
	}
	if t == nil || t.Len() != 1 {
		return 0, false
	}
	return t.Values()[0], true
}

// isGELUFactor reports whether a is Add(Erf(Div(x, √2)), 1) (either
// operand order of the Add, or Mul by 1/√2 in place of the Div).
func (m *Model) isGELUFactor(a, x string, prod map[string]*Node) bool {
	add := prod[a]
	if add == nil || add.Op != "Add" || len(add.Inputs) != 2 {
		return false
	}
	for e := 0; e < 2; e++ {
		one, ok := m.scalar(add.Inputs[1-e])
		erf := prod[add.Inputs[e]]
		if !ok || one != 1 || erf == nil || erf.Op != "Erf" {
			continue
		}
		d := prod[erf.Input(0)]
		if d == nil || len(d.Inputs) != 2 || d.Inputs[0] != x {
			continue
		}
		c, ok := m.scalar(d.Inputs[1])
		if ok && (d.Op == "Div" && math.Abs(c-math.Sqrt2) < 1e-3 || d.Op == "Mul" && math.Abs(c-1/math.Sqrt2) < 1e-3) {
			return true
		}
	}
	return false
}

// isDecomposedLN reports whether Div node n is (x − ReduceMean(x)) /
// Sqrt(ReduceMean((x − mean)²) + ε), the LayerNorm of an export below
// opset 17.
func (m *Model) isDecomposedLN(n *Node, prod map[string]*Node) bool {
	sub, sq := prod[n.Inputs[0]], prod[n.Inputs[1]]
	if sub == nil || sub.Op != "Sub" || len(sub.Inputs) != 2 || sq == nil || sq.Op != "Sqrt" {
		return false
	}
	if mean := prod[sub.Inputs[1]]; mean == nil || mean.Op != "ReduceMean" || mean.Input(0) != sub.Inputs[0] {
		return false
	}
	eps := prod[sq.Input(0)]
	if eps == nil || eps.Op != "Add" || len(eps.Inputs) != 2 {
		return false
	}
	for i := 0; i < 2; i++ {
		v := prod[eps.Inputs[i]]
		if v == nil || v.Op != "ReduceMean" {
			continue
		}
		p := prod[v.Input(0)]
		if p == nil || len(p.Inputs) != 2 {
			continue
		}
		switch {
		case p.Op == "Pow" && p.Inputs[0] == n.Inputs[0]:
			if e, ok := m.scalar(p.Inputs[1]); ok && e == 2 {
				return true
			}
		case p.Op == "Mul" && p.Inputs[0] == n.Inputs[0] && p.Inputs[1] == n.Inputs[0]:
			return true
		}
	}
	return false
}
