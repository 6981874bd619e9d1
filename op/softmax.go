package op

import (
	"fmt"
	"math"
)

// softmax implements Softmax and LogSoftmax along one axis (opset ≥ 13) or
// over the trailing dimensions from axis on (opset < 13, "coerced to 2-D").
// With p = softmax(x):
//
//	Softmax:    R{p} = p ⊙ (R{x} − ⟨p, R{x}⟩),  x̄ += p ⊙ (ȳ − ⟨p, ȳ⟩)
//	            R{x̄} += R{p} ⊙ (ȳ − ⟨p, ȳ⟩) + p ⊙ (R{ȳ} − ⟨R{p}, ȳ⟩ − ⟨p, R{ȳ}⟩)
//	LogSoftmax: R{y} = R{x} − ⟨p, R{x}⟩,  x̄ += ȳ − p Σȳ
//	            R{x̄} += R{ȳ} − R{p} Σȳ − p ΣR{ȳ},  R{p} = p ⊙ R{y}
//
// Class Custom: written over Exp, ReduceSum and Div the composite would
// hold three intermediate tensors and make four passes per direction; the
// closed forms above make one and keep only p and R{p} (in the kernel's
// state for LogSoftmax; Softmax's are its output's value and R-value).
type softmax[T Real] struct {
	log                 bool
	x, y                int
	outer, length, step int
	sidx                int
}

type softmaxState[T Real] struct{ p, rp []T }

func init() {
	cases := []Case{
		{Name: "last axis", Inputs: []CaseInput{{Shape: []int{2, 3}, Lo: -2, Hi: 2}}, Want: []int{2, 3}},
		{Name: "axis 1 of 3", Inputs: []CaseInput{{Shape: []int{2, 3, 2}, Lo: -2, Hi: 2}}, Attrs: []*Attr{{Name: "axis", Type: AttrInt, Int: 1}}, Want: []int{2, 3, 2}},
		{Name: "opset 11 coerced", Opset: 11, Inputs: []CaseInput{{Shape: []int{2, 2, 2}, Lo: -2, Hi: 2}}, Want: []int{2, 2, 2}},
	}
	for _, typ := range []string{"Softmax", "LogSoftmax"} {
		Register(&Def{Type: typ, Infer: InferSame, Exec: Both(newSoftmax[float64], newSoftmax[float32]), Class: Custom, Cases: cases})
	}
	// Operators whose output has the input's shape and that the engine
	// does not run yet.
	for _, typ := range []string{"LRN", "Hardmax"} {
		Register(&Def{Type: typ, Infer: InferSame, Cases: []Case{{Name: "2x3x2", Inputs: []CaseInput{{Shape: []int{2, 3, 2}}}, Want: []int{2, 3, 2}}}})
	}
}

func newSoftmax[T Real](b *Build) (Kernel[T], error) {
	n, in, out := b.Node, b.In, b.Out
	xs := b.Shape(in[0])
	def := int64(-1)
	if b.Opset > 0 && b.Opset < 13 {
		def = 1
	}
	a, err := n.AttrInt("axis", def)
	if err != nil {
		return nil, err
	}
	r := int64(len(xs))
	if a < 0 {
		a += r
	}
	if a < 0 || a >= r {
		return nil, fmt.Errorf("axis %d out of range for shape %v", a, xs)
	}
	k := &softmax[T]{log: n.Op == "LogSoftmax", x: in[0], y: out[0], sidx: b.State}
	if b.Opset > 0 && b.Opset < 13 {
		k.outer, k.length, k.step = Numel(xs[:a]), Numel(xs[a:]), 1
	} else {
		k.outer, k.length, k.step = Numel(xs[:a]), xs[a], Numel(xs[a+1:])
	}
	return k, nil
}

func (k *softmax[T]) StateBytes() int64 {
	if !k.log {
		return 0
	}
	return 2 * SizeOf[T]() * int64(k.outer*k.length*k.step)
}

func (k *softmax[T]) NewState() any {
	if !k.log {
		return nil
	}
	n := k.outer * k.length * k.step
	return &softmaxState[T]{p: make([]T, n), rp: make([]T, n)}
}

// probs returns p and R{p}: the state's for LogSoftmax, the output's value
// and R-value for Softmax.
func (k *softmax[T]) probs(w *Work[T]) (p, rp []T) {
	if !k.log {
		return w.Val[k.y], w.RV[k.y]
	}
	st := w.State[k.sidx].(*softmaxState[T])
	return st.p, st.rp
}

// each calls f with the index of the first element and the stride of every
// softmax group.
func (k *softmax[T]) each(f func(base, stride int)) {
	for o := 0; o < k.outer; o++ {
		for in := 0; in < k.step; in++ {
			f(o*k.length*k.step+in, k.step)
		}
	}
}

func (k *softmax[T]) Forward(w *Work[T]) {
	x, y := w.Val[k.x], w.Val[k.y]
	p, _ := k.probs(w)
	k.each(func(b, s int) {
		m := math.Inf(-1)
		for j := 0; j < k.length; j++ {
			m = max(m, float64(x[b+j*s]))
		}
		sum := 0.0
		for j := 0; j < k.length; j++ {
			e := math.Exp(float64(x[b+j*s]) - m)
			p[b+j*s] = T(e)
			sum += e
		}
		lse := m + math.Log(sum)
		for j := 0; j < k.length; j++ {
			i := b + j*s
			p[i] = T(float64(p[i]) / sum)
			if k.log {
				y[i] = T(float64(x[i]) - lse)
			} else {
				y[i] = p[i]
			}
		}
	})
}

func (k *softmax[T]) RForward(w *Work[T]) {
	rx, ry := w.RV[k.x], w.RV[k.y]
	if ry == nil {
		return
	}
	p, rp := k.probs(w)
	if rx == nil {
		clear(ry)
		clear(rp)
		return
	}
	k.each(func(b, s int) {
		var dot T
		for j := 0; j < k.length; j++ {
			dot += p[b+j*s] * rx[b+j*s]
		}
		for j := 0; j < k.length; j++ {
			i := b + j*s
			t := rx[i] - dot
			rp[i] = p[i] * t
			if k.log {
				ry[i] = t
			} else {
				ry[i] = rp[i]
			}
		}
	})
}

func (k *softmax[T]) Backward(w *Work[T]) {
	dx, dy := w.Adj[k.x], w.Adj[k.y]
	if dx == nil || dy == nil {
		return
	}
	p, _ := k.probs(w)
	k.each(func(b, s int) {
		var red T
		for j := 0; j < k.length; j++ {
			i := b + j*s
			if k.log {
				red += dy[i]
			} else {
				red += p[i] * dy[i]
			}
		}
		for j := 0; j < k.length; j++ {
			i := b + j*s
			if k.log {
				dx[i] += dy[i] - p[i]*red
			} else {
				dx[i] += p[i] * (dy[i] - red)
			}
		}
	})
}

func (k *softmax[T]) RBackward(w *Work[T]) {
	rdx, rdy, dy := w.RAdj[k.x], w.RAdj[k.y], w.Adj[k.y]
	if rdx == nil || rdy == nil {
		return
	}
	p, rp := k.probs(w)
	hasR := w.RV[k.x] != nil
	k.each(func(b, s int) {
		var sdy, srdy, pdy, prdy, rpdy T
		for j := 0; j < k.length; j++ {
			i := b + j*s
			sdy += dy[i]
			srdy += rdy[i]
			pdy += p[i] * dy[i]
			prdy += p[i] * rdy[i]
			if hasR {
				rpdy += rp[i] * dy[i]
			}
		}
		for j := 0; j < k.length; j++ {
			i := b + j*s
			var r T
			if k.log {
				r = rdy[i] - p[i]*srdy
				if hasR {
					r -= rp[i] * sdy
				}
			} else {
				r = p[i] * (rdy[i] - rpdy - prdy)
				if hasR {
					r += rp[i] * (dy[i] - pdy)
				}
			}
			rdx[i] += r
		}
	})
}

// Retains: the passes read the probabilities p and R{p} — Softmax's
// output value and R-value, LogSoftmax's state — and R-backward ȳ.
func (k *softmax[T]) Retains() Retains {
	return Retains{OutVal: !k.log, OutRV: !k.log, OutAdj: true}
}
