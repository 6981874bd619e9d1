package main

import (
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/plan"
)

// TestPoolTinyCommands: trace, plan, quantize and prune run on the
// torch.onnx export whose features are GlobalMaxPool and GlobalLpPool of
// computed tensors (testdata/models/pool_tiny_op17.onnx, its reference
// inputs as data): every unit gets a trace and a plan layer, the QDQ model
// keeps the three GlobalMaxPool and three GlobalLpPool nodes, and prune
// removes channels through them (conv_b's, read by three heads through
// GlobalMaxPool and GlobalLpPool) and writes a model of the planned size.
func TestPoolTinyCommands(t *testing.T) {
	mp := tinyCommands(t, "pool_tiny_op17", "pool_tiny_ref", []string{"/conv_a/Conv", "/conv_b/Conv",
		"/heads.0/Gemm", "/heads.1/Gemm", "/heads.2/Gemm", "/heads.3/Gemm", "/heads.4/Gemm", "/heads.5/Gemm"})
	count := map[string]int{}
	for _, n := range mp.Graph.Node {
		count[n.OpType]++
	}
	if count["GlobalMaxPool"] != 3 || count["GlobalLpPool"] != 3 {
		t.Errorf("the QDQ model has %d GlobalMaxPool and %d GlobalLpPool nodes, want 3 and 3", count["GlobalMaxPool"], count["GlobalLpPool"])
	}
	out := filepath.Join(t.TempDir(), "pruned.onnx")
	js, errs, code := runCmd(t, "prune", "../../testdata/models/pool_tiny_op17.onnx", "--data", "npz:../../testdata/models/pool_tiny_ref.npz",
		"--probes", "2", "--max-params", "90%", "--format", "json", "-o", out)
	if code != 0 {
		t.Fatalf("prune: exit %d: %s", code, errs)
	}
	p, _, err := plan.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	cut := false
	for _, g := range p.Pruning.Groups {
		if g.Name == "/conv_b/Conv" && !g.Prunable {
			t.Errorf("conv_b's group is not prunable: %+v", g)
		}
		cut = cut || (g.Prunable && g.Kept < g.Channels)
	}
	if !cut {
		t.Errorf("nothing pruned: %+v", p.Pruning.Groups)
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatalf("pruned model: %v", err)
	}
	if params := unitParams(m); float64(params) != *p.Usage["params"].Used {
		t.Errorf("written model has %d params, plan %v", params, *p.Usage["params"].Used)
	}
}
