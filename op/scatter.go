package op

import (
	"fmt"
	"math"
	"slices"
)

// ScatterElements and ScatterND write updates into a copy of data at
// positions the indices give (torch exports in-place index assignment
// x[:, 0] = y and index_put_ as ScatterND, torch.scatter and scatter_add
// as ScatterElements):
//
//	ScatterElements (axis a)  y = data; y[c with c_a = idx[c]] = upd[c] for every
//	                          coordinate c of indices (the shape of updates)
//	ScatterND                 y = data; y[idx[s, 0..K−1], …] = upd[s, …] for every
//	                          tuple s of indices (shape [..., K]), a slice of
//	                          data.shape[K:] each
//
// with reduction "add" (opset 16) adding the update instead of writing it;
// "mul", "max" and "min" are refused, naming the node. Negative indices
// count from the end of their axis. An index outside [−d, d), or not an
// integer, is an error naming the node: at build when the indices are a
// constant, after the forward pass when they are computed (Validate).
//
// Duplicate indices with reduction "none": the last write in the row-major
// order of the indices wins, as ONNX Runtime's CPU kernels write them one
// after the other (ONNX leaves it undefined); the updates it overwrote
// take no derivative. With "add" every duplicate adds.
//
// For fixed indices both are linear in (data, updates) (class Linear):
// with W the set of written output positions and w(p) the winning update
// of p,
//
//	y[p] = data[p] (p ∉ W),  y[p] = upd[w(p)] (p ∈ W)   (none)
//	y = data + Σ_k upd[k] e_{pos(k)}                     (add)
//	x̄[p] += ȳ[p] (p ∉ W; every p for add),  ū[k] += ȳ[pos(k)] (k a winner; every k for add)
//
// and R{y}, R{x̄} are the same maps of the R-values and R-adjoints. The
// positions are worked out once for constant indices and in every forward
// pass (kept in the kernel's state) for computed ones; the derivative
// passes read no values.

func init() {
	in := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	idx := func(shape []int, v ...int64) CaseInput { return CaseInput{Shape: shape, Ints: v} }
	data := func(shape []int, v ...int64) CaseInput { return CaseInput{Shape: shape, Ints: v, Data: true} }
	axis := func(a int64) *Attr { return &Attr{Name: "axis", Type: AttrInt, Int: a} }
	add := &Attr{Name: "reduction", Type: AttrString, String: "add"}
	Register(&Def{Type: "ScatterElements", Since: 11, Infer: inferScatter, Exec: Both(newScatter[float64], newScatter[float32]), Class: Linear,
		Cases: []Case{
			{Name: "axis 1", Opset: 13, Attrs: []*Attr{axis(1)}, Inputs: []CaseInput{in(2, 4), idx([]int{2, 3}, 0, 3, 1, 2, -1, 0), in(2, 3)}, Want: []int{2, 4}},
			{Name: "axis 0, duplicates", Opset: 13, Attrs: []*Attr{axis(0)}, Inputs: []CaseInput{in(3, 2), idx([]int{2, 2}, 0, 2, 0, 1), in(2, 2)}, Want: []int{3, 2}},
			{Name: "computed indices, axis -1", Opset: 13, Attrs: []*Attr{axis(-1)}, Inputs: []CaseInput{in(2, 3), data([]int{2, 2}, 2, 0, 1, -3), in(2, 2)}, Want: []int{2, 3}},
			{Name: "reduction add, duplicates", Opset: 18, Attrs: []*Attr{axis(1), add}, Inputs: []CaseInput{in(2, 3), idx([]int{2, 3}, 0, 0, 2, 1, 1, 1), in(2, 3)}, Want: []int{2, 3}},
		}})
	Register(&Def{Type: "ScatterND", Since: 11, Infer: inferScatter, Exec: Both(newScatter[float64], newScatter[float32]), Class: Linear,
		Cases: []Case{
			{Name: "pairs into 2x3x4", Opset: 13, Inputs: []CaseInput{in(2, 3, 4), idx([]int{2, 2}, 0, 1, 1, 2), in(2, 4)}, Want: []int{2, 3, 4}},
			{Name: "negative row", Opset: 13, Inputs: []CaseInput{in(2, 3, 4), idx([]int{1, 1}, -1), in(1, 3, 4)}, Want: []int{2, 3, 4}},
			{Name: "duplicate rows", Opset: 13, Inputs: []CaseInput{in(2, 3), idx([]int{3, 1}, 0, 1, 0), in(3, 3)}, Want: []int{2, 3}},
			{Name: "computed element indices", Opset: 13, Inputs: []CaseInput{in(3, 3), data([]int{2, 2}, 2, 0, -1, 1), in(2)}, Want: []int{3, 3}},
			{Name: "reduction add, duplicates", Opset: 18, Attrs: []*Attr{add}, Inputs: []CaseInput{in(2, 2, 2), idx([]int{3, 3}, 0, 1, 1, 1, 0, 0, 0, 1, 1), in(3)}, Want: []int{2, 2, 2}},
		}})
}

// scatterGeom is where each update element goes, up to the index values.
type scatterGeom struct {
	nd bool
	// out is the number of output elements, upd of update elements.
	out, upd int
	// ScatterElements: update element k goes to base[k] + i·stride, i its
	// index normalised into [0, d).
	base      []int32
	stride, d int
	// ScatterND: tuple s (indices s·K … s·K+K−1, into dims) selects the
	// slice of slice elements starting at Σ_j i_j·strides[j].
	dims, strides []int
	slice, tuples int
}

// scatterReduction returns n's reduction attribute (default "none"),
// checked to be one ONNX defines.
func scatterReduction(n *Node) (string, error) {
	r, err := n.AttrString("reduction", "none")
	if err != nil {
		return "", err
	}
	switch r {
	case "none", "add", "mul", "max", "min":
		return r, nil
	}
	return "", AttrError(n, "reduction", "is %q, want none, add, mul, max or min", r)
}

// newScatterGeom checks the shapes of data ds, indices is and updates us
// of n and returns its geometry.
func newScatterGeom(n *Node, ds, is, us []int) (*scatterGeom, error) {
	g := &scatterGeom{nd: n.Op == "ScatterND", out: Numel(ds), upd: Numel(us)}
	if g.out > math.MaxInt32 {
		return nil, fmt.Errorf("%s: data of shape %v is too large", n.Label(), ds)
	}
	st := strides(ds)
	if g.nd {
		if len(is) == 0 || is[len(is)-1] > len(ds) {
			return nil, fmt.Errorf("%s: indices of shape %v for data of rank %d: want [..., K], K ≤ %d", n.Label(), is, len(ds), len(ds))
		}
		k := is[len(is)-1]
		want := append(slices.Clone(is[:len(is)-1]), ds[k:]...)
		if !slices.Equal(us, want) {
			return nil, fmt.Errorf("%s: updates of shape %v, want %v (indices %v, data %v)", n.Label(), us, want, is, ds)
		}
		g.dims, g.strides, g.slice, g.tuples = ds[:k], st[:k], Numel(ds[k:]), Numel(is[:len(is)-1])
		return g, nil
	}
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	ax, err := NormAxis(n, "axis", a, len(ds), false)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(is, us) || len(is) != len(ds) {
		return nil, fmt.Errorf("%s: indices of shape %v and updates of shape %v, want one shape of data's rank %d", n.Label(), is, us, len(ds))
	}
	for i := range is {
		if i != ax && is[i] > ds[i] {
			return nil, fmt.Errorf("%s: indices of shape %v exceed data of shape %v on axis %d", n.Label(), is, ds, i)
		}
	}
	g.stride, g.d = st[ax], ds[ax]
	g.base = make([]int32, g.upd)
	coord := make([]int, len(is))
	for k := range g.base {
		q := 0
		for i, c := range coord {
			if i != ax {
				q += c * st[i]
			}
		}
		g.base[k] = int32(q)
		for i := len(is) - 1; i >= 0; i-- {
			coord[i]++
			if coord[i] < is[i] {
				break
			}
			coord[i] = 0
		}
	}
	return g, nil
}

// index normalises index value v for an axis of length d: its position,
// or −1 when v is not an integer in [−d, d).
func index(v float64, d int) int {
	if v != math.Trunc(v) || v < -float64(d) || v >= float64(d) {
		return -1
	}
	if v < 0 {
		v += float64(d)
	}
	return int(v)
}

// scatterPlan is a scatter with its indices resolved: update element k
// writes (adds) output element pos[k] (−1: none, a duplicate that lost or
// a bad index); hit marks the written outputs (reduction none).
type scatterPlan struct {
	pos []int32
	hit []bool
	// err is the first bad index (computed indices).
	err error
}

// resolve fills m from the index values idx (float64 or T, via at): the
// positions, and for reduction none the winners and the written outputs.
func (g *scatterGeom) resolve(m *scatterPlan, add bool, at func(i int) float64) {
	m.err = nil
	bad := func(i int, v float64, d int) {
		if m.err == nil {
			m.err = fmt.Errorf("index %v at position %d of the indices is outside [%d, %d) or not an integer", v, i, -d, d)
		}
	}
	if g.nd {
		k := len(g.dims)
		for s := 0; s < g.tuples; s++ {
			b := 0
			for j := 0; j < k; j++ {
				v := at(s*k + j)
				i := index(v, g.dims[j])
				if i < 0 {
					bad(s*k+j, v, g.dims[j])
					b = -1
					break
				}
				b += i * g.strides[j]
			}
			for e := 0; e < g.slice; e++ {
				p := int32(-1)
				if b >= 0 {
					p = int32(b + e)
				}
				m.pos[s*g.slice+e] = p
			}
		}
	} else {
		for k, b := range g.base {
			v := at(k)
			i := index(v, g.d)
			if i < 0 {
				bad(k, v, g.d)
				m.pos[k] = -1
				continue
			}
			m.pos[k] = b + int32(i*g.stride)
		}
	}
	if add {
		return
	}
	clear(m.hit)
	for k := len(m.pos) - 1; k >= 0; k-- {
		p := m.pos[k]
		if p < 0 {
			continue
		}
		if m.hit[p] {
			m.pos[k] = -1 // an earlier write the last one overwrites
			continue
		}
		m.hit[p] = true
	}
}

func (g *scatterGeom) newMap(add bool) *scatterPlan {
	m := &scatterPlan{pos: make([]int32, g.upd)}
	if !add {
		m.hit = make([]bool, g.out)
	}
	return m
}

func inferScatter(n *Node, s *Shapes) error {
	ds, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if _, err := scatterReduction(n); err != nil {
		return err
	}
	is, okI := s.dims(n.Input(1))
	us, okU := s.dims(n.Input(2))
	if okI && okU {
		if _, err := newScatterGeom(n, ds, is, us); err != nil {
			return err
		}
	}
	s.Set(out, slices.Clone(ds), t)
	return nil
}

// scatter is the kernel of ScatterElements and ScatterND with constant
// indices (m fixed); scatterComputed keeps m in its state.
type scatter[T Real] struct {
	x, ind, u, y int
	add          bool
	g            *scatterGeom
	m            *scatterPlan
}

// scatterComputed reads its indices when it runs.
type scatterComputed[T Real] struct {
	scatter[T]
	state int
}

func newScatter[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 || b.Input(1) < 0 || b.Input(2) < 0 {
		return nil, fmt.Errorf("needs data, indices and updates")
	}
	r, err := scatterReduction(n)
	if err != nil {
		return nil, err
	}
	if r != "none" && r != "add" {
		return nil, AttrError(n, "reduction", "is %q; only none and add are supported", r)
	}
	add := r == "add"
	g, err := newScatterGeom(n, b.Shape(b.In[0]), b.Shape(b.In[1]), b.Shape(b.In[2]))
	if err != nil {
		return nil, err
	}
	if b.Size(b.Out[0]) != g.out {
		return nil, fmt.Errorf("output has %d elements, data %d", b.Size(b.Out[0]), g.out)
	}
	k := scatter[T]{x: b.In[0], ind: b.In[1], u: b.In[2], y: b.Out[0], add: add, g: g}
	idx, ok := b.Const(b.In[1])
	if !ok {
		return &scatterComputed[T]{scatter: k, state: b.State}, nil
	}
	k.m = g.newMap(add)
	g.resolve(k.m, add, func(i int) float64 { return idx[i] })
	if k.m.err != nil {
		return nil, k.m.err
	}
	return &k, nil
}

// apply sets dst to the scatter of src's updates into its data (nil: zero).
func (k *scatter[T]) apply(m *scatterPlan, dst, x, u []T) {
	if x == nil {
		clear(dst)
	} else {
		copy(dst, x)
	}
	for e, p := range m.pos {
		switch {
		case p < 0:
		case k.add && u != nil:
			dst[p] += u[e]
		case k.add:
		case u == nil:
			dst[p] = 0
		default:
			dst[p] = u[e]
		}
	}
}

// transpose adds the transpose of the scatter applied to g into dx and du
// (each when non-nil).
func (k *scatter[T]) transpose(m *scatterPlan, dx, du, g []T) {
	if g == nil {
		return
	}
	if dx != nil {
		if k.add {
			AddTo(dx, g)
		} else {
			for p, h := range m.hit {
				if !h {
					dx[p] += g[p]
				}
			}
		}
	}
	if du != nil {
		for e, p := range m.pos {
			if p >= 0 {
				du[e] += g[p]
			}
		}
	}
}

func (k *scatter[T]) Forward(w *Work[T]) { k.apply(k.m, w.Val[k.y], w.Val[k.x], w.Val[k.u]) }

func (k *scatter[T]) RForward(w *Work[T]) {
	if ry := w.RV[k.y]; ry != nil {
		k.apply(k.m, ry, w.RV[k.x], w.RV[k.u])
	}
}

func (k *scatter[T]) Backward(w *Work[T]) { k.transpose(k.m, w.Adj[k.x], w.Adj[k.u], w.Adj[k.y]) }

func (k *scatter[T]) RBackward(w *Work[T]) { k.transpose(k.m, w.RAdj[k.x], w.RAdj[k.u], w.RAdj[k.y]) }

// Retains: the map is fixed; the passes read no values.
func (k *scatter[T]) Retains() Retains { return Retains{} }

// NewState returns the map of one Work, resolved by each forward pass.
func (k *scatterComputed[T]) NewState() any { return k.g.newMap(k.add) }

// StateBytes is the size of the positions and written-output marks.
func (k *scatterComputed[T]) StateBytes() int64 {
	b := 4 * int64(k.g.upd)
	if !k.add {
		b += int64(k.g.out)
	}
	return b
}

func (k *scatterComputed[T]) mapOf(w *Work[T]) *scatterPlan { return w.State[k.state].(*scatterPlan) }

func (k *scatterComputed[T]) Forward(w *Work[T]) {
	m, idx := k.mapOf(w), w.Val[k.ind]
	k.g.resolve(m, k.add, func(i int) float64 { return float64(idx[i]) })
	k.apply(m, w.Val[k.y], w.Val[k.x], w.Val[k.u])
}

func (k *scatterComputed[T]) RForward(w *Work[T]) {
	if ry := w.RV[k.y]; ry != nil {
		k.apply(k.mapOf(w), ry, w.RV[k.x], w.RV[k.u])
	}
}

func (k *scatterComputed[T]) Backward(w *Work[T]) {
	k.transpose(k.mapOf(w), w.Adj[k.x], w.Adj[k.u], w.Adj[k.y])
}

func (k *scatterComputed[T]) RBackward(w *Work[T]) {
	k.transpose(k.mapOf(w), w.RAdj[k.x], w.RAdj[k.u], w.RAdj[k.y])
}

// Validate reports the first index of the last forward pass that is not
// an integer in range.
func (k *scatterComputed[T]) Validate(w *Work[T]) error { return k.mapOf(w).err }

// Retains: the map is in the state; the passes read no values.
func (k *scatterComputed[T]) Retains() Retains { return Retains{} }
