package op

import (
	"math"
	"testing"
)

// TestLayerNormValues compares the composite's forward pass with the
// formula computed directly.
func TestLayerNormValues(t *testing.T) {
	x := []float64{0.3, -1.2, 2.0, 0.5, 1.1, -0.4, 0.0, 0.9}
	scale, bias := []float64{1.5, -0.5, 2.0, 1.0}, []float64{0.1, 0.2, -0.3, 0.0}
	ts := &testSlots{shapes: [][]int{{2, 4}, {4}, {4}, {2, 4}}, consts: [][]float64{nil, scale, bias, nil}, names: []string{"x", "s", "b", "y"}}
	nd := &Node{Op: "LayerNormalization", Name: "ln", Attrs: map[string]*Attr{"epsilon": {Name: "epsilon", Type: AttrFloat, Float: 1e-3}}}
	b := &Build{Node: nd, Opset: 17, In: []int{0, 1, 2}, Out: []int{3}, Slots: ts}
	k, err := NewKernel[float64](Lookup("LayerNormalization", 17).Exec, b)
	if err != nil {
		t.Fatal(err)
	}
	w := &Work[float64]{Val: [][]float64{x, scale, bias, make([]float64, 8)}, RV: make([][]float64, 4), Adj: make([][]float64, 4),
		RAdj: make([][]float64, 4), State: []any{k.(Stateful).NewState()}}
	k.Forward(w)
	for r := 0; r < 2; r++ {
		row := x[4*r : 4*r+4]
		m, v := 0.0, 0.0
		for _, e := range row {
			m += e / 4
		}
		for _, e := range row {
			v += (e - m) * (e - m) / 4
		}
		for j, e := range row {
			want := (e-m)/math.Sqrt(v+1e-3)*scale[j] + bias[j]
			if got := w.Val[3][4*r+j]; math.Abs(got-want) > 1e-14 {
				t.Errorf("y[%d,%d] = %.16g, want %.16g", r, j, got, want)
			}
		}
	}
}
