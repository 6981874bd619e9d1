package model

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/internal/readfile"
)

// ErrFormat is wrapped by every error that reports a malformed model: bytes
// that are not an ONNX ModelProto, or a graph whose structure is inconsistent.
var ErrFormat = errors.New("model: invalid ONNX model")

// Model is an imported ONNX graph.
type Model struct {
	// Name is the graph name (ModelProto.graph.name).
	Name string
	// Producer is the producer name and version, e.g. "pytorch 2.1".
	Producer string
	// Opset is the version of the default ("" or "ai.onnx") operator set.
	Opset int64

	// Inputs are the graph inputs that are not initializers, in file order.
	Inputs []ValueInfo
	// Outputs are the graph outputs in file order.
	Outputs []ValueInfo
	// Initializers holds every initializer by name; InitializerNames lists
	// them in file order.
	Initializers     map[string]*Tensor
	InitializerNames []string
	// Nodes are the graph nodes in file (topological) order.
	Nodes []*Node
	// ValueInfo holds the graph's value_info annotations by tensor name
	// (intermediate shapes some exporters record).
	ValueInfo map[string]ValueInfo

	// Units are the quantizable units (Conv, Gemm, MatMul with a constant
	// weight) in node order.
	Units []Unit
	// Shapes are the tensor shapes inferred at batch size 1 (nil entries
	// are unknown, e.g. outputs of operators shape inference does not know).
	Shapes *Shapes
}

// ValueInfo describes a graph input, output or annotated value.
type ValueInfo struct {
	Name string
	// Type is the element type (DataType) or Undefined when absent.
	Type DataType
	// Shape holds the dimensions; -1 marks a symbolic or unknown dimension.
	// A nil Shape means the rank is unknown.
	Shape []int
	// DimNames holds the symbolic dimension names ("" for fixed ones).
	DimNames []string
}

// Load reads and imports the ONNX model in the named file. Initializers
// kept as external data (models over 2 GB) are read from their files,
// relative to the model's directory.
func Load(path string) (*Model, error) {
	b, err := readfile.Read(path, readfile.Model)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := decode(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Decode imports an ONNX model from its serialized ModelProto bytes. A
// model with external data needs its directory: use Load.
func Decode(b []byte) (*Model, error) { return decode(b, "") }

func decode(b []byte, dir string) (*Model, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrFormat)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		return nil, fmt.Errorf("%w: not a ModelProto (truncated or not ONNX?): %v", ErrFormat, err)
	}
	if err := resolveExternal(mp, dir); err != nil {
		return nil, err
	}
	return fromProto(mp, true)
}

// FromProto imports a decoded ModelProto. The proto is not retained.
func FromProto(mp *onnx.ModelProto) (*Model, error) { return fromProto(mp, false) }

// fromProto imports mp; with release (a proto decode owns) each
// initializer's raw bytes are dropped once decoded, so a large model's
// file bytes and float64 values are not all held at once.
func fromProto(mp *onnx.ModelProto, release bool) (*Model, error) {
	if mp == nil || mp.Graph == nil {
		return nil, fmt.Errorf("%w: no graph (truncated file or not an ONNX model)", ErrFormat)
	}
	g := mp.Graph
	m := &Model{
		Name:         g.Name,
		Producer:     mp.ProducerName,
		Initializers: make(map[string]*Tensor, len(g.Initializer)),
		ValueInfo:    make(map[string]ValueInfo),
	}
	if mp.ProducerVersion != "" {
		m.Producer += " " + mp.ProducerVersion
	}
	for _, op := range mp.OpsetImport {
		if op != nil && (op.Domain == "" || op.Domain == "ai.onnx") {
			m.Opset = op.Version
		}
	}
	for i, tp := range g.Initializer {
		if tp == nil {
			return nil, fmt.Errorf("%w: initializer #%d is empty", ErrFormat, i)
		}
		t, err := TensorFromProto(tp)
		if release {
			tp.RawData, tp.FloatData = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("initializer #%d: %w", i, err)
		}
		if t.Name == "" {
			return nil, fmt.Errorf("%w: initializer #%d has no name", ErrFormat, i)
		}
		if _, dup := m.Initializers[t.Name]; dup {
			return nil, fmt.Errorf("%w: initializer %q defined twice", ErrFormat, t.Name)
		}
		m.Initializers[t.Name] = t
		m.InitializerNames = append(m.InitializerNames, t.Name)
	}
	for i, vi := range g.Input {
		v, err := valueInfo(vi)
		if err != nil {
			return nil, fmt.Errorf("graph input #%d: %w", i, err)
		}
		if _, isInit := m.Initializers[v.Name]; isInit {
			continue
		}
		m.Inputs = append(m.Inputs, v)
	}
	for i, vi := range g.Output {
		v, err := valueInfo(vi)
		if err != nil {
			return nil, fmt.Errorf("graph output #%d: %w", i, err)
		}
		m.Outputs = append(m.Outputs, v)
	}
	for i, vi := range g.ValueInfo {
		v, err := valueInfo(vi)
		if err != nil {
			return nil, fmt.Errorf("value_info #%d: %w", i, err)
		}
		m.ValueInfo[v.Name] = v
	}
	if len(m.Outputs) == 0 {
		return nil, fmt.Errorf("%w: graph has no outputs", ErrFormat)
	}

	defined := make(map[string]bool, len(m.Initializers)+len(g.Node))
	for name := range m.Initializers {
		defined[name] = true
	}
	for _, in := range m.Inputs {
		defined[in.Name] = true
	}
	for i, np := range g.Node {
		if np == nil {
			return nil, fmt.Errorf("%w: node #%d is empty", ErrFormat, i)
		}
		n := &Node{
			Index:     i,
			FileIndex: i,
			Name:      np.Name,
			Op:        np.OpType,
			Domain:    np.Domain,
			Inputs:    slices.Clone(np.Input),
			Outputs:   slices.Clone(np.Output),
			Attrs:     make(map[string]*Attr, len(np.Attribute)),
		}
		if n.Op == "" {
			return nil, fmt.Errorf("%w: node #%d (%q) has no op_type", ErrFormat, i, n.Name)
		}
		for _, ap := range np.Attribute {
			if ap == nil {
				continue
			}
			a, err := attrFromProto(ap)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n.Label(), err)
			}
			n.Attrs[a.Name] = a
		}
		for _, in := range n.Inputs {
			if in != "" && !defined[in] {
				return nil, fmt.Errorf("%w: %s: input %q is not a graph input, an initializer or the output of an earlier node (missing initializer?)",
					ErrFormat, n.Label(), in)
			}
		}
		for _, out := range n.Outputs {
			if out == "" {
				continue
			}
			if defined[out] {
				return nil, fmt.Errorf("%w: %s: output %q is defined twice", ErrFormat, n.Label(), out)
			}
			defined[out] = true
		}
		m.Nodes = append(m.Nodes, n)
	}
	for _, out := range m.Outputs {
		if !defined[out.Name] {
			return nil, fmt.Errorf("%w: graph output %q is not produced by any node", ErrFormat, out.Name)
		}
	}

	m.normalize()

	// Shapes at batch size 1: the first dimension of every input is taken as
	// the batch and set to 1, other symbolic dimensions also become 1. A
	// graph whose shape arithmetic hard-codes its export batch size is
	// retried with the declared dimensions.
	in := make(map[string][]int, len(m.Inputs))
	declared := make(map[string][]int, len(m.Inputs))
	for _, v := range m.Inputs {
		s := append([]int(nil), v.Shape...)
		for d := range s {
			if s[d] < 0 {
				s[d] = 1
			}
		}
		declared[v.Name] = append([]int(nil), s...)
		if len(s) > 0 {
			s[0] = 1
		}
		in[v.Name] = s
	}
	shapes, err := m.infer(in, true)
	if err != nil {
		var err2 error
		if shapes, err2 = m.infer(declared, true); err2 != nil {
			return nil, err
		}
	}
	m.Shapes = shapes
	units, err := m.findUnits()
	if err != nil {
		return nil, err
	}
	m.Units = units
	return m, nil
}

// Producers returns, for every tensor name, the node that produces it
// (graph inputs and initializers are absent).
func (m *Model) Producers() map[string]*Node {
	p := make(map[string]*Node)
	for _, n := range m.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				p[o] = n
			}
		}
	}
	return p
}

// Consumers returns, for every tensor name, the nodes that read it in node
// order.
func (m *Model) Consumers() map[string][]*Node {
	c := make(map[string][]*Node)
	for _, n := range m.Nodes {
		for _, in := range n.Inputs {
			if in != "" {
				c[in] = append(c[in], n)
			}
		}
	}
	return c
}

// Ops returns the distinct operator types of the graph in first-use order.
func (m *Model) Ops() []string {
	seen := make(map[string]bool)
	var ops []string
	for _, n := range m.Nodes {
		if !seen[n.Op] {
			seen[n.Op] = true
			ops = append(ops, n.Op)
		}
	}
	return ops
}

// Unit returns the unit with the given name, or nil.
func (m *Model) Unit(name string) *Unit {
	for i := range m.Units {
		if m.Units[i].Name == name {
			return &m.Units[i]
		}
	}
	return nil
}

func valueInfo(vi *onnx.ValueInfoProto) (ValueInfo, error) {
	if vi == nil {
		return ValueInfo{}, fmt.Errorf("%w: empty value info", ErrFormat)
	}
	v := ValueInfo{Name: vi.Name}
	if v.Name == "" {
		return v, fmt.Errorf("%w: value info without a name", ErrFormat)
	}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return v, nil
	}
	v.Type = DataType(tt.ElemType)
	if tt.Shape == nil {
		return v, nil
	}
	v.Shape = make([]int, len(tt.Shape.Dim))
	v.DimNames = make([]string, len(tt.Shape.Dim))
	for i, d := range tt.Shape.Dim {
		v.Shape[i] = -1
		if d == nil {
			continue
		}
		switch x := d.Value.(type) {
		case *onnx.TensorShapeProto_Dimension_DimValue:
			if x.DimValue < 0 || x.DimValue > maxDim {
				return v, fmt.Errorf("%w: %q dimension %d is %d, want 0..%d", ErrFormat, v.Name, i, x.DimValue, maxDim)
			}
			v.Shape[i] = int(x.DimValue)
		case *onnx.TensorShapeProto_Dimension_DimParam:
			v.DimNames[i] = x.DimParam
		}
	}
	return v, nil
}
