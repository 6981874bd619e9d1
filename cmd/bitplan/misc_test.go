package main

import (
	"testing"

	"github.com/bitplan/bitplan/plan"
)

// TestMiscTinyCommands runs trace, plan, eval, quantize and prune on
// testdata/models/misc_tiny_op13.onnx (scripts/make_misc_tiny.py: GroupNorm
// as InstanceNormalization, TopK, two GatherNDs, a NonZero of a mask and a
// OneHot between three units): trace, plan and eval see the three units,
// quantize writes the plan as a QDQ model that still holds those nodes,
// and prune leaves every group intact, naming the Reshapes that come
// first, and refuses a budget it cannot meet instead of writing a model.
func TestMiscTinyCommands(t *testing.T) {
	units := []string{"/conv_a/Conv", "/conv_b/Conv", "/fc/Gemm"}
	// The groups stop at the Reshapes before GroupNorm's
	// InstanceNormalization and before TopK, which block too.
	pruneCommand(t, "misc_tiny_op13", "misc_tiny_ref", units, "/conv_b/Conv",
		func(p *plan.Plan) {
			if len(p.Layers) != 3 {
				t.Errorf("plan has %d layers, want the 3 units", len(p.Layers))
			}
		},
		map[string]int{"TopK": 1, "GatherND": 2, "NonZero": 1, "OneHot": 1, "InstanceNormalization": 1},
		[]string{`/conv_a/Conv: Reshape node "/gn/Reshape"`, `/conv_b/Conv: Reshape node "/Reshape"`, "least achievable 198"})
}
