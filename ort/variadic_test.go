//go:build ort

package ort_test

import "testing"

// TestVariadicTinyORT: testdata/models/variadic_tiny_op13.onnx and
// _op17.onnx (three-input Sum, Max, Min and Mean on computed tensors) run
// in ONNX Runtime and give PyTorch's logits of variadic_tiny_ref.npz; their
// W8A8 QDQ export (opset 21, the variadic nodes left in float between the
// quantized convolutions) loads and runs there and agrees with bitplan's
// simulation of the plan on 200 random inputs (tolerances tinyFloatTol,
// tinyQDQTol).
func TestVariadicTinyORT(t *testing.T) { tinyORT(t, "variadic_tiny", tinyCase{seed: 5}) }
