package qdq

import (
	"encoding/json"
	"fmt"
	"io"
)

// Override is one entry of ONNX Runtime's TensorQuantOverrides (the
// extra_options of onnxruntime.quantization.quantize_static): the
// quantization of one tensor, or of one channel of a per-channel tensor.
type Override struct {
	// QuantType is ONNX Runtime's QuantType name: QInt4, QInt8, QInt16,
	// QUInt8, QUInt16 (QInt32 has no QuantType: such weights are left
	// out).
	QuantType string `json:"quant_type"`
	// Scale and ZeroPoint fix the parameters.
	Scale     float32 `json:"scale"`
	ZeroPoint int64   `json:"zero_point"`
	// Axis is the channel axis, in the first entry of a per-channel
	// tensor.
	Axis *int `json:"axis,omitempty"`
}

// quantType maps a storage type to ONNX Runtime's QuantType name.
var quantType = map[string]string{"INT4": "QInt4", "UINT4": "QUInt4", "INT8": "QInt8", "UINT8": "QUInt8", "INT16": "QInt16", "UINT16": "QUInt16"}

// Overrides returns the export as TensorQuantOverrides: for every weight
// one entry per output channel (scale, zero point 0, the axis in the
// first), for every quantized input one entry (scale, zero point). Code
// ranges narrower than the type (3-bit weights in INT4, 6-bit activations
// in UINT8) are not expressible there: ONNX Runtime's tool clamps to the
// type's range, which for weights changes nothing (their codes already lie
// within ±(2^(b−1) − 1)) and for activations lets values above the
// calibrated range use the type's upper codes. The second return lists
// such cases and the tensors left out.
func (s *Summary) Overrides() (map[string][]Override, []string) {
	out := map[string][]Override{}
	var notes []string
	for _, l := range s.Layers {
		qt, ok := quantType[l.WeightType]
		if !ok {
			notes = append(notes, fmt.Sprintf("%s: %s weights have no ONNX Runtime QuantType; left out", l.Weight, l.WeightType))
		} else {
			var ov []Override
			for c, sc := range l.scales {
				o := Override{QuantType: qt, Scale: float32(sc)}
				if sc == 0 {
					o.Scale = 1
				}
				if c == 0 && l.Axis >= 0 {
					ax := l.Axis
					o.Axis = &ax
				}
				ov = append(ov, o)
			}
			out[l.Weight] = ov
			if l.Narrowed {
				notes = append(notes, fmt.Sprintf("%s: %d-bit codes [%d, %d] in %s", l.Weight, l.Bits, l.WeightMin, l.WeightMax, qt))
			}
		}
		if l.ABits > 0 {
			if _, dup := out[l.Input]; !dup {
				out[l.Input] = []Override{{QuantType: quantType[l.ActType], Scale: l.ActScale, ZeroPoint: l.ActZeroPoint}}
			}
			if l.ActNarrowed {
				notes = append(notes, fmt.Sprintf("%s: %d-bit codes [%d, %d] in %s; ONNX Runtime's tool will not clip them", l.Input, l.ABits, l.ActMin, l.ActMax, quantType[l.ActType]))
			}
		}
	}
	return out, notes
}

// WriteOverrides writes the TensorQuantOverrides as indented JSON.
func (s *Summary) WriteOverrides(w io.Writer) error {
	ov, _ := s.Overrides()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ov)
}
