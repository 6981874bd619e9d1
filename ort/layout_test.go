//go:build ort

package ort_test

import "testing"

// TestLayoutTinyORT: testdata/models/layout_tiny_op14.onnx and _op17.onnx
// (DepthToSpace in both modes, SpaceToDepth, Einsum, Trilu, CumSum and
// GatherElements on computed tensors) run in ONNX Runtime and give
// PyTorch's logits of layout_tiny_ref.npz; their W8A8 QDQ export (opset 21,
// the layout nodes left in float between the quantized convolutions) loads
// and runs there and agrees with bitplan's simulation of the plan on 200
// random inputs. The tolerances are tinyFloatTol and tinyQDQTol; measured
// (ONNX Runtime 1.24.1): float logits 5.4e-8 from PyTorch's, QDQ against
// the simulation 2.8e-8 at most (logits below 1), both opsets.
func TestLayoutTinyORT(t *testing.T) {
	tinyORT(t, "layout_tiny", tinyCase{opsets: []int{14, 17}, seed: 5})
}
