package nn

import "fmt"

// InputQuantizer transforms a unit's data input in place before the unit
// reads it: typically fake quantization of activations (quantize, then
// dequantize to float64), or an observer that records the input's range
// and leaves it unchanged. x holds a whole chunk (batch × the input's
// per-sample elements) and is a private copy: changing it does not change
// the tensor seen by other consumers of the same value (a residual branch,
// another unit reading it with a different quantizer) nor the tensors
// Intermediates reports. Evaluation runs chunks on several goroutines, so
// an InputQuantizer must be safe for concurrent calls.
type InputQuantizer func(x []float64)

// unitInput locates a unit's data input in a plan: the step running the
// unit's node and the slot it reads as data.
type unitInput struct {
	step, slot int
}

// SetInputQuantizer installs q on the data input of the named unit (the
// non-weight operand: Conv's X, the activation operand of Gemm or MatMul);
// q == nil removes it. Quantizers act in inference passes — Evaluate,
// Logits and Intermediates — so the activations a deployed integer model
// sees can be simulated ("fake quantization", Jacob et al., "Quantization
// and Training of Neural Networks for Efficient Integer-Arithmetic-Only
// Inference", CVPR 2018, §3). HVP, BlockTrace and the Hessian operators
// ignore them and stay the exact derivatives of the float-activation
// model at the current θ (a rounding step has a zero derivative almost
// everywhere; the sensitivities the planner needs are those of the float
// model); so does Gradient unless SetQuantizedGradient(true) makes it the
// straight-through gradient of the quantized model (the clipping range
// for it: SetInputClip). Like SetWeights, it must not run concurrently
// with evaluation.
func (e *Engine) SetInputQuantizer(unit string, q InputQuantizer) error {
	for i, u := range e.units {
		if u.Name == unit {
			if !u.HasInput && q != nil {
				return fmt.Errorf("nn: unit %q has no data input in the graph (the %s node computes it inside)", unit, u.Op)
			}
			if e.inq == nil {
				e.inq = make([]InputQuantizer, len(e.units))
			}
			e.inq[i] = q
			return nil
		}
	}
	return fmt.Errorf("nn: no unit named %q", unit)
}

// ClearInputQuantizers removes every input quantizer, node input
// quantizer, node output replacement and clipping range (not the
// SetQuantizedGradient setting).
func (e *Engine) ClearInputQuantizers() { e.inq, e.nodeq, e.ste.unit = nil, nil, nil }

// locateUnitInputs fills p.unitIn: for every unit, the step running its
// node and the slot of its data input (-1, -1 when the node is not
// executed, which cannot happen for a unit reading θ).
func (p *plan) locateUnitInputs() {
	e := p.e
	p.unitIn = make([]unitInput, len(e.units))
	for i := range p.unitIn {
		p.unitIn[i] = unitInput{-1, -1}
	}
	for ui, u := range e.m.Units {
		if ui >= len(e.units) {
			break
		}
		nd := e.m.Nodes[u.Node]
		data := u.DataInput
		for _, st := range p.steps {
			if st.node == nd && data >= 0 && data < len(st.ins) && st.ins[data] >= 0 {
				p.unitIn[ui] = unitInput{st.idx, st.ins[data]}
				break
			}
		}
	}
}

// forwardQuant is forward (in mode md) with the engine's input
// quantizers and node hooks applied: each quantized input is read as a
// quantized copy, swapped into its slot for the duration of the step, and
// a replaced output is overwritten after the step's kernel ran.
func (w *work[T]) forwardQuant(md mode) {
	hooks := w.p.stepHooks()
	if hooks == nil {
		w.forward(md)
		return
	}
	w.forwardHooks(md, hooks, false)
}

// forwardHooks is forward (in mode md) with the hooks applied; with
// record, the clip mask of every quantized input is recorded first (see
// forwardGrad).
func (w *work[T]) forwardHooks(md mode, hooks map[int]*stepHook, record bool) {
	if w.qbuf == nil {
		w.qbuf = make([][][]T, len(w.p.steps))
	}
	sc := w.schedule(md)
	var orig [][]T
	for _, s := range w.p.steps {
		w.takeAt(sc, w.p.tF(s.idx))
		h, ok := hooks[s.idx]
		if !ok {
			w.ks[s.idx].Forward(&w.Work)
			w.giveAt(sc, w.p.tF(s.idx))
			continue
		}
		for len(w.qbuf[s.idx]) < len(h.slots) {
			w.qbuf[s.idx] = append(w.qbuf[s.idx], nil)
		}
		orig = orig[:0]
		for j, in := range h.slots {
			src := w.Val[in]
			orig = append(orig, src)
			if len(w.qbuf[s.idx][j]) != len(src) {
				w.qbuf[s.idx][j] = make([]T, len(src))
			}
			buf := w.qbuf[s.idx][j]
			if record {
				w.recordMask(s.idx, j, src, h.clips[j])
			}
			w.apply(func(x, _ []float64) { h.qs[j](x) }, src, buf, true)
			w.Val[in] = buf
		}
		w.ks[s.idx].Forward(&w.Work)
		if h.out != nil {
			out := w.Val[s.outs[0]]
			w.apply(h.out, w.Val[h.outIn], out, false)
		}
		for j := len(h.slots) - 1; j >= 0; j-- {
			w.Val[h.slots[j]] = orig[j]
		}
		w.giveAt(sc, w.p.tF(s.idx))
	}
}

// apply runs f on float64 views of src and dst: with inPlace, dst starts
// as a copy of src and f(dst, nil) transforms it; otherwise f(src, dst)
// writes dst. In float32 runs the values are staged in float64.
func (w *work[T]) apply(f func(x, y []float64), src, dst []T, inPlace bool) {
	if s64, ok := any(src).([]float64); ok {
		d64 := any(dst).([]float64)
		if inPlace {
			copy(d64, s64)
			f(d64, nil)
		} else {
			f(s64, d64)
		}
		return
	}
	tmp := staging(&w.qtmp, len(src))
	for i, v := range src {
		tmp[i] = float64(v)
	}
	if inPlace {
		f(tmp, nil)
		for i, v := range tmp {
			dst[i] = T(v)
		}
		return
	}
	out := staging(&w.qout, len(dst))
	f(tmp, out)
	for i, v := range out {
		dst[i] = T(v)
	}
}
