package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// Import normalisation.
//
// torch.onnx.export (and other exporters) emit graphs full of constant
// arithmetic: Constant nodes, Identity nodes that de-duplicate equal
// initializers, shape computations over initializers. Loading rewrites the
// graph once so that the rest of bitplan sees the model a PyTorch user
// wrote:
//
//   - Constant nodes become initializers;
//   - every node whose inputs are all constants and whose operator Fold
//     evaluates becomes the initializers of its outputs (computed once, at
//     import): chains such as Shape(W) → Gather → Unsqueeze → Concat, Cast
//     of a constant, Mul/Add/Div of constants, Reshape of a constant;
//   - an Identity of an initializer becomes an initializer of its own (a
//     copy): torch de-duplicates distinct parameters whose values are equal,
//     e.g. the all-zero biases of several layers, by reading one through
//     Identity nodes; they are separate parameters of the trained model, so
//     each keeps its own name and θ entries;
//   - an Identity of computed data is removed, its readers read the input.
//
// Subgraphs that depend on the batch size (Shape of an activation, an
// Expand or ConstantOfShape to the batch) are folded by InferShapes for the
// given input shapes (Shapes.Values) and removed by Specialize.
//
// One initializer read by several nodes directly (tied weights, a layer
// applied twice) stays one initializer: its unit lists every node (a tie).

// normalize rewrites m's nodes and initializers as described above. It
// runs before shape inference.
func (m *Model) normalize() {
	isOutput := make(map[string]bool, len(m.Outputs))
	for _, o := range m.Outputs {
		isOutput[o.Name] = true
	}
	folded := make(map[string]*Tensor) // constant values made by folding
	value := func(name string) *Tensor {
		if t, ok := m.Initializers[name]; ok {
			return t
		}
		return folded[name]
	}
	rename := make(map[string]string) // Identity output → its input
	var kept []*Node
	for _, n := range m.Nodes {
		for i, in := range n.Inputs {
			if r, ok := rename[in]; ok {
				n.Inputs[i] = r
			}
		}
		if n.Domain != "" && n.Domain != "ai.onnx" {
			kept = append(kept, n)
			continue
		}
		if n.Op == "Identity" && len(n.Outputs) == 1 && !isOutput[n.Outputs[0]] && value(n.Input(0)) == nil {
			rename[n.Outputs[0]] = n.Input(0)
			continue
		}
		if m.foldNode(n, value, folded, isOutput) {
			continue
		}
		kept = append(kept, n)
	}
	// Folded values read by the remaining graph become initializers.
	used := make(map[string]bool)
	for _, n := range kept {
		for _, in := range n.Inputs {
			used[in] = true
		}
	}
	for _, o := range m.Outputs {
		used[o.Name] = true
	}
	for _, n := range m.Nodes {
		for _, o := range n.Outputs {
			if t, ok := folded[o]; ok && used[o] {
				t.Name = o
				m.Initializers[o] = t
				m.InitializerNames = append(m.InitializerNames, o)
			}
		}
	}
	// Initializers nothing reads any more (the inputs of folded
	// subgraphs, e.g. a weight whose transpose was folded) are dropped.
	names := m.InitializerNames[:0]
	for _, name := range m.InitializerNames {
		if used[name] {
			names = append(names, name)
		} else {
			delete(m.Initializers, name)
		}
	}
	m.InitializerNames = names
	for i, n := range kept {
		n.Index = i
	}
	m.Nodes = kept
}

// foldNode folds n when all its inputs are constants; the outputs go to
// folded. Nodes producing graph outputs are kept.
func (m *Model) foldNode(n *Node, value func(string) *Tensor, folded map[string]*Tensor, isOutput map[string]bool) bool {
	for _, o := range n.Outputs {
		if isOutput[o] {
			return false
		}
	}
	ins := make([]*Tensor, len(n.Inputs))
	for i, in := range n.Inputs {
		if in == "" {
			continue
		}
		if ins[i] = value(in); ins[i] == nil {
			return false
		}
	}
	var shape0 []int
	if len(ins) > 0 && ins[0] != nil {
		shape0 = ins[0].Shape
	}
	outs, ok, err := Fold(n, m.Opset, ins, shape0)
	if err != nil || !ok {
		// An inconsistent constant subgraph is left for shape inference,
		// which reports it naming the node.
		return false
	}
	for i, o := range n.Outputs {
		if o == "" || i >= len(outs) {
			continue
		}
		if outs[i] == nil {
			continue
		}
		// Fold's outputs never share storage with its inputs: an
		// Identity of a weight is a parameter of its own.
		t := *outs[i]
		folded[o] = &t
	}
	return true
}

// Specialize returns a copy of m for the given input shapes (as
// InferShapes takes them) in which every tensor computable without input
// data — shape arithmetic over the batch size, ConstantOfShape and Expand to
// the batch, Where/Equal on shapes — is an initializer and its nodes are
// gone. The copy's units and shapes are those of the given inputs. The
// initializers of m are shared, not copied.
func (m *Model) Specialize(inputs map[string][]int) (*Model, error) {
	s, err := m.InferShapes(inputs)
	if err != nil {
		return nil, err
	}
	c := *m
	c.Initializers = make(map[string]*Tensor, len(m.Initializers))
	for k, v := range m.Initializers {
		c.Initializers[k] = v
	}
	c.InitializerNames = slices.Clone(m.InitializerNames)
	isOutput := make(map[string]bool)
	for _, o := range m.Outputs {
		isOutput[o.Name] = true
	}
	var kept []*Node
	for _, n := range m.Nodes {
		all := len(n.Outputs) > 0
		for _, o := range n.Outputs {
			if _, ok := s.Values[o]; o != "" && (!ok || isOutput[o]) {
				all = false
			}
		}
		if !all {
			kept = append(kept, n)
		}
	}
	used := make(map[string]bool)
	for _, n := range kept {
		for _, in := range n.Inputs {
			used[in] = true
		}
	}
	c.Nodes = make([]*Node, len(kept))
	for i, n := range kept {
		nn := *n
		nn.Index = i
		c.Nodes[i] = &nn
		for _, in := range n.Inputs {
			if _, isInit := c.Initializers[in]; isInit || in == "" {
				continue
			}
			if t, ok := s.Values[in]; ok && used[in] {
				tc := *t
				tc.Name = in
				c.Initializers[in] = &tc
				c.InitializerNames = append(c.InitializerNames, in)
			}
		}
	}
	c.Shapes = s
	units, err := c.findUnits()
	if err != nil {
		return nil, err
	}
	c.Units = units
	return &c, nil
}

// ShapeOps are the operators that compute on shapes and constants only; a
// graph still holding one of them after Specialize has shape arithmetic that
// could not be folded (see Residual).
var shapeOps = map[string]bool{
	"Shape": true, "Size": true, "ConstantOfShape": true, "Range": true, "Constant": true,
}

// Residual returns the nodes of a specialised model that still compute on
// shapes (Shape, Size, ConstantOfShape, Range, Constant): import
// normalisation failed to fold them. It is empty for a fully normalised
// graph.
func (m *Model) Residual() []*Node {
	var r []*Node
	for _, n := range m.Nodes {
		if shapeOps[n.Op] {
			r = append(r, n)
		}
	}
	return r
}

// NormalizeProto returns a copy of mp with import normalisation applied:
// the nodes and initializers of FromProto(mp), so that node positions and
// initializer names of the copy are those of the imported Model (what a
// tool that edits the file by them, such as pruning, needs). Attributes,
// value_info, metadata and the other fields are kept.
func NormalizeProto(mp *onnx.ModelProto) (*onnx.ModelProto, *Model, error) {
	m, err := FromProto(mp)
	if err != nil {
		return nil, nil, err
	}
	out := proto.Clone(mp).(*onnx.ModelProto)
	g := out.Graph
	nodes := make([]*onnx.NodeProto, len(m.Nodes))
	for i, n := range m.Nodes {
		np := g.Node[n.FileIndex]
		np.Input = slices.Clone(n.Inputs)
		nodes[i] = np
		n.FileIndex = i
	}
	g.Node = nodes
	have := make(map[string]bool, len(g.Initializer))
	dropped := make(map[string]bool)
	inits := g.Initializer[:0]
	for _, t := range g.Initializer {
		if _, ok := m.Initializers[t.Name]; ok {
			have[t.Name] = true
			inits = append(inits, t)
		} else {
			dropped[t.Name] = true
		}
	}
	g.Initializer = inits
	// Old exports list initializers among the graph inputs too.
	ins := g.Input[:0]
	for _, in := range g.Input {
		if !dropped[in.GetName()] {
			ins = append(ins, in)
		}
	}
	g.Input = ins
	for _, name := range m.InitializerNames {
		if have[name] {
			continue
		}
		tp, err := TensorProto(m.Initializers[name])
		if err != nil {
			return nil, nil, fmt.Errorf("model: folded tensor %q: %w", name, err)
		}
		tp.Name = name
		g.Initializer = append(g.Initializer, tp)
	}
	return out, m, nil
}

// TensorProto encodes t as an ONNX TensorProto (raw little-endian data) of
// its element type: FLOAT, DOUBLE, INT64, INT32, INT8, UINT8 or BOOL.
func TensorProto(t *Tensor) (*onnx.TensorProto, error) {
	tp := &onnx.TensorProto{Name: t.Name, DataType: int32(t.Type)}
	for _, d := range t.Shape {
		tp.Dims = append(tp.Dims, int64(d))
	}
	le := binary.LittleEndian
	n := t.Len()
	var raw []byte
	switch t.Type {
	case Float:
		raw = make([]byte, 4*n)
		for i, v := range t.Float {
			le.PutUint32(raw[4*i:], math.Float32bits(float32(v)))
		}
	case Double:
		raw = make([]byte, 8*n)
		for i, v := range t.Float {
			le.PutUint64(raw[8*i:], math.Float64bits(v))
		}
	case Int64:
		raw = make([]byte, 8*n)
		for i, v := range t.Int {
			le.PutUint64(raw[8*i:], uint64(v))
		}
	case Int32:
		raw = make([]byte, 4*n)
		for i, v := range t.Int {
			le.PutUint32(raw[4*i:], uint32(int32(v)))
		}
	case Int8, Uint8, Bool:
		raw = make([]byte, n)
		for i, v := range t.Int {
			raw[i] = byte(v)
		}
	default:
		return nil, fmt.Errorf("cannot encode element type %v", t.Type)
	}
	tp.RawData = raw
	return tp, nil
}
