package qdq

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// Type is an ONNX tensor element type (TensorProto.DataType).
type Type int32

// The element types the export writes. INT4 and UINT4 (ONNX 1.16, IR 10)
// are newer than the generated protobuf enum, which is why Type is
// declared here.
const (
	Float  Type = Type(onnx.TensorProto_FLOAT)
	Uint8  Type = Type(onnx.TensorProto_UINT8)
	Int8   Type = Type(onnx.TensorProto_INT8)
	Uint16 Type = Type(onnx.TensorProto_UINT16)
	Int16  Type = Type(onnx.TensorProto_INT16)
	Int32  Type = Type(onnx.TensorProto_INT32)
	Int64  Type = Type(onnx.TensorProto_INT64)
	Uint4  Type = 21
	Int4   Type = 22
)

// String returns the ONNX name of the type ("INT4").
func (t Type) String() string {
	switch t {
	case Float:
		return "FLOAT"
	case Uint8:
		return "UINT8"
	case Int8:
		return "INT8"
	case Uint16:
		return "UINT16"
	case Int16:
		return "INT16"
	case Int32:
		return "INT32"
	case Int64:
		return "INT64"
	case Uint4:
		return "UINT4"
	case Int4:
		return "INT4"
	}
	return fmt.Sprintf("type %d", int32(t))
}

// Range returns the smallest and largest value of an integer type.
func (t Type) Range() (lo, hi int64) {
	switch t {
	case Uint8:
		return 0, math.MaxUint8
	case Int8:
		return math.MinInt8, math.MaxInt8
	case Uint16:
		return 0, math.MaxUint16
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Int32:
		return math.MinInt32, math.MaxInt32
	case Uint4:
		return 0, 15
	case Int4:
		return -8, 7
	}
	return 0, 0
}

// WeightType returns the type that stores symmetric b-bit weight codes
// ±(2^(b−1) − 1): INT4 up to 4 bits, INT8 up to 8, INT16 up to 16, INT32 up
// to 32. Other widths are an error.
func WeightType(bits int) (Type, error) {
	switch {
	case bits >= 2 && bits <= 4:
		return Int4, nil
	case bits >= 5 && bits <= 8:
		return Int8, nil
	case bits >= 9 && bits <= 16:
		return Int16, nil
	case bits >= 17 && bits <= 32:
		return Int32, nil
	}
	return 0, fmt.Errorf("weight width %d bits cannot be stored (symmetric weights need 2..32 bits)", bits)
}

// ActType returns the type that stores unsigned b-bit activation codes
// [0, 2^b − 1]: UINT8 up to 8 bits, UINT16 up to 16. Other widths are an
// error.
func ActType(bits int) (Type, error) {
	switch {
	case bits >= 1 && bits <= 8:
		return Uint8, nil
	case bits >= 9 && bits <= 16:
		return Uint16, nil
	}
	return 0, fmt.Errorf("activation width %d bits cannot be stored (QuantizeLinear activations take 1..16 bits)", bits)
}

// intTensor encodes integer codes (each within t's range, checked by the
// caller) as a TensorProto of type t in raw_data: little-endian, 4-bit
// types two codes a byte with the first in the low nibble (the ONNX
// packing of INT4/UINT4).
func intTensor(name string, t Type, dims []int64, codes []int64) *onnx.TensorProto {
	var raw []byte
	switch t {
	case Int4, Uint4:
		raw = make([]byte, (len(codes)+1)/2)
		for i, c := range codes {
			raw[i/2] |= byte(c&0xf) << (4 * (i % 2))
		}
	case Int8, Uint8:
		raw = make([]byte, len(codes))
		for i, c := range codes {
			raw[i] = byte(c)
		}
	case Int16, Uint16:
		raw = make([]byte, 2*len(codes))
		for i, c := range codes {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(c))
		}
	case Int32:
		raw = make([]byte, 4*len(codes))
		for i, c := range codes {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(c))
		}
	case Int64:
		raw = make([]byte, 8*len(codes))
		for i, c := range codes {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(c))
		}
	default:
		panic("qdq: intTensor of non-integer type " + t.String())
	}
	return &onnx.TensorProto{Name: name, DataType: int32(t), Dims: dims, RawData: raw}
}

// floatTensor encodes float32 values in raw_data.
func floatTensor(name string, dims []int64, v []float32) *onnx.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &onnx.TensorProto{Name: name, DataType: int32(Float), Dims: dims, RawData: raw}
}

// DecodeInts returns the integer codes of an integer TensorProto written
// in raw_data (as Export writes them), sign-extending the 4-bit types.
func DecodeInts(tp *onnx.TensorProto) ([]int64, error) {
	n := int64(1)
	for _, d := range tp.Dims {
		n *= d
	}
	raw := tp.RawData
	t := Type(tp.DataType)
	need := map[Type]int64{Int4: (n + 1) / 2, Uint4: (n + 1) / 2, Int8: n, Uint8: n, Int16: 2 * n, Uint16: 2 * n, Int32: 4 * n, Int64: 8 * n}[t]
	if need == 0 && n != 0 {
		return nil, fmt.Errorf("tensor %q: type %v is not an integer type", tp.Name, t)
	}
	if int64(len(raw)) != need {
		return nil, fmt.Errorf("tensor %q: %d raw bytes, want %d for %d %v elements", tp.Name, len(raw), need, n, t)
	}
	out := make([]int64, n)
	for i := range out {
		switch t {
		case Int4:
			out[i] = int64(int8(raw[i/2]>>(4*(i%2))<<4) >> 4)
		case Uint4:
			out[i] = int64(raw[i/2]>>(4*(i%2))) & 0xf
		case Int8:
			out[i] = int64(int8(raw[i]))
		case Uint8:
			out[i] = int64(raw[i])
		case Int16:
			out[i] = int64(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		case Uint16:
			out[i] = int64(binary.LittleEndian.Uint16(raw[2*i:]))
		case Int32:
			out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		case Int64:
			out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	}
	return out, nil
}

// DecodeFloats returns the values of a FLOAT TensorProto written in
// raw_data or float_data.
func DecodeFloats(tp *onnx.TensorProto) ([]float32, error) {
	if Type(tp.DataType) != Float {
		return nil, fmt.Errorf("tensor %q: type %v, want FLOAT", tp.Name, Type(tp.DataType))
	}
	if len(tp.RawData) == 0 {
		return tp.FloatData, nil
	}
	if len(tp.RawData)%4 != 0 {
		return nil, fmt.Errorf("tensor %q: %d raw bytes is not a whole number of floats", tp.Name, len(tp.RawData))
	}
	out := make([]float32, len(tp.RawData)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(tp.RawData[4*i:]))
	}
	return out, nil
}
