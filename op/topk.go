package op

import (
	"fmt"
	"math"
	"sort"
)

// TopK (torch.topk: detection heads, mixture-of-experts routing,
// retrieval) returns the k largest (largest 1, the default) or smallest
// elements of every slice along an axis, and their positions along it:
//
//	Values[…, j, …]  = x[…, p_j, …],   Indices[…, j, …] = p_j   (INT64)
//
// k is input 1, a one-element INT64 tensor known before execution (the
// outputs' shape depends on it); k larger than the axis is an error naming
// the node. The order: sorted 1 (the default) gives the elements from the
// most extreme on; with sorted 0 ONNX leaves the order unspecified and the
// kernel still returns them sorted. Ties: of equal values the one at the
// lower index comes first (and is the one taken when a tie straddles the
// k-th place), as ONNX Runtime and torch.topk on the CPU choose. NaN counts
// as larger than every number (torch's rule): first for largest, last for
// smallest.
//
// Derivatives: the values route to the picked elements, recorded by the
// forward pass as ReduceMax records its argmax; for fixed picks the map is
// linear (class Linear) and its second derivative zero:
//
//	R{V_j} = R{x}_{p_j},  x̄_{p_j} += V̄_j,  R{x̄}_{p_j} += R{V̄_j}.
//
// The indices are integers and carry no derivative: their R-value is zero
// and their adjoint is not read.
//
// Channel flow: blocks (the picks reorder the slice, which may be the
// channel axis).
func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	k := func(v int64) CaseInput { return CaseInput{Shape: []int{1}, Ints: []int64{v}} }
	attr := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	Register(&Def{Type: "TopK", Since: 10, Infer: inferTopK, Exec: Both(newTopK[float64], newTopK[float32]), Class: Linear,
		Cases: []Case{
			{Name: "last axis (default), k 2", Opset: 10, Inputs: []CaseInput{x(3, 5), k(2)}, Outputs: 2, Want: []int{3, 2}},
			{Name: "axis 1, smallest", Opset: 11, Attrs: []*Attr{attr("axis", 1), attr("largest", 0)}, Inputs: []CaseInput{x(2, 4, 3), k(3)}, Outputs: 2, Want: []int{2, 3, 3}},
			{Name: "axis -2, unsorted, k = size", Opset: 17, Attrs: []*Attr{attr("axis", -2), attr("sorted", 0)}, Inputs: []CaseInput{x(2, 3, 2), k(3)}, Outputs: 2, Want: []int{2, 3, 2}},
			{Name: "axis 0, k 1, values only", Opset: 21, Attrs: []*Attr{attr("axis", 0)}, Inputs: []CaseInput{x(4, 3), k(1)}, Want: []int{1, 3}},
		}})
}

// topKParams returns TopK's axis (normalised for the rank of xs) and
// largest, and checks k against the axis' size.
func topKParams(n *Node, xs []int, k int64) (axis int, largest bool, err error) {
	a, err := n.AttrInt("axis", -1)
	if err != nil {
		return 0, false, err
	}
	if len(xs) == 0 {
		return 0, false, fmt.Errorf("%s: input is a scalar, want rank ≥ 1", n.Label())
	}
	axis, err = NormAxis(n, "axis", a, len(xs), false)
	if err != nil {
		return 0, false, err
	}
	l, err := n.AttrInt("largest", 1)
	if err != nil {
		return 0, false, err
	}
	if _, err := n.AttrInt("sorted", 1); err != nil {
		return 0, false, err
	}
	if k < 0 || k > int64(xs[axis]) {
		return 0, false, fmt.Errorf("%s: k = %d is outside [0, %d], the size of axis %d of input %v", n.Label(), k, xs[axis], axis, xs)
	}
	return axis, l != 0, nil
}

func inferTopK(n *Node, s *Shapes) error {
	xs, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if n.Input(1) == "" {
		return fmt.Errorf("%s: the k input is missing", n.Label())
	}
	k, known, err := scalarInput(n, s, 1, "k")
	if err != nil || !known {
		return err
	}
	axis, _, err := topKParams(n, xs, k)
	if err != nil {
		return err
	}
	ys := append([]int(nil), xs...)
	ys[axis] = int(k)
	s.Set(out, ys, t)
	if len(n.Outputs) > 1 {
		s.Set(n.Outputs[1], ys, Int64)
	}
	return nil
}

// topK is TopK's kernel: slices of d elements at stride inner, outer·inner
// of them; the forward pass records each output's input element (the
// picks) in the kernel's state.
type topK[T Real] struct {
	x, y, ind          int
	outer, d, inner, k int
	largest            bool
	state              int
}

type topKState struct {
	picks []int32
	order []int
}

func newTopK[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 || b.Input(1) < 0 {
		return nil, fmt.Errorf("needs X and K")
	}
	xs := b.Shape(b.In[0])
	kv, err := constScalar(b, 1, "k", 0)
	if err != nil {
		return nil, err
	}
	axis, largest, err := topKParams(n, xs, kv)
	if err != nil {
		return nil, err
	}
	t := &topK[T]{x: b.In[0], y: b.Out[0], ind: -1, outer: Numel(xs[:axis]), d: xs[axis], inner: Numel(xs[axis+1:]),
		k: int(kv), largest: largest, state: b.State}
	if len(b.Out) > 1 {
		t.ind = b.Out[1]
	}
	if got := t.outer * t.k * t.inner; got != b.Size(t.y) {
		return nil, fmt.Errorf("TopK gives %d elements, output %v has %d", got, b.Shape(t.y), b.Size(t.y))
	}
	return t, nil
}

// NewState returns the picks of one Work (an input element per output)
// and the sorting buffer of one slice.
func (k *topK[T]) NewState() any {
	return &topKState{picks: make([]int32, k.outer*k.k*k.inner), order: make([]int, k.d)}
}

// StateBytes is the size of the picks and the buffer.
func (k *topK[T]) StateBytes() int64 { return 4*int64(k.outer*k.k*k.inner) + 8*int64(k.d) }

func (k *topK[T]) picks(w *Work[T]) []int32 { return w.State[k.state].(*topKState).picks }

// before reports whether a comes before b in the output order (a, b the
// values; NaN is the largest).
func (k *topK[T]) before(a, b T) bool {
	an, bn := math.IsNaN(float64(a)), math.IsNaN(float64(b))
	if k.largest {
		return a > b || (an && !bn)
	}
	return a < b || (!an && bn)
}

func (k *topK[T]) Forward(w *Work[T]) {
	st := w.State[k.state].(*topKState)
	x, y := w.Val[k.x], w.Val[k.y]
	var ind []T
	if k.ind >= 0 {
		ind = w.Val[k.ind]
	}
	for ob := 0; ob < k.outer; ob++ {
		for in := 0; in < k.inner; in++ {
			base := ob*k.d*k.inner + in
			order := st.order
			for j := range order {
				order[j] = j
			}
			// Stable: equal values keep the lower index first.
			sort.SliceStable(order, func(a, b int) bool {
				return k.before(x[base+order[a]*k.inner], x[base+order[b]*k.inner])
			})
			for j := 0; j < k.k; j++ {
				o := (ob*k.k+j)*k.inner + in
				e := base + order[j]*k.inner
				y[o], st.picks[o] = x[e], int32(e)
				if ind != nil {
					ind[o] = T(order[j])
				}
			}
		}
	}
}

func (k *topK[T]) RForward(w *Work[T]) {
	if k.ind >= 0 && w.RV[k.ind] != nil {
		clear(w.RV[k.ind])
	}
	rx, ry := w.RV[k.x], w.RV[k.y]
	if ry == nil {
		return
	}
	for o, e := range k.picks(w) {
		if rx == nil {
			ry[o] = 0
		} else {
			ry[o] = rx[e]
		}
	}
}

// route adds src[o] into dst at output o's pick.
func (k *topK[T]) route(dst, src []T, p []int32) {
	if dst == nil || src == nil {
		return
	}
	for o, e := range p {
		dst[e] += src[o]
	}
}

func (k *topK[T]) Backward(w *Work[T]) { k.route(w.Adj[k.x], w.Adj[k.y], k.picks(w)) }

func (k *topK[T]) RBackward(w *Work[T]) { k.route(w.RAdj[k.x], w.RAdj[k.y], k.picks(w)) }

// Retains: the passes route through the picks kept in the kernel's state,
// reading no values.
func (k *topK[T]) Retains() Retains { return Retains{} }
