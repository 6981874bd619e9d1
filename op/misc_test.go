package op

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// forwardOuts runs case c of operator typ: its kernel's forward pass in
// precision T on the case's inputs (random where not given), which must
// pass the kernel's Validate when it has one. It returns the inputs'
// values, their shapes, and every output (nil for an omitted one) with
// its shape.
func forwardOuts[T Real](t *testing.T, typ string, c Case) (ins [][]float64, shapes [][]int, ys [][]float64, yshapes [][]int) {
	t.Helper()
	d := Lookup(typ, 0)
	h, b, _, err := buildCase(d, c, 7)
	if err != nil {
		t.Fatalf("%s case %q: %v", typ, c.Name, err)
	}
	k, err := NewKernel[T](d.Exec, b)
	if err != nil {
		t.Fatalf("%s case %q: building the kernel: %v", typ, c.Name, err)
	}
	w := &Work[T]{Val: make([][]T, h.ns), RV: make([][]T, h.ns), Adj: make([][]T, h.ns), RAdj: make([][]T, h.ns), State: []any{nil}}
	if st, ok := k.(Stateful); ok {
		w.State[0] = st.NewState()
	}
	for i := range w.Val {
		w.Val[i] = Convert[T](h.val[i])
		if w.Val[i] == nil {
			w.Val[i] = make([]T, h.size[i])
		}
	}
	k.Forward(w)
	if v, ok := k.(Validator[T]); ok {
		if err := v.Validate(w); err != nil {
			t.Fatalf("%s case %q: %v", typ, c.Name, err)
		}
	}
	for i, s := range b.In {
		if s >= 0 {
			ins, shapes = append(ins, h.val[s]), append(shapes, c.Inputs[i].Shape)
		} else {
			ins, shapes = append(ins, nil), append(shapes, nil)
		}
	}
	for _, s := range b.Out {
		ys, yshapes = append(ys, Convert[float64](w.Val[s])), append(yshapes, b.Shape(s))
	}
	return ins, shapes, ys, yshapes
}

func attrOf(c Case, name string) *Attr {
	for _, a := range c.Attrs {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func intAttrOf(c Case, name string, def int64) int64 {
	if a := attrOf(c, name); a != nil {
		return a.Int
	}
	return def
}

// topKRef is TopK by k rounds of selection: each round takes the most
// extreme element not yet taken, the first one (lowest index) on a tie.
func topKRef(x []float64, xs []int, axis, k int, largest bool) (vals, idx []float64) {
	outer, d, inner := Numel(xs[:axis]), xs[axis], Numel(xs[axis+1:])
	vals, idx = make([]float64, outer*k*inner), make([]float64, outer*k*inner)
	for ob := 0; ob < outer; ob++ {
		for in := 0; in < inner; in++ {
			taken := make([]bool, d)
			for j := 0; j < k; j++ {
				best := -1
				for i := 0; i < d; i++ {
					if taken[i] {
						continue
					}
					v := x[(ob*d+i)*inner+in]
					if best < 0 {
						best = i
						continue
					}
					b := x[(ob*d+best)*inner+in]
					if (largest && v > b) || (!largest && v < b) {
						best = i
					}
				}
				taken[best] = true
				o := (ob*k+j)*inner + in
				vals[o], idx[o] = x[(ob*d+best)*inner+in], float64(best)
			}
		}
	}
	return vals, idx
}

// gatherNDRef is GatherND by output coordinates: batch coordinates, the
// tuple's position, then the trailing data coordinates.
func gatherNDRef(x []float64, xs []int, ind []float64, is []int, b int) []float64 {
	q := len(is)
	m := is[q-1]
	ys := append(append([]int{}, is[:q-1]...), xs[b+m:]...)
	y := make([]float64, Numel(ys))
	for o := range y {
		c := coords(o, ys)
		tuple := append(append([]int{}, c[:q-1]...), 0)
		src := append([]int{}, c[:b]...)
		for j := 0; j < m; j++ {
			tuple[q-1] = j
			v := int(ind[offset(tuple, is)])
			if v < 0 {
				v += xs[b+j]
			}
			src = append(src, v)
		}
		src = append(src, c[q-1:]...)
		y[o] = x[offset(src, xs)]
	}
	return y
}

// oneHotRef is OneHot by output coordinates.
func oneHotRef(ind []float64, is []int, depth, axis int, off, on float64) []float64 {
	r := len(is) + 1
	if axis < 0 {
		axis += r
	}
	ys := append(append(append([]int{}, is[:axis]...), depth), is[axis:]...)
	y := make([]float64, Numel(ys))
	for o := range y {
		c := coords(o, ys)
		cls := c[axis]
		rest := append(append([]int{}, c[:axis]...), c[axis+1:]...)
		v := int(ind[offset(rest, is)])
		if v < 0 {
			v += depth
		}
		y[o] = off
		if v == cls {
			y[o] = on
		}
	}
	return y
}

// normRef standardizes x over the elements that share key(coords): for
// every element, (x − μ)/√(σ² + ε), or /(√σ² + ε) when epsStd.
func normRef(x []float64, xs []int, key func(c []int) string, eps float64, epsStd bool) []float64 {
	sum, sq, cnt := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for i, v := range x {
		k := key(coords(i, xs))
		sum[k] += v
		cnt[k]++
	}
	for i, v := range x {
		k := key(coords(i, xs))
		d := v - sum[k]/cnt[k]
		sq[k] += d * d
	}
	y := make([]float64, len(x))
	for i, v := range x {
		k := key(coords(i, xs))
		mu, vr := sum[k]/cnt[k], sq[k]/cnt[k]
		if epsStd {
			y[i] = (v - mu) / (math.Sqrt(vr) + eps)
		} else {
			y[i] = (v - mu) / math.Sqrt(vr+eps)
		}
	}
	return y
}

func TestMiscBruteForce(t *testing.T) {
	k := func(v int64) CaseInput { return CaseInput{Shape: []int{1}, Ints: []int64{v}} }
	attr := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	ties := CaseInput{Shape: []int{2, 5}, Const: []float64{1, 3, 3, 2, 3, -1, -1, 4, -1, 0}}
	extra := map[string][]Case{
		"TopK": {
			{Name: "ties largest", Inputs: []CaseInput{ties, k(2)}, Outputs: 2},
			{Name: "ties smallest", Attrs: []*Attr{attr("largest", 0)}, Inputs: []CaseInput{ties, k(3)}, Outputs: 2},
			{Name: "ties all, axis 0", Attrs: []*Attr{attr("axis", 0)}, Inputs: []CaseInput{{Shape: []int{3, 2}, Const: []float64{5, 1, 5, 1, 5, 2}}, k(3)}, Outputs: 2},
			{Name: "k 0", Inputs: []CaseInput{{Shape: []int{2, 3}}, k(0)}, Outputs: 2},
		},
		"GatherND": {{Name: "batch_dims 1, full tuples", Attrs: []*Attr{attr("batch_dims", 1)},
			Inputs: []CaseInput{{Shape: []int{2, 3, 2}}, {Shape: []int{2, 2, 2}, Ints: []int64{2, 1, -1, -2, 0, 0, 1, 1}}}}},
		"OneHot": {{Name: "axis -2, beyond depth", Attrs: []*Attr{attr("axis", -2)},
			Inputs: []CaseInput{{Shape: []int{3, 1}, Ints: []int64{1, -4, 3}, Data: true}, {Shape: []int{1}, Ints: []int64{3}}, {Shape: []int{2}, Const: []float64{-0.5, 2}}}}},
	}
	for _, typ := range []string{"TopK", "GatherND", "OneHot", "GroupNormalization", "InstanceNormalization", "MeanVarianceNormalization"} {
		d := Lookup(typ, 0)
		cases := append(append([]Case{}, d.Cases...), extra[typ]...)
		for i, c := range cases {
			ins, shapes, ys, _ := forwardOuts[float64](t, typ, c)
			_, _, ys32, _ := forwardOuts[float32](t, typ, c)
			var want [][]float64
			exact := true
			switch typ {
			case "TopK":
				axis := int(intAttrOf(c, "axis", -1))
				if axis < 0 {
					axis += len(shapes[0])
				}
				v, idx := topKRef(ins[0], shapes[0], axis, int(ins[1][0]), intAttrOf(c, "largest", 1) != 0)
				want = [][]float64{v, idx}
			case "GatherND":
				want = [][]float64{gatherNDRef(ins[0], shapes[0], ins[1], shapes[1], int(intAttrOf(c, "batch_dims", 0)))}
			case "OneHot":
				want = [][]float64{oneHotRef(ins[0], shapes[0], int(ins[1][0]), int(intAttrOf(c, "axis", -1)), ins[2][0], ins[2][1])}
			default:
				exact = false
				xs := shapes[0]
				eps := 1e-5
				if a := attrOf(c, "epsilon"); a != nil {
					eps = a.Float
				}
				var y []float64
				switch typ {
				case "GroupNormalization":
					g := int(intAttrOf(c, "num_groups", 0))
					per := xs[1] / g
					y = normRef(ins[0], xs, func(c []int) string { return fmt.Sprint(c[0], c[1]/per) }, eps, false)
					for e := range y {
						ch := coords(e, xs)[1]
						j := ch
						if len(ins[1]) == g {
							j = ch / per
						}
						y[e] = y[e]*ins[1][j] + ins[2][j]
					}
				case "InstanceNormalization":
					y = normRef(ins[0], xs, func(c []int) string { return fmt.Sprint(c[0], c[1]) }, eps, false)
					for e := range y {
						ch := coords(e, xs)[1]
						y[e] = y[e]*ins[1][ch] + ins[2][ch]
					}
				case "MeanVarianceNormalization":
					axes := attrOf(c, "axes").Ints
					y = normRef(ins[0], xs, func(c []int) string {
						kept := slices.Clone(c)
						for _, a := range axes {
							if a < 0 {
								a += int64(len(xs))
							}
							kept[a] = -1
						}
						return fmt.Sprint(kept)
					}, 1e-9, true)
				}
				want = [][]float64{y}
			}
			for j, w := range want {
				if j >= len(ys) || ys[j] == nil {
					continue
				}
				for o := range w {
					got := ys[j][o]
					if (exact && got != w[o]) || (!exact && math.Abs(got-w[o]) > 1e-12*max(1, math.Abs(w[o]))) {
						t.Fatalf("%s case %q: output %d [%d] = %g, brute force %g", typ, c.Name, j, o, got, w[o])
					}
					if math.Abs(ys32[j][o]-w[o]) > 2e-6*max(1, math.Abs(w[o])) {
						t.Fatalf("%s case %q (float32): output %d [%d] = %g, brute force %g", typ, c.Name, j, o, ys32[j][o], w[o])
					}
				}
			}
			if i >= len(d.Cases) {
				if _, err := checkCase(d, c, uint64(i)); err != nil {
					t.Errorf("%s case %q: %v", typ, c.Name, err)
				}
			}
		}
	}
}

// TestTopKTies checks the tie rule on values written out: of equal values
// the lower index comes first, and NaN is the largest.
func TestTopKTies(t *testing.T) {
	k := func(v int64) CaseInput { return CaseInput{Shape: []int{1}, Ints: []int64{v}} }
	attr := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	nan := math.NaN()
	for _, tc := range []struct {
		c          Case
		vals, inds string
	}{
		{Case{Inputs: []CaseInput{{Shape: []int{5}, Const: []float64{1, 3, 3, 2, 3}}, k(2)}, Outputs: 2}, "[3 3]", "[1 2]"},
		{Case{Attrs: []*Attr{attr("largest", 0)}, Inputs: []CaseInput{{Shape: []int{5}, Const: []float64{2, 1, 2, 1, 0}}, k(3)}, Outputs: 2}, "[0 1 1]", "[4 1 3]"},
		{Case{Inputs: []CaseInput{{Shape: []int{4}, Const: []float64{1, nan, 2, nan}}, k(3)}, Outputs: 2}, "[NaN NaN 2]", "[1 3 2]"},
		{Case{Attrs: []*Attr{attr("largest", 0)}, Inputs: []CaseInput{{Shape: []int{3}, Const: []float64{nan, 1, 0}}, k(3)}, Outputs: 2}, "[0 1 NaN]", "[2 1 0]"},
	} {
		_, _, ys, _ := forwardOuts[float64](t, "TopK", tc.c)
		if v, i := fmt.Sprint(ys[0]), fmt.Sprint(ys[1]); v != tc.vals || i != tc.inds {
			t.Errorf("TopK %v: values %s indices %s, want %s %s", tc.c.Inputs[0].Const, v, i, tc.vals, tc.inds)
		}
	}
	// A long slice of three values, past the lengths a sort handles by
	// insertion: the order of ties is still the lower index first.
	x := make([]float64, 40)
	for i := range x {
		x[i] = float64(i * 7 % 3)
	}
	for _, largest := range []int64{1, 0} {
		c := Case{Attrs: []*Attr{attr("largest", largest)}, Inputs: []CaseInput{{Shape: []int{40}, Const: x}, k(25)}, Outputs: 2}
		_, _, ys, _ := forwardOuts[float64](t, "TopK", c)
		v, idx := topKRef(x, []int{40}, 0, 25, largest != 0)
		if !slices.Equal(ys[0], v) || !slices.Equal(ys[1], idx) {
			t.Errorf("TopK largest %d of 40 with ties: indices %v, brute force %v", largest, ys[1], idx)
		}
	}
}

func TestMiscErrors(t *testing.T) {
	attr := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	ints := func(shape []int, v ...int64) CaseInput { return CaseInput{Shape: shape, Ints: v} }
	for _, tc := range []struct {
		typ  string
		c    Case
		want string
	}{
		{"TopK", Case{Inputs: []CaseInput{x(2, 5), ints([]int{1}, 6)}, Outputs: 2}, "k = 6 is outside [0, 5], the size of axis 1"},
		{"TopK", Case{Inputs: []CaseInput{x(2, 5), ints([]int{1}, -1)}}, "k = -1 is outside"},
		{"TopK", Case{Attrs: []*Attr{attr("axis", 2)}, Inputs: []CaseInput{x(2, 5), ints([]int{1}, 1)}}, "out of range"},
		{"TopK", Case{Inputs: []CaseInput{x(2, 5), ints([]int{2}, 1, 1)}}, "has 2 values, want one"},
		{"GatherND", Case{Inputs: []CaseInput{x(2, 3), ints([]int{2, 2}, 0, 1, 1, 3)}}, "index 3 at position 3 is outside [-3, 3) (axis 1 of data [2 3])"},
		{"GatherND", Case{Inputs: []CaseInput{x(2, 3), ints([]int{1, 2}, -3, 0)}}, "index -3 at position 0 is outside [-2, 2) (axis 0"},
		{"GatherND", Case{Inputs: []CaseInput{x(2, 3), ints([]int{1, 3}, 0, 0, 0)}}, "tuples of 3 coordinates, want 1 to 2"},
		{"GatherND", Case{Attrs: []*Attr{attr("batch_dims", 1)}, Inputs: []CaseInput{x(2, 3), ints([]int{3, 1}, 0, 0, 0)}}, "axes of data [2 3] and indices [3 1] differ"},
		{"GatherND", Case{Attrs: []*Attr{attr("batch_dims", 2)}, Inputs: []CaseInput{x(2, 3), ints([]int{2, 1}, 0, 0)}}, "batch_dims"},
		{"OneHot", Case{Inputs: []CaseInput{ints([]int{2}, 0, 1), ints([]int{}, 0), x(2)}}, "depth is 0"},
		{"OneHot", Case{Inputs: []CaseInput{ints([]int{2}, 0, 1), ints([]int{}, 2), x(3)}}, "want two elements"},
		{"OneHot", Case{Attrs: []*Attr{attr("axis", 3)}, Inputs: []CaseInput{ints([]int{2}, 0, 1), ints([]int{}, 2), x(2)}}, "out of range"},
		{"GroupNormalization", Case{Opset: 18, Attrs: []*Attr{attr("num_groups", 3)}, Inputs: []CaseInput{x(1, 4, 2), x(3), x(3)}}, "want a divisor of the 4 channels"},
		{"GroupNormalization", Case{Opset: 18, Inputs: []CaseInput{x(1, 4, 2), x(2), x(2)}}, "num_groups"},
		{"GroupNormalization", Case{Opset: 18, Attrs: []*Attr{attr("num_groups", 2)}, Inputs: []CaseInput{x(1, 4, 2), x(3), x(3)}}, "want [2] (one per group)"},
		{"GroupNormalization", Case{Opset: 21, Attrs: []*Attr{attr("num_groups", 2)}, Inputs: []CaseInput{x(1, 4, 2), x(2), x(2)}}, "want [4] (one per channel (opset 21))"},
		{"GroupNormalization", Case{Opset: 18, Attrs: []*Attr{attr("num_groups", 2)}, Inputs: []CaseInput{x(1, 4, 2), x(4), x(4)}}, "want [2] (one per group (opsets 18 to 20))"},
		{"InstanceNormalization", Case{Inputs: []CaseInput{x(2, 3), x(3), x(3)}}, "want N×C×spatial"},
		{"InstanceNormalization", Case{Inputs: []CaseInput{x(2, 3, 2), x(2), x(3)}}, "scale has shape [2], want [3]"},
		{"MeanVarianceNormalization", Case{Inputs: []CaseInput{x(2, 3, 2, 2)}}, "includes the batch axis 0"},
		{"MeanVarianceNormalization", Case{Attrs: []*Attr{{Name: "axes", Type: AttrInts, Ints: []int64{1, -2}}}, Inputs: []CaseInput{x(2, 3, 2)}}, "repeats axis 1"},
	} {
		d := Lookup(tc.typ, 0)
		_, err := checkCase(d, tc.c, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error %v, want one containing %q", tc.typ, tc.c.Inputs, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "panic") {
			t.Errorf("%s: %v", tc.typ, err)
		}
		if strings.HasPrefix(err.Error(), "shape inference") && !strings.Contains(err.Error(), `node "n"`) {
			t.Errorf("%s: inference error %q does not name the node", tc.typ, err)
		}
	}
	// Computed GatherND indices out of range: zeros, and Validate reports
	// the coordinate.
	c := Case{Attrs: []*Attr{attr("batch_dims", 1)}, Inputs: []CaseInput{x(2, 3), {Shape: []int{2, 1}, Ints: []int64{1, 3}, Data: true}}}
	badIndexCase(t, "GatherND", c, 1, "index 3 at position 1 is outside [-3, 3) (axis 1 of data [2 3])")
}

// TestMiscFold folds the operators on constants through their kernels:
// TopK's two outputs (INT64 indices) and GatherND and OneHot of integers
// exact in INT64; NonZero by its inference.
func TestMiscFold(t *testing.T) {
	ints := func(shape []int, v ...int64) *Tensor { return &Tensor{Type: Int64, Shape: shape, Int: v} }
	floats := func(shape []int, v ...float64) *Tensor { return &Tensor{Type: Float, Shape: shape, Float: v} }
	node := func(op string, ins, outs int, attrs ...*Attr) *Node {
		n := &Node{Op: op, Name: "f", Attrs: map[string]*Attr{}}
		for i := 0; i < ins; i++ {
			n.Inputs = append(n.Inputs, fmt.Sprintf("x%d", i))
		}
		for i := 0; i < outs; i++ {
			n.Outputs = append(n.Outputs, fmt.Sprintf("y%d", i))
		}
		for _, a := range attrs {
			n.Attrs[a.Name] = a
		}
		return n
	}
	show := func(y *Tensor) string {
		v := fmt.Sprint(y.Float)
		if y.Type == Int64 {
			v = fmt.Sprint(y.Int)
		}
		return fmt.Sprint(y.Type, " ", y.Shape, " ", v)
	}
	attrInt := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	for _, tc := range []struct {
		n    *Node
		ins  []*Tensor
		want []string
	}{
		{node("TopK", 2, 2), []*Tensor{floats([]int{2, 3}, 1, 3, 2, 6, 5, 4), ints([]int{1}, 2)}, []string{"FLOAT [2 2] [3 2 6 5]", "INT64 [2 2] [1 2 0 1]"}},
		{node("TopK", 2, 2, attrInt("largest", 0), attrInt("axis", 0)), []*Tensor{ints([]int{3}, 7, -2, 7), ints([]int{1}, 2)}, []string{"INT64 [2] [-2 7]", "INT64 [2] [1 0]"}},
		{node("GatherND", 2, 1), []*Tensor{ints([]int{2, 2}, 10, 11, 20, 21), ints([]int{2, 1}, 1, -2)}, []string{"INT64 [2 2] [20 21 10 11]"}},
		{node("NonZero", 1, 1), []*Tensor{ints([]int{2, 3}, 1, 0, 2, 0, 3, 0)}, []string{"INT64 [2 3] [0 0 1 0 2 1]"}},
		{node("NonZero", 1, 1), []*Tensor{floats([]int{4}, 0, 0, 0, 0)}, []string{"INT64 [1 0] []"}},
		{node("OneHot", 3, 1), []*Tensor{ints([]int{2}, 2, -1), ints([]int{}, 3), ints([]int{2}, 0, 1)}, []string{"INT64 [2 3] [0 0 1 0 0 1]"}},
	} {
		outs, err := Fold(tc.n, 17, tc.ins, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.n.Op, err)
			continue
		}
		for j, w := range tc.want {
			if got := show(outs[j]); got != w {
				t.Errorf("%s output %d: folded %s, want %s", tc.n.Op, j, got, w)
			}
		}
	}
	_, err := Fold(node("TopK", 2, 2), 17, []*Tensor{floats([]int{2}, 1, 2), ints([]int{1}, 3)}, nil)
	if err == nil || IsNotFoldable(err) || !strings.Contains(err.Error(), `TopK node "f"`) {
		t.Errorf("TopK k beyond the axis: %v, want an error naming the node", err)
	}
}

// FuzzGatherND runs GatherND on random shapes, batch_dims and indices
// (constant or computed, in and out of range): it never panics; a problem
// the definition allows agrees with gatherNDRef, and one it does not is an
// error (at inference for constant indices, from Validate for computed
// ones).
func FuzzGatherND(f *testing.F) {
	f.Add([]byte{2, 3, 0, 1, 0, 2, 5, 7, 1, 200})
	f.Add([]byte{3, 2, 2, 1, 1, 3, 1, 0, 9, 4, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		next := func(mod int) int {
			if len(b) == 0 {
				return 0
			}
			v := int(b[0]) % mod
			b = b[1:]
			return v
		}
		r := 1 + next(3)
		xs := make([]int, r)
		for i := range xs {
			xs[i] = 1 + next(3)
		}
		bd := next(r)
		m := 1 + next(r-bd+1) // may exceed r − bd: an error
		q := bd + 1 + next(2)
		is := make([]int, q)
		copy(is, xs[:bd])
		for i := bd; i < q-1; i++ {
			is[i] = 1 + next(3)
		}
		is[q-1] = m
		idx := make([]int64, Numel(is))
		for i := range idx {
			idx[i] = int64(next(9)) - 4
		}
		computed := next(2) == 1
		c := Case{Attrs: []*Attr{{Name: "batch_dims", Type: AttrInt, Int: int64(bd)}},
			Inputs: []CaseInput{{Shape: xs}, {Shape: is, Ints: idx, Data: computed}}}
		valid := m <= r-bd
		if valid {
			for row := 0; row < Numel(is)/m; row++ {
				for j := 0; j < m; j++ {
					if v := idx[row*m+j]; v < -int64(xs[bd+j]) || v >= int64(xs[bd+j]) {
						valid = false
					}
				}
			}
		}
		d := Lookup("GatherND", 0)
		h, bl, _, err := buildCase(d, c, 1)
		if err == nil {
			var k Kernel[float64]
			if k, err = NewKernel[float64](d.Exec, bl); err == nil {
				h.k = k
				w := h.work()
				k.Forward(w)
				if v, ok := k.(Validator[float64]); ok {
					err = v.Validate(w)
				}
				if err == nil {
					want := gatherNDRef(h.val[bl.In[0]], xs, h.val[bl.In[1]], is, bd)
					if !slices.Equal(w.Val[bl.Out[0]], want) {
						t.Fatalf("data %v indices %v %v batch_dims %d: %v, brute force %v", xs, is, idx, bd, w.Val[bl.Out[0]], want)
					}
				}
			}
		}
		if valid != (err == nil) {
			t.Fatalf("data %v indices %v %v batch_dims %d (computed %v): valid %v, error %v", xs, is, idx, bd, computed, valid, err)
		}
	})
}
