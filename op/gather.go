package op

import (
	"fmt"
	"math"
)

// Gather with computed indices: the indices are data (token ids read from
// an integer input, or integer arithmetic on it), known only when the
// kernel runs. The map from the data to the output is still linear — for
// the embedding lookup y[t] = W[ids[t]] of a weight table W it is linear
// in W — so the passes are those of class Linear, with the pick made at
// run time:
//
//	y[o, t, i] = x[o, ids[t], i],  R{y}[o, t, i] = R{x}[o, ids[t], i],
//	x̄[o, ids[t], i] += ȳ[o, t, i],  R{x̄}[o, ids[t], i] += R{ȳ}[o, t, i].
//
// The indices carry no derivative (they are integers). An index outside
// [-d, d) (or not an integer) gives zeros and no adjoint instead of a
// crash; Validate reports it after the forward pass, and the engine
// refuses the result.

// Validator kernels can find their inputs invalid only at run time (an
// index out of range); the engine calls Validate after the forward pass
// and fails with its error, naming the node.
type Validator[T Real] interface {
	Validate(w *Work[T]) error
}

// gatherKernel is Gather along an axis with indices read from slot ind at
// run time. Token ids are exact in float32 up to 2^24 and in float64 up to
// 2^53.
type gatherKernel[T Real] struct {
	linearPick[T]
	// outer, d and inner are the sizes before, of and after the axis;
	// count is the number of indices.
	outer, d, inner, count int
}

func newGatherComputed[T Real](b *Build, axis int) (Kernel[T], error) {
	xs := b.Shape(b.In[0])
	k := &gatherKernel[T]{outer: Numel(xs[:axis]), d: xs[axis], inner: Numel(xs[axis+1:]), count: b.Size(b.In[1])}
	k.linearPick = newLinearPick(b, k.pickRows, k.scatterRows)
	if got := k.outer * k.count * k.inner; got != b.Size(b.Out[0]) {
		return nil, fmt.Errorf("gather gives %d elements, output %v has %d", got, b.Shape(b.Out[0]), b.Size(b.Out[0]))
	}
	return k, nil
}

// row returns the axis position index v selects, or -1 when v is not an
// integer in [-d, d).
func (k *gatherKernel[T]) row(t T) int {
	v := float64(t)
	if v != math.Trunc(v) || v < -float64(k.d) || v >= float64(k.d) {
		return -1
	}
	j := int(v)
	if j < 0 {
		j += k.d
	}
	return j
}

// pickRows sets dst to the rows of src the indices select (zeros for a bad
// index).
func (k *gatherKernel[T]) pickRows(dst, src, idx []T) {
	for ob := 0; ob < k.outer; ob++ {
		for t, v := range idx {
			out := dst[(ob*k.count+t)*k.inner : (ob*k.count+t+1)*k.inner]
			if j := k.row(v); j >= 0 {
				copy(out, src[(ob*k.d+j)*k.inner:(ob*k.d+j+1)*k.inner])
			} else {
				clear(out)
			}
		}
	}
}

// scatterRows adds the rows of src into the rows of dst the indices select.
func (k *gatherKernel[T]) scatterRows(dst, src, idx []T) {
	for ob := 0; ob < k.outer; ob++ {
		for t, v := range idx {
			j := k.row(v)
			if j < 0 {
				continue
			}
			AddTo(dst[(ob*k.d+j)*k.inner:(ob*k.d+j+1)*k.inner], src[(ob*k.count+t)*k.inner:(ob*k.count+t+1)*k.inner])
		}
	}
}

// Validate reports the first index that is not an integer in [-d, d).
func (k *gatherKernel[T]) Validate(w *Work[T]) error {
	for t, v := range w.Val[k.ind] {
		if k.row(v) < 0 {
			return fmt.Errorf("index %v at position %d is outside [%d, %d) (a token id beyond the embedding table?)", v, t, -k.d, k.d)
		}
	}
	return nil
}

// unitGather recognises an embedding table: Gather along axis 0 of a
// floating-point initializer. It is a weight-only unit (DataInput −1: its
// input is integer indices, never quantized): parameters are the table's
// elements, no multiply-accumulates (a lookup), and the output channels
// are the table's rows (one quantization scale per token vector, the
// layout of a Gemm weight with transB, so a table tied to an output
// projection has one channel layout).
func unitGather(n *Node, g UnitGraph) (*UnitSpec, error) {
	w := g.FloatConst(n.Input(0))
	if w == nil {
		return nil, nil
	}
	if a, err := n.AttrInt("axis", 0); err != nil || (a != 0 && a != -int64(len(w.Shape))) {
		return nil, err
	}
	if len(w.Shape) < 1 {
		return nil, unitErr("%s: embedding table %q is a scalar", n.Label(), w.Name)
	}
	u := &UnitSpec{WeightInput: 0, DataInput: -1, BiasInput: -1, Group: 1, OutChannels: w.Shape[0]}
	if x, y := g.Dims(n.Input(1)), g.Dims(n.Outputs[0]); x != nil && y != nil {
		u.ShapeKnown = true
		u.InElems, u.OutElems = int64(Numel(x)), int64(Numel(y))
	}
	return u, nil
}

// Retains: the passes read the indices (the table is a parameter or a
// constant); nothing else.
func (k *gatherKernel[T]) Retains() Retains { return Retains{InVal: true} }

// linearPick is the derivative wiring of the kernels whose output y picks
// entries (or rows) of x at the positions of a computed index tensor ind
// (Gather, GatherElements, GatherND): y = pick(x, ind) is linear in x and
// the indices carry no derivative, so the tangent is pick of x's tangent
// and x's adjoint gathers scatter of y's, in both sweeps. pick writes dst
// from src; scatter adds src into dst.
type linearPick[T Real] struct {
	x, ind, y     int
	pick, scatter func(dst, src, idx []T)
}

// newLinearPick wires pick and scatter to the node's data (input 0),
// indices (input 1) and output.
func newLinearPick[T Real](b *Build, pick, scatter func(dst, src, idx []T)) linearPick[T] {
	return linearPick[T]{x: b.In[0], ind: b.In[1], y: b.Out[0], pick: pick, scatter: scatter}
}

func (k *linearPick[T]) Forward(w *Work[T]) { k.pick(w.Val[k.y], w.Val[k.x], w.Val[k.ind]) }

func (k *linearPick[T]) RForward(w *Work[T]) {
	ry := w.RV[k.y]
	if ry == nil {
		return
	}
	if rx := w.RV[k.x]; rx != nil {
		k.pick(ry, rx, w.Val[k.ind])
	} else {
		clear(ry)
	}
}

func (k *linearPick[T]) Backward(w *Work[T]) {
	if dx, dy := w.Adj[k.x], w.Adj[k.y]; dx != nil && dy != nil {
		k.scatter(dx, dy, w.Val[k.ind])
	}
}

func (k *linearPick[T]) RBackward(w *Work[T]) {
	if rdx, rdy := w.RAdj[k.x], w.RAdj[k.y]; rdx != nil && rdy != nil {
		k.scatter(rdx, rdy, w.Val[k.ind])
	}
}
