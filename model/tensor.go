package model

import (
	"encoding/binary"
	"fmt"
	"github.com/bitplan/bitplan/op"
	"math"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// maxDim bounds any single dimension and maxElems the element count of a
// tensor, so that a corrupt file cannot request an absurd allocation.
const (
	maxDim   = op.MaxDim
	maxElems = op.MaxElems
)

// TensorFromProto decodes an ONNX TensorProto, from raw_data (little-endian)
// or the typed fields. External data must have been read into raw_data
// (Load does); strings and complex types are reported as unsupported.
func TensorFromProto(tp *onnx.TensorProto) (*Tensor, error) {
	t := &Tensor{Name: tp.Name, Type: DataType(tp.DataType), Shape: make([]int, len(tp.Dims))}
	name := fmt.Sprintf("tensor %q", tp.Name)
	n := 1
	for i, d := range tp.Dims {
		if d < 0 || d > maxDim {
			return nil, fmt.Errorf("%w: %s: dimension %d is %d, want 0..%d", ErrFormat, name, i, d, maxDim)
		}
		t.Shape[i] = int(d)
		if d != 0 && n > maxElems/int(d) {
			return nil, fmt.Errorf("%w: %s: shape %v has more than %d elements", ErrFormat, name, tp.Dims, maxElems)
		}
		n *= int(d)
	}
	if isExternal(tp) {
		return nil, errNoDir(tp)
	}
	if tp.Segment != nil {
		return nil, fmt.Errorf("%s: segmented tensors are not supported", name)
	}
	raw := tp.RawData
	size := elemSize(t.Type)
	switch {
	case t.Type == Undefined:
		return nil, fmt.Errorf("%w: %s: data_type is not set", ErrFormat, name)
	case size == 0:
		return nil, fmt.Errorf("%s: data type %v is not supported (want FLOAT, DOUBLE, FLOAT16 or an integer type)", name, t.Type)
	}
	if raw != nil {
		if len(raw) != n*size {
			return nil, fmt.Errorf("%w: %s: raw_data has %d bytes, want %d (%d elements of %v; truncated file?)",
				ErrFormat, name, len(raw), n*size, n, t.Type)
		}
		le := binary.LittleEndian
		if t.Type.IsFloat() {
			t.Float = make([]float64, n)
		} else {
			t.Int = make([]int64, n)
		}
		for i := 0; i < n; i++ {
			b := raw[i*size:]
			switch t.Type {
			case Float:
				t.Float[i] = float64(math.Float32frombits(le.Uint32(b)))
			case Double:
				t.Float[i] = math.Float64frombits(le.Uint64(b))
			case Float16:
				t.Float[i] = half(le.Uint16(b))
			case Int32:
				t.Int[i] = int64(int32(le.Uint32(b)))
			case Uint32:
				t.Int[i] = int64(le.Uint32(b))
			case Int64:
				t.Int[i] = int64(le.Uint64(b))
			case Uint64:
				t.Int[i] = int64(le.Uint64(b))
			case Int16:
				t.Int[i] = int64(int16(le.Uint16(b)))
			case Uint16:
				t.Int[i] = int64(le.Uint16(b))
			case Int8:
				t.Int[i] = int64(int8(b[0]))
			case Uint8, Bool:
				t.Int[i] = int64(b[0])
			}
		}
		return t, nil
	}
	var got int
	switch t.Type {
	case Float:
		got = len(tp.FloatData)
		t.Float = make([]float64, len(tp.FloatData))
		for i, v := range tp.FloatData {
			t.Float[i] = float64(v)
		}
	case Double:
		got = len(tp.DoubleData)
		t.Float = append([]float64(nil), tp.DoubleData...)
	case Float16:
		got = len(tp.Int32Data)
		t.Float = make([]float64, len(tp.Int32Data))
		for i, v := range tp.Int32Data {
			t.Float[i] = half(uint16(v))
		}
	case Int64:
		got = len(tp.Int64Data)
		t.Int = append([]int64(nil), tp.Int64Data...)
	case Uint32, Uint64:
		got = len(tp.Uint64Data)
		t.Int = make([]int64, len(tp.Uint64Data))
		for i, v := range tp.Uint64Data {
			t.Int[i] = int64(v)
		}
	default: // int32, int16, uint16, int8, uint8, bool
		got = len(tp.Int32Data)
		t.Int = make([]int64, len(tp.Int32Data))
		for i, v := range tp.Int32Data {
			t.Int[i] = int64(v)
		}
	}
	if got != n {
		return nil, fmt.Errorf("%w: %s: %d %v values for shape %v, want %d", ErrFormat, name, got, t.Type, t.Shape, n)
	}
	if t.Float == nil && t.Type.IsFloat() {
		t.Float = []float64{}
	}
	if t.Int == nil && !t.Type.IsFloat() {
		t.Int = []int64{}
	}
	return t, nil
}

// half converts an IEEE 754 binary16 value to float64.
func half(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}
