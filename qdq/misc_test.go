package qdq

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestExportMiscOps: the W8A8 export of misc_tiny (opsets 13 and 17: TopK,
// two GatherNDs, NonZero, OneHot and InstanceNormalization between three
// units) is an opset-21 model in which those nodes are unchanged — same
// inputs and attributes: none of them changed between opsets 13 and 21 —
// and which model.Decode reads back.
func TestExportMiscOps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	misc := map[string]bool{"TopK": true, "GatherND": true, "NonZero": true, "OneHot": true, "InstanceNormalization": true}
	for _, name := range []string{"misc_tiny_op13", "misc_tiny_op17"} {
		res, src := exportTinyW8A8(t, r, name, 3)
		want, got := keptNodes(src.Graph, misc), keptNodes(res.Model.Graph, misc)
		if len(want) != 6 || !maps.Equal(want, got) {
			t.Errorf("%s: nodes after export\n%v\nwant\n%v", name, got, want)
		}
	}
}

// TestGroupNormUpgrade: the export's opset upgrade rewrites a
// GroupNormalization of opset 18 (scale and bias per group, which opset 21
// reads per channel) as Reshape, InstanceNormalization and Reshape, which
// the engine runs to the original's logits and to F.group_norm's of
// testdata/models/groupnorm_ref.npz (rounding only: 1e-12); a
// GroupNormalization of opset 21 is left as it is.
func TestGroupNormUpgrade(t *testing.T) {
	z, err := data.OpenNPZ(filepath.Join("..", "testdata", "models", "groupnorm_ref.npz"))
	if err != nil {
		t.Fatalf("committed reference missing: %v", err)
	}
	defer z.Close()
	arr := func(name string) *data.Array {
		t.Helper()
		a, err := z.Array(name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	x := arr("input").Float
	for _, opset := range []int64{18, 21} {
		b := mt.GroupNorm(opset, true, func(name string) ([]int, []float64) { a := arr(name); return a.Shape, a.Float })
		mp := b.Proto()
		if err := upgradeOpset(mp); err != nil {
			t.Fatalf("opset %d: %v", opset, err)
		}
		ops := map[string]int{}
		for _, n := range mp.Graph.Node {
			ops[n.OpType]++
		}
		want := map[string]int{"Conv": 1, "Tanh": 1, "Flatten": 1, "Gemm": 1, "GroupNormalization": 1}
		if opset < 21 {
			want = map[string]int{"Conv": 1, "Tanh": 1, "Flatten": 1, "Gemm": 1, "Constant": 1, "Shape": 1, "Reshape": 2, "InstanceNormalization": 1}
		}
		if !maps.Equal(ops, want) || mp.OpsetImport[0].Version != Opset {
			t.Errorf("opset %d upgraded: nodes %v (opset %d), want %v", opset, ops, mp.OpsetImport[0].Version, want)
		}
		raw, err := proto.Marshal(mp)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		e, err := nn.New(m, &nn.Options{Precision: nn.Float64, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Logits(x, 4)
		if err != nil {
			t.Fatal(err)
		}
		ref := arr(fmt.Sprintf("logits.%d", opset)).Float
		worst := 0.0
		for i, v := range ref {
			worst = max(worst, math.Abs(got[i]-v)/max(1, math.Abs(v)))
		}
		if worst > 1e-12 {
			t.Errorf("opset %d upgraded: logits differ from F.group_norm's by %.3g", opset, worst)
		}
	}
}
