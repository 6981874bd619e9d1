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
	"github.com/bitplan/bitplan/sensitivity"
)

// TestLayoutTinyCommands runs trace, plan, eval, quantize and prune on
// testdata/models/layout_tiny_op14.onnx (scripts/make_layout_tiny.py:
// DepthToSpace in both modes, SpaceToDepth, two Einsums, Trilu, CumSum and
// GatherElements between six units, an Einsum with a weight, the seventh,
// and the attention Einsum, an attention point): trace, plan and eval see
// the seven units (the plan also the attention point, at float), quantize
// writes the plan as a QDQ model that still holds the layout nodes, and
// prune leaves every group intact, naming the depth operators and the
// Einsum unit, and refuses a budget it cannot meet instead of writing a
// model.
func TestLayoutTinyCommands(t *testing.T) {
	units := []string{"/conv_a/Conv", "/conv_b/Conv", "/conv_c/Conv", "/conv_d/Conv", "/conv_k/Conv", "/Einsum_1", "/fc/Gemm"}
	pruneCommand(t, "layout_tiny_op14", "layout_tiny_ref", units, "/Einsum_1",
		func(p *plan.Plan) {
			att := 0
			for _, l := range p.Layers {
				if l.Kind == sensitivity.KindAttention {
					att++
					if l.Name != "/Einsum" || l.Bits != 16 {
						t.Errorf("attention layer %s at %d bits, want the Einsum /Einsum (the scores) at 16 (float)", l.Name, l.Bits)
					}
				}
			}
			if len(p.Layers) != 8 || att != 1 {
				t.Errorf("plan has %d layers, %d of them attention, want 7 units and the attention Einsum", len(p.Layers), att)
			}
		},
		map[string]int{"DepthToSpace": 2, "SpaceToDepth": 1, "Einsum": 2, "GatherElements": 1, "CumSum": 1, "Trilu": 2},
		[]string{`DepthToSpace node "/shuffle/DepthToSpace"`, `SpaceToDepth node "/SpaceToDepth"`,
			"/Einsum_1: the output channels of operator Einsum are not modelled", "least achievable 463"})
}

// pruneCommand runs trace (exact), plan (50 % of the size), eval,
// quantize and prune (70 % of the parameters) on testdata/models/<model>.onnx
// with the inputs of <ref>.npz as data: trace must give a row for every
// unit of units, checkPlan accepts the plan, eval's output names evalUnit,
// the QDQ model (opset qdq.Opset, with Q/DQ nodes) holds kept's count of
// each operator, and prune, which cannot meet the budget, must say every
// string of why and write no model.
func pruneCommand(t *testing.T, model, ref string, units []string, evalUnit string, checkPlan func(*plan.Plan), kept map[string]int, why []string) {
	t.Helper()
	tiny := "../../testdata/models/" + model + ".onnx"
	ds := "npz:../../testdata/models/" + ref + ".npz"
	dir := t.TempDir()
	out, errs, code := runCmd(t, "trace", tiny, "--data", ds, "--exact", "--format", "csv")
	if code != 0 {
		t.Fatalf("trace: exit %d: %s", code, errs)
	}
	for _, u := range units {
		if !strings.Contains(out, u) {
			t.Errorf("trace: no row for %s:\n%s", u, out)
		}
	}
	planPath := filepath.Join(dir, "plan.json")
	if _, errs, code = runCmd(t, "plan", tiny, "--data", ds, "--max-size", "50%", "--format", "json", "-o", planPath); code != 0 {
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
	checkPlan(p)
	if out, errs, code = runCmd(t, "eval", tiny, "--plan", planPath, "--data", ds); code != 0 || !strings.Contains(out, evalUnit) {
		t.Fatalf("eval: exit %d: %s%s", code, out, errs)
	}
	q := filepath.Join(dir, "q.onnx")
	if _, errs, code = runCmd(t, "quantize", tiny, "--plan", planPath, "--data", ds, "-o", q); code != 0 {
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
	for op, want := range kept {
		if ops[op] != want {
			t.Errorf("quantized model has %d %s nodes, want %d", ops[op], op, want)
		}
	}
	if ops["QuantizeLinear"] == 0 || ops["DequantizeLinear"] == 0 {
		t.Errorf("quantized model has no Q/DQ nodes: %v", ops)
	}
	pruned := filepath.Join(dir, "p.onnx")
	out, errs, code = runCmd(t, "prune", tiny, "--data", ds, "--probes", "2", "--max-params", "70%", "-o", pruned)
	if code == 0 {
		t.Errorf("prune at 70%% of the parameters succeeded on a model whose groups are all left intact:\n%s", out)
	}
	for _, w := range why {
		if !strings.Contains(out+errs, w) {
			t.Errorf("prune does not say %q:\n%s%s", w, out, errs)
		}
	}
	if _, err := os.Stat(pruned); err == nil {
		t.Error("prune wrote a model although no plan meets the budget")
	}
}
