package model

import (
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

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

func attrFromProto(ap *onnx.AttributeProto) (*Attr, error) {
	a := &Attr{Name: ap.Name}
	if a.Name == "" {
		return nil, fmt.Errorf("%w: attribute without a name", ErrFormat)
	}
	if ap.RefAttrName != "" {
		return nil, fmt.Errorf("attribute %q: references (ref_attr_name %q) are only valid inside functions", a.Name, ap.RefAttrName)
	}
	switch ap.Type {
	case onnx.AttributeProto_INT:
		a.Type, a.Int = AttrInt, ap.I
	case onnx.AttributeProto_FLOAT:
		a.Type, a.Float = AttrFloat, float64(ap.F)
	case onnx.AttributeProto_STRING:
		a.Type, a.String = AttrString, string(ap.S)
	case onnx.AttributeProto_INTS:
		a.Type, a.Ints = AttrInts, append([]int64{}, ap.Ints...)
	case onnx.AttributeProto_FLOATS:
		a.Type = AttrFloats
		a.Floats = make([]float64, len(ap.Floats))
		for i, f := range ap.Floats {
			a.Floats[i] = float64(f)
		}
	case onnx.AttributeProto_STRINGS:
		a.Type = AttrStrings
		for _, s := range ap.Strings {
			a.Strings = append(a.Strings, string(s))
		}
	case onnx.AttributeProto_TENSOR:
		if ap.T == nil {
			return nil, fmt.Errorf("%w: tensor attribute %q has no tensor", ErrFormat, a.Name)
		}
		t, err := TensorFromProto(ap.T)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		a.Type, a.Tensor = AttrTensor, t
	case onnx.AttributeProto_UNDEFINED:
		// Old exporters leave the type unset; infer it from the payload.
		switch {
		case len(ap.Ints) > 0:
			a.Type, a.Ints = AttrInts, append([]int64{}, ap.Ints...)
		case len(ap.Floats) > 0:
			a.Type = AttrFloats
			for _, f := range ap.Floats {
				a.Floats = append(a.Floats, float64(f))
			}
		case ap.S != nil:
			a.Type, a.String = AttrString, string(ap.S)
		case ap.T != nil:
			t, err := TensorFromProto(ap.T)
			if err != nil {
				return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
			}
			a.Type, a.Tensor = AttrTensor, t
		case ap.F != 0:
			a.Type, a.Float = AttrFloat, float64(ap.F)
		default:
			a.Type, a.Int = AttrInt, ap.I
		}
	default:
		a.Type = AttrOther
	}
	return a, nil
}

// attrErr formats an attribute error for node n.
func attrErr(n *Node, name, format string, args ...any) error {
	return fmt.Errorf("%s: attribute %q: %s", n.Label(), name, fmt.Sprintf(format, args...))
}

// AttrInt returns the integer attribute name, or def when it is absent.
func (n *Node) AttrInt(name string, def int64) (int64, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return def, nil
	}
	if a.Type != AttrInt {
		return 0, attrErr(n, name, "is %v, want int", a.Type)
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
	return 0, attrErr(n, name, "is %v, want float", a.Type)
}

// AttrString returns the string attribute name, or def when it is absent.
func (n *Node) AttrString(name, def string) (string, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return def, nil
	}
	if a.Type != AttrString {
		return "", attrErr(n, name, "is %v, want string", a.Type)
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
		return nil, attrErr(n, name, "is %v, want ints", a.Type)
	}
	return a.Ints, nil
}

// attrDims returns an integer-list attribute of length want (or absent: def
// repeated), each value at least lo.
func (n *Node) attrDims(name string, want int, def int64, lo int64) ([]int, error) {
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
		return nil, attrErr(n, name, "has %d values %v, want %d", len(v), v, want)
	}
	for i, x := range v {
		if x < lo || x > maxDim {
			return nil, attrErr(n, name, "value %d is %d, want %d..%d", i, x, lo, maxDim)
		}
		out[i] = int(x)
	}
	return out, nil
}
