package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/qdq"
)

// TestReduceTinyCommands: trace, plan and quantize run on the torch.onnx
// export whose features are the eight non-linear reductions of computed
// tensors (testdata/models/reduce_tiny_op17.onnx, its reference inputs as
// data): every unit gets a trace, the plan covers the five units, and the
// QDQ model keeps the eight reductions.
func TestReduceTinyCommands(t *testing.T) {
	mp := tinyCommands(t, "reduce_tiny_op17", "reduce_tiny_ref", []string{"/conv_a/Conv", "/conv_b/Conv", "/conv_c/Conv", "/conv_d/Conv", "/fc/Gemm"})
	red := 0
	for _, n := range mp.Graph.Node {
		if strings.HasPrefix(n.OpType, "Reduce") && len(n.Input) == 2 {
			red++
		}
	}
	if red != 8 {
		t.Errorf("the QDQ model has %d reductions with an axes input, want 8", red)
	}
}

// tinyCommands runs trace, plan (60 % of the size) and quantize on
// testdata/models/<model>.onnx with the inputs of <ref>.npz as data,
// checks that every unit of units gets a trace row and a plan layer and a
// quantized layer, and returns the QDQ model.
func tinyCommands(t *testing.T, model, ref string, units []string) *onnx.ModelProto {
	t.Helper()
	tiny := "../../testdata/models/" + model + ".onnx"
	ds := "npz:../../testdata/models/" + ref + ".npz"
	out, errs, code := runCmd(t, "trace", tiny, "--data", ds, "--max-probes", "12")
	if code != 0 {
		t.Fatalf("trace: exit %d: %s", code, errs)
	}
	for _, u := range units {
		if !strings.Contains(out, u) {
			t.Errorf("trace: no row for %s:\n%s", u, out)
		}
	}
	js, errs, code := runCmd(t, "plan", tiny, "--data", ds, "--max-probes", "12", "--max-size", "60%", "--format", "json")
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	p, _, err := plan.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Layers) != len(units) {
		t.Errorf("plan has %d layers, want %d", len(p.Layers), len(units))
	}
	dir := t.TempDir()
	pf, qf := filepath.Join(dir, "plan.json"), filepath.Join(dir, "tiny.qdq.onnx")
	if err := os.WriteFile(pf, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, errs, code := runCmd(t, "quantize", tiny, "--plan", pf, "--data", ds, "--format", "json", "-o", qf)
	if code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, errs)
	}
	var s qdq.Summary
	if err := json.Unmarshal([]byte(sum), &s); err != nil || len(s.Layers) != len(units) {
		t.Errorf("quantize summary: %v, %d layers", err, len(s.Layers))
	}
	b, err := os.ReadFile(qf)
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil || mp.OpsetImport[0].Version != qdq.Opset {
		t.Fatalf("output is not an opset-%d model: %v", qdq.Opset, err)
	}
	return mp
}
