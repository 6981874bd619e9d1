package op

// Kernels derived from an operator's class. An operator of one of these
// classes gives only its defining functions; the four passes (forward,
// R-forward, backward, R-backward) follow here once for all of them, in
// the manner of JAX's primitives (a JVP rule and, for linear maps, a
// transpose rule; the Hessian-vector product is forward-over-reverse).
// The defining functions are written in float64; kernels of either
// precision call them on converted elements.

// UnaryFns defines an elementwise operator y = f(x) by f, f′ and f″. Each
// function receives x and, for f′ and f″, also y = f(x) (cheaper for
// Sigmoid and Tanh). D2 nil means f″ = 0 (piecewise-linear operators).
type UnaryFns struct {
	F      func(x float64) float64
	D1, D2 func(x, y float64) float64
	// Args says which of x and y D1 and D2 read (default both): the
	// kernel then keeps only that value for the derivative passes and
	// passes 0 for the other.
	Args Args
}

// Args says which arguments an elementwise operator's derivatives read.
type Args int

const (
	// ArgsXY: f′ and f″ read x and y.
	ArgsXY Args = iota
	// ArgsX: they read only x (Relu, Erf, Gelu).
	ArgsX
	// ArgsY: they read only y = f(x) (Sigmoid, Tanh, Exp).
	ArgsY
)

// Unary returns the Exec of an elementwise operator whose functions fns
// builds from the node (attributes, constant inputs). Its passes are
//
//	y = f(x),  R{y} = f′(x) R{x},  x̄ += f′(x) ȳ,
//	R{x̄} += f′(x) R{ȳ} + f″(x) R{x} ȳ.
func Unary(fns func(b *Build) (UnaryFns, error)) *Exec {
	return Both(newUnary[float64](fns), newUnary[float32](fns))
}

func newUnary[T Real](fns func(b *Build) (UnaryFns, error)) func(b *Build) (Kernel[T], error) {
	return func(b *Build) (Kernel[T], error) {
		if b.Input(0) < 0 {
			return nil, errMissing(0)
		}
		f, err := fns(b)
		if err != nil {
			return nil, err
		}
		return &unaryKernel[T]{UnaryFns: f, x: b.In[0], y: b.Out[0]}, nil
	}
}

type unaryKernel[T Real] struct {
	UnaryFns
	x, y int
}

func (k *unaryKernel[T]) d1(x, y T) T { return T(k.D1(float64(x), float64(y))) }

// args returns the values the derivatives read (nil: not read, 0).
func (k *unaryKernel[T]) args(w *Work[T]) (x, y []T) {
	switch k.Args {
	case ArgsX:
		return w.Val[k.x], nil
	case ArgsY:
		return nil, w.Val[k.y]
	}
	return w.Val[k.x], w.Val[k.y]
}

// argAt returns v[i], or 0 for an argument not read.
func argAt[T Real](v []T, i int) T {
	if v == nil {
		return 0
	}
	return v[i]
}

func (k *unaryKernel[T]) Forward(w *Work[T]) {
	x, y := w.Val[k.x], w.Val[k.y]
	for i, v := range x {
		y[i] = T(k.F(float64(v)))
	}
}

func (k *unaryKernel[T]) RForward(w *Work[T]) {
	rx, ry := w.RV[k.x], w.RV[k.y]
	if ry == nil {
		return
	}
	if rx == nil {
		clear(ry)
		return
	}
	x, y := k.args(w)
	for i := range ry {
		ry[i] = k.d1(argAt(x, i), argAt(y, i)) * rx[i]
	}
}

func (k *unaryKernel[T]) Backward(w *Work[T]) {
	dx, dy := w.Adj[k.x], w.Adj[k.y]
	if dx == nil || dy == nil {
		return
	}
	x, y := k.args(w)
	for i, g := range dy {
		dx[i] += k.d1(argAt(x, i), argAt(y, i)) * g
	}
}

func (k *unaryKernel[T]) RBackward(w *Work[T]) {
	rdx, rdy := w.RAdj[k.x], w.RAdj[k.y]
	if rdx == nil || rdy == nil {
		return
	}
	x, y := k.args(w)
	rx := w.RV[k.x]
	if rx == nil || k.D2 == nil {
		for i, g := range rdy {
			rdx[i] += k.d1(argAt(x, i), argAt(y, i)) * g
		}
		return
	}
	dy := w.Adj[k.y]
	for i, g := range rdy {
		xi, yi := argAt(x, i), argAt(y, i)
		rdx[i] += k.d1(xi, yi)*g + T(k.D2(float64(xi), float64(yi)))*rx[i]*dy[i]
	}
}

// BinaryFns defines an elementwise operator y = f(a, b) with
// multidirectional broadcasting by f, its partials Da = ∂f/∂a, Db = ∂f/∂b
// and its second partials Daa, Dab, Dbb (nil: zero).
type BinaryFns struct {
	F, Da, Db     func(a, b float64) float64
	Daa, Dab, Dbb func(a, b float64) float64
	// Linear reports that Da and Db are constants and the second
	// partials zero (Add, Sub): the derivative passes then read neither
	// the operands' values nor ȳ, so the engine need not keep them.
	Linear bool
	// ScaleA reports that Da does not read a and Daa is nil (Mul, Div):
	// with a constant b, y is a linear map of a, and the derivative
	// passes read neither a nor ȳ. ScaleB is the same for b (Mul).
	ScaleA, ScaleB bool
}

// Binary returns the Exec of a broadcasting elementwise binary operator.
// Its passes, with the adjoint of a broadcast input summed over the
// broadcast dimensions, are
//
//	R{y} = f_a R{a} + f_b R{b},  ā += f_a ȳ,  b̄ += f_b ȳ,
//	R{ā} += f_a R{ȳ} + (f_aa R{a} + f_ab R{b}) ȳ,
//	R{b̄} += f_b R{ȳ} + (f_ab R{a} + f_bb R{b}) ȳ.
func Binary(fns BinaryFns) *Exec {
	return Both(newBinary[float64](fns), newBinary[float32](fns))
}

func newBinary[T Real](fns BinaryFns) func(b *Build) (Kernel[T], error) {
	return func(b *Build) (Kernel[T], error) {
		if len(b.In) != 2 || b.In[0] < 0 || b.In[1] < 0 {
			return nil, errInputs(2, len(b.In))
		}
		k := &binaryKernel[T]{BinaryFns: fns, a: b.In[0], b: b.In[1], y: b.Out[0]}
		if fns.Linear {
			k.ca, k.cb = T(fns.Da(0, 0)), T(fns.Db(0, 0))
		}
		_, constA := b.Const(k.a)
		_, constB := b.Const(k.b)
		k.dropA, k.dropB = fns.ScaleA && constB, fns.ScaleB && constA
		ys := b.Shape(k.y)
		k.ba, k.bb = newBcast(b.Shape(k.a), ys), newBcast(b.Shape(k.b), ys)
		return k, nil
	}
}

type binaryKernel[T Real] struct {
	BinaryFns
	a, b, y int
	ba, bb  bcast
	// ca, cb are the constant partials of a Linear operator.
	ca, cb T
	// dropA (dropB): the derivative passes do not read a (b), whose
	// partial and the other operand, a constant, do not depend on it
	// (ScaleA with a constant b).
	dropA, dropB bool
}

// vals returns the operands' values as the derivative passes read them
// (nil for a dropped one: at gives 0, which its partials ignore).
func (k *binaryKernel[T]) vals(w *Work[T]) (a, b []T) {
	a, b = w.Val[k.a], w.Val[k.b]
	if k.dropA {
		a = nil
	}
	if k.dropB {
		b = nil
	}
	return a, b
}

func call[T Real](f func(a, b float64) float64, a, b T) T { return T(f(float64(a), float64(b))) }

func (k *binaryKernel[T]) Forward(w *Work[T]) {
	a, b, y := w.Val[k.a], w.Val[k.b], w.Val[k.y]
	for i := range y {
		y[i] = call(k.F, a[k.ba.at(i)], b[k.bb.at(i)])
	}
}

func (k *binaryKernel[T]) RForward(w *Work[T]) {
	ra, rb, ry := w.RV[k.a], w.RV[k.b], w.RV[k.y]
	if ry == nil {
		return
	}
	if k.Linear {
		for i := range ry {
			var r T
			if ra != nil {
				r = k.ca * ra[k.ba.at(i)]
			}
			if rb != nil {
				r += k.cb * rb[k.bb.at(i)]
			}
			ry[i] = r
		}
		return
	}
	a, b := k.vals(w)
	for i := range ry {
		ia, ib := k.ba.at(i), k.bb.at(i)
		var r T
		if ra != nil {
			r = call(k.Da, argAt(a, ia), argAt(b, ib)) * ra[ia]
		}
		if rb != nil {
			r += call(k.Db, argAt(a, ia), argAt(b, ib)) * rb[ib]
		}
		ry[i] = r
	}
}

func (k *binaryKernel[T]) Backward(w *Work[T]) {
	da, db, g := w.Adj[k.a], w.Adj[k.b], w.Adj[k.y]
	if g == nil || (da == nil && db == nil) {
		return
	}
	if k.Linear {
		k.transpose(da, db, g)
		return
	}
	a, b := k.vals(w)
	for i, gi := range g {
		ia, ib := k.ba.at(i), k.bb.at(i)
		if da != nil {
			da[ia] += call(k.Da, argAt(a, ia), argAt(b, ib)) * gi
		}
		if db != nil {
			db[ib] += call(k.Db, argAt(a, ia), argAt(b, ib)) * gi
		}
	}
}

func (k *binaryKernel[T]) RBackward(w *Work[T]) {
	rda, rdb, rg, g := w.RAdj[k.a], w.RAdj[k.b], w.RAdj[k.y], w.Adj[k.y]
	if rg == nil || (rda == nil && rdb == nil) {
		return
	}
	if k.Linear {
		k.transpose(rda, rdb, rg)
		return
	}
	a, b := k.vals(w)
	ra, rb := w.RV[k.a], w.RV[k.b]
	has := func(f func(a, b float64) float64, r []T) bool { return f != nil && r != nil }
	if !(rda != nil && (has(k.Daa, ra) || has(k.Dab, rb))) && !(rdb != nil && (has(k.Dab, ra) || has(k.Dbb, rb))) {
		// No second-order term: ȳ is not read.
		for i, rgi := range rg {
			ia, ib := k.ba.at(i), k.bb.at(i)
			x, y := argAt(a, ia), argAt(b, ib)
			if rda != nil {
				rda[ia] += call(k.Da, x, y) * rgi
			}
			if rdb != nil {
				rdb[ib] += call(k.Db, x, y) * rgi
			}
		}
		return
	}
	second := func(f func(a, b float64) float64, x, y T, r []T, i int) T {
		if f == nil || r == nil {
			return 0
		}
		return call(f, x, y) * r[i]
	}
	for i, rgi := range rg {
		ia, ib := k.ba.at(i), k.bb.at(i)
		x, y := argAt(a, ia), argAt(b, ib)
		if rda != nil {
			rda[ia] += call(k.Da, x, y)*rgi + (second(k.Daa, x, y, ra, ia)+second(k.Dab, x, y, rb, ib))*g[i]
		}
		if rdb != nil {
			rdb[ib] += call(k.Db, x, y)*rgi + (second(k.Dab, x, y, ra, ia)+second(k.Dbb, x, y, rb, ib))*g[i]
		}
	}
}

// transpose adds the constant partials times g into da and db (nil: not
// wanted), for a Linear operator.
func (k *binaryKernel[T]) transpose(da, db, g []T) {
	for i, gi := range g {
		if da != nil {
			da[k.ba.at(i)] += k.ca * gi
		}
		if db != nil {
			db[k.bb.at(i)] += k.cb * gi
		}
	}
}

// LinearMap is a linear operator y = L(x_1, …, x_k) of the inputs listed
// by Inputs (the others are constants the map already read), in
// precision T.
type LinearMap[T Real] interface {
	// Apply sets dst = L(src); a nil src entry is zero.
	Apply(dst []T, src [][]T)
	// Transpose adds L_iᵀ src into every non-nil dst[i].
	Transpose(dst [][]T, src []T)
}

// Affine linear maps add a constant after the map: y = L(x) + c.
type Affine[T Real] interface {
	LinearMap[T]
	// Offset adds the constant c into y.
	Offset(y []T)
}

// LinearKernel returns the kernel of a linear (or affine) map of the given
// input slots into output slot y:
//
//	y = L(x) (+ c),  R{y} = L(R{x}),  x̄ += Lᵀ ȳ,  R{x̄} += Lᵀ R{ȳ}.
func LinearKernel[T Real](m LinearMap[T], ins []int, y int) Kernel[T] {
	return &linearKernel[T]{m: m, ins: ins, y: y}
}

type linearKernel[T Real] struct {
	m   LinearMap[T]
	ins []int
	y   int
}

func (k *linearKernel[T]) gather(b [][]T) [][]T {
	// A fresh slice: kernels run concurrently on different Works.
	out := make([][]T, len(k.ins))
	for i, s := range k.ins {
		out[i] = b[s]
	}
	return out
}

func (k *linearKernel[T]) Forward(w *Work[T]) {
	k.m.Apply(w.Val[k.y], k.gather(w.Val))
	if a, ok := k.m.(Affine[T]); ok {
		a.Offset(w.Val[k.y])
	}
}

func (k *linearKernel[T]) RForward(w *Work[T]) {
	if ry := w.RV[k.y]; ry != nil {
		k.m.Apply(ry, k.gather(w.RV))
	}
}

func (k *linearKernel[T]) Backward(w *Work[T]) {
	if g := w.Adj[k.y]; g != nil {
		k.m.Transpose(k.gather(w.Adj), g)
	}
}

func (k *linearKernel[T]) RBackward(w *Work[T]) {
	if g := w.RAdj[k.y]; g != nil {
		k.m.Transpose(k.gather(w.RAdj), g)
	}
}

// Retains: a linear map reads no values, and R-backward only R{ȳ}.
func (k *linearKernel[T]) Retains() Retains { return Retains{} }

// Retains: f′ and f″ take x and y (or the one Args names); R-backward
// reads R{x} and ȳ for the f″ term (nothing more when f″ = 0).
func (k *unaryKernel[T]) Retains() Retains {
	second := k.D2 != nil
	return Retains{InVal: k.Args != ArgsY, OutVal: k.Args != ArgsX, InRV: second, OutAdj: second}
}

// Retains: the partials take a and b; R-backward reads R{a}, R{b} and ȳ.
// A Linear operator (Add, Sub), and a ScaleA (ScaleB) one with a constant
// b (a) — a product or quotient by a constant — reads none of them.
func (k *binaryKernel[T]) Retains() Retains {
	if k.Linear || k.dropA || k.dropB {
		return Retains{}
	}
	return Retains{InVal: true, InRV: true, OutAdj: true}
}
