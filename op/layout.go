package op

import (
	"fmt"
	"math"
)

// Layout operators: DepthToSpace and SpaceToDepth (PyTorch's PixelShuffle
// and PixelUnshuffle), Trilu (torch.triu and torch.tril), GatherElements
// (torch.gather) and CumSum (torch.cumsum). Each is linear in its data
// input, class Linear:
//
//   - DepthToSpace, SpaceToDepth, Trilu and GatherElements with constant
//     indices move (or zero) elements by positions known when the kernel
//     is built: the pick y[o] = x[idx[o]] of slice.go (0 where idx[o] < 0,
//     Trilu's masked half), R{y} = pick(R{x}), x̄[idx[o]] += ȳ[o],
//     R{x̄}[idx[o]] += R{ȳ}[o];
//   - GatherElements with computed indices picks at run time (as Gather of
//     token ids, gather.go) and validates the indices after the forward
//     pass;
//   - CumSum is the running sum y_j = Σ_{i ∈ S(j)} x_i along an axis, S(j)
//     = {i ≤ j} ({i < j} exclusive, {i ≥ j} reverse); its transpose is the
//     running sum in the other direction with the same exclusivity.
//
// Channel flow: all block (FlowBlocks), the conservative choice: the depth
// operators interleave channels with space, GatherElements and CumSum may
// run along the channel axis, and Trilu's mask depends on the positions of
// a rank-2 tensor's channel axis.

func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	scalar := func(v int64) CaseInput { return CaseInput{Shape: []int{}, Ints: []int64{v}} }
	attrInt := func(name string, v int64) *Attr { return &Attr{Name: name, Type: AttrInt, Int: v} }
	mode := func(m string) *Attr { return &Attr{Name: "mode", Type: AttrString, String: m} }
	Register(&Def{Type: "DepthToSpace", Infer: inferDepthToSpace, Exec: Both(newDepthSpace[float64], newDepthSpace[float32]), Class: Linear,
		Cases: []Case{
			{Name: "DCR", Attrs: []*Attr{attrInt("blocksize", 2)}, Inputs: []CaseInput{x(2, 8, 2, 3)}, Want: []int{2, 2, 4, 6}},
			{Name: "CRD (PixelShuffle)", Opset: 13, Attrs: []*Attr{attrInt("blocksize", 2), mode("CRD")}, Inputs: []CaseInput{x(1, 8, 3, 2)}, Want: []int{1, 2, 6, 4}},
			{Name: "blocksize 3", Opset: 11, Attrs: []*Attr{attrInt("blocksize", 3), mode("DCR")}, Inputs: []CaseInput{x(1, 9, 1, 2)}, Want: []int{1, 1, 3, 6}},
		}})
	Register(&Def{Type: "SpaceToDepth", Infer: inferSpaceToDepth, Exec: Both(newDepthSpace[float64], newDepthSpace[float32]), Class: Linear,
		Cases: []Case{
			{Name: "blocksize 2", Attrs: []*Attr{attrInt("blocksize", 2)}, Inputs: []CaseInput{x(2, 2, 4, 6)}, Want: []int{2, 8, 2, 3}},
			{Name: "blocksize 3", Opset: 13, Attrs: []*Attr{attrInt("blocksize", 3)}, Inputs: []CaseInput{x(1, 1, 3, 6)}, Want: []int{1, 9, 1, 2}},
		}})
	Register(&Def{Type: "Trilu", Since: 14, Infer: inferTrilu, Exec: Both(newTrilu[float64], newTrilu[float32]), Class: Linear,
		Cases: []Case{
			{Name: "upper (default)", Opset: 14, Inputs: []CaseInput{x(3, 4)}, Want: []int{3, 4}},
			{Name: "lower k -1 batched", Attrs: []*Attr{attrInt("upper", 0)}, Inputs: []CaseInput{x(2, 4, 3), scalar(-1)}, Want: []int{2, 4, 3}},
			{Name: "upper k 2", Opset: 21, Attrs: []*Attr{attrInt("upper", 1)}, Inputs: []CaseInput{x(2, 1, 3, 5), scalar(2)}, Want: []int{2, 1, 3, 5}},
			{Name: "absent k", Attrs: []*Attr{attrInt("upper", 0)}, Inputs: []CaseInput{x(4, 2), {Absent: true}}, Want: []int{4, 2}},
		}})
	Register(&Def{Type: "CumSum", Since: 11, Infer: inferCumSum, Exec: Both(newCumSum[float64], newCumSum[float32]), Class: Linear,
		Cases: []Case{
			{Name: "axis 1", Inputs: []CaseInput{x(2, 4, 3), scalar(1)}, Want: []int{2, 4, 3}},
			{Name: "exclusive", Opset: 11, Attrs: []*Attr{attrInt("exclusive", 1)}, Inputs: []CaseInput{x(5), scalar(0)}, Want: []int{5}},
			{Name: "reverse, axis -1", Opset: 14, Attrs: []*Attr{attrInt("reverse", 1)}, Inputs: []CaseInput{x(2, 3, 4), scalar(-1)}, Want: []int{2, 3, 4}},
			{Name: "reverse exclusive", Attrs: []*Attr{attrInt("reverse", 1), attrInt("exclusive", 1)}, Inputs: []CaseInput{x(3, 4), scalar(0)}, Want: []int{3, 4}},
		}})
	idx := func(data bool, shape []int, v ...int64) CaseInput {
		return CaseInput{Shape: shape, Ints: v, Data: data}
	}
	Register(&Def{Type: "GatherElements", Since: 11, Infer: inferGatherElements, Exec: Both(newGatherElements[float64], newGatherElements[float32]), Class: Linear,
		Cases: []Case{
			{Name: "constant indices axis 1", Attrs: []*Attr{attrInt("axis", 1)}, Inputs: []CaseInput{x(2, 3), idx(false, []int{2, 2}, 0, 2, -1, 1)}, Want: []int{2, 2}},
			{Name: "computed indices axis 0, smaller", Opset: 13, Inputs: []CaseInput{x(3, 4, 2), idx(true, []int{2, 3, 1}, 2, 0, 1, -3, 2, 2)}, Want: []int{2, 3, 1}},
			{Name: "computed indices axis -1, repeated", Attrs: []*Attr{attrInt("axis", -1)}, Inputs: []CaseInput{x(2, 3), idx(true, []int{2, 4}, 1, 1, 0, 2, -1, 0, 0, 2)}, Want: []int{2, 4}},
		}})
}

// inferDepthToSpace is N×C×H×W → N×C/b²×H·b×W·b.
func inferDepthToSpace(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	bs, err := blocksize(n, in)
	if err != nil {
		return err
	}
	if in[1]%(bs*bs) != 0 {
		return fmt.Errorf("%s: %d channels are not a multiple of blocksize² = %d", n.Label(), in[1], bs*bs)
	}
	if _, err := depthMode(n); err != nil {
		return err
	}
	s.Set(out, []int{in[0], in[1] / (bs * bs), in[2] * bs, in[3] * bs}, t)
	return nil
}

// inferSpaceToDepth is N×C×H×W → N×C·b²×H/b×W/b.
func inferSpaceToDepth(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	bs, err := blocksize(n, in)
	if err != nil {
		return err
	}
	if in[2]%bs != 0 || in[3]%bs != 0 {
		return fmt.Errorf("%s: spatial size %d×%d is not a multiple of blocksize %d", n.Label(), in[2], in[3], bs)
	}
	s.Set(out, []int{in[0], in[1] * bs * bs, in[2] / bs, in[3] / bs}, t)
	return nil
}

// blocksize returns the blocksize attribute of a depth operator on a
// rank-4 input.
func blocksize(n *Node, in []int) (int, error) {
	if len(in) != 4 {
		return 0, fmt.Errorf("%s: input has shape %v, want rank 4 (N×C×H×W)", n.Label(), in)
	}
	b, err := n.AttrInt("blocksize", 0)
	if err != nil {
		return 0, err
	}
	if _, ok := n.Attrs["blocksize"]; !ok {
		return 0, AttrError(n, "blocksize", "is required")
	}
	if b < 1 || b > MaxDim {
		return 0, AttrError(n, "blocksize", "is %d, want a positive size", b)
	}
	return int(b), nil
}

// depthMode returns whether DepthToSpace's mode is CRD (column, row,
// depth: PyTorch's PixelShuffle) rather than the default DCR.
func depthMode(n *Node) (crd bool, err error) {
	m, err := n.AttrString("mode", "DCR")
	if err != nil {
		return false, err
	}
	switch m {
	case "DCR":
		return false, nil
	case "CRD":
		return true, nil
	}
	return false, AttrError(n, "mode", "is %q, want DCR or CRD", m)
}

// newDepthSpace builds DepthToSpace and SpaceToDepth: a pick. For
// DepthToSpace output (n, c, h, w) with h = ih·b + bh, w = iw·b + bw reads
// input channel (bh·b + bw)·C' + c (DCR) or c·b² + bh·b + bw (CRD) at
// (ih, iw); SpaceToDepth is DCR's inverse, output channel (bh·b + bw)·C + c
// at (oh, ow) reading input (c, oh·b + bh, ow·b + bw).
func newDepthSpace[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	xs, ys := b.Shape(b.In[0]), b.Shape(b.Out[0])
	bs, err := blocksize(n, xs)
	if err != nil {
		return nil, err
	}
	crd := false
	if n.Op == "DepthToSpace" {
		if crd, err = depthMode(n); err != nil {
			return nil, err
		}
	}
	if len(ys) != 4 || Numel(ys) != Numel(xs) {
		return nil, fmt.Errorf("output shape %v does not hold the input %v", ys, xs)
	}
	m := internIndex(indexKey(n.Op, xs, ys, bs, crd), func() *indexMap {
		m := &indexMap{idx: make([]int32, Numel(ys))}
		o := 0
		for i := 0; i < ys[0]; i++ {
			for c := 0; c < ys[1]; c++ {
				for h := 0; h < ys[2]; h++ {
					for w := 0; w < ys[3]; w++ {
						var ic, ih, iw int
						if n.Op == "DepthToSpace" {
							bh, bw := h%bs, w%bs
							ih, iw = h/bs, w/bs
							if crd {
								ic = c*bs*bs + bh*bs + bw
							} else {
								ic = (bh*bs+bw)*ys[1] + c
							}
						} else {
							blk := c / xs[1]
							ic, ih, iw = c%xs[1], h*bs+blk/bs, w*bs+blk%bs
						}
						m.idx[o] = int32(((i*xs[1]+ic)*xs[2]+ih)*xs[3] + iw)
						o++
					}
				}
			}
		}
		return m
	})
	return LinearKernel[T](&pick[T]{idx: m.idx, m: m}, b.In[:1], b.Out[0]), nil
}

// scalarInput returns the value of the constant integer scalar (or
// one-element) input j of a node at inference, and whether it is known.
func scalarInput(n *Node, s *Shapes, j int, what string) (int64, bool, error) {
	name := n.Input(j)
	if name == "" {
		return 0, false, nil
	}
	v, ok := s.Ints[name]
	if !ok {
		return 0, false, nil
	}
	if len(v) != 1 {
		return 0, false, fmt.Errorf("%s: %s (input %d) has %d values, want one", n.Label(), what, j, len(v))
	}
	return v[0], true, nil
}

// constScalar returns the value of the constant scalar input j of a
// kernel, or def when the input is absent.
func constScalar(b *Build, j int, what string, def int64) (int64, error) {
	v, err := constInts(b, j, what)
	if err != nil {
		return 0, err
	}
	if v == nil && b.Input(j) < 0 {
		return def, nil
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("%s (input %d) has %d values, want one", what, j, len(v))
	}
	return v[0], nil
}

func inferTrilu(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if len(in) < 2 {
		return fmt.Errorf("%s: input has shape %v, want rank ≥ 2", n.Label(), in)
	}
	if _, _, err := scalarInput(n, s, 1, "k"); err != nil {
		return err
	}
	s.Set(out, in, t)
	return nil
}

// newTrilu builds Trilu: the pick of x's elements (i, j) of the last two
// axes with j − i ≥ k (upper, the default) or j − i ≤ k (lower), zeros
// elsewhere.
func newTrilu[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	xs := b.Shape(b.In[0])
	if len(xs) < 2 {
		return nil, fmt.Errorf("input has shape %v, want rank ≥ 2", xs)
	}
	k, err := constScalar(b, 1, "k", 0)
	if err != nil {
		return nil, err
	}
	upper, err := n.AttrInt("upper", 1)
	if err != nil {
		return nil, err
	}
	r, c := xs[len(xs)-2], xs[len(xs)-1]
	k = max(min(k, int64(c)+1), -int64(r)-1) // beyond ±size: all or nothing
	m := internIndex(indexKey("trilu", xs, k, upper != 0), func() *indexMap {
		m := &indexMap{idx: make([]int32, Numel(xs))}
		for o := range m.idx {
			i, j := int64(o/c%r), int64(o%c)
			keep := j-i >= k
			if upper == 0 {
				keep = j-i <= k
			}
			m.idx[o] = -1
			if keep {
				m.idx[o] = int32(o)
			}
		}
		return m
	})
	return LinearKernel[T](&pick[T]{idx: m.idx, m: m}, b.In[:1], b.Out[0]), nil
}

func inferCumSum(n *Node, s *Shapes) error {
	in, ok, t, out := first(n, s)
	if !ok {
		return nil
	}
	if n.Input(1) == "" {
		return fmt.Errorf("%s: the axis input is missing", n.Label())
	}
	if a, ok, err := scalarInput(n, s, 1, "axis"); err != nil {
		return err
	} else if ok {
		if _, err := NormAxis(n, "axis", a, len(in), false); err != nil {
			return err
		}
	}
	s.Set(out, in, t)
	return nil
}

// cumSum is CumSum's linear map along an axis of size d with outer and
// inner sizes around it.
type cumSum[T Real] struct {
	outer, d, inner int
	exclusive, rev  bool
}

func newCumSum[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 || b.Input(1) < 0 {
		return nil, fmt.Errorf("needs data and axis")
	}
	xs := b.Shape(b.In[0])
	a, err := constScalar(b, 1, "axis", 0)
	if err != nil {
		return nil, err
	}
	axis, err := NormAxis(n, "axis", a, len(xs), false)
	if err != nil {
		return nil, err
	}
	ex, err := n.AttrInt("exclusive", 0)
	if err != nil {
		return nil, err
	}
	rev, err := n.AttrInt("reverse", 0)
	if err != nil {
		return nil, err
	}
	m := &cumSum[T]{outer: Numel(xs[:axis]), d: xs[axis], inner: Numel(xs[axis+1:]), exclusive: ex != 0, rev: rev != 0}
	return LinearKernel[T](m, b.In[:1], b.Out[0]), nil
}

// scan adds into dst the running sums of src along the axis, in the
// reverse direction when rev.
func (m *cumSum[T]) scan(dst, src []T, rev bool) {
	for ob := 0; ob < m.outer; ob++ {
		for in := 0; in < m.inner; in++ {
			base := ob*m.d*m.inner + in
			var acc T
			for t := 0; t < m.d; t++ {
				j := t
				if rev {
					j = m.d - 1 - t
				}
				p := base + j*m.inner
				if m.exclusive {
					dst[p] += acc
					acc += src[p]
				} else {
					acc += src[p]
					dst[p] += acc
				}
			}
		}
	}
}

// Apply sets dst to the running sums of src[0].
func (m *cumSum[T]) Apply(dst []T, src [][]T) {
	clear(dst)
	if src[0] != nil {
		m.scan(dst, src[0], m.rev)
	}
}

// Transpose adds the running sums of src in the other direction into
// dst[0].
func (m *cumSum[T]) Transpose(dst [][]T, src []T) {
	if dst[0] != nil {
		m.scan(dst[0], src, !m.rev)
	}
}

// inferGatherElements gives the output the indices' shape and the data's
// type. Constant indices are checked against the data's axis.
func inferGatherElements(n *Node, s *Shapes) error {
	xs, ok, t, out := first(n, s)
	is, iok := s.dims(n.Input(1))
	if !ok || !iok {
		return nil
	}
	axis, err := gatherElementsAxis(n, xs, is)
	if err != nil {
		return err
	}
	if v, ok := s.Ints[n.Input(1)]; ok {
		for p, j := range v {
			if j < -int64(xs[axis]) || j >= int64(xs[axis]) {
				return fmt.Errorf("%s: index %d at position %d is outside [%d, %d) (axis %d of data %v)", n.Label(), j, p, -xs[axis], xs[axis], axis, xs)
			}
		}
	}
	s.Set(out, is, t)
	return nil
}

// gatherElementsAxis checks GatherElements' shapes (equal ranks; the
// indices no larger than the data on the other axes) and returns the axis.
func gatherElementsAxis(n *Node, xs, is []int) (int, error) {
	if len(xs) != len(is) || len(xs) == 0 {
		return 0, fmt.Errorf("%s: data %v and indices %v must have the same rank ≥ 1", n.Label(), xs, is)
	}
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return 0, err
	}
	axis, err := NormAxis(n, "axis", a, len(xs), false)
	if err != nil {
		return 0, err
	}
	for d := range xs {
		if d != axis && is[d] > xs[d] {
			return 0, fmt.Errorf("%s: indices %v exceed data %v on axis %d", n.Label(), is, xs, d)
		}
	}
	return axis, nil
}

// gatherElems is GatherElements with indices read at run time: output
// element o reads data element base[o] + j·stride for the index j at o.
type gatherElems[T Real] struct {
	linearPick[T]
	d, stride int
	base      []int32
}

// elemBases returns, for every position of an indices tensor of shape is,
// the offset in data of shape xs of the same coordinates with the axis
// coordinate 0, and the data's stride along the axis.
func elemBases(xs, is []int, axis int) (base []int32, stride int) {
	st := strides(xs)
	base = make([]int32, Numel(is))
	coord := make([]int, len(is))
	for o := range base {
		q := 0
		for d, c := range coord {
			if d != axis {
				q += c * st[d]
			}
		}
		base[o] = int32(q)
		for d := len(is) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < is[d] {
				break
			}
			coord[d] = 0
		}
	}
	return base, st[axis]
}

func newGatherElements[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 || b.Input(1) < 0 {
		return nil, fmt.Errorf("needs data and indices")
	}
	xs, is := b.Shape(b.In[0]), b.Shape(b.In[1])
	axis, err := gatherElementsAxis(n, xs, is)
	if err != nil {
		return nil, err
	}
	base, stride := elemBases(xs, is, axis)
	d := xs[axis]
	if _, ok := b.Const(b.In[1]); !ok {
		k := &gatherElems[T]{d: d, stride: stride, base: base}
		k.linearPick = newLinearPick(b, k.pickAt, k.scatterAt)
		return k, nil
	}
	idx, err := constInts(b, 1, "indices")
	if err != nil {
		return nil, err
	}
	k := &pick[T]{idx: make([]int32, len(idx))}
	for o, j := range idx {
		if j < -int64(d) || j >= int64(d) {
			return nil, fmt.Errorf("index %d at position %d is outside [%d, %d) (axis %d of data %v)", j, o, -d, d, axis, xs)
		}
		if j < 0 {
			j += int64(d)
		}
		k.idx[o] = base[o] + int32(j)*int32(stride)
	}
	return LinearKernel[T](k, b.In[:1], b.Out[0]), nil
}

// at returns the data element output o reads for index value t, or -1
// when t is not an integer in [-d, d).
func (k *gatherElems[T]) at(o int, t T) int {
	v := float64(t)
	if v != math.Trunc(v) || v < -float64(k.d) || v >= float64(k.d) {
		return -1
	}
	j := int(v)
	if j < 0 {
		j += k.d
	}
	return int(k.base[o]) + j*k.stride
}

// pickAt sets dst[o] to src at the element index o selects (0 for a bad
// index).
func (k *gatherElems[T]) pickAt(dst, src, idx []T) {
	for o, t := range idx {
		if q := k.at(o, t); q >= 0 {
			dst[o] = src[q]
		} else {
			dst[o] = 0
		}
	}
}

// scatterAt adds src[o] into dst at the element index o selects.
func (k *gatherElems[T]) scatterAt(dst, src, idx []T) {
	for o, t := range idx {
		if q := k.at(o, t); q >= 0 {
			dst[q] += src[o]
		}
	}
}

// Validate reports the first index that is not an integer in [-d, d).
func (k *gatherElems[T]) Validate(w *Work[T]) error {
	for o, v := range w.Val[k.ind] {
		if k.at(o, v) < 0 {
			return fmt.Errorf("index %v at position %d is outside [%d, %d)", v, o, -k.d, k.d)
		}
	}
	return nil
}

// Retains: the passes read the indices, nothing else.
func (k *gatherElems[T]) Retains() Retains { return Retains{InVal: true} }
