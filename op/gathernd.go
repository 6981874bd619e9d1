package op

import (
	"fmt"
	"math"
)

// GatherND (torch.onnx writes it for a boolean-mask index over leading
// axes, x.permute(…)[mask]; the batched gather of the top-k positions of
// detection and routing heads) reads slices of data addressed by the last
// axis of indices. With b = batch_dims, data
// of rank r and indices of shape I = (I_0, …, I_{q−1}), m = I_{q−1} ≤ r − b
// coordinates per tuple,
//
//	y[i_0..i_{b−1}, j_b..j_{q−2}, …] = data[i_0..i_{b−1}, t_0, …, t_{m−1}, …],
//	t = indices[i_0..i_{b−1}, j_b..j_{q−2}, :],
//
// of shape I[:q−1] ++ data.shape[b+m:] (the first b axes of indices and
// data agree). A negative coordinate counts from the end of its axis; one
// outside [−d, d) is an error naming the node: at inference for constant
// indices, after the forward pass for computed ones (Validator).
//
// The map is linear in data (class Linear): a pick y[o] = data[idx[o]]
// with transpose the scatter-add x̄[idx[o]] += ȳ[o] (repeated tuples
// accumulate). Constant indices build the pick once (slice.go's pick);
// computed indices (integer graph inputs or TopK's indices) are read at
// run time as Gather's token ids are (gather.go), and carry no
// derivative.
//
// Channel flow: blocks.
func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	idx := func(data bool, shape []int, v ...int64) CaseInput {
		return CaseInput{Shape: shape, Ints: v, Data: data}
	}
	bd := func(v int64) *Attr { return &Attr{Name: "batch_dims", Type: AttrInt, Int: v} }
	Register(&Def{Type: "GatherND", Since: 11, Infer: inferGatherND, Exec: Both(newGatherND[float64], newGatherND[float32]), Class: Linear,
		Cases: []Case{
			{Name: "full tuples, constant", Opset: 11, Inputs: []CaseInput{x(2, 3), idx(false, []int{3, 2}, 0, 2, 1, -1, 1, 0)}, Want: []int{3}},
			{Name: "row slices, repeated", Opset: 12, Inputs: []CaseInput{x(3, 2, 2), idx(false, []int{2, 2, 1}, 2, 0, -3, 2)}, Want: []int{2, 2, 2, 2}},
			{Name: "batch_dims 1, computed", Opset: 13, Attrs: []*Attr{bd(1)}, Inputs: []CaseInput{x(2, 4, 3), idx(true, []int{2, 3, 1}, 3, 0, -1, 1, 1, 2)}, Want: []int{2, 3, 3}},
			{Name: "batch_dims 2, computed pairs", Opset: 21, Attrs: []*Attr{bd(2)}, Inputs: []CaseInput{x(2, 2, 3, 2, 2), idx(true, []int{2, 2, 2}, 0, 1, 2, -1, -3, 0, 1, 1)}, Want: []int{2, 2, 2}},
		}})
}

// gatherNDLayout is GatherND's addressing: rows tuples of m coordinates,
// each reading inner consecutive data elements; tuple r belongs to batch
// r / perBatch, whose data starts at (r / perBatch)·batchStride; dims and
// st are the sizes and strides of the m indexed axes.
type gatherNDLayout struct {
	b, m, rows, perBatch, batchStride, inner int
	dims, st                                 []int
}

// gatherNDShape checks GatherND's shapes and returns the output shape and
// the layout.
func gatherNDShape(n *Node, xs, is []int) ([]int, *gatherNDLayout, error) {
	bdim, err := n.AttrInt("batch_dims", 0)
	if err != nil {
		return nil, nil, err
	}
	q, r := len(is), len(xs)
	if q < 1 || r < 1 {
		return nil, nil, fmt.Errorf("%s: data %v and indices %v must have rank ≥ 1", n.Label(), xs, is)
	}
	b := int(bdim)
	if bdim < 0 || b >= min(q, r) {
		return nil, nil, AttrError(n, "batch_dims", "is %d, want 0 ≤ batch_dims < min(rank of data %d, rank of indices %d)", bdim, r, q)
	}
	for d := 0; d < b; d++ {
		if xs[d] != is[d] {
			return nil, nil, fmt.Errorf("%s: the first %d (batch_dims) axes of data %v and indices %v differ", n.Label(), b, xs, is)
		}
	}
	m := is[q-1]
	if m < 1 || m > r-b {
		return nil, nil, fmt.Errorf("%s: indices %v have tuples of %d coordinates, want 1 to %d (data %v, batch_dims %d)", n.Label(), is, m, r-b, xs, b)
	}
	out := append(append([]int(nil), is[:q-1]...), xs[b+m:]...)
	st := strides(xs)
	l := &gatherNDLayout{b: b, m: m, rows: Numel(is[:q-1]), perBatch: Numel(is[b : q-1]), batchStride: Numel(xs[b:]),
		inner: Numel(xs[b+m:]), dims: xs[b : b+m], st: st[b : b+m]}
	return out, l, nil
}

// offset returns the data offset of tuple row with coordinates t and −1,
// or −1 and the position in the tuple of a coordinate that is not an
// integer in [−d, d).
func (l *gatherNDLayout) offset(row int, t func(j int) float64) (int, int) {
	q := row / l.perBatch * l.batchStride
	for j := 0; j < l.m; j++ {
		v, d := t(j), l.dims[j]
		if v != math.Trunc(v) || v < -float64(d) || v >= float64(d) {
			return -1, j
		}
		c := int(v)
		if c < 0 {
			c += d
		}
		q += c * l.st[j]
	}
	return q, -1
}

// errIndex describes the bad coordinate at position p of the indices
// (coordinate j of its tuple) with value v.
func (l *gatherNDLayout) errIndex(v any, p, j int, xs []int) error {
	return fmt.Errorf("index %v at position %d is outside [%d, %d) (axis %d of data %v)", v, p, -l.dims[j], l.dims[j], l.b+j, xs)
}

func inferGatherND(n *Node, s *Shapes) error {
	xs, ok, t, out := first(n, s)
	is, iok := s.dims(n.Input(1))
	if !ok || !iok {
		return nil
	}
	ys, l, err := gatherNDShape(n, xs, is)
	if err != nil {
		return err
	}
	if v, ok := s.Ints[n.Input(1)]; ok {
		for row := 0; row < l.rows; row++ {
			if _, bad := l.offset(row, func(j int) float64 { return float64(v[row*l.m+j]) }); bad >= 0 {
				p := row*l.m + bad
				return fmt.Errorf("%s: %w", n.Label(), l.errIndex(v[p], p, bad, xs))
			}
		}
	}
	s.Set(out, ys, t)
	return nil
}

func newGatherND[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 || b.Input(1) < 0 {
		return nil, fmt.Errorf("needs data and indices")
	}
	xs, is := b.Shape(b.In[0]), b.Shape(b.In[1])
	ys, l, err := gatherNDShape(n, xs, is)
	if err != nil {
		return nil, err
	}
	if Numel(ys) != b.Size(b.Out[0]) {
		return nil, fmt.Errorf("GatherND gives %v, output has %v", ys, b.Shape(b.Out[0]))
	}
	if _, ok := b.Const(b.In[1]); !ok {
		k := &gatherND[T]{gatherNDLayout: l, xs: xs}
		k.linearPick = newLinearPick(b, k.pickRows, k.scatterRows)
		return k, nil
	}
	v, err := constInts(b, 1, "indices")
	if err != nil {
		return nil, err
	}
	k := &pick[T]{idx: make([]int32, Numel(ys))}
	for row := 0; row < l.rows; row++ {
		q, bad := l.offset(row, func(j int) float64 { return float64(v[row*l.m+j]) })
		if bad >= 0 {
			return nil, l.errIndex(v[row*l.m+bad], row*l.m+bad, bad, xs)
		}
		for i := 0; i < l.inner; i++ {
			k.idx[row*l.inner+i] = int32(q + i)
		}
	}
	return LinearKernel[T](k, b.In[:1], b.Out[0]), nil
}

// gatherND is GatherND with indices read at run time.
type gatherND[T Real] struct {
	*gatherNDLayout
	linearPick[T]
	xs []int
}

// rowAt returns the data offset of tuple row of the indices idx (−1 for a
// bad tuple).
func (k *gatherND[T]) rowAt(idx []T, row int) int {
	q, _ := k.offset(row, func(j int) float64 { return float64(idx[row*k.m+j]) })
	return q
}

// pickRows sets dst to the slices of src the tuples address (zeros for a
// bad tuple).
func (k *gatherND[T]) pickRows(dst, src, idx []T) {
	for row := 0; row < k.rows; row++ {
		out := dst[row*k.inner : (row+1)*k.inner]
		if q := k.rowAt(idx, row); q >= 0 {
			copy(out, src[q:q+k.inner])
		} else {
			clear(out)
		}
	}
}

// scatterRows adds the slices of src into the slices of dst the tuples
// address.
func (k *gatherND[T]) scatterRows(dst, src, idx []T) {
	for row := 0; row < k.rows; row++ {
		if q := k.rowAt(idx, row); q >= 0 {
			AddTo(dst[q:q+k.inner], src[row*k.inner:(row+1)*k.inner])
		}
	}
}

// Validate reports the first coordinate that is not an integer in
// [−d, d) of its axis.
func (k *gatherND[T]) Validate(w *Work[T]) error {
	idx := w.Val[k.ind]
	for row := 0; row < k.rows; row++ {
		if _, bad := k.offset(row, func(j int) float64 { return float64(idx[row*k.m+j]) }); bad >= 0 {
			p := row*k.m + bad
			return k.errIndex(idx[p], p, bad, k.xs)
		}
	}
	return nil
}

// Retains: the passes read the indices, nothing else.
func (k *gatherND[T]) Retains() Retains { return Retains{InVal: true} }

// NonZero, which torch exports before GatherND for a boolean-mask index
// (x.permute(…)[mask]), gives the coordinates of the non-zero elements of
// its input as a rank × count INT64 tensor, in row-major order. Its shape
// depends on the values, so it is folded on constants only (Fold: Infer
// computes the coordinates when the input's values are known, e.g. a mask
// buffer).
func init() {
	Register(&Def{Type: "NonZero", Since: 9, Infer: inferNonZero, Fold: true, Cases: []Case{
		{Name: "constant mask", Inputs: []CaseInput{{Shape: []int{2, 3}, Ints: []int64{1, 0, 1, 0, 0, 1}}}, Want: []int{2, 3}},
		{Name: "scalar", Inputs: []CaseInput{{Shape: []int{}, Ints: []int64{1}}}, Want: []int{0, 1}},
	}})
}

func inferNonZero(n *Node, s *Shapes) error {
	xs, ok, _, out := first(n, s)
	if !ok {
		return nil
	}
	var v []float64
	if t, ok := s.Values[n.Input(0)]; ok {
		v = t.Values()
	} else if iv, ok := s.Ints[n.Input(0)]; ok {
		for _, x := range iv {
			v = append(v, float64(x))
		}
	} else {
		return nil // computed: the engine names the node as constants-only
	}
	var hits []int
	for i, x := range v {
		if x != 0 {
			hits = append(hits, i)
		}
	}
	r := len(xs)
	res := make([]int64, r*len(hits))
	for j, i := range hits {
		c := i
		for d := r - 1; d >= 0; d-- {
			res[d*len(hits)+j] = int64(c % xs[d])
			c /= xs[d]
		}
	}
	s.SetInts(out, res, []int{r, len(hits)})
	return nil
}
