package op

import (
	"fmt"
	"math"
)

// batchNorm is BatchNormalization in inference form, a per-channel affine
// map with constant statistics (ONNX spec; Ioffe & Szegedy 2015):
//
//	y = a_c x + b_c,  a_c = scale_c / sqrt(var_c + ε),  b_c = B_c − mean_c a_c
//
// It is linear in x (class Linear): R{y} = a_c R{x}, x̄ += a_c ȳ,
// R{x̄} += a_c R{ȳ}.
type batchNorm[T Real] struct {
	a, b     []T
	c, inner int
	batch    int
}

func init() {
	Register(&Def{Type: "BatchNormalization", Infer: InferSame, Exec: Both(newBatchNorm[float64], newBatchNorm[float32]), Class: Linear, Channels: FlowNorm,
		Cases: []Case{{Name: "N×C×H×W", Inputs: []CaseInput{{Shape: []int{2, 3, 2, 2}},
			{Shape: []int{3}, Const: []float64{1, 0.5, 2}}, {Shape: []int{3}, Const: []float64{0, 0.1, -0.2}},
			{Shape: []int{3}, Const: []float64{0.3, 0, -1}}, {Shape: []int{3}, Const: []float64{1, 2, 0.5}}},
			Attrs: []*Attr{{Name: "epsilon", Type: AttrFloat, Float: 1e-3}}, Want: []int{2, 3, 2, 2}}}})
}

func newBatchNorm[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	if len(in) < 5 {
		return nil, fmt.Errorf("want 5 inputs (X, scale, B, mean, var), got %d", len(in))
	}
	if tm, err := n.AttrInt("training_mode", 0); err != nil || tm != 0 {
		return nil, fmt.Errorf("training_mode=%d is not supported (inference only)", tm)
	}
	for i, o := range out {
		if i > 0 && o >= 0 {
			return nil, fmt.Errorf("running-statistics outputs are not supported (inference only)")
		}
	}
	eps, err := n.AttrFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	xs := b.Shape(in[0])
	if len(xs) < 2 {
		return nil, fmt.Errorf("input shape %v, want N×C×…", xs)
	}
	c := xs[1]
	var prm [4][]float64
	for i := 0; i < 4; i++ {
		v, ok := b.Const(in[i+1])
		name := b.Slots.Name(in[i+1])
		if !ok {
			return nil, fmt.Errorf("input %q must be a constant (inference form)", name)
		}
		if len(v) != c {
			return nil, fmt.Errorf("input %q has %d elements, want %d channels", name, len(v), c)
		}
		prm[i] = v
	}
	k := &batchNorm[T]{a: make([]T, c), b: make([]T, c), c: c, inner: Numel(xs[2:]), batch: xs[0]}
	for j := 0; j < c; j++ {
		a := prm[0][j] / math.Sqrt(prm[3][j]+eps)
		k.a[j], k.b[j] = T(a), T(prm[1][j]-prm[2][j]*a)
	}
	return LinearKernel[T](k, in[:1], out[0]), nil
}

// scale sets (or, accumulating, adds) dst = a_c src per channel.
func (k *batchNorm[T]) scale(dst, src []T, accumulate bool) {
	i := 0
	for s := 0; s < k.batch; s++ {
		for c := 0; c < k.c; c++ {
			a := k.a[c]
			seg, out := src[i:i+k.inner], dst[i:i+k.inner]
			if accumulate {
				for j, v := range seg {
					out[j] += a * v
				}
			} else {
				for j, v := range seg {
					out[j] = a * v
				}
			}
			i += k.inner
		}
	}
}

func (k *batchNorm[T]) Apply(dst []T, src [][]T) {
	if src[0] == nil {
		clear(dst)
		return
	}
	k.scale(dst, src[0], false)
}

func (k *batchNorm[T]) Transpose(dst [][]T, src []T) {
	if dst[0] != nil {
		k.scale(dst[0], src, true)
	}
}

func (k *batchNorm[T]) Offset(y []T) {
	i := 0
	for s := 0; s < k.batch; s++ {
		for c := 0; c < k.c; c++ {
			b := k.b[c]
			for j := range y[i : i+k.inner] {
				y[i+j] += b
			}
			i += k.inner
		}
	}
}
