package nn

import (
	"fmt"
	"slices"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/op"
)

// TensorGradients runs the model on all of ds as one batch, in float (input
// quantizers not applied), and returns the values of the named tensors and
// their gradients ∂L/∂tensor, L the loss averaged over ds (batch-major,
// shapes with batch ds.Len()). The named tensors must be activations that
// depend on the parameters (a unit's output does). It is meant for small
// batches: the whole batch is one work area; split larger data with
// data.Rows. Sensitivity criteria such as ModelOpt's output-space Fisher
// score read a layer's output gradient from it.
func (e *Engine) TensorGradients(ds data.Dataset, names []string) (vals, grads [][]float64, err error) {
	if err := e.checkData(ds); err != nil {
		return nil, nil, err
	}
	n := ds.Len()
	if n == 0 {
		return nil, nil, fmt.Errorf("nn: empty dataset")
	}
	denom, err := e.loss.Prepare(e.outShape, ds)
	if err != nil {
		return nil, nil, err
	}
	p, err := e.plan(n)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]int, len(names))
	for i, name := range names {
		ids[i] = p.slotOf(name)
		if ids[i] < 0 || p.slots[ids[i]].kind != kAct || !p.slots[ids[i]].theta {
			return nil, nil, fmt.Errorf("nn: tensor %q is not an activation computed from the parameters", name)
		}
	}
	if e.prec == Float32 {
		vals, grads, err = tensorGradients[float32](e, p, ds, ids, denom)
	} else {
		vals, grads, err = tensorGradients[float64](e, p, ds, ids, denom)
	}
	return vals, grads, err
}

func tensorGradients[T op.Real](e *Engine, p *plan, ds data.Dataset, ids []int, denom float64) (vals, grads [][]float64, err error) {
	w := getFullWork[T](p)
	defer w.release()
	n := ds.Len()
	labels := w.labels[:n]
	if err := w.readInputs(ds, 0, labels); err != nil {
		return nil, nil, err
	}
	c := &Chunk{Start: 0, N: n, Shape: e.outShape, Labels: labels}
	if ref, ok := e.loss.(Referenced); ok {
		r := ref.Reference()
		rt := make([]T, len(r))
		for i, v := range r {
			rt[i] = T(v)
		}
		c.Ref = w.reference(rt)
	}
	w.bind(pick[T](e.theta, e.theta32()), nil, nil, nil, 0)
	w.forward(modeGrad)
	out := p.out
	c.Out = float64s(w.Val[out], &w.out64)
	g := make([]float64, len(w.Val[out]))
	if _, _, _, err := e.loss.Eval(c, 1/denom, g, nil, nil); err != nil {
		return nil, nil, err
	}
	for i, v := range g {
		w.Adj[out][i] = T(v)
	}
	w.backward(modeGrad)
	for _, id := range ids {
		var vb, gb []float64
		vals = append(vals, slices.Clone(float64s(w.Val[id], &vb)))
		grads = append(grads, slices.Clone(float64s(w.Adj[id], &gb)))
	}
	return vals, grads, nil
}

// TensorValues runs the model on n samples x (input quantizers applied, as
// in Logits) and returns the values of the named tensors.
func (e *Engine) TensorValues(x []float64, n int, names []string) ([][]float64, error) {
	out := make([][]float64, len(names))
	var missing error
	err := e.onForward([][]float64{x}, n, true, func(get func(slot int) []float64, p *plan) {
		for i, name := range names {
			id := p.slotOf(name)
			if id < 0 {
				missing = fmt.Errorf("nn: no tensor %q", name)
				return
			}
			out[i] = slices.Clone(get(id))
		}
	})
	if err == nil {
		err = missing
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
