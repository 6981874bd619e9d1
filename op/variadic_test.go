package op

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// variadicRun is one run of a Max, Min, Sum or Mean kernel in precision T
// over inputs of the given shapes: every pass, with the values vals,
// R-values rvs (nil: a zero R-value), the output adjoint g and R-adjoint
// rg. It returns the output, its R-value, and each input's adjoint and
// R-adjoint.
func variadicRun[T Real](typ string, shapes [][]int, vals, rvs [][]float64, g, rg []float64) (y, ry []float64, adj, radj [][]float64, err error) {
	ys, err := BroadcastShapes(shapes...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ts := &testSlots{}
	nd := &Node{Op: typ, Name: "v", Outputs: []string{"y"}}
	b := &Build{Node: nd, Opset: 17, Slots: ts}
	for i, s := range shapes {
		nd.Inputs = append(nd.Inputs, fmt.Sprintf("x%d", i))
		b.In = append(b.In, i)
		ts.shapes, ts.consts, ts.names = append(ts.shapes, s), append(ts.consts, nil), append(ts.names, nd.Inputs[i])
	}
	b.Out = []int{len(shapes)}
	ts.shapes, ts.consts, ts.names = append(ts.shapes, ys), append(ts.consts, nil), append(ts.names, "y")
	d := Lookup(typ, 17)
	k, err := NewKernel[T](d.Exec, b)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ns := len(ts.shapes)
	w := &Work[T]{Val: make([][]T, ns), RV: make([][]T, ns), Adj: make([][]T, ns), RAdj: make([][]T, ns), State: make([]any, 1)}
	if st, ok := k.(Stateful); ok {
		w.State[0] = st.NewState()
	}
	for i, s := range shapes {
		w.Val[i] = Convert[T](vals[i])
		if rvs[i] != nil {
			w.RV[i] = Convert[T](rvs[i])
		}
		w.Adj[i], w.RAdj[i] = make([]T, Numel(s)), make([]T, Numel(s))
	}
	o := len(shapes)
	w.Val[o], w.RV[o] = make([]T, Numel(ys)), make([]T, Numel(ys))
	w.Adj[o], w.RAdj[o] = Convert[T](g), Convert[T](rg)
	k.Forward(w)
	k.RForward(w)
	k.Backward(w)
	k.RBackward(w)
	f64 := func(v []T) []float64 { return Convert[float64](v) }
	for i := range shapes {
		adj, radj = append(adj, f64(w.Adj[i])), append(radj, f64(w.RAdj[i]))
	}
	return f64(w.Val[o]), f64(w.RV[o]), adj, radj, nil
}

// bIdx is the element of an input of shape s that broadcasting reads at
// output coordinate c.
func bIdx(s, c []int) int {
	off, idx := len(c)-len(s), 0
	for d, n := range s {
		i := c[off+d]
		if n == 1 {
			i = 0
		}
		idx = idx*n + i
	}
	return idx
}

// variadicWeights is the brute-force definition of Max, Min, Sum and
// Mean at one output element, from the inputs' values there: each input's
// weight in the output (so y = Σ wᵢ xᵢ and ∂y/∂xᵢ = wᵢ). Max puts weight 1
// on the last input attaining the maximum, Min on the first attaining the
// minimum (the documented tie rule); Sum weights all inputs 1 and Mean 1/n.
func variadicWeights(typ string, v []float64) []float64 {
	w := make([]float64, len(v))
	switch typ {
	case "Max":
		m := slices.Max(v)
		for i := len(v) - 1; i >= 0; i-- {
			if v[i] == m {
				w[i] = 1
				break
			}
		}
	case "Min":
		w[slices.Index(v, slices.Min(v))] = 1
	case "Sum", "Mean":
		for i := range w {
			w[i] = 1
			if typ == "Mean" {
				w[i] /= float64(len(v))
			}
		}
	}
	return w
}

// TestVariadicBruteForce runs Max, Min, Sum and Mean with one to four
// broadcast inputs in both precisions — on small integers (many ties) and
// on continuous values — through all four passes and compares every output
// and every input's adjoint with the coordinate-by-coordinate definition
// (variadicWeights): y = Σ wᵢ xᵢ, R{y} = Σ wᵢ R{xᵢ}, x̄ᵢ = Σ_out wᵢ ȳ and
// R{x̄ᵢ} = Σ_out wᵢ R{ȳ} (the second-order term is zero: for fixed picks
// the map is linear).
func TestVariadicBruteForce(t *testing.T) {
	sets := [][][]int{
		{{2, 3}},
		{{2, 3}, {2, 3}},
		{{2, 3, 2}, {3, 1}},
		{{2, 1}, {3}, {1, 3}},
		{{4, 1, 1}, {2, 1}, {3}, {4, 2, 3}},
		{{}, {2, 1, 3}, {1}, {2, 2, 1}},
	}
	rng := rand.New(rand.NewPCG(5, 5))
	n := 0
	for _, shapes := range sets {
		for _, ints := range []bool{true, false} {
			draw := func(m int) []float64 {
				v := make([]float64, m)
				for i := range v {
					if ints {
						v[i] = float64(rng.IntN(3) - 1)
					} else {
						v[i] = float64(float32(rng.NormFloat64()))
					}
				}
				return v
			}
			ys, err := BroadcastShapes(shapes...)
			if err != nil {
				t.Fatal(err)
			}
			var vals, rvs [][]float64
			for i, s := range shapes {
				vals = append(vals, draw(Numel(s)))
				if i == 1 {
					rvs = append(rvs, nil) // a zero R-value
				} else {
					rvs = append(rvs, draw(Numel(s)))
				}
			}
			g, rg := draw(Numel(ys)), draw(Numel(ys))
			for _, typ := range []string{"Max", "Min", "Sum", "Mean"} {
				// Brute force.
				y, ry := make([]float64, Numel(ys)), make([]float64, Numel(ys))
				var adj, radj [][]float64
				for _, s := range shapes {
					adj, radj = append(adj, make([]float64, Numel(s))), append(radj, make([]float64, Numel(s)))
				}
				o := 0
				overCoords(ys, func(c []int) float64 {
					v := make([]float64, len(shapes))
					for i, s := range shapes {
						v[i] = vals[i][bIdx(s, c)]
					}
					for i, wi := range variadicWeights(typ, v) {
						j := bIdx(shapes[i], c)
						y[o] += wi * v[i]
						if rvs[i] != nil {
							ry[o] += wi * rvs[i][j]
						}
						adj[i][j] += wi * g[o]
						radj[i][j] += wi * rg[o]
					}
					o++
					return 0
				})
				check := func(prec string, tol float64, gy, gry []float64, gadj, gradj [][]float64) {
					t.Helper()
					cmp := func(what string, got, want []float64) {
						t.Helper()
						for e := range want {
							if math.Abs(got[e]-want[e]) > tol*max(1, math.Abs(want[e])) {
								t.Errorf("%s %s of %v (integers %v): %s element %d is %v, want %v", prec, typ, shapes, ints, what, e, got[e], want[e])
								return
							}
						}
					}
					cmp("y", gy, y)
					cmp("R{y}", gry, ry)
					for i := range shapes {
						cmp(fmt.Sprintf("adjoint of input %d", i), gadj[i], adj[i])
						cmp(fmt.Sprintf("R-adjoint of input %d", i), gradj[i], radj[i])
					}
				}
				gy, gry, gadj, gradj, err := variadicRun[float64](typ, shapes, vals, rvs, g, rg)
				if err != nil {
					t.Fatalf("%s of %v: %v", typ, shapes, err)
				}
				check("float64", 1e-12, gy, gry, gadj, gradj)
				gy, gry, gadj, gradj, err = variadicRun[float32](typ, shapes, vals, rvs, g, rg)
				if err != nil {
					t.Fatalf("%s of %v: %v", typ, shapes, err)
				}
				// float32: the picks are exact, a sum of at most 12 terms
				// of O(1) rounds at ≈ 12·6e-8.
				check("float32", 1e-5, gy, gry, gadj, gradj)
				n++
			}
		}
	}
	t.Logf("%d runs compared", n)
}

// TestVariadicTies pins the tie rule on hand-made cases: Max routes to the
// last tied input, Min to the first, as ONNX's two-input rule folded left
// (so Max(x, 0) has Relu's zero derivative at x = 0, and Max(0, x) the
// derivative 1); a NaN input wins and makes the output NaN.
func TestVariadicTies(t *testing.T) {
	for _, c := range []struct {
		typ  string
		vals []float64
		want int // the input the derivative reaches
	}{
		{"Max", []float64{1, 1, 1}, 2},
		{"Max", []float64{2, 2, 1}, 1},
		{"Max", []float64{0, 0}, 1}, // Max(x, 0) at x = 0: x̄ = 0, as Relu
		{"Max", []float64{3, 1, 3, 2}, 2},
		{"Min", []float64{1, 1, 1}, 0},
		{"Min", []float64{2, 1, 1}, 1},
		{"Min", []float64{0, 0}, 0},
		{"Max", []float64{1, math.NaN(), 2}, 1},
		{"Min", []float64{math.NaN(), -1, math.NaN()}, 0},
	} {
		shapes := make([][]int, len(c.vals))
		vals := make([][]float64, len(c.vals))
		for i, v := range c.vals {
			shapes[i], vals[i] = []int{1}, []float64{v}
		}
		y, _, adj, _, err := variadicRun[float32](c.typ, shapes, vals, vals, []float64{1}, []float64{1})
		if err != nil {
			t.Fatal(err)
		}
		wantY := c.vals[c.want]
		if !(y[0] == wantY || math.IsNaN(wantY) && math.IsNaN(y[0])) {
			t.Errorf("%s%v = %v, want %v", c.typ, c.vals, y[0], wantY)
		}
		for i := range adj {
			want := 0.0
			if i == c.want {
				want = 1
			}
			if adj[i][0] != want {
				t.Errorf("%s%v: ∂y/∂x%d = %v, want %v (the derivative goes to input %d)", c.typ, c.vals, i, adj[i][0], want, c.want)
			}
		}
	}
}

// TestVariadicRefusesBadNodes: a node without inputs, or with an empty
// input name, is refused by shape inference and by the kernel, naming the
// node.
func TestVariadicRefusesBadNodes(t *testing.T) {
	for _, typ := range []string{"Max", "Sum"} {
		s := &Shapes{Dims: map[string][]int{"a": {2}}, Types: map[string]DataType{"a": Float}, Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
		for _, ins := range [][]string{nil, {"a", ""}} {
			nd := &Node{Op: typ, Name: "bad", Inputs: ins, Outputs: []string{"y"}}
			if err := Lookup(typ, 17).Infer(nd, s); err == nil {
				t.Errorf("%s with inputs %q: shape inference accepted it", typ, ins)
			}
		}
		b := &Build{Node: &Node{Op: typ, Name: "bad", Outputs: []string{"y"}}, Opset: 17, Out: []int{0}, Slots: &testSlots{shapes: [][]int{{2}}, consts: [][]float64{nil}, names: []string{"y"}}}
		if _, err := NewKernel[float64](Lookup(typ, 17).Exec, b); err == nil {
			t.Errorf("%s without inputs: the kernel was built", typ)
		}
	}
}
