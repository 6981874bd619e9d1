package op

import (
	"fmt"
	"math"
)

// OneHot (torch.nn.functional.one_hot exports it) writes, for indices of
// shape I, a tensor with a new axis of size depth inserted at axis
// (default −1, the last):
//
//	y[…, c, …] = on  if c = idx[…] (a negative index counts from depth),
//	             off otherwise,          values = [off, on],
//
// with values' element type. An index outside [−depth, depth) gives a row
// of off values (the ONNX definition: no error); a non-integer index is
// truncated toward zero. depth must be known before execution (the output's
// shape depends on it).
//
// Derivatives: the indices are integers and the output is constant in
// them; it is linear in values (class Linear):
//
//	R{y} = onehot·R{on} + (1 − onehot)·R{off},  on̄ += Σ_{hot} ȳ,  off̄ += Σ_{cold} ȳ,
//
// so an export's constant values make the node a producer without a
// derivative: its R-value is zero and nothing flows back into the indices.
//
// Channel flow: blocks.
func init() {
	idx := func(data bool, shape []int, v ...int64) CaseInput {
		return CaseInput{Shape: shape, Ints: v, Data: data}
	}
	depth := func(v int64) CaseInput { return CaseInput{Shape: []int{}, Ints: []int64{v}} }
	values := CaseInput{Shape: []int{2}}
	axis := func(v int64) *Attr { return &Attr{Name: "axis", Type: AttrInt, Int: v} }
	Register(&Def{Type: "OneHot", Since: 9, Infer: inferOneHot, Exec: Both(newOneHot[float64], newOneHot[float32]), Class: Linear,
		Cases: []Case{
			{Name: "last axis, constant indices", Opset: 11, Inputs: []CaseInput{idx(false, []int{2, 2}, 0, 3, -1, 7), depth(4), values}, Want: []int{2, 2, 4}},
			{Name: "axis 0, computed indices", Opset: 9, Attrs: []*Attr{axis(0)}, Inputs: []CaseInput{idx(true, []int{3}, 2, 0, 2), depth(3), values}, Want: []int{3, 3}},
			{Name: "axis 1, computed negative", Opset: 21, Attrs: []*Attr{axis(1)}, Inputs: []CaseInput{idx(true, []int{2, 3}, -2, 1, 0, -5, 4, 2), depth(5), values}, Want: []int{2, 5, 3}},
		}})
}

// oneHotParams returns OneHot's axis (normalised for the output's rank
// r+1) for indices of rank r, and checks depth.
func oneHotParams(n *Node, r int, depth int64) (int, error) {
	a, err := n.AttrInt("axis", -1)
	if err != nil {
		return 0, err
	}
	axis, err := NormAxis(n, "axis", a, r+1, false)
	if err != nil {
		return 0, err
	}
	if depth < 1 || depth > MaxDim {
		return 0, fmt.Errorf("%s: depth is %d, want a positive size", n.Label(), depth)
	}
	return axis, nil
}

func inferOneHot(n *Node, s *Shapes) error {
	is, ok := s.dims(n.Input(0))
	if !ok || len(n.Outputs) == 0 {
		return nil
	}
	if n.Input(1) == "" || n.Input(2) == "" {
		return fmt.Errorf("%s: needs indices, depth and values", n.Label())
	}
	d, known, err := scalarInput(n, s, 1, "depth")
	if err != nil || !known {
		return err
	}
	axis, err := oneHotParams(n, len(is), d)
	if err != nil {
		return err
	}
	if vs, ok := s.dims(n.Input(2)); ok && Numel(vs) != 2 {
		return fmt.Errorf("%s: values have shape %v, want two elements [off, on]", n.Label(), vs)
	}
	ys := append(append(append([]int(nil), is[:axis]...), int(d)), is[axis:]...)
	t, ok := s.Types[n.Input(2)]
	if !ok {
		t = Float
	}
	s.Set(n.Outputs[0], ys, t)
	return nil
}

// oneHot is OneHot's kernel: outer·depth·inner outputs for outer·inner
// indices.
type oneHot[T Real] struct {
	ind, vals, y        int
	outer, depth, inner int
}

func newOneHot[T Real](b *Build) (Kernel[T], error) {
	if b.Input(0) < 0 || b.Input(1) < 0 || b.Input(2) < 0 {
		return nil, fmt.Errorf("needs indices, depth and values")
	}
	is := b.Shape(b.In[0])
	d, err := constScalar(b, 1, "depth", 0)
	if err != nil {
		return nil, err
	}
	axis, err := oneHotParams(b.Node, len(is), d)
	if err != nil {
		return nil, err
	}
	if b.Size(b.In[2]) != 2 {
		return nil, fmt.Errorf("values have shape %v, want two elements [off, on]", b.Shape(b.In[2]))
	}
	k := &oneHot[T]{ind: b.In[0], vals: b.In[2], y: b.Out[0], outer: Numel(is[:axis]), depth: int(d), inner: Numel(is[axis:])}
	if got := k.outer * k.depth * k.inner; got != b.Size(k.y) {
		return nil, fmt.Errorf("OneHot gives %d elements, output %v has %d", got, b.Shape(k.y), b.Size(k.y))
	}
	return k, nil
}

// hot returns the class index t selects, or −1 outside [−depth, depth).
func (k *oneHot[T]) hot(t T) int {
	v := math.Trunc(float64(t))
	if !(v >= -float64(k.depth) && v < float64(k.depth)) {
		return -1
	}
	c := int(v)
	if c < 0 {
		c += k.depth
	}
	return c
}

// each calls f(o, hot) for every output element o.
func (k *oneHot[T]) each(idx []T, f func(o int, hot bool)) {
	for ob := 0; ob < k.outer; ob++ {
		for in := 0; in < k.inner; in++ {
			c := k.hot(idx[ob*k.inner+in])
			for j := 0; j < k.depth; j++ {
				f((ob*k.depth+j)*k.inner+in, j == c)
			}
		}
	}
}

// fill sets y to on at the hot positions and off elsewhere, v = [off, on]
// (nil: zeros).
func (k *oneHot[T]) fill(y, v, idx []T) {
	if v == nil {
		clear(y)
		return
	}
	k.each(idx, func(o int, hot bool) {
		if hot {
			y[o] = v[1]
		} else {
			y[o] = v[0]
		}
	})
}

// sum adds the hot and cold elements of g into dv = [off̄, on̄].
func (k *oneHot[T]) sum(dv, g, idx []T) {
	if dv == nil || g == nil {
		return
	}
	k.each(idx, func(o int, hot bool) {
		if hot {
			dv[1] += g[o]
		} else {
			dv[0] += g[o]
		}
	})
}

func (k *oneHot[T]) Forward(w *Work[T]) { k.fill(w.Val[k.y], w.Val[k.vals], w.Val[k.ind]) }

func (k *oneHot[T]) RForward(w *Work[T]) {
	if ry := w.RV[k.y]; ry != nil {
		k.fill(ry, w.RV[k.vals], w.Val[k.ind])
	}
}

func (k *oneHot[T]) Backward(w *Work[T]) { k.sum(w.Adj[k.vals], w.Adj[k.y], w.Val[k.ind]) }

func (k *oneHot[T]) RBackward(w *Work[T]) { k.sum(w.RAdj[k.vals], w.RAdj[k.y], w.Val[k.ind]) }

// Retains: the passes read the indices, nothing else.
func (k *oneHot[T]) Retains() Retains { return Retains{InVal: true} }
