package nn

import (
	"fmt"
	"github.com/bitplan/bitplan/op"
	"slices"
)

// BatchNorm describes a BatchNormalization node of the model: the tensor it
// normalises and its running statistics, for data-free calibration
// (ZeroQ, DeepInversion), which makes inputs whose statistics at every
// BatchNormalization match these.
type BatchNorm struct {
	// Node is the node's label (its name, or op and output).
	Node string
	// Input is the name of the normalised tensor X (N×C×…).
	Input string
	// Mean and Var are the running mean and variance, one per channel.
	Mean, Var []float64
	// Epsilon is the node's epsilon attribute.
	Epsilon float64
}

// BatchNorms returns the model's BatchNormalization nodes that the engine
// executes, in graph order, with constant running statistics.
func (e *Engine) BatchNorms() ([]BatchNorm, error) {
	p, err := e.plan(1)
	if err != nil {
		return nil, err
	}
	var out []BatchNorm
	for _, st := range p.steps {
		nd := st.node
		if nd.Op != "BatchNormalization" || len(st.ins) < 5 {
			continue
		}
		mean, v := p.slots[st.ins[3]], p.slots[st.ins[4]]
		if mean.kind != kConst || v.kind != kConst {
			continue
		}
		eps, err := nd.AttrFloat("epsilon", 1e-5)
		if err != nil {
			return nil, fmt.Errorf("nn: %s: %w", nd.Label(), err)
		}
		out = append(out, BatchNorm{Node: nd.Label(), Input: p.slots[st.ins[0]].name,
			Mean: slices.Clone(mean.data), Var: slices.Clone(v.data), Epsilon: eps})
	}
	return out, nil
}

// InputGradient runs the model in inference form on n samples x
// (n·prod(SampleShape) values, input quantizers not applied) and returns
// ∂L/∂x for a loss L of intermediate tensors: seed receives the values of
// the named tensors (shapes with batch n) and adds ∂L/∂tensor into the
// matching adjoint buffers, which start at zero. Reverse mode runs from the
// last step producing a named tensor back to the input; the parameters get
// no gradient. A name that is not a tensor computed from the input is an
// error.
func (e *Engine) InputGradient(x []float64, n int, names []string, seed func(vals, adjs [][]float64)) ([]float64, error) {
	if len(e.inputs) != 1 {
		return nil, fmt.Errorf("nn: input gradients need a model with one input, this one has %d (%s)", len(e.inputs), e.inputNames())
	}
	size := op.Numel(e.sample)
	if n <= 0 || len(x) != n*size {
		return nil, fmt.Errorf("nn: %d input values for %d samples of shape %v", len(x), n, e.sample)
	}
	p, err := e.plan(n)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(names))
	for i, name := range names {
		ids[i] = p.slotOf(name)
		if ids[i] < 0 || (p.slots[ids[i]].kind != kAct && p.slots[ids[i]].kind != kInput) {
			return nil, fmt.Errorf("nn: tensor %q is not computed from the input", name)
		}
	}
	if e.prec == Float32 {
		return inputGradient[float32](e, p, x, ids, seed), nil
	}
	return inputGradient[float64](e, p, x, ids, seed), nil
}

func inputGradient[T op.Real](e *Engine, p *plan, x []float64, ids []int, seed func(vals, adjs [][]float64)) []float64 {
	w := getFullWork[T](p)
	// Adjoint buffers for every tensor computed from the input (the pooled
	// work has them only where θ flows); restored before the work is
	// returned.
	var added []int
	for i, s := range p.slots {
		if (s.kind == kAct || s.kind == kInput) && w.Adj[i] == nil {
			if s.alias >= 0 { // a view shares its source's buffer
				w.Adj[i] = w.Adj[s.alias]
			} else {
				w.Adj[i] = make([]T, s.size)
			}
			added = append(added, i)
		}
	}
	defer func() {
		for _, i := range added {
			w.Adj[i] = nil
		}
		w.release()
	}()
	for i, v := range x {
		w.Val[p.in][i] = T(v)
	}
	w.bind(pick[T](e.theta, e.theta32()), nil, nil, nil, 0)
	last := -1
	for _, st := range p.steps {
		w.ks[st.idx].Forward(&w.Work)
		for _, o := range st.outs {
			if o >= 0 && slices.ContainsFunc(ids, func(id int) bool { return id == o || p.slots[id].alias == o }) {
				last = st.idx
			}
		}
	}
	for i, s := range p.slots {
		if (s.kind == kAct || s.kind == kInput) && w.Adj[i] != nil {
			clear(w.Adj[i])
		}
	}
	// The seed sees float64 values and adjoints (copies in float32).
	vals, adjs := make([][]float64, len(ids)), make([][]float64, len(ids))
	for i, id := range ids {
		var vb []float64
		vals[i] = float64s(w.Val[id], &vb)
		if a, ok := any(w.Adj[id]).([]float64); ok {
			adjs[i] = a
		} else {
			adjs[i] = make([]float64, len(w.Adj[id]))
		}
	}
	seed(vals, adjs)
	for i, id := range ids {
		if _, same := any(w.Adj[id]).([]float64); !same {
			for j, v := range adjs[i] {
				w.Adj[id][j] += T(v)
			}
		}
	}
	for i := last; i >= 0; i-- {
		w.ks[i].Backward(&w.Work)
	}
	var gb []float64
	return slices.Clone(float64s(w.Adj[p.in], &gb))
}
