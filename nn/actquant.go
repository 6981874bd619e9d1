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
// q == nil removes it. Quantizers act in inference passes only —
// Evaluate, Logits and Intermediates — so the activations a deployed
// integer model sees can be simulated ("fake quantization", Jacob et al.,
// "Quantization and Training of Neural Networks for Efficient
// Integer-Arithmetic-Only Inference", CVPR 2018, §3). Gradient, HVP,
// BlockTrace and the Hessian operators ignore them and stay the exact
// derivatives of the float-activation model at the current θ (a rounding
// step has a zero derivative almost everywhere; the sensitivities the
// planner needs are those of the float model). Like SetWeights, it must
// not run concurrently with evaluation.
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

// ClearInputQuantizers removes every input quantizer.
func (e *Engine) ClearInputQuantizers() { e.inq = nil }

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

// forwardQuant is forward with the engine's input quantizers applied: each
// quantized unit reads a quantized copy of its data input, swapped into
// the slot for the duration of its step.
func (w *work[T]) forwardQuant() {
	hooks := w.p.e.inq
	if hooks == nil {
		w.forward()
		return
	}
	at := make(map[int]int, len(hooks)) // step → unit
	for u, q := range hooks {
		if q != nil && w.p.unitIn[u].step >= 0 {
			at[w.p.unitIn[u].step] = u
		}
	}
	if w.qbuf == nil {
		w.qbuf = make([][]T, len(w.p.steps))
	}
	for _, s := range w.p.steps {
		u, ok := at[s.idx]
		if !ok {
			w.ks[s.idx].Forward(&w.Work)
			continue
		}
		in := w.p.unitIn[u].slot
		orig := w.Val[in]
		if len(w.qbuf[s.idx]) != len(orig) {
			w.qbuf[s.idx] = make([]T, len(orig))
		}
		buf := w.qbuf[s.idx]
		if f, ok := any(buf).([]float64); ok {
			copy(f, any(orig).([]float64))
			hooks[u](f)
		} else { // the quantizer works in float64
			tmp := staging(&w.qtmp, len(orig))
			for i, v := range orig {
				tmp[i] = float64(v)
			}
			hooks[u](tmp)
			for i, v := range tmp {
				buf[i] = T(v)
			}
		}
		w.Val[in] = buf
		w.ks[s.idx].Forward(&w.Work)
		w.Val[in] = orig
	}
}
