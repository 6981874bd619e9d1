package model

import (
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

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
