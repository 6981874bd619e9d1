package main

import "testing"

// TestScatterTinyCommands: trace, plan and quantize run on the torch.onnx
// export that writes into computed tensors with ScatterND and
// ScatterElements, one of them by its INT64 input "index"
// (testdata/models/scatter_tiny_op17.onnx, both reference inputs as data):
// every unit gets a trace and a plan layer, and the QDQ model keeps the
// two ScatterND and two ScatterElements nodes.
func TestScatterTinyCommands(t *testing.T) {
	mp := tinyCommands(t, "scatter_tiny_op17", "scatter_tiny_ref", []string{"/conv_a/Conv", "/conv_b/Conv", "/head_s/Gemm", "/head_a/Gemm", "/head_r/Gemm"})
	count := map[string]int{}
	for _, n := range mp.Graph.Node {
		count[n.OpType]++
	}
	if count["ScatterND"] != 2 || count["ScatterElements"] != 2 {
		t.Errorf("the QDQ model has %d ScatterND and %d ScatterElements nodes, want 2 and 2", count["ScatterND"], count["ScatterElements"])
	}
}
