package nn

import (
	"fmt"
	"math"

	"github.com/bitplan/bitplan/op"
)

// Straight-through gradients of fake-quantized activations.
//
// With SetQuantizedGradient(true), Gradient (and so everything built on
// it: prune.FineTune) differentiates the model as inference runs it: the
// forward pass reads every quantized input as Q_A(a), and the backward
// pass treats each quantizer by the clipped straight-through estimator of
// PACT (Choi et al., arXiv:1805.06085, eq. 2–3) and LSQ (Esser et al.,
// arXiv:1902.08153, eq. 5 for the activation): with [lo, hi] the
// quantizer's clipping range (SetInputClip),
//
//	forward:   the consumer reads â = Q_A(a)
//	backward:  ∂L/∂a_i = ∂L/∂â_i  when lo ≤ a_i ≤ hi,  0 outside
//
// so the consumer's weight gradient is taken at the quantized activation
// (∂L/∂W = ȳ ⊗ â) and its input gradient passes through the rounding
// unchanged but is cut where the quantizer saturates (a_i < lo or
// a_i > hi). The clipping range itself is not learned (PACT's α and
// LSQ's step are: here the range stays that of calibration). A quantizer
// with no clipping range passes every gradient (the plain STE of Bengio et
// al., arXiv:1308.3432). An output replacement (SetNodeOutput) is applied
// in the forward pass as well, and the node's own derivative rule is used
// through it. Hessian-vector products, BlockTrace, the Hessian operators
// and InputHVP ignore the quantizers whatever the mode.

// steConfig is the engine's straight-through setting: whether gradient
// passes apply the input quantizers, and the clipping range of every
// unit's input quantizer (nil: none set).
type steConfig struct {
	on   bool
	unit []clipRange
}

// clipRange is a quantizer's clipping range [lo, hi]; the zero value of a
// missing range is replaced by (−∞, +∞) where it is read.
type clipRange struct{ lo, hi float64 }

var noClip = clipRange{math.Inf(-1), math.Inf(1)}

// SetQuantizedGradient sets whether Gradient applies the engine's input
// quantizers and node output replacements (off by default): on, the
// gradient is the straight-through one described above, taken through
// the fake-quantized model that Evaluate scores; off, Gradient is the
// exact derivative of the float-activation model whatever the
// quantizers. It must not run concurrently with evaluation.
func (e *Engine) SetQuantizedGradient(on bool) { e.ste.on = on }

// QuantizedGradient reports the setting of SetQuantizedGradient.
func (e *Engine) QuantizedGradient() bool { return e.ste.on }

// SetInputClip sets the clipping range [lo, hi] of the named unit's input
// quantizer: in a quantized gradient pass (SetQuantizedGradient) the
// gradient of an input element outside it is zero. Without a range every
// gradient passes. ClearInputQuantizers removes it.
func (e *Engine) SetInputClip(unit string, lo, hi float64) error {
	c, err := newClip(lo, hi)
	if err != nil {
		return fmt.Errorf("nn: unit %q: %w", unit, err)
	}
	for i, u := range e.units {
		if u.Name == unit {
			if e.ste.unit == nil {
				e.ste.unit = make([]clipRange, len(e.units))
				for j := range e.ste.unit {
					e.ste.unit[j] = noClip
				}
			}
			e.ste.unit[i] = c
			return nil
		}
	}
	return fmt.Errorf("nn: no unit named %q", unit)
}

// SetNodeInputClip sets the clipping range [lo, hi] of the quantizer of
// input number input of the named node (SetNodeInputQuantizer), as
// SetInputClip does for a unit's.
func (e *Engine) SetNodeInputClip(node string, input int, lo, hi float64) error {
	c, err := newClip(lo, hi)
	if err != nil {
		return fmt.Errorf("nn: node %q: %w", node, err)
	}
	i, err := e.nodeIndex(node)
	if err != nil {
		return err
	}
	if n := e.m.Nodes[i]; input < 0 || input >= len(n.Inputs) || n.Inputs[input] == "" {
		return fmt.Errorf("nn: %s has no input %d", n.Label(), input)
	}
	h := e.hook(i, true)
	if h.clips == nil {
		h.clips = map[int]clipRange{}
	}
	h.clips[input] = c
	return nil
}

func newClip(lo, hi float64) (clipRange, error) {
	if math.IsNaN(lo) || math.IsNaN(hi) || lo > hi {
		return clipRange{}, fmt.Errorf("clipping range [%g, %g] is not an interval", lo, hi)
	}
	return clipRange{lo, hi}, nil
}

// steWork is a work's state of a quantized gradient pass: the hooks the
// forward pass applied (the backward pass must see the same), and per
// step and hooked slot the clip mask of the quantized element and the
// adjoint the kernel accumulates into in place of the input's.
type steWork[T op.Real] struct {
	hooks map[int]*stepHook
	mask  [][][]bool
	adj   [][][]T
}

// forwardGrad is the forward pass of a gradient pass: plain, or with the
// hooks and their clip masks recorded when the engine's gradient is
// quantized.
func (w *work[T]) forwardGrad() {
	w.ste.hooks = nil
	if w.p.e.ste.on {
		w.ste.hooks = w.p.stepHooks()
	}
	if w.ste.hooks == nil {
		w.forward(modeGrad)
		return
	}
	if w.ste.mask == nil {
		w.ste.mask = make([][][]bool, len(w.p.steps))
		w.ste.adj = make([][][]T, len(w.p.steps))
	}
	w.forwardHooks(modeGrad, w.ste.hooks, true)
}

// recordMask stores, for hooked slot j of step s, which elements of src
// lie in the quantizer's clipping range.
func (w *work[T]) recordMask(s, j int, src []T, c clipRange) {
	for len(w.ste.mask[s]) <= j {
		w.ste.mask[s] = append(w.ste.mask[s], nil)
	}
	m := w.ste.mask[s][j]
	if len(m) != len(src) {
		m = make([]bool, len(src))
		w.ste.mask[s][j] = m
	}
	for i, v := range src {
		f := float64(v)
		m[i] = f >= c.lo && f <= c.hi // NaN: outside
	}
}

// backwardGrad is the backward pass of a gradient pass (backward, whose
// steps run stepBackward); it ends the quantized pass.
func (w *work[T]) backwardGrad() {
	w.backward(modeGrad)
	w.ste.hooks = nil
}

// stepBackward runs step i's backward pass. At a step hooked by a
// quantized gradient pass the kernel reads the quantized copies its
// forward read and accumulates its input adjoints into private buffers,
// which are added to the inputs' adjoints through the clip masks (every
// mask of a slot quantized in turn by several quantizers).
func (w *work[T]) stepBackward(i int) {
	h := w.ste.hooks[i]
	if h == nil {
		w.ks[i].Backward(&w.Work)
		return
	}
	origV := make([][]T, 0, len(h.slots))
	origA := make([][]T, 0, len(h.slots))
	for j, in := range h.slots {
		origV = append(origV, w.Val[in])
		w.Val[in] = w.qbuf[i][j]
	}
	for len(w.ste.adj[i]) < len(h.slots) {
		w.ste.adj[i] = append(w.ste.adj[i], nil)
	}
	for j, in := range h.slots {
		a := w.Adj[in]
		origA = append(origA, a)
		if a == nil || firstOf(h.slots, j) != j {
			continue
		}
		if len(w.ste.adj[i][j]) != len(a) {
			w.ste.adj[i][j] = make([]T, len(a))
		}
		tmp := w.ste.adj[i][j]
		clear(tmp)
		w.Adj[in] = tmp
	}
	w.ks[i].Backward(&w.Work)
	for j, in := range h.slots {
		a := origA[j]
		if a == nil || firstOf(h.slots, j) != j {
			continue
		}
		for k, g := range w.ste.adj[i][j] {
			pass := true
			for jj := j; jj < len(h.slots); jj++ {
				if h.slots[jj] == in && !w.ste.mask[i][jj][k] {
					pass = false
					break
				}
			}
			if pass {
				a[k] += g
			}
		}
		w.Adj[in] = a
	}
	for j := len(h.slots) - 1; j >= 0; j-- {
		w.Val[h.slots[j]] = origV[j]
	}
}

// firstOf returns the first index of slots holding slots[j].
func firstOf(slots []int, j int) int {
	for k := 0; k < j; k++ {
		if slots[k] == slots[j] {
			return k
		}
	}
	return j
}
