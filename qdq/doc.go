// Package qdq applies a precision plan to an ONNX model as a QDQ
// (QuantizeLinear/DequantizeLinear) graph that ONNX Runtime, TensorRT and
// other runtimes load: the float model with every planned layer's weight
// stored as integers behind a DequantizeLinear node and its data input
// passed through a QuantizeLinear → DequantizeLinear pair.
//
// The conventions are those every runtime accepts (ONNX opset 21, IR 10):
//
//   - weights per output channel (the scale is a vector along the weight's
//     output-channel axis, the DequantizeLinear has an axis attribute),
//     symmetric, zero point 0; 5–8-bit weights in INT8, 2–4-bit weights in
//     INT4 (two codes a byte), 9–16-bit weights in INT16, wider in INT32.
//     A width below its type's own (3 bits in INT4, 6 in INT8) keeps the
//     narrowed code range ±(2^(b−1) − 1) and says so in the model's
//     metadata_props;
//   - activations per tensor with no axis attribute, unsigned (UINT8 up to
//     8 bits, UINT16 up to 16) with the zero point of the grid; a width
//     below the type's own is enforced by a Clip to the narrowed code range
//     [0, 2^b − 1] before the QuantizeLinear;
//   - the bias of a Conv or Gemm whose input is quantized is INT32 with the
//     scale s_x·s_w[c] and zero point 0, as integer kernels (QLinearConv,
//     QGemm) take it; other biases stay float.
//
// The values are exactly those bitplan eval simulates: Export applies the
// plan with eval.Apply (the same weight quantizer and the same calibrated
// activation quantizers), and stores their integer codes and scales. The
// exported model computes the fake-quantized model up to float32 rounding
// of the scales and the int32 rounding of the biases (at most half of
// s_x·s_w[c] per output).
//
// A plan can also be written as ONNX Runtime's TensorQuantOverrides (tensor
// name → list of {quant_type, scale, zero_point, axis, …}) so that its own
// quantization tool (quantize_static's extra_options) applies the same
// parameters.
package qdq
