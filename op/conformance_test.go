package op

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Tolerances of the conformance checks. Central differences with step
// fdStep have truncation error O(h²·f‴) ≈ 1e-10 and rounding error
// O(ε/h) ≈ 1e-11 on values of order one; fdTol leaves a margin of 100.
const (
	fdStep = 1e-5
	fdTol  = 1e-6
	// symTol bounds |uᵀHv − vᵀHu| relative to the terms' size: both sides
	// are exact products, so only rounding separates them.
	symTol = 1e-9
)

// TestConformance runs every registered operator on its own cases: shape
// inference against the case's expected shape, and for executable
// differentiable operators the gradient against central differences of the
// loss, H·v against central differences of the gradient, and the symmetry
// uᵀHv = vᵀHu. An operator without cases fails.
func TestConformance(t *testing.T) {
	defs := Defs()
	for _, err := range checkRegistry(defs) {
		t.Error(err)
	}
	t.Logf("%d operators checked", len(defs))
}

// TestConformanceCatchesWrongRules shows that the checks fail on broken
// rules: a wrong f′, a wrong f″, a wrong transpose and a missing case.
func TestConformanceCatchesWrongRules(t *testing.T) {
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	right := func(_, y float64) float64 { return y * (1 - y) }
	wrong := func(_, y float64) float64 { return y * (1 - y) * 1.01 }
	d2 := func(_, y float64) float64 { return y * (1 - y) * (1 - 2*y) }
	cases := unaryCase(-2, 2)
	broken := []struct {
		d    *Def
		want string
	}{
		{&Def{Type: "BadD1", Infer: InferSame, Class: Elementwise, Cases: cases,
			Exec: Unary(fixed(UnaryFns{F: sig, D1: wrong, D2: d2}))}, "gradient"},
		{&Def{Type: "BadD2", Infer: InferSame, Class: Elementwise, Cases: cases,
			Exec: Unary(fixed(UnaryFns{F: sig, D1: right}))}, "H·v"},
		{&Def{Type: "BadTranspose", Infer: InferSame, Class: Linear, Cases: cases,
			Exec: Both(func(b *Build) (Kernel[float64], error) {
				return LinearKernel[float64](badScale{}, b.In[:1], b.Out[0]), nil
			}, nil)}, "gradient"},
		{&Def{Type: "NoCases", Infer: InferSame, Class: Elementwise,
			Exec: Unary(fixed(UnaryFns{F: sig, D1: right, D2: d2}))}, "no conformance cases"},
		{&Def{Type: "TwoImpls", Infer: InferSame, Class: Elementwise, Cases: cases, Fold: true,
			Eval: func(*Node, []*Tensor, []*Tensor) error { return nil }, Exec: Unary(fixed(UnaryFns{F: sig, D1: right, D2: d2}))}, "one implementation"},
		{&Def{Type: "EvalNoFold", Infer: InferSame, Cases: cases,
			Eval: func(*Node, []*Tensor, []*Tensor) error { return nil }}, "without Fold"},
		{&Def{Type: "BadShape", Infer: InferSame, Cases: []Case{{Name: "c", Inputs: []CaseInput{{Shape: []int{2}}}, Want: []int{3}}}}, "shape"},
	}
	for _, b := range broken {
		errs := checkRegistry([]*Def{b.d})
		if len(errs) == 0 {
			t.Errorf("%s: the conformance check passed a broken rule", b.d.Type)
			continue
		}
		if !strings.Contains(errs[0].Error(), b.want) {
			t.Errorf("%s: %v, want an error about %s", b.d.Type, errs[0], b.want)
		}
	}
	// The correct rule passes.
	good := &Def{Type: "Good", Infer: InferSame, Class: Elementwise, Cases: cases, Exec: Unary(fixed(UnaryFns{F: sig, D1: right, D2: d2}))}
	if errs := checkRegistry([]*Def{good}); len(errs) > 0 {
		t.Errorf("a correct rule fails: %v", errs)
	}
}

// badScale is y = 2x with the transpose 3x.
type badScale struct{}

func (badScale) Apply(dst []float64, src [][]float64) {
	for i := range dst {
		if src[0] == nil {
			dst[i] = 0
		} else {
			dst[i] = 2 * src[0][i]
		}
	}
}

func (badScale) Transpose(dst [][]float64, src []float64) {
	if dst[0] != nil {
		for i, v := range src {
			dst[0][i] += 3 * v
		}
	}
}

func checkRegistry(defs []*Def) []error {
	var errs []error
	for _, d := range defs {
		if len(d.Cases) == 0 {
			errs = append(errs, fmt.Errorf("%s: no conformance cases (every registered operator needs at least one)", d.Type))
			continue
		}
		if d.Infer == nil {
			errs = append(errs, fmt.Errorf("%s: no shape inference", d.Type))
		}
		switch {
		case d.Eval != nil && d.Exec != nil:
			errs = append(errs, fmt.Errorf("%s: both a kernel and an Eval (constants are folded by the kernel: one implementation)", d.Type))
		case d.Fold && d.Exec != nil:
			errs = append(errs, fmt.Errorf("%s: Fold (constants only) set on an operator with a kernel", d.Type))
		case d.Eval != nil && !d.Fold:
			errs = append(errs, fmt.Errorf("%s: an Eval without Fold: the engine would call it unsupported rather than constants-only", d.Type))
		}
		derived := 0
		for i, c := range d.Cases {
			checked, err := checkCase(d, c, uint64(i))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s case %q: %w", d.Type, c.Name, err))
			}
			if checked {
				derived++
			}
		}
		if d.Exec != nil && d.Class != NotDifferentiable && derived == 0 {
			errs = append(errs, fmt.Errorf("%s: no case has a differentiable input, so its derivative rules are never checked", d.Type))
		}
	}
	return errs
}

// testSlots is a plan of one node: inputs first, then outputs.
type testSlots struct {
	shapes [][]int
	consts [][]float64
	names  []string
}

func (s *testSlots) Shape(i int) []int { return s.shapes[i] }
func (s *testSlots) Const(i int) ([]float64, bool) {
	return s.consts[i], s.consts[i] != nil
}
func (s *testSlots) Name(i int) string { return s.names[i] }

// harness runs one kernel with the loss L = Σ c⊙y + ½ Σ y² on output 0,
// whose adjoint is ȳ = c + y and whose Hessian in y is the identity.
type harness[T Real] struct {
	k     Kernel[T]
	ns    int
	vars  []int // differentiable input slots
	y     int
	size  []int
	val   [][]float64
	c     []float64
	state any
}

func (h *harness[T]) work() *Work[T] {
	w := &Work[T]{Val: make([][]T, h.ns), RV: make([][]T, h.ns), Adj: make([][]T, h.ns),
		RAdj: make([][]T, h.ns), State: []any{h.state}}
	for i := range w.Val {
		w.Val[i] = slices.Clone(Convert[T](h.val[i]))
		if w.Val[i] == nil {
			w.Val[i] = make([]T, h.size[i])
		}
	}
	return w
}

// loss returns L at the variables x (concatenated).
func (h *harness[T]) loss(x []float64) float64 {
	w := h.work()
	h.set(w.Val, x)
	h.k.Forward(w)
	l := 0.0
	for i, y := range w.Val[h.y] {
		l += h.c[i]*float64(y) + float64(y)*float64(y)/2
	}
	return l
}

func (h *harness[T]) set(b [][]T, x []float64) {
	off := 0
	for _, s := range h.vars {
		for i, v := range x[off : off+h.size[s]] {
			b[s][i] = T(v)
		}
		off += h.size[s]
	}
}

func (h *harness[T]) get(b [][]T) []float64 {
	var x []float64
	for _, s := range h.vars {
		for _, v := range b[s] {
			x = append(x, float64(v))
		}
	}
	return x
}

// grad returns ∇L at x and, when v is non-nil, H·v, by the kernel's passes
// in the order the engine runs them.
func (h *harness[T]) grad(x, v []float64) (g, hv []float64) {
	w := h.work()
	h.set(w.Val, x)
	h.k.Forward(w)
	for _, s := range h.vars {
		w.Adj[s] = make([]T, h.size[s])
	}
	w.Adj[h.y] = make([]T, h.size[h.y])
	for i, y := range w.Val[h.y] {
		w.Adj[h.y][i] = T(h.c[i]) + y
	}
	h.k.Backward(w)
	g = h.get(w.Adj)
	if v == nil {
		return g, nil
	}
	for _, s := range h.vars {
		w.RV[s] = make([]T, h.size[s])
		w.RAdj[s] = make([]T, h.size[s])
	}
	h.set(w.RV, v)
	w.RV[h.y] = make([]T, h.size[h.y])
	h.k.RForward(w)
	w.RAdj[h.y] = slices.Clone(w.RV[h.y])
	h.k.RBackward(w)
	return g, h.get(w.RAdj)
}

func close(a, b float64) bool {
	return math.Abs(a-b) <= fdTol*max(1, math.Abs(a), math.Abs(b))
}

// checkCase runs one case; checked reports that derivatives were checked.
func checkCase(d *Def, c Case, seed uint64) (checked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			checked, err = false, fmt.Errorf("panic: %v", r)
		}
	}()
	h, b, rng, err := buildCase(d, c, seed)
	if err != nil || h == nil {
		return false, err
	}
	k, err := NewKernel[float64](d.Exec, b)
	if err != nil {
		return false, fmt.Errorf("building the kernel: %v", err)
	}
	h.k = k
	if st, ok := k.(Stateful); ok {
		h.state = st.NewState()
	}
	return checkDerivatives(d, h, rng)
}

// buildCase checks shape inference of case c and, for an executable
// operator, returns the float64 harness (without its kernel), the kernel's
// Build and the case's random source; h is nil for an operator the engine
// does not execute.
func buildCase(d *Def, c Case, seed uint64) (h *harness[float64], b *Build, rng *rand.Rand, err error) {
	rng = rand.New(rand.NewPCG(seed+1, uint64(len(d.Type))))
	opset := c.Opset
	if opset == 0 {
		opset = 17
	}
	nd := &Node{Op: d.Type, Name: "n", Attrs: map[string]*Attr{}}
	for _, a := range c.Attrs {
		nd.Attrs[a.Name] = a
	}
	s := &Shapes{Dims: map[string][]int{}, Types: map[string]DataType{}, Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
	nout := max(c.Outputs, 1)
	for j := 0; j < nout; j++ {
		nd.Outputs = append(nd.Outputs, fmt.Sprintf("y%d", j))
	}
	for i, in := range c.Inputs {
		name := fmt.Sprintf("x%d", i)
		if in.Absent {
			name = ""
		}
		nd.Inputs = append(nd.Inputs, name)
		if in.Absent {
			continue
		}
		s.Dims[name] = in.Shape
		s.Types[name] = Float
		if in.Ints != nil {
			s.Types[name] = Int64
			if !in.Data {
				s.Ints[name] = in.Ints
				s.Values[name] = &Tensor{Name: name, Type: Int64, Shape: in.Shape, Int: in.Ints}
			}
		}
		if in.Const != nil {
			s.Values[name] = &Tensor{Name: name, Type: Float, Shape: in.Shape, Float: in.Const}
		}
	}
	if d.Infer != nil {
		if err := d.Infer(nd, s); err != nil {
			return nil, nil, nil, fmt.Errorf("shape inference: %v", err)
		}
	}
	if c.Want != nil && !slices.Equal(s.Dims["y0"], c.Want) {
		return nil, nil, nil, fmt.Errorf("inferred shape %v, want %v", s.Dims["y0"], c.Want)
	}
	if d.Exec == nil {
		return nil, nil, nil, nil
	}
	// Slots: inputs, then outputs.
	ts := &testSlots{}
	h = &harness[float64]{}
	b = &Build{Node: nd, Opset: opset, Slots: ts}
	for i, in := range c.Inputs {
		if in.Absent {
			b.In = append(b.In, -1)
			continue
		}
		slot := len(ts.shapes)
		b.In = append(b.In, slot)
		ts.shapes = append(ts.shapes, in.Shape)
		ts.names = append(ts.names, nd.Inputs[i])
		var val []float64
		switch {
		case in.Const != nil:
			val = in.Const
		case in.Ints != nil:
			for _, v := range in.Ints {
				val = append(val, float64(v))
			}
		}
		if in.Data {
			ts.consts = append(ts.consts, nil)
		} else {
			ts.consts = append(ts.consts, val)
		}
		if val == nil {
			lo, hi := in.Lo, in.Hi
			if lo == 0 && hi == 0 {
				lo, hi = -1, 1
			}
			val = make([]float64, Numel(in.Shape))
			for k := range val {
				val[k] = lo + (hi-lo)*rng.Float64()
			}
			h.vars = append(h.vars, slot)
		}
		h.val = append(h.val, val)
		h.size = append(h.size, Numel(in.Shape))
	}
	for j, o := range nd.Outputs {
		sh, ok := s.Dims[o]
		if !ok {
			if j == 0 {
				return nil, nil, nil, fmt.Errorf("shape of output 0 not inferred")
			}
			b.Out = append(b.Out, -1)
			continue
		}
		b.Out = append(b.Out, len(ts.shapes))
		ts.shapes = append(ts.shapes, sh)
		ts.consts = append(ts.consts, nil)
		ts.names = append(ts.names, o)
		h.val = append(h.val, nil)
		h.size = append(h.size, Numel(sh))
	}
	h.ns, h.y = len(ts.shapes), b.Out[0]
	return h, b, rng, nil
}

// checkDerivatives checks the kernel of h: a finite forward pass, and for
// a differentiable operator the gradient, H·v and symmetry of the Hessian.
func checkDerivatives(d *Def, h *harness[float64], rng *rand.Rand) (bool, error) {
	w := h.work()
	h.k.Forward(w)
	for _, v := range w.Val[h.y] {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false, fmt.Errorf("forward value %v", v)
		}
	}
	if d.Class == NotDifferentiable || len(h.vars) == 0 {
		return false, nil
	}
	h.c = make([]float64, h.size[h.y])
	for i := range h.c {
		h.c[i] = rng.NormFloat64()
	}
	x := h.get(h.val)
	g, _ := h.grad(x, nil)
	for i := range x {
		xp, xm := slices.Clone(x), slices.Clone(x)
		xp[i] += fdStep
		xm[i] -= fdStep
		fd := (h.loss(xp) - h.loss(xm)) / (2 * fdStep)
		if !close(g[i], fd) {
			return false, fmt.Errorf("gradient component %d is %.10g, central differences give %.10g", i, g[i], fd)
		}
	}
	u, v := make([]float64, len(x)), make([]float64, len(x))
	for i := range u {
		u[i], v[i] = rng.NormFloat64(), rng.NormFloat64()
	}
	_, hv := h.grad(x, v)
	_, hu := h.grad(x, u)
	xp, xm := slices.Clone(x), slices.Clone(x)
	for i := range x {
		xp[i] += fdStep * v[i]
		xm[i] -= fdStep * v[i]
	}
	gp, _ := h.grad(xp, nil)
	gm, _ := h.grad(xm, nil)
	for i := range x {
		fd := (gp[i] - gm[i]) / (2 * fdStep)
		if !close(hv[i], fd) {
			return false, fmt.Errorf("H·v component %d is %.10g, central differences of the gradient give %.10g", i, hv[i], fd)
		}
	}
	uhv, vhu, scale := 0.0, 0.0, 0.0
	for i := range x {
		uhv += u[i] * hv[i]
		vhu += v[i] * hu[i]
		scale += math.Abs(u[i]*hv[i]) + math.Abs(v[i]*hu[i])
	}
	if math.Abs(uhv-vhu) > symTol*max(1, scale) {
		return false, fmt.Errorf("uᵀHv = %.12g but vᵀHu = %.12g", uhv, vhu)
	}
	return true, nil
}
