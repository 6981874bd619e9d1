package nn

import (
	"fmt"
	"math"

	"github.com/bitplan/bitplan/model"
)

type makeKernel func(p *plan, n *model.Node, in, out []int) (kernel, error)

// kernels maps ONNX operator types to kernel constructors.
var kernels map[string]makeKernel

func init() {
	kernels = map[string]makeKernel{
		"Conv":               newConv,
		"Gemm":               newGemm,
		"MatMul":             newMatMul,
		"Add":                newBinary,
		"Sub":                newBinary,
		"Mul":                newBinary,
		"Div":                newBinary,
		"Relu":               newUnary,
		"LeakyRelu":          newUnary,
		"Clip":               newUnary,
		"Sigmoid":            newUnary,
		"Tanh":               newUnary,
		"Identity":           newUnary,
		"Dropout":            newUnary,
		"Flatten":            newUnary,
		"Reshape":            newUnary,
		"Squeeze":            newUnary,
		"Unsqueeze":          newUnary,
		"Cast":               newUnary,
		"Constant":           newConstant,
		"BatchNormalization": newBatchNorm,
		"Softmax":            newSoftmax,
		"LogSoftmax":         newSoftmax,
		"MaxPool":            newMaxPool,
		"AveragePool":        newAvgPool,
		"GlobalAveragePool":  newGlobalAvgPool,
		"Transpose":          newTranspose,
		"Concat":             newConcat,
	}
}

// ---------------------------------------------------------------------------
// Broadcasting

// bcast maps every element of an output to the element of a (possibly
// broadcast) input it reads: idx == nil means the identity, otherwise
// element k reads idx[k].
type bcast struct {
	idx []int32
}

func newBcast(in, out []int) bcast {
	if numel(in) == numel(out) {
		return bcast{}
	}
	idx := make([]int32, numel(out))
	off := len(out) - len(in)
	stride := make([]int, len(out))
	s := 1
	for i := len(in) - 1; i >= 0; i-- {
		if in[i] != 1 {
			stride[off+i] = s
		}
		s *= in[i]
	}
	coord := make([]int, len(out))
	for k := range idx {
		q := 0
		for d, c := range coord {
			q += c * stride[d]
		}
		idx[k] = int32(q)
		for d := len(out) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < out[d] {
				break
			}
			coord[d] = 0
		}
	}
	return bcast{idx: idx}
}

func (b bcast) at(k int) int {
	if b.idx == nil {
		return k
	}
	return int(b.idx[k])
}

// ---------------------------------------------------------------------------
// Binary elementwise ops

// binary implements Add, Sub, Mul and Div with multidirectional
// broadcasting; the adjoint of a broadcast input is the sum over the
// broadcast dimensions. Derivatives (a, b the inputs, y the output):
//
//	Add: R{y} = R{a} + R{b};            ā += ȳ,  b̄ += ȳ;  R{ā} += R{ȳ}, R{b̄} += R{ȳ}
//	Sub: as Add with b negated
//	Mul: R{y} = R{a} b + a R{b};        ā += ȳ b,  b̄ += ȳ a
//	     R{ā} += R{ȳ} b + ȳ R{b},   R{b̄} += R{ȳ} a + ȳ R{a}
//	Div: R{y} = R{a}/b − a R{b}/b²;     ā += ȳ/b,  b̄ −= ȳ a/b²
//	     R{ā} += R{ȳ}/b − ȳ R{b}/b²
//	     R{b̄} += −R{ȳ} a/b² − ȳ R{a}/b² + 2 ȳ a R{b}/b³
type binary struct {
	op      byte // '+', '-', '*', '/'
	a, b, y int
	ba, bb  bcast
}

func newBinary(p *plan, n *model.Node, in, out []int) (kernel, error) {
	if len(in) != 2 || in[0] < 0 || in[1] < 0 {
		return nil, fmt.Errorf("want 2 inputs, got %d", len(in))
	}
	k := &binary{a: in[0], b: in[1], y: out[0]}
	k.op = map[string]byte{"Add": '+', "Sub": '-', "Mul": '*', "Div": '/'}[n.Op]
	ys := p.slots[k.y].shape
	k.ba, k.bb = newBcast(p.slots[k.a].shape, ys), newBcast(p.slots[k.b].shape, ys)
	return k, nil
}

func (k *binary) forward(w *work) {
	a, b, y := w.val[k.a], w.val[k.b], w.val[k.y]
	for i := range y {
		x, z := a[k.ba.at(i)], b[k.bb.at(i)]
		switch k.op {
		case '+':
			y[i] = x + z
		case '-':
			y[i] = x - z
		case '*':
			y[i] = x * z
		default:
			y[i] = x / z
		}
	}
}

func (k *binary) rforward(w *work) {
	a, b, ra, rb, ry := w.val[k.a], w.val[k.b], w.rv[k.a], w.rv[k.b], w.rv[k.y]
	if ry == nil {
		return
	}
	for i := range ry {
		ia, ib := k.ba.at(i), k.bb.at(i)
		var r float64
		switch k.op {
		case '+', '-':
			if ra != nil {
				r = ra[ia]
			}
			if rb != nil {
				if k.op == '+' {
					r += rb[ib]
				} else {
					r -= rb[ib]
				}
			}
		case '*':
			if ra != nil {
				r = ra[ia] * b[ib]
			}
			if rb != nil {
				r += a[ia] * rb[ib]
			}
		default:
			if ra != nil {
				r = ra[ia] / b[ib]
			}
			if rb != nil {
				r -= a[ia] * rb[ib] / (b[ib] * b[ib])
			}
		}
		ry[i] = r
	}
}

func (k *binary) backward(w *work) { k.back(w, w.adj[k.a], w.adj[k.b], w.adj[k.y], nil, false) }

func (k *binary) rbackward(w *work) {
	k.back(w, w.radj[k.a], w.radj[k.b], w.radj[k.y], w.adj[k.y], true)
}

// back adds the adjoint contributions of g (ȳ, or R{ȳ} when r is set, with
// g0 = ȳ for the second-order terms) into da and db.
func (k *binary) back(w *work, da, db, g, g0 []float64, r bool) {
	if g == nil || (da == nil && db == nil) {
		return
	}
	a, b := w.val[k.a], w.val[k.b]
	var ra, rb []float64
	if r {
		ra, rb = w.rv[k.a], w.rv[k.b]
	}
	for i, gi := range g {
		ia, ib := k.ba.at(i), k.bb.at(i)
		switch k.op {
		case '+':
			if da != nil {
				da[ia] += gi
			}
			if db != nil {
				db[ib] += gi
			}
		case '-':
			if da != nil {
				da[ia] += gi
			}
			if db != nil {
				db[ib] -= gi
			}
		case '*':
			if da != nil {
				da[ia] += gi * b[ib]
				if rb != nil {
					da[ia] += g0[i] * rb[ib]
				}
			}
			if db != nil {
				db[ib] += gi * a[ia]
				if ra != nil {
					db[ib] += g0[i] * ra[ia]
				}
			}
		default:
			bi := b[ib]
			if da != nil {
				da[ia] += gi / bi
				if rb != nil {
					da[ia] -= g0[i] * rb[ib] / (bi * bi)
				}
			}
			if db != nil {
				db[ib] -= gi * a[ia] / (bi * bi)
				if ra != nil {
					db[ib] -= g0[i] * ra[ia] / (bi * bi)
				}
				if rb != nil {
					db[ib] += 2 * g0[i] * a[ia] * rb[ib] / (bi * bi * bi)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Unary elementwise ops

type unaryKind int

const (
	uIdentity unaryKind = iota
	uRelu
	uLeaky
	uClip
	uSigmoid
	uTanh
)

// unary implements elementwise y = f(x) with
//
//	R{y} = f'(x) R{x},  x̄ += f'(x) ȳ,  R{x̄} += f'(x) R{ȳ} + f''(x) R{x} ȳ.
//
// Relu: f' = 1[x > 0]; LeakyRelu: f' = 1 or α; Clip (Relu6): f' = 1[lo < x <
// hi]; these have f” = 0. Sigmoid: f' = y(1−y), f” = f'(1−2y). Tanh:
// f' = 1−y², f” = −2y f'. Identity, Dropout (inference), Flatten, Reshape,
// Squeeze, Unsqueeze and Cast to a float type copy the data (f' = 1).
type unary struct {
	kind   unaryKind
	x, y   int
	alpha  float64
	lo, hi float64
}

func newUnary(p *plan, n *model.Node, in, out []int) (kernel, error) {
	if len(in) < 1 || in[0] < 0 {
		return nil, fmt.Errorf("missing input")
	}
	k := &unary{x: in[0], y: out[0], lo: math.Inf(-1), hi: math.Inf(1)}
	switch n.Op {
	case "Relu":
		k.kind = uRelu
	case "LeakyRelu":
		k.kind = uLeaky
		a, err := n.AttrFloat("alpha", 0.01)
		if err != nil {
			return nil, err
		}
		k.alpha = a
	case "Clip":
		k.kind = uClip
		var err error
		if k.lo, err = n.AttrFloat("min", k.lo); err != nil {
			return nil, err
		}
		if k.hi, err = n.AttrFloat("max", k.hi); err != nil {
			return nil, err
		}
		for i, dst := range []*float64{&k.lo, &k.hi} {
			if len(in) > i+1 && in[i+1] >= 0 {
				s := p.slots[in[i+1]]
				if s.kind != kConst || s.size != 1 {
					return nil, fmt.Errorf("Clip bound %q must be a constant scalar", s.name)
				}
				*dst = s.data[0]
			}
		}
	case "Sigmoid":
		k.kind = uSigmoid
	case "Tanh":
		k.kind = uTanh
	case "Dropout":
		if len(in) > 2 && in[2] >= 0 {
			s := p.slots[in[2]]
			if s.kind != kConst || (s.size == 1 && s.data[0] != 0) {
				return nil, fmt.Errorf("Dropout in training mode is not supported (inference only)")
			}
		}
	case "Cast":
		to, err := n.AttrInt("to", 0)
		if err != nil {
			return nil, err
		}
		if !model.DataType(to).IsFloat() {
			return nil, fmt.Errorf("Cast to %v of a computed tensor is not supported", model.DataType(to))
		}
	case "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze":
	}
	if p.slots[k.x].size != p.slots[k.y].size {
		return nil, fmt.Errorf("input %v and output %v differ in size", p.slots[k.x].shape, p.slots[k.y].shape)
	}
	return k, nil
}

// d1 returns f'(x) given x and y = f(x).
func (k *unary) d1(x, y float64) float64 {
	switch k.kind {
	case uRelu:
		if x > 0 {
			return 1
		}
		return 0
	case uLeaky:
		if x > 0 {
			return 1
		}
		return k.alpha
	case uClip:
		if x > k.lo && x < k.hi {
			return 1
		}
		return 0
	case uSigmoid:
		return y * (1 - y)
	case uTanh:
		return 1 - y*y
	}
	return 1
}

// d2 returns f”(x).
func (k *unary) d2(x, y float64) float64 {
	switch k.kind {
	case uSigmoid:
		return y * (1 - y) * (1 - 2*y)
	case uTanh:
		return -2 * y * (1 - y*y)
	}
	return 0
}

func (k *unary) forward(w *work) {
	x, y := w.val[k.x], w.val[k.y]
	switch k.kind {
	case uIdentity:
		copy(y, x)
	case uRelu:
		for i, v := range x {
			y[i] = max(v, 0)
		}
	case uLeaky:
		for i, v := range x {
			if v < 0 {
				v *= k.alpha
			}
			y[i] = v
		}
	case uClip:
		for i, v := range x {
			y[i] = min(max(v, k.lo), k.hi)
		}
	case uSigmoid:
		for i, v := range x {
			y[i] = 1 / (1 + math.Exp(-v))
		}
	case uTanh:
		for i, v := range x {
			y[i] = math.Tanh(v)
		}
	}
}

func (k *unary) rforward(w *work) {
	rx, ry := w.rv[k.x], w.rv[k.y]
	if ry == nil {
		return
	}
	if rx == nil {
		clear(ry)
		return
	}
	if k.kind == uIdentity {
		copy(ry, rx)
		return
	}
	x, y := w.val[k.x], w.val[k.y]
	for i := range ry {
		ry[i] = k.d1(x[i], y[i]) * rx[i]
	}
}

func (k *unary) backward(w *work) {
	dx, dy := w.adj[k.x], w.adj[k.y]
	if dx == nil || dy == nil {
		return
	}
	if k.kind == uIdentity {
		addTo(dx, dy)
		return
	}
	x, y := w.val[k.x], w.val[k.y]
	for i, g := range dy {
		dx[i] += k.d1(x[i], y[i]) * g
	}
}

func (k *unary) rbackward(w *work) {
	rdx, rdy := w.radj[k.x], w.radj[k.y]
	if rdx == nil || rdy == nil {
		return
	}
	if k.kind == uIdentity {
		addTo(rdx, rdy)
		return
	}
	x, y, rx, dy := w.val[k.x], w.val[k.y], w.rv[k.x], w.adj[k.y]
	second := rx != nil && (k.kind == uSigmoid || k.kind == uTanh)
	for i, g := range rdy {
		v := k.d1(x[i], y[i]) * g
		if second {
			v += k.d2(x[i], y[i]) * rx[i] * dy[i]
		}
		rdx[i] += v
	}
}

func addTo(dst, src []float64) {
	for i, v := range src {
		dst[i] += v
	}
}

// ---------------------------------------------------------------------------
// Constant

// constant produces a Constant node's float value; it has no inputs, so the
// plan evaluates it once and it never runs.
type constant struct {
	y int
	v []float64
}

func newConstant(p *plan, n *model.Node, in, out []int) (kernel, error) {
	t, err := model.ConstantValue(n)
	if err != nil {
		return nil, err
	}
	return &constant{y: out[0], v: t.Values()}, nil
}

func (k *constant) forward(w *work)   { copy(w.val[k.y], k.v) }
func (k *constant) rforward(w *work)  {}
func (k *constant) backward(w *work)  {}
func (k *constant) rbackward(w *work) {}

// ---------------------------------------------------------------------------
// BatchNormalization (inference)

// batchNorm is BatchNormalization in inference form, a per-channel affine
// map with constant statistics (ONNX spec; Ioffe & Szegedy 2015):
//
//	y = a_c x + b_c,  a_c = scale_c / sqrt(var_c + ε),  b_c = B_c − mean_c a_c
//
// It is linear in x: R{y} = a_c R{x}, x̄ += a_c ȳ, R{x̄} += a_c R{ȳ}.
type batchNorm struct {
	x, y     int
	a, b     []float64
	c, inner int
	batch    int
}

func newBatchNorm(p *plan, n *model.Node, in, out []int) (kernel, error) {
	if len(in) < 5 {
		return nil, fmt.Errorf("want 5 inputs (X, scale, B, mean, var), got %d", len(in))
	}
	if tm, err := n.AttrInt("training_mode", 0); err != nil || tm != 0 {
		return nil, fmt.Errorf("training_mode=%d is not supported (inference only)", tm)
	}
	for i, o := range out {
		if i > 0 && o >= 0 {
			return nil, fmt.Errorf("running-statistics outputs are not supported (inference only)")
		}
	}
	eps, err := n.AttrFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	xs := p.slots[in[0]].shape
	if len(xs) < 2 {
		return nil, fmt.Errorf("input shape %v, want N×C×…", xs)
	}
	c := xs[1]
	var prm [4][]float64
	for i := 0; i < 4; i++ {
		s := p.slots[in[i+1]]
		if s.kind != kConst {
			return nil, fmt.Errorf("input %q must be a constant (inference form)", s.name)
		}
		if s.size != c {
			return nil, fmt.Errorf("input %q has %d elements, want %d channels", s.name, s.size, c)
		}
		prm[i] = s.data
	}
	k := &batchNorm{x: in[0], y: out[0], a: make([]float64, c), b: make([]float64, c), c: c,
		inner: numel(xs[2:]), batch: xs[0]}
	for j := 0; j < c; j++ {
		k.a[j] = prm[0][j] / math.Sqrt(prm[3][j]+eps)
		k.b[j] = prm[1][j] - prm[2][j]*k.a[j]
	}
	return k, nil
}

func (k *batchNorm) apply(dst, src []float64, bias, accumulate bool) {
	if dst == nil || src == nil {
		return
	}
	i := 0
	for s := 0; s < k.batch; s++ {
		for c := 0; c < k.c; c++ {
			a, b := k.a[c], k.b[c]
			if !bias {
				b = 0
			}
			seg := src[i : i+k.inner]
			out := dst[i : i+k.inner]
			if accumulate {
				for j, v := range seg {
					out[j] += a * v
				}
			} else {
				for j, v := range seg {
					out[j] = a*v + b
				}
			}
			i += k.inner
		}
	}
}

func (k *batchNorm) forward(w *work) { k.apply(w.val[k.y], w.val[k.x], true, false) }
func (k *batchNorm) rforward(w *work) {
	if w.rv[k.x] == nil {
		if w.rv[k.y] != nil {
			clear(w.rv[k.y])
		}
		return
	}
	k.apply(w.rv[k.y], w.rv[k.x], false, false)
}
func (k *batchNorm) backward(w *work)  { k.apply(w.adj[k.x], w.adj[k.y], false, true) }
func (k *batchNorm) rbackward(w *work) { k.apply(w.radj[k.x], w.radj[k.y], false, true) }

// ---------------------------------------------------------------------------
// Softmax and LogSoftmax

// softmax implements Softmax and LogSoftmax along one axis (opset ≥ 13) or
// over the trailing dimensions from axis on (opset < 13, "coerced to 2-D").
// With p = softmax(x):
//
//	Softmax:    R{p} = p ⊙ (R{x} − ⟨p, R{x}⟩),  x̄ += p ⊙ (ȳ − ⟨p, ȳ⟩)
//	            R{x̄} += R{p} ⊙ (ȳ − ⟨p, ȳ⟩) + p ⊙ (R{ȳ} − ⟨R{p}, ȳ⟩ − ⟨p, R{ȳ}⟩)
//	LogSoftmax: R{y} = R{x} − ⟨p, R{x}⟩,  x̄ += ȳ − p Σȳ
//	            R{x̄} += R{ȳ} − R{p} Σȳ − p ΣR{ȳ},  R{p} = p ⊙ R{y}
type softmax struct {
	log                 bool
	x, y                int
	outer, length, step int
	sidx                int
}

type softmaxState struct{ p, rp []float64 }

func newSoftmax(p *plan, n *model.Node, in, out []int) (kernel, error) {
	xs := p.slots[in[0]].shape
	def := int64(-1)
	if p.e.m.Opset > 0 && p.e.m.Opset < 13 {
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
	k := &softmax{log: n.Op == "LogSoftmax", x: in[0], y: out[0], sidx: len(p.steps)}
	if p.e.m.Opset > 0 && p.e.m.Opset < 13 {
		k.outer, k.length, k.step = numel(xs[:a]), numel(xs[a:]), 1
	} else {
		k.outer, k.length, k.step = numel(xs[:a]), xs[a], numel(xs[a+1:])
	}
	return k, nil
}

func (k *softmax) newState() any {
	n := k.outer * k.length * k.step
	return &softmaxState{p: make([]float64, n), rp: make([]float64, n)}
}

// each calls f with the index of the first element and the stride of every
// softmax group.
func (k *softmax) each(f func(base, stride int)) {
	for o := 0; o < k.outer; o++ {
		for in := 0; in < k.step; in++ {
			f(o*k.length*k.step+in, k.step)
		}
	}
}

func (k *softmax) forward(w *work) {
	x, y := w.val[k.x], w.val[k.y]
	p := w.state[k.sidx].(*softmaxState).p
	k.each(func(b, s int) {
		m := math.Inf(-1)
		for j := 0; j < k.length; j++ {
			m = max(m, x[b+j*s])
		}
		sum := 0.0
		for j := 0; j < k.length; j++ {
			e := math.Exp(x[b+j*s] - m)
			p[b+j*s] = e
			sum += e
		}
		lse := m + math.Log(sum)
		for j := 0; j < k.length; j++ {
			i := b + j*s
			p[i] /= sum
			if k.log {
				y[i] = x[i] - lse
			} else {
				y[i] = p[i]
			}
		}
	})
}

func (k *softmax) rforward(w *work) {
	rx, ry := w.rv[k.x], w.rv[k.y]
	if ry == nil {
		return
	}
	st := w.state[k.sidx].(*softmaxState)
	if rx == nil {
		clear(ry)
		clear(st.rp)
		return
	}
	p := st.p
	k.each(func(b, s int) {
		dot := 0.0
		for j := 0; j < k.length; j++ {
			dot += p[b+j*s] * rx[b+j*s]
		}
		for j := 0; j < k.length; j++ {
			i := b + j*s
			t := rx[i] - dot
			st.rp[i] = p[i] * t
			if k.log {
				ry[i] = t
			} else {
				ry[i] = st.rp[i]
			}
		}
	})
}

func (k *softmax) backward(w *work) {
	dx, dy := w.adj[k.x], w.adj[k.y]
	if dx == nil || dy == nil {
		return
	}
	p := w.state[k.sidx].(*softmaxState).p
	k.each(func(b, s int) {
		red := 0.0
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

func (k *softmax) rbackward(w *work) {
	rdx, rdy, dy := w.radj[k.x], w.radj[k.y], w.adj[k.y]
	if rdx == nil || rdy == nil {
		return
	}
	st := w.state[k.sidx].(*softmaxState)
	p, rp := st.p, st.rp
	hasR := w.rv[k.x] != nil
	k.each(func(b, s int) {
		var sdy, srdy, pdy, prdy, rpdy float64
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
			var r float64
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

// ---------------------------------------------------------------------------
// Transpose and Concat (data movement)

// gatherOp is a data movement y[k] = x_{src[k]}[idx[k]] (Transpose, Concat
// of computed tensors); it is linear with 0/1 coefficients:
//
//	R{y}[k] = R{x}[idx[k]],  x̄[idx[k]] += ȳ[k],  R{x̄}[idx[k]] += R{ȳ}[k]
type gatherOp struct {
	xs  []int
	y   int
	src []int8
	idx []int32
}

func newTranspose(p *plan, n *model.Node, in, out []int) (kernel, error) {
	xs := p.slots[in[0]].shape
	perm, err := n.AttrInts("perm", nil)
	if err != nil {
		return nil, err
	}
	r := len(xs)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v for rank %d", perm, r)
	}
	stride := make([]int, r)
	s := 1
	for i := r - 1; i >= 0; i-- {
		stride[i] = s
		s *= xs[i]
	}
	ys := p.slots[out[0]].shape
	k := &gatherOp{xs: []int{in[0]}, y: out[0], idx: make([]int32, numel(ys)), src: make([]int8, numel(ys))}
	coord := make([]int, r)
	for o := range k.idx {
		q := 0
		for d, c := range coord {
			q += c * stride[perm[d]]
		}
		k.idx[o] = int32(q)
		for d := r - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < ys[d] {
				break
			}
			coord[d] = 0
		}
	}
	return k, nil
}

func newConcat(p *plan, n *model.Node, in, out []int) (kernel, error) {
	if len(in) > 127 {
		return nil, fmt.Errorf("%d inputs, at most 127 supported", len(in))
	}
	ys := p.slots[out[0]].shape
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	if a < 0 {
		a += int64(len(ys))
	}
	outer := numel(ys[:a])
	k := &gatherOp{xs: in, y: out[0], idx: make([]int32, numel(ys)), src: make([]int8, numel(ys))}
	o := 0
	for b := 0; b < outer; b++ {
		for i, x := range in {
			inner := numel(p.slots[x].shape[a:])
			for j := 0; j < inner; j++ {
				k.src[o], k.idx[o] = int8(i), int32(b*inner+j)
				o++
			}
		}
	}
	return k, nil
}

func (k *gatherOp) move(dst [][]float64, y []float64, get bool) {
	for o, q := range k.idx {
		x := dst[k.src[o]]
		if x == nil {
			if get {
				y[o] = 0
			}
			continue
		}
		if get {
			y[o] = x[q]
		} else {
			x[q] += y[o]
		}
	}
}

func (k *gatherOp) bufs(b [][]float64) [][]float64 {
	out := make([][]float64, len(k.xs))
	for i, x := range k.xs {
		out[i] = b[x]
	}
	return out
}

func (k *gatherOp) forward(w *work) { k.move(k.bufs(w.val), w.val[k.y], true) }
func (k *gatherOp) rforward(w *work) {
	if w.rv[k.y] != nil {
		k.move(k.bufs(w.rv), w.rv[k.y], true)
	}
}
func (k *gatherOp) backward(w *work) {
	if w.adj[k.y] != nil {
		k.move(k.bufs(w.adj), w.adj[k.y], false)
	}
}
func (k *gatherOp) rbackward(w *work) {
	if w.radj[k.y] != nil {
		k.move(k.bufs(w.radj), w.radj[k.y], false)
	}
}
