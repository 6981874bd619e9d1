package model_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
)

func ints(shape []int, v ...int64) *model.Tensor {
	return &model.Tensor{Type: model.Int64, Shape: shape, Int: v}
}

func floats(shape []int, v ...float64) *model.Tensor {
	return &model.Tensor{Type: model.Float, Shape: shape, Float: v}
}

func node(op string, nin int, attrs ...*model.Attr) *model.Node {
	n := &model.Node{Op: op, Name: op, Outputs: []string{"y"}, Attrs: map[string]*model.Attr{}}
	for i := 0; i < nin; i++ {
		n.Inputs = append(n.Inputs, fmt.Sprintf("x%d", i))
	}
	for _, a := range attrs {
		n.Attrs[a.Name] = a
	}
	return n
}

func aInt(name string, v int64) *model.Attr {
	return &model.Attr{Name: name, Type: model.AttrInt, Int: v}
}
func aInts(name string, v ...int64) *model.Attr {
	return &model.Attr{Name: name, Type: model.AttrInts, Ints: v}
}

// TestFold checks the folding of the shape arithmetic torch.onnx emits
// against values worked out by hand.
func TestFold(t *testing.T) {
	cases := []struct {
		name   string
		n      *model.Node
		ins    []*model.Tensor
		shape0 []int
		want   string
	}{
		{"shape", node("Shape", 1), []*model.Tensor{nil}, []int{4, 3, 8}, "[3] [4 3 8] []"},
		{"shape-start", node("Shape", 1, aInt("start", -2)), []*model.Tensor{nil}, []int{4, 3, 8}, "[2] [3 8] []"},
		{"gather-scalar", node("Gather", 2), []*model.Tensor{ints([]int{3}, 4, 3, 8), ints([]int{}, -1)}, nil, "[] [8] []"},
		{"unsqueeze13", node("Unsqueeze", 2), []*model.Tensor{ints([]int{}, 8), ints([]int{1}, 0)}, nil, "[1] [8] []"},
		{"concat", node("Concat", 3, aInt("axis", 0)), []*model.Tensor{ints([]int{1}, 2), ints([]int{1}, -1), ints([]int{2}, 4, 16)}, nil, "[4] [2 -1 4 16] []"},
		{"range", node("Range", 3), []*model.Tensor{ints([]int{}, 0), ints([]int{}, 7), ints([]int{}, 3)}, nil, "[3] [0 3 6] []"},
		{"equal-where", node("Where", 3), []*model.Tensor{{Type: model.Bool, Shape: []int{3}, Int: []int64{1, 0, 1}}, ints([]int{}, 1), ints([]int{3}, 5, 6, 7)}, nil, "[3] [1 6 1] []"},
		{"expand", node("Expand", 2), []*model.Tensor{floats([]int{1, 2}, 1.5, 2.5), ints([]int{2}, 3, 1)}, nil, "[3 2] [] [1.5 2.5 1.5 2.5 1.5 2.5]"},
		{"constofshape", node("ConstantOfShape", 1), []*model.Tensor{ints([]int{2}, 2, 3)}, nil, "[2 3] [] [0 0 0 0 0 0]"},
		{"slice", node("Slice", 5), []*model.Tensor{ints([]int{5}, 10, 11, 12, 13, 14), ints([]int{1}, -1), ints([]int{1}, -100), ints([]int{1}, 0), ints([]int{1}, -2)}, nil, "[3] [14 12 10] []"},
		{"cast-float", node("Cast", 1, aInt("to", 1)), []*model.Tensor{ints([]int{2}, 3, -4)}, nil, "[2] [] [3 -4]"},
		{"div-int", node("Div", 2), []*model.Tensor{ints([]int{2}, 7, -7), ints([]int{}, 2)}, nil, "[2] [3 -3] []"},
		{"mul-float", node("Mul", 2), []*model.Tensor{floats([]int{}, 0.5), floats([]int{2}, 4, 6)}, nil, "[2] [] [2 3]"},
		{"reshape", node("Reshape", 2), []*model.Tensor{floats([]int{2, 3}, 1, 2, 3, 4, 5, 6), ints([]int{2}, 3, -1)}, nil, "[3 2] [] [1 2 3 4 5 6]"},
		{"transpose", node("Transpose", 1, aInts("perm", 1, 0)), []*model.Tensor{floats([]int{2, 3}, 1, 2, 3, 4, 5, 6)}, nil, "[3 2] [] [1 4 2 5 3 6]"},
		{"reduceprod", node("ReduceProd", 1, aInt("keepdims", 0)), []*model.Tensor{ints([]int{3}, 2, 3, 4)}, nil, "[] [24] []"},
		{"tile", node("Tile", 2), []*model.Tensor{ints([]int{2}, 1, 2), ints([]int{1}, 2)}, nil, "[4] [1 2 1 2] []"},
	}
	for _, c := range cases {
		outs, ok, err := model.Fold(c.n, 13, c.ins, c.shape0)
		if err != nil || !ok {
			t.Errorf("%s: ok %v, err %v", c.name, ok, err)
			continue
		}
		y := outs[0]
		if got := fmt.Sprint(y.Shape, y.Int, y.Float); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	// Not foldable: an op outside the set, a missing input.
	if _, ok, _ := model.Fold(node("Conv", 2), 13, []*model.Tensor{floats([]int{1}, 1), floats([]int{1}, 1)}, nil); ok {
		t.Error("Conv folded")
	}
	if _, ok, _ := model.Fold(node("Add", 2), 13, []*model.Tensor{floats([]int{1}, 1), nil}, nil); ok {
		t.Error("Add with a missing input folded")
	}
	if _, _, err := model.Fold(node("Gather", 2), 13, []*model.Tensor{ints([]int{2}, 1, 2), ints([]int{}, 5)}, nil); err == nil {
		t.Error("Gather out of range: no error")
	}
}

// TestFoldSliceTransposeBruteForce compares folded Slice and Transpose of
// random 3-D tensors with direct index arithmetic.
func TestFoldSliceTransposeBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for it := 0; it < 200; it++ {
		sh := []int{1 + r.IntN(4), 1 + r.IntN(4), 1 + r.IntN(4)}
		x := floats(sh)
		for i := 0; i < sh[0]*sh[1]*sh[2]; i++ {
			x.Float = append(x.Float, float64(i))
		}
		at := func(i, j, k int) float64 { return x.Float[(i*sh[1]+j)*sh[2]+k] }
		// Slice on axis 1 with a random start, end and step.
		st := int64(r.IntN(2*sh[1]+1) - sh[1])
		en := int64(r.IntN(2*sh[1]+3) - sh[1] - 1)
		step := int64(1 + r.IntN(2))
		if r.IntN(2) == 0 {
			step = -step
		}
		outs, ok, err := model.Fold(node("Slice", 5), 13, []*model.Tensor{x, ints([]int{1}, st), ints([]int{1}, en), ints([]int{1}, 1), ints([]int{1}, step)}, nil)
		if err != nil || !ok {
			t.Fatalf("slice: %v %v", ok, err)
		}
		var want []float64
		var js []int
		d := int64(sh[1])
		s, e := st, en
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		if step > 0 {
			for j := max(s, 0); j < min(e, d); j += step {
				js = append(js, int(j))
			}
		} else {
			for j := min(s, d-1); j > max(e, -1); j += step {
				js = append(js, int(j))
			}
		}
		for i := 0; i < sh[0]; i++ {
			for _, j := range js {
				for k := 0; k < sh[2]; k++ {
					want = append(want, at(i, j, k))
				}
			}
		}
		if got := outs[0].Float; !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("slice %v [%d:%d:%d] on axis 1: got %v, want %v", sh, st, en, step, got, want)
		}
		// Transpose with perm (2, 0, 1).
		outs, _, err = model.Fold(node("Transpose", 1, aInts("perm", 2, 0, 1)), 13, []*model.Tensor{x}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = want[:0]
		for k := 0; k < sh[2]; k++ {
			for i := 0; i < sh[0]; i++ {
				for j := 0; j < sh[1]; j++ {
					want = append(want, at(i, j, k))
				}
			}
		}
		if !slices.Equal(outs[0].Float, want) {
			t.Fatalf("transpose %v: got %v, want %v", sh, outs[0].Float, want)
		}
	}
}

// TestFoldUnknownOperatorNotGuessed: an operator without a record is
// neither folded (even on constant inputs) nor given a shape: its output
// and everything computed from it stay unknown for the engine's static
// check to name, instead of being mis-shaped; the registry's new records
// (ReduceMax, ArgMax, Tile) shape and fold at import.
func TestFoldUnknownOperatorNotGuessed(t *testing.T) {
	b := mt.New("g", 17).Input("x", 2, 3).Output("y").Output("k")
	b.Float("w", []int{2, 3}, []float64{1, 5, 3, 4, 2, 6})
	b.Int64("reps", []int{2}, []int64{1, 2})
	b.Node("NoSuchOp", "odd", []string{"w"}, []string{"c"})
	b.Node("Add", "add", []string{"x", "c"}, []string{"s"})
	b.Node("Relu", "relu", []string{"s"}, []string{"y"})
	b.Node("ReduceMax", "rmax", []string{"w"}, []string{"m"}, mt.Ints("axes", 1))
	b.Node("ArgMax", "amax", []string{"w"}, []string{"a"}, mt.Int("axis", 1), mt.Int("keepdims", 0))
	b.Node("Tile", "tile", []string{"m", "reps"}, []string{"mt"})
	b.Node("Cast", "cast", []string{"a"}, []string{"af"}, mt.Int("to", 1))
	b.Node("Mul", "mul", []string{"mt", "af"}, []string{"k"})
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(m.Nodes, func(n *model.Node) bool { return n.Op == "NoSuchOp" }) {
		t.Error("the node of an operator without a record was folded away")
	}
	s, err := m.InferShapes(map[string][]int{"x": {2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c", "s", "y"} {
		if d, ok := s.Dims[name]; ok {
			t.Errorf("%s has shape %v, want unknown", name, d)
		}
	}
	// Row maxima [5 6] tiled to [[5 5] [6 6]], times the row argmaxima
	// [1 2] broadcast along the rows.
	k := s.Values["k"]
	if k == nil || fmt.Sprint(k.Shape, k.Float) != "[2 2] [5 10 6 12]" {
		t.Errorf("k = %v, want [2 2] [5 10 6 12]", k)
	}
}

// TestFoldVariadicMaxMin: a Max and a Min of three initializers (ONNX's
// variadic form; torch exports two) are folded at import, so the graph
// that remains is the Add on the input with their elementwise extremes.
func TestFoldVariadicMaxMin(t *testing.T) {
	b := mt.New("g", 13).Input("x", 1, 3).Output("y")
	b.Float("a", []int{3}, []float64{1, -2, 3})
	b.Float("b", []int{1}, []float64{0})
	b.Float("c", []int{1, 3}, []float64{-1, 4, 2})
	b.Node("Max", "max", []string{"a", "b", "c"}, []string{"hi"})
	b.Node("Min", "min", []string{"a", "b", "c"}, []string{"lo"})
	b.Node("Sub", "width", []string{"hi", "lo"}, []string{"w"})
	b.Node("Add", "add", []string{"x", "w"}, []string{"y"})
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, n := range m.Nodes {
		ops = append(ops, n.Op)
	}
	if !slices.Equal(ops, []string{"Add"}) {
		t.Fatalf("nodes after import %v, want [Add] (Max, Min and Sub of constants folded)", ops)
	}
	s, err := m.InferShapes(map[string][]int{"x": {1, 3}})
	if err != nil {
		t.Fatal(err)
	}
	// max [1 4 3] − min [−1 −2 0].
	if w := s.Values["w"]; w == nil || fmt.Sprint(w.Shape, w.Float) != "[1 3] [2 6 3]" {
		t.Errorf("w = %v, want [1 3] [2 6 3]", w)
	}
}

// TestVariadicShapes: Max, Min, Sum and Mean of computed tensors of
// different ranks keep their nodes at import (only constants fold) and are
// given the multidirectional broadcast of all their inputs, for every batch
// size; a node whose inputs do not broadcast is an error naming it.
func TestVariadicShapes(t *testing.T) {
	for _, typ := range []string{"Max", "Min", "Sum", "Mean"} {
		b := mt.New("g", 13).Input("x", -1, 3, 1).Output("y")
		b.Float("c", []int{4}, []float64{1, 2, 3, 4})
		b.Node("Relu", "r", []string{"x"}, []string{"a"})                           // N×3×1
		b.Node("ReduceMean", "m", []string{"x"}, []string{"p"}, mt.Ints("axes", 1)) // N×1×1
		b.Node("Transpose", "t", []string{"p"}, []string{"q"}, mt.Ints("perm", 1, 2, 0))
		b.Node(typ, "v", []string{"a", "c", "p", "q"}, []string{"y"}) // N×3×1, 4, N×1×1, 1×1×N
		m, err := model.Decode(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(m.Nodes, func(n *model.Node) bool { return n.Op == typ }) {
			t.Fatalf("%s of computed tensors was folded away", typ)
		}
		// With batch 1 the transposed mean broadcasts; with batch 5 its
		// last axis (5) meets the constant's 4 and the node is refused.
		s, err := m.InferShapes(map[string][]int{"x": {1, 3, 1}})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got := s.Dims["y"]; !slices.Equal(got, []int{1, 3, 4}) {
			t.Errorf("%s: output shape %v, want [1 3 4]", typ, got)
		}
		if _, err := m.InferShapes(map[string][]int{"x": {5, 3, 1}}); err == nil || !strings.Contains(err.Error(), `"v"`) {
			t.Errorf("%s with inputs that do not broadcast: %v, want an error naming node v", typ, err)
		}
	}
}
