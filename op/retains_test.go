package op

import (
	"fmt"
	"math"
	"testing"
)

// TestRetainsDeclared checks every executable operator's Retains
// declaration against its kernel: on every conformance case the gradient
// and H·v are computed twice in the engine's pass order (forward,
// backward, R-forward, R-backward), once normally and once with every
// buffer the kernel does not declare overwritten by NaN as soon as the
// engine may recycle it: undeclared values after the forward pass,
// undeclared adjoints of the outputs after the backward pass, undeclared
// R-values after the R-forward pass. The two must be equal.
func TestRetainsDeclared(t *testing.T) {
	checked := 0
	for _, d := range Defs() {
		if d.Exec == nil || d.Class == NotDifferentiable {
			continue
		}
		for i, c := range d.Cases {
			ok, err := checkRetains(d, c, uint64(i))
			if err != nil {
				t.Errorf("%s case %q: %v", d.Type, c.Name, err)
			}
			if ok {
				checked++
			}
		}
	}
	t.Logf("%d cases checked", checked)
}

// TestRetainsCatchesUndeclared shows that the check fails for a kernel
// that reads a value it does not declare: the unary kernel with an empty
// declaration.
func TestRetainsCatchesUndeclared(t *testing.T) {
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	d := &Def{Type: "Undeclared", Infer: InferSame, Class: Elementwise, Cases: unaryCase(-2, 2),
		Exec: Both(func(b *Build) (Kernel[float64], error) {
			k, err := newUnary[float64](fixed(UnaryFns{F: sig, D1: func(_, y float64) float64 { return y * (1 - y) }}))(b)
			return lies[float64]{k}, err
		}, nil)}
	if _, err := checkRetains(d, d.Cases[0], 0); err == nil {
		t.Error("a kernel reading an undeclared value passed the check")
	}
}

// lies wraps a kernel with a declaration that it reads nothing.
type lies[T Real] struct{ Kernel[T] }

func (lies[T]) Retains() Retains { return Retains{} }

func checkRetains(d *Def, c Case, seed uint64) (checked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			checked, err = false, fmt.Errorf("panic: %v", r)
		}
	}()
	h, b, rng, err := buildCase(d, c, seed)
	if err != nil || h == nil || len(h.vars) == 0 {
		return false, err
	}
	k, err := NewKernel[float64](d.Exec, b)
	if err != nil {
		return false, err
	}
	h.k = k
	h.c = make([]float64, h.size[h.y])
	for i := range h.c {
		h.c[i] = rng.NormFloat64()
	}
	x := h.get(h.val)
	v := make([]float64, len(x))
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	run := func(r *Retains) (g, hv []float64) {
		if st, ok := k.(Stateful); ok {
			h.state = st.NewState()
		}
		w := h.work()
		h.set(w.Val, x)
		k.Forward(w)
		var ins []int // non-constant inputs
		for _, s := range b.In {
			if s < 0 {
				continue
			}
			if _, isConst := b.Const(s); !isConst {
				ins = append(ins, s)
			}
		}
		var outs []int
		for _, o := range b.Out {
			if o >= 0 {
				outs = append(outs, o)
			}
		}
		for _, s := range h.vars {
			w.Adj[s] = make([]float64, h.size[s])
		}
		for _, o := range outs {
			w.Adj[o] = make([]float64, h.size[o])
		}
		for i, y := range w.Val[h.y] {
			w.Adj[h.y][i] = h.c[i] + y
		}
		if r != nil {
			poison(w.Val, ins, !r.InVal)
			poison(w.Val, outs, !r.OutVal)
		}
		k.Backward(w)
		g = h.get(w.Adj)
		if r != nil {
			poison(w.Adj, outs, !r.OutAdj)
		}
		for _, s := range h.vars {
			w.RV[s] = make([]float64, h.size[s])
			w.RAdj[s] = make([]float64, h.size[s])
		}
		h.set(w.RV, v)
		for _, o := range outs {
			w.RV[o] = make([]float64, h.size[o])
			w.RAdj[o] = make([]float64, h.size[o])
		}
		k.RForward(w)
		copy(w.RAdj[h.y], w.RV[h.y])
		if r != nil {
			poison(w.RV, ins, !r.InRV)
			poison(w.RV, outs, !r.OutRV)
		}
		k.RBackward(w)
		return g, h.get(w.RAdj)
	}
	g0, hv0 := run(nil)
	r, _ := RetainsOf(k)
	g1, hv1 := run(&r)
	for i := range g0 {
		if g0[i] != g1[i] {
			return false, fmt.Errorf("gradient component %d is %v with the undeclared buffers poisoned, %v without (declared %+v)", i, g1[i], g0[i], r)
		}
	}
	for i := range hv0 {
		if hv0[i] != hv1[i] {
			return false, fmt.Errorf("H·v component %d is %v with the undeclared buffers poisoned, %v without (declared %+v)", i, hv1[i], hv0[i], r)
		}
	}
	return true, nil
}

// poison overwrites the listed buffers with NaN when on.
func poison(b [][]float64, slots []int, on bool) {
	if !on {
		return
	}
	for _, s := range slots {
		for i := range b[s] {
			b[s][i] = math.NaN()
		}
	}
}
