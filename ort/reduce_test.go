//go:build ort

package ort_test

import "testing"

// TestReduceTinyORT: testdata/models/reduce_tiny_op13.onnx and _op17.onnx
// (ReduceMax, ReduceMin, ReduceL2, ReduceLogSumExp, ReduceProd, ReduceL1,
// ReduceSumSquare and ReduceLogSum on computed tensors, axes as
// attributes) run in ONNX Runtime and give PyTorch's logits of
// reduce_tiny_ref.npz; their W8A8 QDQ export (opset 21: the reductions
// take their axes as inputs, left in float between the quantized layers)
// loads and runs there and agrees with bitplan's simulation of the plan
// on 200 random inputs (tolerances tinyFloatTol, tinyQDQTol).
func TestReduceTinyORT(t *testing.T) { tinyORT(t, "reduce_tiny", tinyCase{seed: 6}) }

// TestPoolTinyORT: testdata/models/pool_tiny_op13.onnx and _op17.onnx
// (GlobalMaxPool of nn.AdaptiveMaxPool2d(1) and F.adaptive_max_pool1d,
// GlobalLpPool p 1, 2, 3 of computed tensors) run in ONNX Runtime and give
// PyTorch's logits of pool_tiny_ref.npz; their W8A8 QDQ export loads and
// runs there and agrees with bitplan's simulation of the plan on 200
// random inputs (tolerances tinyFloatTol, tinyQDQTol).
func TestPoolTinyORT(t *testing.T) { tinyORT(t, "pool_tiny", tinyCase{seed: 6}) }
