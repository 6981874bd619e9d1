package op

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// reductionConfig is one reduction problem: input shape, the axes (nil:
// none given), whether they are an input (opset 18) or an attribute
// (opset 13), keepdims and noop_with_empty_axes.
type reductionConfig struct {
	shape     []int
	axes      []int64
	fromInput bool
	keep      bool
	noop      bool
}

func (c reductionConfig) String() string {
	return fmt.Sprintf("shape %v axes %v (input %v) keepdims %v noop %v", c.shape, c.axes, c.fromInput, c.keep, c.noop)
}

// reductionConfigs cover channel, spatial, negative, all and no axes,
// with and without keepdims, as attribute and as input.
var reductionConfigs = []reductionConfig{
	{shape: []int{2, 3, 2, 2}, axes: []int64{2, 3}, keep: true},
	{shape: []int{2, 3, 2, 2}, axes: []int64{2, 3}, fromInput: true},
	{shape: []int{2, 3, 2, 2}, axes: []int64{1}, keep: true},
	{shape: []int{2, 4, 3}, axes: []int64{-1, 0}, fromInput: true, keep: true},
	{shape: []int{3, 4}, keep: true},
	{shape: []int{3, 4}, fromInput: true},
	{shape: []int{3, 4}, fromInput: true, noop: true},
	{shape: []int{5}, axes: []int64{0}},
	{shape: []int{}, keep: true},
}

// reductionRun runs the kernel of reduction typ on config c in precision
// T through all four passes: values x, R-values r, output adjoint g and
// R-adjoint rg. It returns y, R{y}, x̄ and R{x̄}.
func reductionRun[T Real](typ string, c reductionConfig, x, r, g, rg []float64) (y, ry, dx, rdx []float64, err error) {
	nd := &Node{Op: typ, Name: "r", Inputs: []string{"x"}, Outputs: []string{"y"}, Attrs: map[string]*Attr{}}
	opset := int64(13)
	s := &Shapes{Dims: map[string][]int{"x": c.shape}, Types: map[string]DataType{"x": Float}, Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
	ts := &testSlots{shapes: [][]int{c.shape}, consts: [][]float64{nil}, names: []string{"x"}}
	if c.fromInput {
		opset = 18
		if c.axes != nil {
			nd.Inputs = append(nd.Inputs, "axes")
			s.Dims["axes"], s.Types["axes"], s.Ints["axes"] = []int{len(c.axes)}, Int64, c.axes
			var f []float64
			for _, a := range c.axes {
				f = append(f, float64(a))
			}
			ts.shapes, ts.consts, ts.names = append(ts.shapes, []int{len(c.axes)}), append(ts.consts, f), append(ts.names, "axes")
		}
	} else if c.axes != nil {
		nd.Attrs["axes"] = &Attr{Name: "axes", Type: AttrInts, Ints: c.axes}
	}
	nd.Attrs["keepdims"] = &Attr{Name: "keepdims", Type: AttrInt, Int: b2i(c.keep)}
	if c.noop {
		nd.Attrs["noop_with_empty_axes"] = &Attr{Name: "noop_with_empty_axes", Type: AttrInt, Int: 1}
	}
	return runReductionNode[T](nd, opset, s, ts, x, r, g, rg)
}

// runReductionNode infers node nd's output shape from s, builds its
// kernel on the slots ts (input 0 and any constants; the output is
// appended) and runs the four passes as reductionRun describes.
func runReductionNode[T Real](nd *Node, opset int64, s *Shapes, ts *testSlots, x, r, g, rg []float64) (y, ry, dx, rdx []float64, err error) {
	d := Lookup(nd.Op, opset)
	if err := d.Infer(nd, s); err != nil {
		return nil, nil, nil, nil, err
	}
	ys := s.Dims["y"]
	b := &Build{Node: nd, Opset: opset, Slots: ts}
	for i := range ts.shapes {
		b.In = append(b.In, i)
	}
	b.Out = []int{len(ts.shapes)}
	ts.shapes, ts.consts, ts.names = append(ts.shapes, ys), append(ts.consts, nil), append(ts.names, "y")
	k, err := NewKernel[T](d.Exec, b)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ns, o := len(ts.shapes), b.Out[0]
	w := &Work[T]{Val: make([][]T, ns), RV: make([][]T, ns), Adj: make([][]T, ns), RAdj: make([][]T, ns), State: make([]any, 1)}
	if st, ok := k.(Stateful); ok {
		w.State[0] = st.NewState()
	}
	w.Val[0], w.RV[0] = Convert[T](x), Convert[T](r)
	w.Adj[0], w.RAdj[0] = make([]T, len(x)), make([]T, len(x))
	w.Val[o], w.RV[o] = make([]T, Numel(ys)), make([]T, Numel(ys))
	k.Forward(w)
	k.RForward(w)
	w.Adj[o] = Convert[T](g)
	k.Backward(w)
	w.RAdj[o] = Convert[T](rg)
	k.RBackward(w)
	f := Convert[float64, T]
	return f(w.Val[o]), f(w.RV[o]), f(w.Adj[0]), f(w.RAdj[0]), nil
}

// bruteSlices groups the elements of an input of config c by output
// element, each slice in the input's row-major order, by unravelling
// every element's coordinates and dropping the reduced ones.
func bruteSlices(c reductionConfig) [][]int {
	r := len(c.shape)
	red := make([]bool, r)
	for _, a := range c.axes {
		red[(int(a)+r)%r] = true
	}
	if len(c.axes) == 0 && !c.noop {
		for i := range red {
			red[i] = true
		}
	}
	var out [][]int
	at := map[string]int{}
	for e := range Numel(c.shape) {
		key, rem := "", e
		coord := make([]int, r)
		for i := r - 1; i >= 0; i-- {
			coord[i], rem = rem%c.shape[i], rem/c.shape[i]
		}
		for i, v := range coord {
			if !red[i] {
				key += fmt.Sprint(v, ",")
			}
		}
		o, ok := at[key]
		if !ok {
			o = len(out)
			at[key] = o
			out = append(out, nil)
		}
		out[o] = append(out[o], e)
	}
	return out
}

// bruteReduction is the definition of reduction typ on one slice v: its
// value, gradient d and Hessian H (H[k][j] = ∂²y/∂x_k∂x_j), each written
// out from the formula without the kernel's recurrences. Max and Min
// pick the first extreme element; L2 at zero has d = 0 and H = 0.
func bruteReduction(typ string, v []float64) (y float64, d []float64, h [][]float64) {
	n := len(v)
	d = make([]float64, n)
	h = make([][]float64, n)
	for i := range h {
		h[i] = make([]float64, n)
	}
	sum := func(f func(float64) float64) float64 {
		s := 0.0
		for _, x := range v {
			s += f(x)
		}
		return s
	}
	prodExcept := func(skip ...int) float64 {
		p := 1.0
		for i, x := range v {
			if !slices.Contains(skip, i) {
				p *= x
			}
		}
		return p
	}
	switch typ {
	case "ReduceMax", "ReduceMin":
		p := 0
		for i, x := range v {
			if (typ == "ReduceMax" && x > v[p]) || (typ == "ReduceMin" && x < v[p]) {
				p = i
			}
		}
		y, d[p] = v[p], 1
	case "ReduceProd":
		y = prodExcept()
		for k := range v {
			d[k] = prodExcept(k)
			for j := range v {
				if j != k {
					h[k][j] = prodExcept(k, j)
				}
			}
		}
	case "ReduceL1":
		y = sum(math.Abs)
		for k, x := range v {
			switch {
			case x > 0:
				d[k] = 1
			case x < 0:
				d[k] = -1
			}
		}
	case "ReduceL2":
		y = math.Sqrt(sum(func(x float64) float64 { return x * x }))
		if y > 0 {
			for k, x := range v {
				d[k] = x / y
			}
			for k := range v {
				for j := range v {
					h[k][j] = -d[k] * d[j] / y
				}
				h[k][k] += 1 / y
			}
		}
	case "ReduceSumSquare":
		y = sum(func(x float64) float64 { return x * x })
		for k, x := range v {
			d[k], h[k][k] = 2*x, 2
		}
	case "ReduceLogSum":
		s := sum(func(x float64) float64 { return x })
		y = math.Log(s)
		for k := range v {
			d[k] = 1 / s
			for j := range v {
				h[k][j] = -1 / (s * s)
			}
		}
	case "ReduceLogSumExp":
		s := sum(math.Exp)
		y = math.Log(s)
		for k, x := range v {
			d[k] = math.Exp(x) / s
		}
		for k := range v {
			for j := range v {
				h[k][j] = -d[k] * d[j]
			}
			h[k][k] += d[k]
		}
	case "Lp1", "Lp2", "Lp3", "Lp4":
		// (Σ |x|^p)^(1/p): d_k = sign x_k |x_k|^(p−1) y^(1−p),
		// H_kj = (p − 1)(δ_kj |x_k|^(p−2) y^(1−p) − d_k d_j / y); 0 at y = 0.
		p := float64(typ[2] - '0')
		y = math.Pow(sum(func(x float64) float64 { return math.Pow(math.Abs(x), p) }), 1/p)
		if y > 0 {
			for k, x := range v {
				if x != 0 {
					d[k] = math.Copysign(math.Pow(math.Abs(x), p-1)*math.Pow(y, 1-p), x)
				}
			}
			for k, x := range v {
				for j := range v {
					h[k][j] = -(p - 1) * d[k] * d[j] / y
				}
				if p > 1 {
					h[k][k] += (p - 1) * math.Pow(math.Abs(x), p-2) * math.Pow(y, 1-p)
				}
			}
		}
	default:
		panic("bruteReduction: " + typ)
	}
	return y, d, h
}

// bruteFour is y, R{y}, x̄ and R{x̄} of reduction typ (see bruteReduction)
// over the slices sl of input x, for R-values r, output adjoint g and
// R-adjoint rg: y_o, R{y_o} = ⟨d, R{x}⟩, x̄ = d ȳ_o and
// R{x̄} = d R{ȳ_o} + ȳ_o H R{x}, slice by slice.
func bruteFour(typ string, sl [][]int, x, r, g, rg []float64) [4][]float64 {
	wy, wry, wdx, wrdx := make([]float64, len(sl)), make([]float64, len(sl)), make([]float64, len(x)), make([]float64, len(x))
	for o, s := range sl {
		v := make([]float64, len(s))
		for j, e := range s {
			v[j] = x[e]
		}
		y, d, h := bruteReduction(typ, v)
		wy[o] = y
		for k, e := range s {
			wry[o] += d[k] * r[e]
			wdx[e] += d[k] * g[o]
			wrdx[e] += d[k] * rg[o]
			for j, f := range s {
				wrdx[e] += g[o] * h[k][j] * r[f]
			}
		}
	}
	return [4][]float64{wy, wry, wdx, wrdx}
}

// compareFour checks a kernel's y, R{y}, x̄ and R{x̄} against want to tol
// relative to each one's largest magnitude (at least 1).
func compareFour(t *testing.T, what string, got, want [4][]float64, tol float64) {
	t.Helper()
	for i, name := range []string{"y", "R{y}", "x̄", "R{x̄}"} {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: %s has %d elements, want %d", what, name, len(got[i]), len(want[i]))
		}
		scale := 1.0
		for _, v := range want[i] {
			scale = max(scale, math.Abs(v))
		}
		for j := range got[i] {
			if !(math.Abs(got[i][j]-want[i][j]) <= tol*scale) {
				t.Errorf("%s: %s[%d] = %.10g, want %.10g", what, name, j, got[i][j], want[i][j])
				break
			}
		}
	}
}

var reductionTypes = []string{"ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"}

// TestReductionBruteForce runs the eight non-linear reductions on every
// configuration of reductionConfigs, in both precisions, through all four
// passes, and compares with bruteReduction slice by slice:
// y, R{y} = ⟨d, R{x}⟩, x̄ = d ȳ and R{x̄} = d R{ȳ} + ȳ H R{x}. Inputs are
// continuous, and small integers (ties for Max and Min, zeros for Prod,
// L1 and L2, all-zero slices for L2: the first tied element takes the
// derivative, Prod's is exact with zeros, L2's is 0 at zero).
func TestReductionBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	n := 0
	for _, typ := range reductionTypes {
		for _, c := range reductionConfigs {
			for _, draw := range []string{"continuous", "integers", "zeros"} {
				size := Numel(c.shape)
				x, r := make([]float64, size), make([]float64, size)
				for i := range x {
					switch draw {
					case "continuous":
						x[i] = float64(float32(2*rng.Float64() - 1))
					case "integers":
						x[i] = float64(rng.IntN(3) - 1)
					case "zeros":
						x[i] = float64(rng.IntN(2)) * float64(float32(rng.NormFloat64()))
						if i < size/2 {
							x[i] = 0
						}
					}
					switch typ {
					case "ReduceLogSum":
						x[i] = 1.5 + x[i]
					case "ReduceLogSumExp":
						x[i] *= 3
					}
					r[i] = float64(float32(rng.NormFloat64()))
				}
				sl := bruteSlices(c)
				g, rg := make([]float64, len(sl)), make([]float64, len(sl))
				for o := range g {
					g[o], rg[o] = float64(float32(rng.NormFloat64())), float64(float32(rng.NormFloat64()))
				}
				want := bruteFour(typ, sl, x, r, g, rg)
				for _, prec := range []string{"float64", "float32"} {
					run := reductionRun[float64]
					tol := 1e-12
					if prec == "float32" {
						run, tol = reductionRun[float32], 1e-5
					}
					y, ry, dx, rdx, err := run(typ, c, x, r, g, rg)
					if err != nil {
						t.Fatalf("%s %v: %v", typ, c, err)
					}
					compareFour(t, fmt.Sprintf("%s %v %s, %s inputs %v", typ, c, prec, draw, x), [4][]float64{y, ry, dx, rdx}, want, tol)
					n++
				}
			}
		}
	}
	t.Logf("%d runs compared", n)
}

// TestReductionStable: ReduceLogSumExp of large inputs is finite
// (m + log Σ e^{x−m}), and its derivatives too; ReduceL2 of an all-zero
// slice has zero, finite derivatives in both precisions.
func TestReductionStable(t *testing.T) {
	c := reductionConfig{shape: []int{2, 3}, axes: []int64{1}, keep: true}
	x := []float64{800, 801, 799, -1000, -1001, -1002}
	r := []float64{1, -1, 2, 0.5, 0.5, -1}
	g, rg := []float64{1, 2}, []float64{-1, 0.5}
	for _, prec := range []string{"float64", "float32"} {
		run := reductionRun[float64]
		if prec == "float32" {
			run = reductionRun[float32]
		}
		y, ry, dx, rdx, err := run("ReduceLogSumExp", c, x, r, g, rg)
		if err != nil {
			t.Fatal(err)
		}
		want := 801 + math.Log(math.Exp(-1)+1+math.Exp(-2))
		if math.Abs(y[0]-want) > 1e-4 || math.IsInf(y[1], 0) || math.IsNaN(y[1]) {
			t.Errorf("%s: ReduceLogSumExp %v, want [%v, ≈-999.6]", prec, y, want)
		}
		for _, v := range slices.Concat(ry, dx, rdx) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s: ReduceLogSumExp derivatives %v %v %v", prec, ry, dx, rdx)
				break
			}
		}
		z := []float64{0, 0, 0, 3, 0, -4}
		y, ry, dx, rdx, err = run("ReduceL2", c, z, r, g, rg)
		if err != nil {
			t.Fatal(err)
		}
		if y[0] != 0 || y[1] != 5 || ry[0] != 0 || !slices.Equal(dx[:3], []float64{0, 0, 0}) || !slices.Equal(rdx[:3], []float64{0, 0, 0}) {
			t.Errorf("%s: ReduceL2 at zero: y %v, R{y} %v, x̄ %v, R{x̄} %v", prec, y, ry, dx, rdx)
		}
	}
}

// TestReductionFoldsIntegers: the kernels fold integer tensors exactly
// (an export's ReduceProd of a shape, ReduceMax of indices).
func TestReductionFoldsIntegers(t *testing.T) {
	shape := &Tensor{Type: Int64, Shape: []int{3}, Int: []int64{2, 3, 1 << 20}}
	for typ, want := range map[string]int64{"ReduceProd": 6 << 20, "ReduceMax": 1 << 20, "ReduceMin": 2, "ReduceSumSquare": 13 + 1<<40, "ReduceL1": 5 + 1<<20} {
		nd := &Node{Op: typ, Name: "r", Inputs: []string{"s"}, Outputs: []string{"y"}, Attrs: map[string]*Attr{"keepdims": {Name: "keepdims", Type: AttrInt, Int: 0}}}
		outs, err := Fold(nd, 13, []*Tensor{shape}, nil)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if outs[0].Type != Int64 || len(outs[0].Int) != 1 || outs[0].Int[0] != want {
			t.Errorf("%s of %v folded to %v, want int64 %d", typ, shape.Int, outs[0], want)
		}
	}
}

// TestReductionBadInput: axes out of range and a computed axes input are
// errors naming the problem, not panics.
func TestReductionBadInput(t *testing.T) {
	for _, typ := range reductionTypes {
		_, _, _, _, err := reductionRun[float64](typ, reductionConfig{shape: []int{2, 3}, axes: []int64{2}}, make([]float64, 6), nil, nil, nil)
		if err == nil {
			t.Errorf("%s: axis 2 of a rank-2 input accepted", typ)
		}
		ts := &testSlots{shapes: [][]int{{2, 3}, {1}, {2, 1}}, consts: [][]float64{nil, nil, nil}, names: []string{"x", "axes", "y"}}
		b := &Build{Node: &Node{Op: typ, Name: "r", Inputs: []string{"x", "axes"}, Outputs: []string{"y"}}, Opset: 18, In: []int{0, 1}, Out: []int{2}, Slots: ts}
		if _, err := NewKernel[float64](Lookup(typ, 18).Exec, b); err == nil {
			t.Errorf("%s: a computed axes input accepted", typ)
		}
	}
}

// FuzzReduction runs a reduction drawn from the bytes (operator, shape
// with dimensions 0 to 3, axes possibly repeated, negative or out of
// range, as attribute or input, keepdims, noop_with_empty_axes, values
// with ties and zeros) through all four passes: a bad node is an error,
// never a panic, and a good one agrees with bruteReduction (empty slices
// give the reduction's identity: −∞ for ReduceMax, 1 for ReduceProd, …).
func FuzzReduction(f *testing.F) {
	f.Add([]byte{0, 4, 2, 3, 2, 2, 2, 2, 3, 1})
	f.Add([]byte{6, 2, 3, 0, 1, 1, 0, 0})
	f.Add([]byte{2, 3, 2, 0, 3, 1, 5, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		at := 0
		next := func() int {
			if at >= len(in) {
				return 0
			}
			at++
			return int(in[at-1])
		}
		typ := reductionTypes[next()%len(reductionTypes)]
		c := reductionConfig{shape: make([]int, next()%5)}
		for i := range c.shape {
			c.shape[i] = next() % 4
		}
		for range next() % 4 {
			c.axes = append(c.axes, int64(next()%11-5))
		}
		flags := next()
		c.fromInput, c.keep, c.noop = flags&1 != 0, flags&2 != 0, flags&4 != 0
		size := Numel(c.shape)
		x, r := make([]float64, size), make([]float64, size)
		for i := range x {
			x[i], r[i] = float64(next()%5)-2, float64(next()%3)-1
			if typ == "ReduceLogSum" {
				x[i] += 3
			}
		}
		// The output size, from shape inference (an error: the kernel
		// must refuse the node too).
		_, _, _, _, err := reductionRun[float64](typ, c, x, r, nil, nil)
		if err != nil {
			return
		}
		if size == 0 {
			return // no brute-force slices; running without a panic is the check
		}
		sl := bruteSlices(c)
		g, rg := make([]float64, len(sl)), make([]float64, len(sl))
		for o := range g {
			g[o], rg[o] = float64(next()%3)-1, float64(next()%3)-1
		}
		y, ry, dx, rdx, err := reductionRun[float64](typ, c, x, r, g, rg)
		if err != nil {
			t.Fatalf("%s %v: %v", typ, c, err)
		}
		wdx, wrdx := make([]float64, size), make([]float64, size)
		for o, s := range sl {
			v := make([]float64, len(s))
			for j, e := range s {
				v[j] = x[e]
			}
			wy, d, h := bruteReduction(typ, v)
			wry := 0.0
			for k, e := range s {
				wry += d[k] * r[e]
				wdx[e] += d[k] * g[o]
				wrdx[e] += d[k] * rg[o]
				for j, f := range s {
					wrdx[e] += g[o] * h[k][j] * r[f]
				}
			}
			if !nearRed(y[o], wy) || !nearRed(ry[o], wry) {
				t.Fatalf("%s %v x %v: y[%d] = %v, R{y} %v; want %v, %v", typ, c, x, o, y[o], ry[o], wy, wry)
			}
		}
		for e := range x {
			if !nearRed(dx[e], wdx[e]) || !nearRed(rdx[e], wrdx[e]) {
				t.Fatalf("%s %v x %v: x̄[%d] = %v, R{x̄} %v; want %v, %v", typ, c, x, e, dx[e], rdx[e], wdx[e], wrdx[e])
			}
		}
	})
}

// nearRed compares a kernel's value with the brute-force one (equal
// infinities and NaNs agree).
func nearRed(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if math.IsInf(b, 0) {
		return a == b
	}
	return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b))
}
