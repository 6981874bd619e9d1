package op

import (
	"fmt"
	"slices"
	"testing"
)

// runPick builds operator typ's kernel on inputs of the given shapes (the
// first holds 0, 1, 2, …; the others are the constants consts[i]) and
// returns every output's forward values.
func runPick(t *testing.T, typ string, opset int64, attrs []*Attr, nout int, shapes [][]int, consts ...[]float64) [][]float64 {
	t.Helper()
	nd := &Node{Op: typ, Name: "n", Attrs: map[string]*Attr{}}
	for _, a := range attrs {
		nd.Attrs[a.Name] = a
	}
	s := &Shapes{Dims: map[string][]int{}, Types: map[string]DataType{}, Ints: map[string][]int64{}}
	ts := &testSlots{}
	b := &Build{Node: nd, Opset: opset, Slots: ts}
	for i, sh := range shapes {
		name := fmt.Sprintf("x%d", i)
		nd.Inputs = append(nd.Inputs, name)
		s.Dims[name], s.Types[name] = sh, Float
		var c []float64
		if i == 0 {
			c = make([]float64, Numel(sh))
			for j := range c {
				c[j] = float64(j)
			}
		} else {
			c = consts[i-1]
			s.Types[name] = Int64
			for _, v := range c {
				s.Ints[name] = append(s.Ints[name], int64(v))
			}
			if len(c) == 1 && typ == "Pad" && i == 2 {
				s.Types[name] = Float
				delete(s.Ints, name)
			}
		}
		b.In = append(b.In, len(ts.shapes))
		ts.shapes, ts.names = append(ts.shapes, sh), append(ts.names, name)
		ts.consts = append(ts.consts, c)
		if i == 0 {
			ts.consts[0] = nil
		}
	}
	for j := 0; j < nout; j++ {
		nd.Outputs = append(nd.Outputs, fmt.Sprintf("y%d", j))
	}
	d := Lookup(typ, opset)
	if err := d.Infer(nd, s); err != nil {
		t.Fatal(err)
	}
	for _, o := range nd.Outputs {
		b.Out = append(b.Out, len(ts.shapes))
		ts.shapes, ts.names, ts.consts = append(ts.shapes, s.Dims[o]), append(ts.names, o), append(ts.consts, nil)
	}
	k, err := NewKernel[float64](d.Exec, b)
	if err != nil {
		t.Fatal(err)
	}
	w := &Work[float64]{Val: make([][]float64, len(ts.shapes))}
	for i, sh := range ts.shapes {
		w.Val[i] = make([]float64, Numel(sh))
	}
	for j := range w.Val[0] {
		w.Val[0][j] = float64(j)
	}
	for i, c := range ts.consts {
		if c != nil {
			w.Val[i] = c
		}
	}
	k.Forward(w)
	var out [][]float64
	for _, o := range b.Out {
		out = append(out, w.Val[o])
	}
	return out
}

// TestPickValues checks the forward values of Slice, Gather, Pad and Split
// against values worked out by hand (the conformance test checks only
// their derivatives against their own forward pass).
func TestPickValues(t *testing.T) {
	ints := func(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
	axis := func(a int64) *Attr { return &Attr{Name: "axis", Type: AttrInt, Int: a} }
	for _, c := range []struct {
		name string
		got  [][]float64
		want [][]float64
	}{
		{"Slice negative start, end and step", runPick(t, "Slice", 13, nil, 1, [][]int{{2, 5, 3}, {2}, {2}, {2}, {2}},
			[]float64{-1, 0}, []float64{-5, 2}, []float64{1, -1}, []float64{-2, 1}),
			[][]float64{{12, 13, 6, 7, 27, 28, 21, 22}}},
		{"Slice attributes", runPick(t, "Slice", 9, []*Attr{ints("starts", 1), ints("ends", 100), ints("axes", 0)}, 1, [][]int{{3, 2}}),
			[][]float64{{2, 3, 4, 5}}},
		{"Gather last axis", runPick(t, "Gather", 13, []*Attr{axis(-1)}, 1, [][]int{{2, 3}, {2, 2}}, []float64{-1, 0, 2, 2}),
			[][]float64{{2, 0, 2, 2, 5, 3, 5, 5}}},
		{"Gather class token", runPick(t, "Gather", 13, []*Attr{axis(1)}, 1, [][]int{{2, 3, 2}, {}}, []float64{0}),
			[][]float64{{0, 1, 6, 7}}},
		{"Pad crop", runPick(t, "Pad", 13, nil, 1, [][]int{{3, 4}, {4}}, []float64{1, -1, 0, -2}),
			[][]float64{{0, 1, 5, 9}}},
		{"Pad value", runPick(t, "Pad", 13, nil, 1, [][]int{{2, 2}, {4}, {}}, []float64{1, 0, 0, 1}, []float64{0.5}),
			[][]float64{{0.5, 0.5, 0.5, 0, 1, 0.5, 2, 3, 0.5}}},
		{"Split uneven", runPick(t, "Split", 18, []*Attr{axis(0), {Name: "num_outputs", Type: AttrInt, Int: 2}}, 2, [][]int{{5, 2}}),
			[][]float64{{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9}}},
		{"Split sizes", runPick(t, "Split", 13, []*Attr{axis(1)}, 2, [][]int{{2, 3}, {2}}, []float64{1, 2}),
			[][]float64{{0, 3}, {1, 2, 4, 5}}},
	} {
		if len(c.got) != len(c.want) {
			t.Errorf("%s: %d outputs, want %d", c.name, len(c.got), len(c.want))
			continue
		}
		for i := range c.want {
			if !slices.Equal(c.got[i], c.want[i]) {
				t.Errorf("%s: output %d is %v, want %v", c.name, i, c.got[i], c.want[i])
			}
		}
	}
}
