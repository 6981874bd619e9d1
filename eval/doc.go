// Package eval measures what a precision plan costs in accuracy: it applies
// a plan to an engine by fake quantization — every layer's weights replaced
// by their b-bit quantized values, every layer's data input quantized to its
// activation bit width with a range calibrated on sample data — and
// evaluates the float and the quantized model on a test set.
//
// Fake ("simulated") quantization computes in float64 on values that lie on
// the integer grid a deployed model would use, so the accuracy it reports is
// that of the integer model up to the accumulator's rounding (Jacob et al.,
// "Quantization and Training of Neural Networks for Efficient
// Integer-Arithmetic-Only Inference", CVPR 2018; Krishnamoorthi,
// arXiv:1806.08342, §2). The bias of a Conv or Gemm whose input is
// quantized is rounded to the INT32 grid of an integer kernel, step
// s_x·s_w[c], as a QDQ model (package qdq) stores it; Settings.FloatBias
// keeps biases in float64.
//
// The weight quantizer is the one plan.Analyze priced Δ² with (HAWQ-V3's
// symmetric per-channel min/max by default), applied to the weights as the
// model stores them. When a BatchNormalization follows a Conv this is the
// same as quantizing the BN-folded weights, as HAWQ-V3 does: a per-channel
// symmetric min/max quantizer is equivariant under the per-channel scaling
// the fold applies, Q(s_c·W_c) = s_c·Q(W_c).
//
// Score computes the sensitivity criteria that need quantized forward
// passes, gradients or Hessian-vector products along given directions
// rather than Hessian probes (sensitivity.Quadratic, Fisher, Taylor,
// Weight, Measured) and stores them in a sensitivity table, so that
// every criterion feeds the same ILP.
//
// Beyond the weight layers, Apply simulates attention points (both inputs
// of an activation × activation MatMul fake-quantized, ranges calibrated
// on the model as deployed: AddAttention, CalibrateAttention) and
// integer-only non-linearities (the outputs of GELU, Softmax and
// LayerNorm nodes replaced by I-BERT's integer algorithms of package
// ibert on a 16-bit input grid: AddNonlinear, CalibrateNonlinear).
package eval
