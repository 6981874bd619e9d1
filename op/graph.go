package op

import (
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// MaxDim bounds any single dimension and MaxElems the element count of a
// tensor, so that a corrupt file cannot request an absurd allocation.
const (
	MaxDim   = 1 << 31
	MaxElems = 1 << 31
)

// CheckDims bounds a shape as a decoded tensor's is bounded (each
// dimension 0..MaxDim, at most MaxElems elements), so that an inferred
// shape asking for an absurd tensor (a pad or tile of 2⁴⁰, a product
// that overflows int) is refused before anything is allocated.
func CheckDims(d []int) error {
	total := 1
	for _, x := range d {
		if x < 0 || x > MaxDim {
			return fmt.Errorf("dimension %d, want 0..%d", x, MaxDim)
		}
		if x != 0 && total > MaxElems/x {
			return fmt.Errorf("more than %d elements", MaxElems)
		}
		total *= x
	}
	return nil
}

// DataType is an ONNX tensor element type (TensorProto.DataType).
type DataType int32

// The ONNX element types that the importer decodes. Other types are reported
// by name in errors.
const (
	Undefined DataType = 0
	Float     DataType = 1
	Uint8     DataType = 2
	Int8      DataType = 3
	Uint16    DataType = 4
	Int16     DataType = 5
	Int32     DataType = 6
	Int64     DataType = 7
	Bool      DataType = 9
	Float16   DataType = 10
	Double    DataType = 11
	Uint32    DataType = 12
	Uint64    DataType = 13
)

// String returns the ONNX name of the type, e.g. "FLOAT".
func (t DataType) String() string {
	if s, ok := onnx.TensorProto_DataType_name[int32(t)]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// IsFloat reports whether t is a floating-point type.
func (t DataType) IsFloat() bool { return t == Float || t == Double || t == Float16 }

// IsInt reports whether t is an integer or boolean type.
func (t DataType) IsInt() bool {
	switch t {
	case Uint8, Int8, Uint16, Int16, Int32, Int64, Bool, Uint32, Uint64:
		return true
	}
	return false
}

// Tensor is a decoded constant tensor. Floating-point tensors (FLOAT, DOUBLE,
// FLOAT16) hold their data in Float; integer and boolean tensors in Int.
// Data is row-major (C order).
type Tensor struct {
	Name  string
	Type  DataType
	Shape []int
	Float []float64
	Int   []int64
}

// Len returns the number of elements, the product of Shape (1 for a scalar).
func (t *Tensor) Len() int { return Numel(t.Shape) }

// Values returns the elements as float64 whatever the element type.
func (t *Tensor) Values() []float64 {
	if t.Type.IsFloat() {
		return t.Float
	}
	f := make([]float64, len(t.Int))
	for i, v := range t.Int {
		f[i] = float64(v)
	}
	return f
}

func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// AttrType is the type of a node attribute.
type AttrType int

// The attribute types the importer keeps. Graph-valued and sparse attributes
// are recorded with type AttrOther and no value.
const (
	AttrOther AttrType = iota
	AttrInt
	AttrFloat
	AttrString
	AttrInts
	AttrFloats
	AttrStrings
	AttrTensor
)

var attrTypeNames = [...]string{"other", "int", "float", "string", "ints", "floats", "strings", "tensor"}

// String returns the lower-case name of the type.
func (t AttrType) String() string {
	if int(t) < len(attrTypeNames) {
		return attrTypeNames[t]
	}
	return fmt.Sprintf("AttrType(%d)", int(t))
}

// Attr is a decoded node attribute. Only the field matching Type is set.
type Attr struct {
	Name    string
	Type    AttrType
	Int     int64
	Float   float64
	String  string
	Ints    []int64
	Floats  []float64
	Strings []string
	Tensor  *Tensor
}

// Node is one graph node.
type Node struct {
	// Index is the position in Model.Nodes.
	Index int
	// FileIndex is the position in the file's GraphProto.node (import
	// normalisation removes nodes, so it can differ from Index).
	FileIndex int
	// Name is the node name; it may be empty in the file.
	Name   string
	Op     string
	Domain string
	// Inputs and Outputs are tensor names; "" marks an omitted optional
	// input.
	Inputs  []string
	Outputs []string
	// Attrs holds the attributes by name.
	Attrs map[string]*Attr
}

// Label returns a human-readable identification of the node for error
// messages: `Conv node "conv1" (#3)`, or with the first output's name when the
// node has none.
func (n *Node) Label() string {
	switch {
	case n.Name != "":
		return fmt.Sprintf("%s node %q (#%d)", n.Op, n.Name, n.Index)
	case len(n.Outputs) > 0:
		return fmt.Sprintf("%s node #%d (output %q)", n.Op, n.Index, n.Outputs[0])
	}
	return fmt.Sprintf("%s node #%d", n.Op, n.Index)
}

// Input returns the i-th input name, or "" when the node has fewer inputs.
func (n *Node) Input(i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

// AttrError formats an error about attribute name of node n.
func AttrError(n *Node, name, format string, args ...any) error {
	return fmt.Errorf("%s: attribute %q: %s", n.Label(), name, fmt.Sprintf(format, args...))
}

// AttrInt returns the integer attribute name, or def when it is absent.
func (n *Node) AttrInt(name string, def int64) (int64, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return def, nil
	}
	if a.Type != AttrInt {
		return 0, AttrError(n, name, "is %v, want int", a.Type)
	}
	return a.Int, nil
}

// AttrFloat returns the float attribute name, or def when it is absent.
func (n *Node) AttrFloat(name string, def float64) (float64, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return def, nil
	}
	switch a.Type {
	case AttrFloat:
		return a.Float, nil
	case AttrInt:
		return float64(a.Int), nil
	}
	return 0, AttrError(n, name, "is %v, want float", a.Type)
}

// AttrString returns the string attribute name, or def when it is absent.
func (n *Node) AttrString(name, def string) (string, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return def, nil
	}
	if a.Type != AttrString {
		return "", AttrError(n, name, "is %v, want string", a.Type)
	}
	return a.String, nil
}

// AttrInts returns the integer-list attribute name, or def when it is
// absent.
func (n *Node) AttrInts(name string, def []int64) ([]int64, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return def, nil
	}
	if a.Type != AttrInts {
		if a.Type == AttrInt {
			return []int64{a.Int}, nil
		}
		return nil, AttrError(n, name, "is %v, want ints", a.Type)
	}
	return a.Ints, nil
}

// AttrDims returns an integer-list attribute of length want (or absent: def
// repeated), each value at least lo.
func (n *Node) AttrDims(name string, want int, def int64, lo int64) ([]int, error) {
	v, err := n.AttrInts(name, nil)
	if err != nil {
		return nil, err
	}
	out := make([]int, want)
	if v == nil {
		for i := range out {
			out[i] = int(def)
		}
		return out, nil
	}
	if len(v) != want {
		return nil, AttrError(n, name, "has %d values %v, want %d", len(v), v, want)
	}
	for i, x := range v {
		if x < lo || x > MaxDim {
			return nil, AttrError(n, name, "value %d is %d, want %d..%d", i, x, lo, MaxDim)
		}
		out[i] = int(x)
	}
	return out, nil
}
