package model_test

import (
	"fmt"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
)

// TestOpset18Forms checks shape inference and folding of the operator forms
// that changed after opset 17 (torch 1.13 cannot export them): ReduceMean
// with axes as an input (18), Split into num_outputs equal parts with a
// smaller last one (18), Pad with an axes input (18), Resize with sizes
// (11+), at opsets 18 and 21, and folding of a ReduceSum over a shape (1+5+8).
func TestOpset18Forms(t *testing.T) {
	for _, op := range []int64{18, 21} {
		b := mt.New("forms", op)
		b.Input("x", -1, 5, 8)
		b.Int64("ax", []int{1}, []int64{-1})
		b.Int64("pads", []int{2}, []int64{1, 2})
		b.Int64("pax", []int{1}, []int64{1})
		b.Int64("sizes", []int{3}, []int64{1, 5, 16})
		b.Int64("zero", []int{1}, []int64{0})
		b.Node("ReduceMean", "rm", []string{"x", "ax"}, []string{"m"})
		b.Node("Split", "sp", []string{"x"}, []string{"s0", "s1", "s2"}, mt.Int("axis", 1), mt.Int("num_outputs", 3))
		b.Node("Pad", "pad", []string{"x", "pads", "", "pax"}, []string{"p"})
		b.Node("Resize", "rs", []string{"x", "", "", "sizes"}, []string{"r"})
		b.Node("Shape", "sh", []string{"x"}, []string{"shp"})
		b.Node("ReduceSum", "prod", []string{"shp", "zero"}, []string{"tot"}, mt.Int("keepdims", 0))
		b.Output("m")
		m, err := model.Decode(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.InferShapes(map[string][]int{"x": {1, 5, 8}})
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(s.Dims["m"], s.Dims["s0"], s.Dims["s2"], s.Dims["p"], s.Dims["r"], s.Ints["tot"])
		if want := "[1 5 1] [1 2 8] [1 1 8] [1 8 8] [1 5 16] [14]"; got != want {
			t.Errorf("opset %d: shapes %s, want %s", op, got, want)
		}
	}
}
