package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/plan"
	"github.com/bitplan/bitplan/qdq"
)

// TestMiscTinyCommands runs trace, plan, eval, quantize and prune on
// testdata/models/misc_tiny_op13.onnx (scripts/make_misc_tiny.py: GroupNorm
// as InstanceNormalization, TopK, two GatherNDs, a NonZero of a mask and a
// OneHot between three units): trace, plan and eval see the three units,
// quantize writes the plan as a QDQ model that still holds those nodes,
// and prune leaves every group intact, naming the Reshapes that come
// first, and refuses a budget it cannot meet instead of writing a model.
func TestMiscTinyCommands(t *testing.T) {
	const tiny = "../../testdata/models/misc_tiny_op13.onnx"
	const ref = "npz:../../testdata/models/misc_tiny_ref.npz"
	dir := t.TempDir()
	out, errs, code := runCmd(t, "trace", tiny, "--data", ref, "--exact", "--format", "csv")
	if code != 0 {
		t.Fatalf("trace: exit %d: %s", code, errs)
	}
	units := []string{"/conv_a/Conv", "/conv_b/Conv", "/fc/Gemm"}
	for _, u := range units {
		if !strings.Contains(out, u) {
			t.Errorf("trace: no row for %s:\n%s", u, out)
		}
	}
	planPath := filepath.Join(dir, "plan.json")
	if _, errs, code = runCmd(t, "plan", tiny, "--data", ref, "--max-size", "50%", "--format", "json", "-o", planPath); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errs)
	}
	js, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := plan.Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Layers) != 3 {
		t.Errorf("plan has %d layers, want the 3 units", len(p.Layers))
	}
	if out, errs, code = runCmd(t, "eval", tiny, "--plan", planPath, "--data", ref); code != 0 || !strings.Contains(out, "/conv_b/Conv") {
		t.Fatalf("eval: exit %d: %s%s", code, out, errs)
	}
	q := filepath.Join(dir, "q.onnx")
	if _, errs, code = runCmd(t, "quantize", tiny, "--plan", planPath, "--data", ref, "-o", q); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(q)
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil || mp.OpsetImport[0].Version != qdq.Opset {
		t.Fatalf("quantized model: %v (opset %v)", err, mp.OpsetImport)
	}
	ops := map[string]int{}
	for _, n := range mp.Graph.Node {
		ops[n.OpType]++
	}
	for op, want := range map[string]int{"TopK": 1, "GatherND": 2, "NonZero": 1, "OneHot": 1, "InstanceNormalization": 1} {
		if ops[op] != want {
			t.Errorf("quantized model has %d %s nodes, want %d", ops[op], op, want)
		}
	}
	if ops["QuantizeLinear"] == 0 || ops["DequantizeLinear"] == 0 {
		t.Errorf("quantized model has no Q/DQ nodes: %v", ops)
	}
	pruned := filepath.Join(dir, "p.onnx")
	out, errs, code = runCmd(t, "prune", tiny, "--data", ref, "--probes", "2", "--max-params", "70%", "-o", pruned)
	if code == 0 {
		t.Errorf("prune at 70%% of the parameters succeeded on a model whose groups are all left intact:\n%s", out)
	}
	// The groups stop at the Reshapes before GroupNorm's
	// InstanceNormalization and before TopK, which block too.
	for _, why := range []string{`/conv_a/Conv: Reshape node "/gn/Reshape"`, `/conv_b/Conv: Reshape node "/Reshape"`, "least achievable 198"} {
		if !strings.Contains(out+errs, why) {
			t.Errorf("prune does not say %q:\n%s%s", why, out, errs)
		}
	}
	if _, err := os.Stat(pruned); err == nil {
		t.Error("prune wrote a model although no plan meets the budget")
	}
}
