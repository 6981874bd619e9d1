package op

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// scatterProblem is one ScatterElements or ScatterND problem.
type scatterProblem struct {
	op       string
	axis     int64 // ScatterElements
	add      bool
	computed bool // the indices are run-time data, not a constant
	ds, is   []int
	idx      []int64
	// us, when set, is the updates' shape (else the one that fits).
	us []int
}

func (p scatterProblem) String() string {
	return fmt.Sprintf("%s axis %d add %v computed %v data %v indices %v = %v", p.op, p.axis, p.add, p.computed, p.ds, p.is, p.idx)
}

// updShape is the shape of the problem's updates.
func (p scatterProblem) updShape() []int {
	if p.us != nil {
		return p.us
	}
	if p.op == "ScatterElements" {
		return p.is
	}
	k := p.is[len(p.is)-1]
	return append(slices.Clone(p.is[:len(p.is)-1]), p.ds[k:]...)
}

func (p scatterProblem) node() *Node {
	nd := &Node{Op: p.op, Name: "sc", Inputs: []string{"x", "i", "u"}, Outputs: []string{"y"}, Attrs: map[string]*Attr{}}
	if p.op == "ScatterElements" {
		nd.Attrs["axis"] = &Attr{Name: "axis", Type: AttrInt, Int: p.axis}
	}
	if p.add {
		nd.Attrs["reduction"] = &Attr{Name: "reduction", Type: AttrString, String: "add"}
	}
	return nd
}

// bruteScatter is the ONNX definition written out: y = data, then for
// every index (ScatterElements) or index tuple (ScatterND) in row-major
// order, the target coordinate is unravelled and written (added): the
// last duplicate wins.
func bruteScatter(p scatterProblem, x, u []float64) []float64 {
	y := slices.Clone(x)
	dstr := strides(p.ds)
	norm := func(v int64, d int) int {
		if v < 0 {
			v += int64(d)
		}
		return int(v)
	}
	put := func(pos int, v float64) {
		if p.add {
			y[pos] += v
		} else {
			y[pos] = v
		}
	}
	if p.op == "ScatterElements" {
		r := len(p.ds)
		ax := norm(p.axis, r)
		for k := range Numel(p.is) {
			c, rem := make([]int, r), k
			for i := r - 1; i >= 0; i-- {
				c[i], rem = rem%p.is[i], rem/p.is[i]
			}
			c[ax] = norm(p.idx[k], p.ds[ax])
			pos := 0
			for i := range c {
				pos += c[i] * dstr[i]
			}
			put(pos, u[k])
		}
		return y
	}
	kk := p.is[len(p.is)-1]
	slice := Numel(p.ds[kk:])
	for s := range Numel(p.is[:len(p.is)-1]) {
		base := 0
		for j := 0; j < kk; j++ {
			base += norm(p.idx[s*kk+j], p.ds[j]) * dstr[j]
		}
		for e := 0; e < slice; e++ {
			put(base+e, u[s*slice+e])
		}
	}
	return y
}

// scatterRun runs the kernel of problem p in precision T through the four
// passes on data x, updates u, their R-values rx, ru, the output adjoint g
// and R-adjoint rg; it returns y, R{y}, x̄, ū, R{x̄}, R{ū}, or the error of
// building the kernel or of Validate after the forward pass.
func scatterRun[T Real](p scatterProblem, x, u, rx, ru, g, rg []float64) (out [6][]float64, err error) {
	nd := p.node()
	var iv []float64
	for _, v := range p.idx {
		iv = append(iv, float64(v))
	}
	ts := &testSlots{shapes: [][]int{p.ds, p.is, p.updShape(), p.ds}, consts: [][]float64{nil, iv, nil, nil}, names: []string{"x", "i", "u", "y"}}
	if p.computed {
		ts.consts[1] = nil
	}
	b := &Build{Node: nd, Opset: 18, Slots: ts, In: []int{0, 1, 2}, Out: []int{3}}
	k, err := NewKernel[T](Lookup(p.op, 18).Exec, b)
	if err != nil {
		return out, err
	}
	w := &Work[T]{Val: make([][]T, 4), RV: make([][]T, 4), Adj: make([][]T, 4), RAdj: make([][]T, 4), State: make([]any, 1)}
	if st, ok := k.(Stateful); ok {
		w.State[0] = st.NewState()
	}
	// The outputs start as NaN: Forward and RForward overwrite them (the
	// engine recycles buffers).
	poison := func() []T {
		v := make([]T, len(x))
		for i := range v {
			v[i] = T(math.NaN())
		}
		return v
	}
	w.Val[0], w.Val[1], w.Val[2], w.Val[3] = Convert[T](x), Convert[T](iv), Convert[T](u), poison()
	w.RV[0], w.RV[2], w.RV[3] = Convert[T](rx), Convert[T](ru), poison()
	w.Adj[0], w.Adj[2], w.RAdj[0], w.RAdj[2] = make([]T, len(x)), make([]T, len(u)), make([]T, len(x)), make([]T, len(u))
	k.Forward(w)
	if v, ok := k.(Validator[T]); ok {
		if err := v.Validate(w); err != nil {
			return out, err
		}
	}
	k.RForward(w)
	w.Adj[3] = Convert[T](g)
	k.Backward(w)
	w.RAdj[3] = Convert[T](rg)
	k.RBackward(w)
	f := Convert[float64, T]
	return [6][]float64{f(w.Val[3]), f(w.RV[3]), f(w.Adj[0]), f(w.Adj[2]), f(w.RAdj[0]), f(w.RAdj[2])}, nil
}

// randomScatter draws a problem: data of rank 1 to 3 (dimensions 1 to 4),
// a random axis (negative half the time) or index depth K (0 to the
// rank), indices of random shape with values anywhere in [−d, d), so that
// negative indices and duplicates are common.
func randomScatter(r *rand.Rand) scatterProblem {
	p := scatterProblem{add: r.IntN(3) == 0, computed: r.IntN(2) == 0}
	rank := 1 + r.IntN(3)
	for range rank {
		p.ds = append(p.ds, 1+r.IntN(4))
	}
	if r.IntN(2) == 0 {
		p.op = "ScatterElements"
		ax := r.IntN(rank)
		p.axis = int64(ax)
		if r.IntN(2) == 0 {
			p.axis -= int64(rank)
		}
		for i, d := range p.ds {
			if i == ax {
				p.is = append(p.is, 1+r.IntN(4))
			} else {
				p.is = append(p.is, 1+r.IntN(d))
			}
		}
		for range Numel(p.is) {
			d := p.ds[ax]
			p.idx = append(p.idx, int64(r.IntN(2*d)-d))
		}
		return p
	}
	p.op = "ScatterND"
	k := r.IntN(rank + 1)
	for range r.IntN(3) {
		p.is = append(p.is, 1+r.IntN(3))
	}
	p.is = append(p.is, k)
	for range Numel(p.is[:len(p.is)-1]) {
		for j := 0; j < k; j++ {
			d := p.ds[j]
			p.idx = append(p.idx, int64(r.IntN(2*d)-d))
		}
	}
	return p
}

// TestScatterBruteForce runs 600 random ScatterElements and ScatterND
// problems (constant and computed indices, reductions none and add,
// negative and duplicate indices, nil R-values of data or updates) in both precisions through the four
// passes against bruteScatter: y, and, the map being linear in (data,
// updates), R{y} = the scatter of the R-values, and x̄, ū, R{x̄}, R{ū}
// from the columns of the map, each the brute-force scatter of a unit
// vector.
func TestScatterBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	dups := 0
	for it := 0; it < 600; it++ {
		p := randomScatter(r)
		nx, nu := Numel(p.ds), Numel(p.updShape())
		rnd := func(n int) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = float64(float32(r.NormFloat64()))
			}
			return v
		}
		x, u, rx, ru, g, rg := rnd(nx), rnd(nu), rnd(nx), rnd(nu), rnd(nx), rnd(nx)
		want := [6][]float64{bruteScatter(p, x, u), bruteScatter(p, rx, ru), make([]float64, nx), make([]float64, nu), make([]float64, nx), make([]float64, nu)}
		// A nil R-value is zero (data or updates that do not depend on θ).
		switch it % 4 {
		case 1:
			want[1] = bruteScatter(p, make([]float64, nx), ru)
			rx = nil
		case 2:
			want[1] = bruteScatter(p, rx, make([]float64, nu))
			ru = nil
		}
		for i := range nx + nu {
			ex, eu := make([]float64, nx), make([]float64, nu)
			if i < nx {
				ex[i] = 1
			} else {
				eu[i-nx] = 1
			}
			col := bruteScatter(p, ex, eu)
			var a, ra float64
			for q, c := range col {
				a += c * g[q]
				ra += c * rg[q]
			}
			if i < nx {
				want[2][i], want[4][i] = a, ra
			} else {
				want[3][i-nx], want[5][i-nx] = a, ra
			}
		}
		if !p.add && hasDuplicates(p) {
			dups++
		}
		for _, prec := range []string{"float64", "float32"} {
			run, tol := scatterRun[float64], 1e-15
			if prec == "float32" {
				run, tol = scatterRun[float32], 1e-6
			}
			got, err := run(p, x, u, rx, ru, g, rg)
			if err != nil {
				t.Fatalf("%v: %v", p, err)
			}
			for j, name := range []string{"y", "R{y}", "x̄", "ū", "R{x̄}", "R{ū}"} {
				if len(got[j]) != len(want[j]) {
					t.Fatalf("%v %s: %s has %d elements, want %d", p, prec, name, len(got[j]), len(want[j]))
				}
				for q := range got[j] {
					if d := got[j][q] - want[j][q]; !(math.Abs(d) <= 4*tol) { // NaN fails
						t.Errorf("%v %s: %s[%d] = %v, want %v", p, prec, name, q, got[j][q], want[j][q])
						break
					}
				}
			}
		}
	}
	t.Logf("%d of 600 problems write duplicate positions with reduction none", dups)
	if dups < 50 {
		t.Errorf("only %d problems with duplicates: the draw no longer tests the last-write rule", dups)
	}
}

// hasDuplicates reports whether two updates of p write the same output.
func hasDuplicates(p scatterProblem) bool {
	ones := make([]float64, Numel(p.updShape()))
	for i := range ones {
		ones[i] = 1
	}
	q := p
	q.add = true
	for _, v := range bruteScatter(q, make([]float64, Numel(p.ds)), ones) {
		if v > 1 {
			return true
		}
	}
	return false
}

// TestScatterLastWriteWins: with reduction none, the last of duplicate
// indices (in the indices' row-major order) is the value written and the
// only update with a derivative; with add, all add up (a worked example
// of each operator).
func TestScatterLastWriteWins(t *testing.T) {
	for _, c := range []struct {
		p     scatterProblem
		u     []float64
		y, du []float64
	}{
		{scatterProblem{op: "ScatterElements", ds: []int{4}, is: []int{3}, idx: []int64{1, -3, 2}}, []float64{10, 20, 30},
			[]float64{0, 20, 30, 0}, []float64{0, 1, 1}},
		{scatterProblem{op: "ScatterElements", add: true, ds: []int{4}, is: []int{3}, idx: []int64{1, -3, 2}}, []float64{10, 20, 30},
			[]float64{0, 30, 30, 0}, []float64{1, 1, 1}},
		{scatterProblem{op: "ScatterND", ds: []int{3, 2}, is: []int{3, 1}, idx: []int64{2, 0, -1}}, []float64{1, 2, 3, 4, 5, 6},
			[]float64{3, 4, 0, 0, 5, 6}, []float64{0, 0, 1, 1, 1, 1}},
	} {
		for _, computed := range []bool{false, true} {
			p := c.p
			p.computed = computed
			nx := Numel(p.ds)
			ones := make([]float64, nx)
			for i := range ones {
				ones[i] = 1
			}
			got, err := scatterRun[float64](p, make([]float64, nx), c.u, make([]float64, nx), make([]float64, len(c.u)), ones, ones)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[0], c.y) || !slices.Equal(got[3], c.du) {
				t.Errorf("%v: y %v, ū %v, want %v and %v", p, got[0], got[3], c.y, c.du)
			}
		}
	}
}

// TestScatterBadInput: indices out of range (constant: at build; computed:
// by Validate, naming the value and its position), non-integer indices,
// shapes that do not fit and unsupported reductions are errors, never
// panics.
func TestScatterBadInput(t *testing.T) {
	el := func(ds, is []int, idx ...int64) scatterProblem {
		return scatterProblem{op: "ScatterElements", axis: 1, ds: ds, is: is, idx: idx}
	}
	nd := func(ds, is []int, idx ...int64) scatterProblem {
		return scatterProblem{op: "ScatterND", ds: ds, is: is, idx: idx}
	}
	for _, c := range []struct {
		p    scatterProblem
		want string
	}{
		{el([]int{2, 3}, []int{2, 1}, 0, 3), "index 3 at position 1 of the indices is outside [-3, 3)"},
		{el([]int{2, 3}, []int{2, 1}, -4, 0), "index -4 at position 0"},
		{nd([]int{2, 3}, []int{2, 2}, 0, 0, 2, 0), "index 2 at position 2 of the indices is outside [-2, 2)"},
		{nd([]int{2, 3}, []int{1, 2}, 1, -4), "index -4 at position 1"},
	} {
		for _, computed := range []bool{false, true} {
			p := c.p
			p.computed = computed
			nx, nu := Numel(p.ds), Numel(p.updShape())
			_, err := scatterRun[float64](p, make([]float64, nx), make([]float64, nu), nil, nil, make([]float64, nx), make([]float64, nx))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: error %v, want %q", p, err, c.want)
			}
		}
	}
	// A computed index that is not an integer.
	p := el([]int{2, 3}, []int{2, 1}, 0, 0)
	p.computed = true
	k, err := NewKernel[float64](Lookup("ScatterElements", 18).Exec, &Build{Node: p.node(), Opset: 18,
		Slots: &testSlots{shapes: [][]int{{2, 3}, {2, 1}, {2, 1}, {2, 3}}, consts: make([][]float64, 4), names: []string{"x", "i", "u", "y"}},
		In:    []int{0, 1, 2}, Out: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	w := &Work[float64]{Val: [][]float64{make([]float64, 6), {0, 1.5}, {1, 2}, make([]float64, 6)}, State: []any{k.(Stateful).NewState()}}
	k.Forward(w)
	if err := k.(Validator[float64]).Validate(w); err == nil || !strings.Contains(err.Error(), "index 1.5 at position 1") {
		t.Errorf("index 1.5: %v", err)
	}
	// Shapes and attributes, at shape inference.
	for _, c := range []struct {
		op         string
		attrs      []*Attr
		ds, is, us []int
		want       string
	}{
		{"ScatterElements", nil, []int{2, 3}, []int{2, 2}, []int{2, 3}, "indices of shape [2 2] and updates of shape [2 3]"},
		{"ScatterElements", nil, []int{2, 3}, []int{2, 4}, []int{2, 4}, "exceed data of shape [2 3] on axis 1"},
		{"ScatterElements", []*Attr{{Name: "axis", Type: AttrInt, Int: 2}}, []int{2, 3}, []int{2, 3}, []int{2, 3}, `attribute "axis"`},
		{"ScatterND", nil, []int{2, 3}, []int{2, 3}, []int{2}, "want [..., K], K ≤ 2"},
		{"ScatterND", nil, []int{2, 3}, []int{2, 1}, []int{2, 2}, "updates of shape [2 2], want [2 3]"},
		{"ScatterND", []*Attr{{Name: "reduction", Type: AttrString, String: "sum"}}, []int{2, 3}, []int{2, 1}, []int{2, 3}, `"sum", want none, add, mul, max or min`},
	} {
		n := &Node{Op: c.op, Name: "sc", Inputs: []string{"x", "i", "u"}, Outputs: []string{"y"}, Attrs: map[string]*Attr{}}
		for _, a := range c.attrs {
			n.Attrs[a.Name] = a
		}
		s := &Shapes{Dims: map[string][]int{"x": c.ds, "i": c.is, "u": c.us}, Types: map[string]DataType{"x": Float, "i": Int64, "u": Float},
			Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
		if err := inferScatter(n, s); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.op+` node "sc"`) {
			t.Errorf("%s %v %v %v: error %v, want one naming the node and %q", c.op, c.ds, c.is, c.us, err, c.want)
		}
	}
	// Reductions the kernel does not run: an error naming the attribute.
	for _, r := range []string{"mul", "max", "min"} {
		q := nd([]int{2, 3}, []int{1, 1}, 0)
		n := q.node()
		n.Attrs["reduction"] = &Attr{Name: "reduction", Type: AttrString, String: r}
		_, err := NewKernel[float64](Lookup("ScatterND", 18).Exec, &Build{Node: n, Opset: 18,
			Slots: &testSlots{shapes: [][]int{{2, 3}, {1, 1}, {1, 3}, {2, 3}}, consts: [][]float64{nil, {0}, nil, nil}, names: []string{"x", "i", "u", "y"}},
			In:    []int{0, 1, 2}, Out: []int{3}})
		if err == nil || !strings.Contains(err.Error(), `attribute "reduction": is "`+r+`"; only none and add are supported`) {
			t.Errorf("reduction %s: %v", r, err)
		}
	}
}

// FuzzScatter runs a ScatterElements or ScatterND drawn from the bytes:
// data of rank 1 to 3 with dimensions 0 to 3, an axis or index depth K
// possibly out of range, indices of dimensions 0 to 4 (possibly larger
// than data's), index values in [−5, 5] (often out of range), constant or
// computed, reduction none or add, and now and then updates of a wrong
// shape. It never panics; a problem whose shapes fit and whose indices
// are in range runs and agrees with bruteScatter, any other is an error
// (at shape inference, at build or from Validate).
func FuzzScatter(f *testing.F) {
	f.Add([]byte{0, 2, 3, 3, 1, 2, 2, 0, 1, 2, 3})
	f.Add([]byte{1, 3, 2, 3, 4, 1, 2, 1, 0, 7, 9, 1})
	f.Add([]byte{5, 1, 0, 0, 1, 1, 3})
	f.Add([]byte{2, 2, 3, 2, 6, 2, 1, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		src := &byteSource{b: in}
		flags := src.next()
		p := scatterProblem{add: flags&2 != 0, computed: flags&4 != 0}
		rank := 1 + src.intn(3)
		for range rank {
			p.ds = append(p.ds, src.intn(4))
		}
		valid := true
		var depth int // the axis (ScatterElements) or K (ScatterND)
		if flags&1 == 0 {
			p.op = "ScatterElements"
			p.axis = int64(src.intn(2*rank+2) - rank - 1) // −r−1 … r
			valid = p.axis >= -int64(rank) && p.axis < int64(rank)
			depth = int((p.axis + int64(rank)) % int64(rank))
			if !valid {
				depth = 0
			}
			for i := range rank {
				d := src.intn(5)
				p.is = append(p.is, d)
				if i != depth && d > p.ds[i] {
					valid = false
				}
			}
			for range Numel(p.is) {
				v := int64(src.intn(11) - 5)
				p.idx = append(p.idx, v)
				if d := int64(p.ds[depth]); v < -d || v >= d {
					valid = false
				}
			}
		} else {
			p.op = "ScatterND"
			depth = src.intn(rank + 2) // 0 … r+1
			valid = depth <= rank
			for range src.intn(3) {
				p.is = append(p.is, src.intn(4))
			}
			p.is = append(p.is, depth)
			for range Numel(p.is[:len(p.is)-1]) {
				for j := 0; j < depth; j++ {
					v := int64(src.intn(11) - 5)
					p.idx = append(p.idx, v)
					if j >= rank || v < -int64(p.ds[j]) || v >= int64(p.ds[j]) {
						valid = false
					}
				}
			}
			if !valid {
				p.us = []int{1}
			}
		}
		if src.next()%8 == 7 && valid {
			us := slices.Clone(p.updShape())
			us = append(us, 2)
			p.us, valid = us, false
		}
		// Shape inference first, as the engine runs it.
		nd := p.node()
		sh := &Shapes{Dims: map[string][]int{"x": p.ds, "i": p.is, "u": p.updShape()}, Types: map[string]DataType{"x": Float, "i": Int64, "u": Float},
			Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
		if err := inferScatter(nd, sh); err != nil {
			if valid {
				t.Fatalf("%v: shape inference refuses a valid problem: %v", p, err)
			}
			return
		}
		nx, nu := Numel(p.ds), Numel(p.updShape())
		vals := func(n, salt int) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = float64(i*7+salt) / 8
			}
			return v
		}
		x, u := vals(nx, 1), vals(nu, 2)
		got, err := scatterRun[float64](p, x, u, vals(nx, 3), vals(nu, 4), vals(nx, 5), vals(nx, 6))
		switch {
		case !valid && err == nil:
			t.Fatalf("%v: an invalid problem ran", p)
		case valid && err != nil:
			t.Fatalf("%v: %v", p, err)
		case valid:
			if want := bruteScatter(p, x, u); !slices.Equal(got[0], want) {
				t.Fatalf("%v: y = %v, want %v", p, got[0], want)
			}
		}
	})
}

// byteSource hands out a fuzzer's bytes (zeros past the end).
type byteSource struct {
	b []byte
	i int
}

func (s *byteSource) next() byte {
	if s.i >= len(s.b) {
		return 0
	}
	s.i++
	return s.b[s.i-1]
}

func (s *byteSource) intn(n int) int { return int(s.next()) % n }

// TestScatterFoldsIntegers: a scatter of INT64 constants (an export's
// shape arithmetic) folds exactly, through the kernel.
func TestScatterFoldsIntegers(t *testing.T) {
	i64 := func(shape []int, v ...int64) *Tensor { return &Tensor{Type: Int64, Shape: shape, Int: v} }
	for _, c := range []struct {
		n    *Node
		ins  []*Tensor
		want []int64
	}{
		{&Node{Op: "ScatterND", Name: "s", Inputs: []string{"x", "i", "u"}, Outputs: []string{"y"}},
			[]*Tensor{i64([]int{3}, 2, 3, 4), i64([]int{1, 1}, -2), i64([]int{1}, 1<<40)}, []int64{2, 1 << 40, 4}},
		{&Node{Op: "ScatterElements", Name: "s", Inputs: []string{"x", "i", "u"}, Outputs: []string{"y"},
			Attrs: map[string]*Attr{"reduction": {Name: "reduction", Type: AttrString, String: "add"}}},
			[]*Tensor{i64([]int{3}, 2, 3, 4), i64([]int{2}, 0, 0), i64([]int{2}, 5, -1)}, []int64{6, 3, 4}},
	} {
		outs, err := Fold(c.n, 18, c.ins, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.n.Op, err)
		}
		if y := outs[0]; y.Type != Int64 || !slices.Equal(y.Int, c.want) {
			t.Errorf("%s: folded %v %v, want INT64 %v", c.n.Op, y.Type, y.Int, c.want)
		}
	}
}
