package op

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// forwardCase runs case c of operator typ: its kernel's forward pass in
// precision T on the case's inputs (random where not given), which must
// pass the kernel's Validate (forwardOuts). It returns the inputs' values,
// their shapes, and the first output with its shape.
func forwardCase[T Real](t *testing.T, typ string, c Case) (ins [][]float64, shapes [][]int, y []float64, ys []int) {
	t.Helper()
	ins, shapes, outs, oshapes := forwardOuts[T](t, typ, c)
	return ins, shapes, outs[0], oshapes[0]
}

// coords returns the coordinates of row-major position i in shape s.
func coords(i int, s []int) []int {
	c := make([]int, len(s))
	for d := len(s) - 1; d >= 0; d-- {
		c[d] = i % s[d]
		i /= s[d]
	}
	return c
}

// offset returns the row-major position of coordinates c in shape s.
func offset(c, s []int) int {
	q := 0
	for d := range s {
		q = q*s[d] + c[d]
	}
	return q
}

// reshapeTranspose is the ONNX specification's definition of the depth
// operators: x viewed as shape view, its axes permuted by perm (the result
// is flat, row-major).
func reshapeTranspose(x []float64, view []int, perm []int) []float64 {
	ps := make([]int, len(perm))
	for i, p := range perm {
		ps[i] = view[p]
	}
	y := make([]float64, len(x))
	for o := range y {
		c := coords(o, ps)
		src := make([]int, len(view))
		for i, p := range perm {
			src[p] = c[i]
		}
		y[o] = x[offset(src, view)]
	}
	return y
}

// layoutRef is the brute-force value of one of the layout operators of
// layout.go at case c, from its inputs, written from the ONNX operator
// definitions.
func layoutRef(t *testing.T, typ string, c Case, ins [][]float64, shapes [][]int, ys []int) []float64 {
	attr := func(name string, def int64) int64 {
		for _, a := range c.Attrs {
			if a.Name == name {
				return a.Int
			}
		}
		return def
	}
	mode := "DCR"
	for _, a := range c.Attrs {
		if a.Name == "mode" {
			mode = a.String
		}
	}
	x, xs := ins[0], shapes[0]
	switch typ {
	case "DepthToSpace":
		b := int(attr("blocksize", 0))
		n, ch, h, w := xs[0], xs[1], xs[2], xs[3]
		if mode == "DCR" {
			return reshapeTranspose(x, []int{n, b, b, ch / (b * b), h, w}, []int{0, 3, 4, 1, 5, 2})
		}
		return reshapeTranspose(x, []int{n, ch / (b * b), b, b, h, w}, []int{0, 1, 4, 2, 5, 3})
	case "SpaceToDepth":
		b := int(attr("blocksize", 0))
		n, ch, h, w := xs[0], xs[1], xs[2], xs[3]
		return reshapeTranspose(x, []int{n, ch, h / b, b, w / b, b}, []int{0, 3, 5, 1, 2, 4})
	case "Trilu":
		k := int64(0)
		if len(ins) > 1 && ins[1] != nil {
			k = int64(ins[1][0])
		}
		upper := attr("upper", 1) != 0
		y := make([]float64, len(x))
		for o := range y {
			cc := coords(o, xs)
			i, j := int64(cc[len(cc)-2]), int64(cc[len(cc)-1])
			if (upper && j >= i+k) || (!upper && j <= i+k) {
				y[o] = x[o]
			}
		}
		return y
	case "CumSum":
		axis := int(ins[1][0])
		if axis < 0 {
			axis += len(xs)
		}
		ex, rev := attr("exclusive", 0) != 0, attr("reverse", 0) != 0
		y := make([]float64, len(x))
		for o := range y {
			cc := coords(o, xs)
			j := cc[axis]
			for i := 0; i < xs[axis]; i++ {
				in := (!rev && (i < j || (!ex && i == j))) || (rev && (i > j || (!ex && i == j)))
				if in {
					cc[axis] = i
					y[o] += x[offset(cc, xs)]
				}
			}
		}
		return y
	case "GatherElements":
		axis := int(attr("axis", 0))
		if axis < 0 {
			axis += len(xs)
		}
		y := make([]float64, len(ins[1]))
		for o := range y {
			cc := coords(o, shapes[1])
			j := int(ins[1][o])
			if j < 0 {
				j += xs[axis]
			}
			cc[axis] = j
			y[o] = x[offset(cc, xs)]
		}
		return y
	}
	t.Fatalf("no reference for %s", typ)
	return nil
}

// TestLayoutBruteForce compares the forward pass of DepthToSpace,
// SpaceToDepth, Trilu, CumSum and GatherElements, in float64 and float32,
// on every conformance case and a few more against brute-force
// implementations of the ONNX definitions (TestConformance checks their
// derivative passes on the same cases).
func TestLayoutBruteForce(t *testing.T) {
	attrInt := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	scalar := func(v int64) CaseInput { return CaseInput{Shape: []int{}, Ints: []int64{v}} }
	extra := map[string][]Case{
		"DepthToSpace": {{Name: "CRD b3", Attrs: []*Attr{attrInt("blocksize", 3), {Name: "mode", Type: AttrString, String: "CRD"}}, Inputs: []CaseInput{{Shape: []int{2, 18, 2, 1}}}}},
		"Trilu": {{Name: "lower k beyond", Attrs: []*Attr{attrInt("upper", 0)}, Inputs: []CaseInput{{Shape: []int{3, 4}}, scalar(7)}},
			{Name: "upper k below", Inputs: []CaseInput{{Shape: []int{3, 4}}, scalar(-5)}},
			{Name: "lower k 1 wide", Attrs: []*Attr{attrInt("upper", 0)}, Inputs: []CaseInput{{Shape: []int{2, 2, 5}}, scalar(1)}}},
		"CumSum": {{Name: "axis 0 of 3-D reverse", Attrs: []*Attr{attrInt("reverse", 1)}, Inputs: []CaseInput{{Shape: []int{3, 2, 2}}, scalar(-3)}}},
		"GatherElements": {{Name: "constant 3-D axis 2", Attrs: []*Attr{attrInt("axis", 2)},
			Inputs: []CaseInput{{Shape: []int{2, 2, 3}}, {Shape: []int{1, 2, 2}, Ints: []int64{2, -3, 1, 1}}}}},
	}
	for _, typ := range []string{"DepthToSpace", "SpaceToDepth", "Trilu", "CumSum", "GatherElements"} {
		d := Lookup(typ, 0)
		cases := append(append([]Case{}, d.Cases...), extra[typ]...)
		for i, c := range cases {
			ins, shapes, y, ys := forwardCase[float64](t, typ, c)
			want := layoutRef(t, typ, c, ins, shapes, ys)
			_, _, y32, _ := forwardCase[float32](t, typ, c)
			for o := range want {
				if y[o] != want[o] {
					t.Fatalf("%s case %q: y[%d] = %g, brute force %g", typ, c.Name, o, y[o], want[o])
				}
				if math.Abs(y32[o]-want[o]) > 1e-6*max(1, math.Abs(want[o])) {
					t.Fatalf("%s case %q (float32): y[%d] = %g, brute force %g", typ, c.Name, o, y32[o], want[o])
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

// einsumRef is einsum by explicit loops over every label: ref is an
// equation of letters only with an explicit output (the '...' of the
// tested one written out), sizes taken from the operands (a size of 1
// broadcasts).
func einsumRef(ref string, ins [][]float64, shapes [][]int) []float64 {
	lhs, rhs, _ := strings.Cut(ref, "->")
	terms := strings.Split(lhs, ",")
	size := map[rune]int{}
	var order []rune
	for i, tm := range terms {
		for p, r := range tm {
			if _, ok := size[r]; !ok {
				order = append(order, r)
			}
			size[r] = max(size[r], shapes[i][p])
		}
	}
	var ys []int
	for _, r := range rhs {
		ys = append(ys, size[r])
	}
	y := make([]float64, Numel(ys))
	all := make([]int, len(order))
	for i := range all {
		all[i] = size[order[i]]
	}
	val := map[rune]int{}
	for e := 0; e < Numel(all); e++ {
		c := coords(e, all)
		for i, r := range order {
			val[r] = c[i]
		}
		prod := 1.0
		for i, tm := range terms {
			ic := make([]int, len(shapes[i]))
			for p, r := range []rune(tm) {
				if shapes[i][p] != 1 {
					ic[p] = val[r]
				}
			}
			prod *= ins[i][offset(ic, shapes[i])]
		}
		oc := make([]int, len(ys))
		for p, r := range []rune(rhs) {
			oc[p] = val[r]
		}
		y[offset(oc, ys)] += prod
	}
	return y
}

// TestEinsumBruteForce compares Einsum in float64 and float32 on its
// conformance cases and more equations with explicit index loops
// (einsumRef), and checks the extra cases' derivatives as TestConformance
// does.
func TestEinsumBruteForce(t *testing.T) {
	eq := func(e string) []*Attr { return []*Attr{{Name: "equation", Type: AttrString, String: e}} }
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	// The reference equations, letters only with explicit outputs, where
	// they differ from the tested one (without its spaces).
	refs := map[string]string{
		"ijk,kl":             "ijk,kl->ijl",
		"...ij,...jk->...ik": "xyij,yjk->xyik",
		"ii":                 "ii->",
		"ij,kj":              "ij,kj->ik",
		"...i,...i->...":     "xi,xi->x",
		"b...c,cd->b...d":    "bxyc,cd->bxyd",
		"b...,b...->b...":    "bx,bx->bx",
		// numpy.einsum's implicit output: upper case first (ASCII).
		"Aba,aC":               "Aba,aC->ACb",
		"...ij,jk,kl,l->...i":  "xij,jk,kl,l->xi",
		"b...i,ij,b...j->b...": "bxi,ij,bxj->bx",
	}
	extra := []Case{
		{Attrs: eq("bqhd,bkhd->bhqk"), Inputs: []CaseInput{x(2, 3, 2, 2), x(2, 4, 2, 2)}},
		{Attrs: eq("Ab,bA->A"), Inputs: []CaseInput{x(3, 2), x(2, 3)}},
		{Attrs: eq("abc,cd->abd"), Inputs: []CaseInput{x(2, 2, 3), {Shape: []int{3, 2}, Const: []float64{1, -2, 0.5, 3, -1, 0.25}}}},
		{Attrs: eq("i,i->"), Inputs: []CaseInput{x(4), x(4)}},
		{Attrs: eq("ij,ij->ij"), Inputs: []CaseInput{x(2, 3), x(2, 3)}},
		{Attrs: eq("ij,kj"), Inputs: []CaseInput{x(2, 3), x(4, 3)}},
		{Attrs: eq("...i,...i->..."), Inputs: []CaseInput{x(3, 2), x(1, 2)}},
		{Attrs: eq("b...c,cd->b...d"), Inputs: []CaseInput{x(2, 2, 1, 3), x(3, 2)}},
		{Attrs: eq("bij,bjk->bki"), Inputs: []CaseInput{x(2, 3, 2), x(2, 2, 4)}},
		{Attrs: eq("ii->i"), Inputs: []CaseInput{x(3, 3)}},
		{Attrs: eq("ab,cd->dcba"), Inputs: []CaseInput{x(2, 3), x(2, 2)}},
		{Attrs: eq("bkj,bij->bik"), Inputs: []CaseInput{x(2, 3, 2), x(2, 4, 2)}},
		{Attrs: eq("nchw,oc->nohw"), Inputs: []CaseInput{x(2, 3, 2, 2), x(4, 3)}},
		{Attrs: eq("ij,jk->"), Inputs: []CaseInput{x(2, 3), x(3, 2)}},
		{Attrs: eq("bij,jk->bik"), Inputs: []CaseInput{x(2, 2, 3), x(3, 2)}},
		{Attrs: eq("bi,bj->bij"), Inputs: []CaseInput{x(2, 3), x(2, 2)}},
		{Attrs: eq("i,ii->i"), Inputs: []CaseInput{x(3), x(3, 3)}},
		{Attrs: eq("ijj,jk->ik"), Inputs: []CaseInput{x(2, 3, 3), x(3, 2)}},
		{Attrs: eq("b...,b...->b..."), Inputs: []CaseInput{x(2, 3), x(2, 3)}},
		{Attrs: eq("ba,b->a"), Inputs: []CaseInput{x(3, 2), x(3)}},
		{Attrs: eq("Aba,aC"), Inputs: []CaseInput{x(2, 3, 4), x(4, 2)}},
		{Attrs: eq("ij,jk,kl->il"), Inputs: []CaseInput{x(2, 3), x(3, 2), x(2, 4)}},
		{Attrs: eq("bi,bj,bk->bijk"), Inputs: []CaseInput{x(2, 2), x(2, 3), x(2, 2)}},
		{Attrs: eq("ii,i,ij->j"), Inputs: []CaseInput{x(3, 3), x(3), x(3, 2)}},
		{Attrs: eq("b...i,ij,b...j->b..."), Inputs: []CaseInput{x(2, 1, 3), x(3, 2), x(2, 4, 2)}},
		// Both operands transposed: they swap roles (newEinsum).
		{Attrs: eq("bkq,bdk->bqd"), Inputs: []CaseInput{x(2, 6, 5), x(2, 4, 6)}},
		{Attrs: eq("bhkq,bhdk->bhdq"), Inputs: []CaseInput{x(1, 2, 4, 3), x(1, 2, 2, 4)}},
	}
	d := Lookup("Einsum", 0)
	cases := append(append([]Case{}, d.Cases...), extra...)
	for i, c := range cases {
		e := c.Attrs[0].String
		ref, ok := refs[e]
		if !ok {
			ref = strings.ReplaceAll(e, " ", "")
		}
		if c.Name == "" {
			c.Name = e
		}
		ins, shapes, y, _ := forwardCase[float64](t, "Einsum", c)
		_, _, y32, _ := forwardCase[float32](t, "Einsum", c)
		want := einsumRef(ref, ins, shapes)
		if len(y) != len(want) {
			t.Fatalf("%q: %d outputs, brute force %d", e, len(y), len(want))
		}
		for o := range want {
			if math.Abs(y[o]-want[o]) > 1e-13*max(1, math.Abs(want[o])) {
				t.Fatalf("%q: y[%d] = %.17g, brute force %.17g", e, o, y[o], want[o])
			}
			if math.Abs(y32[o]-want[o]) > 1e-5*max(1, math.Abs(want[o])) {
				t.Fatalf("%q (float32): y[%d] = %g, brute force %g", e, o, y32[o], want[o])
			}
		}
		if i >= len(d.Cases) {
			if _, err := checkCase(d, c, uint64(i)); err != nil {
				t.Errorf("%q: %v", e, err)
			}
		}
	}
}

// TestLayoutErrors checks that malformed nodes of the layout operators and
// Einsum give errors naming the node (or, for run-time indices, the
// engine's Validate error) and never panic.
func TestLayoutErrors(t *testing.T) {
	eq := func(e string) []*Attr { return []*Attr{{Name: "equation", Type: AttrString, String: e}} }
	attrInt := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	for _, tc := range []struct {
		typ  string
		c    Case
		want string
	}{
		{"Einsum", Case{Attrs: eq("ij,jk->ik"), Inputs: []CaseInput{x(2, 3), x(2, 2)}}, "label j has sizes 3 and 2"},
		{"Einsum", Case{Attrs: eq("ij->ii"), Inputs: []CaseInput{x(2, 2)}}, "output label i repeats"},
		{"Einsum", Case{Attrs: eq("ij->k"), Inputs: []CaseInput{x(2, 2)}}, "output label k is in no operand"},
		{"Einsum", Case{Attrs: eq("i1->i"), Inputs: []CaseInput{x(2, 2)}}, "not a letter"},
		{"Einsum", Case{Attrs: eq("ijk->i"), Inputs: []CaseInput{x(2, 2)}}, "3 labels for input 0"},
		{"Einsum", Case{Attrs: eq("...i->i"), Inputs: []CaseInput{x(2, 2)}}, "drops the ellipsis"},
		{"Einsum", Case{Attrs: eq("ii->i"), Inputs: []CaseInput{x(2, 3)}}, "repeats in operand 0"},
		{"Einsum", Case{Inputs: []CaseInput{x(2, 2)}}, "is required"},
		{"DepthToSpace", Case{Attrs: []*Attr{attrInt("blocksize", 2)}, Inputs: []CaseInput{x(1, 6, 2, 2)}}, "not a multiple"},
		{"DepthToSpace", Case{Attrs: []*Attr{attrInt("blocksize", 2), {Name: "mode", Type: AttrString, String: "XYZ"}}, Inputs: []CaseInput{x(1, 4, 2, 2)}}, "want DCR or CRD"},
		{"DepthToSpace", Case{Inputs: []CaseInput{x(1, 4, 2, 2)}}, "is required"},
		{"SpaceToDepth", Case{Attrs: []*Attr{attrInt("blocksize", 2)}, Inputs: []CaseInput{x(1, 1, 3, 2)}}, "not a multiple"},
		{"SpaceToDepth", Case{Attrs: []*Attr{attrInt("blocksize", 2)}, Inputs: []CaseInput{x(1, 4, 2)}}, "want rank 4"},
		{"Trilu", Case{Inputs: []CaseInput{x(3)}}, "want rank ≥ 2"},
		{"CumSum", Case{Inputs: []CaseInput{x(3, 2), {Shape: []int{}, Ints: []int64{2}}}}, "out of range"},
		{"GatherElements", Case{Attrs: []*Attr{attrInt("axis", 1)}, Inputs: []CaseInput{x(2, 3), {Shape: []int{2, 1}, Ints: []int64{0, 3}}}}, "index 3 at position 1 is outside [-3, 3)"},
		{"GatherElements", Case{Inputs: []CaseInput{x(2, 3), {Shape: []int{2}, Ints: []int64{0, 1}}}}, "same rank"},
		{"GatherElements", Case{Inputs: []CaseInput{x(2, 3), {Shape: []int{2, 4}, Ints: make([]int64, 8)}}}, "exceed data"},
	} {
		d := Lookup(tc.typ, 0)
		_, err := checkCase(d, tc.c, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error %v, want one containing %q", tc.typ, tc.c.Attrs, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "panic") {
			t.Errorf("%s: %v", tc.typ, err)
		}
		if strings.HasPrefix(err.Error(), "shape inference") && !strings.Contains(err.Error(), `node "n"`) {
			t.Errorf("%s: inference error %q does not name the node", tc.typ, err)
		}
	}
	// Computed indices out of range: the forward pass gives zeros and
	// Validate reports the index.
	c := Case{Attrs: []*Attr{attrInt("axis", -1)}, Inputs: []CaseInput{x(2, 3), {Shape: []int{2, 2}, Ints: []int64{0, 1, 2, -4}, Data: true}}}
	badIndexCase(t, "GatherElements", c, 3, "index -4 at position 3 is outside [-3, 3)")
}

// badIndexCase runs case c of operator typ (computed indices, one out of
// range at output position at) in float64: the forward pass must give 0
// there and the kernel, a Validator, an error containing want.
func badIndexCase(t *testing.T, typ string, c Case, at int, want string) {
	t.Helper()
	d := Lookup(typ, 0)
	h, b, _, err := buildCase(d, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKernel[float64](d.Exec, b)
	if err != nil {
		t.Fatal(err)
	}
	h.k = k
	w := h.work()
	k.Forward(w)
	v, ok := k.(Validator[float64])
	if !ok {
		t.Fatalf("%s with computed indices is not a Validator", typ)
	}
	if err := v.Validate(w); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate: %v", err)
	}
	if y := w.Val[b.Out[0]]; y[at] != 0 {
		t.Errorf("bad index gives %g, want 0", y[at])
	}
}

// TestEinsumLayouts checks which equations run without copies: an operand
// already in a batched GEMM layout (plain or transposed) is used in place,
// two transposed operands swap roles, and an output in the product's order
// is written directly.
func TestEinsumLayouts(t *testing.T) {
	eq := func(e string) []*Attr { return []*Attr{{Name: "equation", Type: AttrString, String: e}} }
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	for _, tc := range []struct {
		eq           string
		a, b         []int
		copyA, copyB bool
		ta, tb, perm bool
	}{
		{"bhqd,bhkd->bhqk", []int{1, 2, 3, 4}, []int{1, 2, 5, 4}, false, false, false, true, false},
		{"bhqk,bhkd->bhqd", []int{1, 2, 3, 5}, []int{1, 2, 5, 4}, false, false, false, false, false},
		{"bij,bjk->bik", []int{2, 3, 4}, []int{2, 4, 5}, false, false, false, false, false},
		{"bji,bjk->bik", []int{2, 4, 3}, []int{2, 4, 5}, false, false, true, false, false},
		{"bcd,de->bce", []int{2, 3, 4}, []int{4, 5}, false, false, false, false, false},
		{"bhqk,bhkd->bqhd", []int{1, 2, 3, 5}, []int{1, 2, 5, 4}, false, false, false, false, true},
		{"bqhd,bkhd->bhqk", []int{1, 3, 2, 4}, []int{1, 5, 2, 4}, true, true, false, false, false},
		// Both transposed: the operands swap roles (gonum's GEMM with both
		// transposed is 3–4 times slower), the output is read transposed,
		// or directly when it is in B's order.
		{"bkq,bdk->bqd", []int{2, 4, 3}, []int{2, 5, 4}, false, false, false, false, true},
		{"bkq,bdk->bdq", []int{2, 4, 3}, []int{2, 5, 4}, false, false, false, false, false},
	} {
		d := Lookup("Einsum", 0)
		_, b, _, err := buildCase(d, Case{Attrs: eq(tc.eq), Inputs: []CaseInput{x(tc.a...), x(tc.b...)}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKernel[float64](d.Exec, b)
		if err != nil {
			t.Fatal(err)
		}
		e := k.(*einsum[float64])
		got := []bool{e.pa != nil, e.pb != nil, e.g.ta, e.g.tb, e.q != nil}
		want := []bool{tc.copyA, tc.copyB, tc.ta, tc.tb, tc.perm}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: copy A, copy B, transA, transB, permuted output = %v, want %v", tc.eq, got, want)
				break
			}
		}
	}
}

// TestLayoutFold: on constant inputs the layout operators and Einsum are
// folded by their kernels, integers staying exact integers (a position id
// computed as the cumulative sum of a constant mask), and a constant
// index out of range is an error naming the node, not a node left unfolded.
func TestLayoutFold(t *testing.T) {
	ints := func(shape []int, v ...int64) *Tensor { return &Tensor{Type: Int64, Shape: shape, Int: v} }
	floats := func(shape []int, v ...float64) *Tensor { return &Tensor{Type: Float, Shape: shape, Float: v} }
	node := func(op string, ins int, attrs ...*Attr) *Node {
		n := &Node{Op: op, Name: "f", Outputs: []string{"y"}, Attrs: map[string]*Attr{}}
		for i := 0; i < ins; i++ {
			n.Inputs = append(n.Inputs, fmt.Sprintf("x%d", i))
		}
		for _, a := range attrs {
			n.Attrs[a.Name] = a
		}
		return n
	}
	attrInt := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	for _, tc := range []struct {
		n    *Node
		ins  []*Tensor
		want string
	}{
		{node("CumSum", 2), []*Tensor{ints([]int{1, 5}, 1, 1, 0, 1, 1), ints([]int{}, 1)}, "INT64 [1 5] [1 2 2 3 4]"},
		{node("CumSum", 2, attrInt("exclusive", 1), attrInt("reverse", 1)), []*Tensor{ints([]int{4}, 1, 2, 3, 4), ints([]int{}, 0)}, "INT64 [4] [9 7 4 0]"},
		{node("GatherElements", 2, attrInt("axis", 1)), []*Tensor{ints([]int{2, 3}, 10, 11, 12, 20, 21, 22), ints([]int{2, 2}, 2, -3, -1, 1)}, "INT64 [2 2] [12 10 22 21]"},
		{node("Trilu", 2, attrInt("upper", 0)), []*Tensor{floats([]int{2, 3}, 1, 2, 3, 4, 5, 6), ints([]int{}, 0)}, "FLOAT [2 3] [1 0 0 4 5 0]"},
		{node("DepthToSpace", 1, attrInt("blocksize", 2)), []*Tensor{floats([]int{1, 4, 1, 1}, 1, 2, 3, 4)}, "FLOAT [1 1 2 2] [1 2 3 4]"},
		{node("SpaceToDepth", 1, attrInt("blocksize", 2)), []*Tensor{floats([]int{1, 1, 2, 2}, 1, 2, 3, 4)}, "FLOAT [1 4 1 1] [1 2 3 4]"},
		{node("Einsum", 2, &Attr{Name: "equation", Type: AttrString, String: "ij,jk->ki"}), []*Tensor{floats([]int{1, 2}, 1, 2), floats([]int{2, 2}, 1, 0, 0.5, 1)}, "FLOAT [2 1] [2 2]"},
		{node("Einsum", 3, &Attr{Name: "equation", Type: AttrString, String: "i,i,i"}), []*Tensor{floats([]int{2}, 1, 2), floats([]int{2}, 3, 4), floats([]int{2}, 5, 6)}, "FLOAT [] [63]"},
	} {
		outs, err := Fold(tc.n, 17, tc.ins, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.n.Op, err)
			continue
		}
		y := outs[0]
		v := fmt.Sprint(y.Float)
		if y.Type == Int64 {
			v = fmt.Sprint(y.Int)
		}
		if got := fmt.Sprint(y.Type, " ", y.Shape, " ", v); got != tc.want {
			t.Errorf("%s: folded %s, want %s", tc.n.Op, got, tc.want)
		}
	}
	_, err := Fold(node("GatherElements", 2), 17, []*Tensor{floats([]int{2}, 1, 2), ints([]int{1}, 2)}, nil)
	if err == nil || IsNotFoldable(err) || !strings.Contains(err.Error(), `GatherElements node "f"`) {
		t.Errorf("GatherElements out of range: %v, want an error naming the node", err)
	}
}
