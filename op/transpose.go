package op

import "fmt"

// gatherOp is a data movement y[k] = x_{src[k]}[idx[k]] (Transpose, Concat
// of computed tensors); it is linear with 0/1 coefficients:
//
//	R{y}[k] = R{x}[idx[k]],  x̄[idx[k]] += ȳ[k],  R{x̄}[idx[k]] += R{ȳ}[k]
type gatherOp[T Real] struct {
	src []int8
	idx []int32
	// m keeps an interned src and idx alive.
	m *indexMap
}

func init() {
	Register(&Def{Type: "Transpose", Infer: inferTranspose, Exec: Both(newTranspose[float64], newTranspose[float32]), Class: Linear,
		Cases: []Case{{Name: "perm 0 2 1", Inputs: []CaseInput{{Shape: []int{2, 3, 2}}},
			Attrs: []*Attr{{Name: "perm", Type: AttrInts, Ints: []int64{0, 2, 1}}}, Want: []int{2, 2, 3}},
			{Name: "reverse", Inputs: []CaseInput{{Shape: []int{2, 3}}}, Want: []int{3, 2}}}})
	// Concat of shape values is folded by Infer; of computed data it runs.
	Register(&Def{Type: "Concat", Infer: inferConcatNode, Exec: Both(newConcat[float64], newConcat[float32]), Class: Linear,
		Cases: []Case{{Name: "axis 1", Inputs: []CaseInput{{Shape: []int{2, 1, 2}}, {Shape: []int{2, 2, 2}}},
			Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: 1}}, Want: []int{2, 3, 2}},
			{Name: "constant operand", Inputs: []CaseInput{{Shape: []int{2}}, {Shape: []int{1}, Const: []float64{3}}},
				Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: 0}}, Want: []int{3}}}})
}

func newTranspose[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	xs := b.Shape(in[0])
	perm, err := n.AttrInts("perm", nil)
	if err != nil {
		return nil, err
	}
	r := len(xs)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if !isPerm(perm, r) {
		return nil, fmt.Errorf("perm %v is not a permutation of %d axes", perm, r)
	}
	stride := make([]int, r)
	s := 1
	for i := r - 1; i >= 0; i-- {
		stride[i] = s
		s *= xs[i]
	}
	ys := b.Shape(out[0])
	m := internIndex(indexKey("transpose", xs, perm), func() *indexMap {
		m := &indexMap{idx: make([]int32, Numel(ys)), src: make([]int8, Numel(ys))}
		coord := make([]int, r)
		for o := range m.idx {
			q := 0
			for d, c := range coord {
				q += c * stride[perm[d]]
			}
			m.idx[o] = int32(q)
			for d := r - 1; d >= 0; d-- {
				coord[d]++
				if coord[d] < ys[d] {
					break
				}
				coord[d] = 0
			}
		}
		return m
	})
	k := &gatherOp[T]{idx: m.idx, src: m.src, m: m}
	return LinearKernel[T](k, in[:1], out[0]), nil
}

func newConcat[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	if len(in) > 127 {
		return nil, fmt.Errorf("%d inputs, at most 127 supported", len(in))
	}
	ys := b.Shape(out[0])
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	if a < 0 {
		a += int64(len(ys))
	}
	outer := Numel(ys[:a])
	k := &gatherOp[T]{idx: make([]int32, Numel(ys)), src: make([]int8, Numel(ys))}
	o := 0
	for ob := 0; ob < outer; ob++ {
		for i, x := range in {
			inner := Numel(b.Shape(x)[a:])
			for j := 0; j < inner; j++ {
				k.src[o], k.idx[o] = int8(i), int32(ob*inner+j)
				o++
			}
		}
	}
	return LinearKernel[T](k, in, out[0]), nil
}

// Apply sets dst[o] = src[src[o]][idx[o]].
func (k *gatherOp[T]) Apply(dst []T, src [][]T) {
	for o, q := range k.idx {
		if x := src[k.src[o]]; x != nil {
			dst[o] = x[q]
		} else {
			dst[o] = 0
		}
	}
}

// Transpose adds src[o] into dst[src[o]][idx[o]].
func (k *gatherOp[T]) Transpose(dst [][]T, src []T) {
	for o, q := range k.idx {
		if x := dst[k.src[o]]; x != nil {
			x[q] += src[o]
		}
	}
}
