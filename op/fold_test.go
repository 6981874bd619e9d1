package op

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// caseTensors returns the inputs of case c as constant tensors with the
// values the harness h gave them (random ones for differentiable inputs).
func caseTensors(c Case, b *Build, h *harness[float64]) []*Tensor {
	ins := make([]*Tensor, len(c.Inputs))
	for i, in := range c.Inputs {
		if in.Absent {
			continue
		}
		v := h.val[b.In[i]]
		if in.Ints != nil {
			ins[i] = &Tensor{Type: Int64, Shape: in.Shape, Int: slices.Clone(in.Ints)}
			continue
		}
		ins[i] = &Tensor{Type: Float, Shape: in.Shape, Float: slices.Clone(v)}
	}
	return ins
}

// TestFoldEqualsKernel folds every case of every executable operator with
// all its inputs constant (random values where the case has none) and
// compares the result with the operator's kernel run on the same values as
// computed data: folding goes through the record (shape inference, the
// kernel built on constants, storage in the output type), so plumbing
// errors there show up as a difference.
func TestFoldEqualsKernel(t *testing.T) {
	n := 0
	for _, d := range Defs() {
		if d.Exec == nil {
			continue
		}
		for ci, c := range d.Cases {
			h, b, _, err := buildCase(d, c, uint64(ci))
			if err != nil || h == nil {
				t.Errorf("%s case %q: %v", d.Type, c.Name, err)
				continue
			}
			k, err := NewKernel[float64](d.Exec, b)
			if err != nil {
				t.Errorf("%s case %q: kernel: %v", d.Type, c.Name, err)
				continue
			}
			if st, ok := k.(Stateful); ok {
				h.state = st.NewState()
			}
			w := h.work()
			k.Forward(w)
			opset := c.Opset
			if opset == 0 {
				opset = 17
			}
			outs, err := Fold(b.Node, opset, caseTensors(c, b, h), nil)
			if err != nil {
				t.Errorf("%s case %q: fold: %v", d.Type, c.Name, err)
				continue
			}
			for j, o := range b.Out {
				if o < 0 {
					continue
				}
				got, want := outs[j], w.Val[o]
				if got == nil || !slices.Equal(got.Shape, h.shapeOf(o, b)) {
					t.Errorf("%s case %q: output %d folded as %v, kernel shape %v", d.Type, c.Name, j, got, h.shapeOf(o, b))
					continue
				}
				for e, v := range got.Values() {
					if math.Abs(v-want[e]) > 1e-6*max(1, math.Abs(want[e])) {
						t.Errorf("%s case %q: output %d element %d folded %v, kernel %v", d.Type, c.Name, j, e, v, want[e])
						break
					}
				}
			}
			n++
		}
	}
	t.Logf("%d cases folded", n)
}

func (h *harness[T]) shapeOf(slot int, b *Build) []int { return b.Shape(slot) }

// bruteEval are independent, coordinate-by-coordinate definitions of the
// operators that have an Eval instead of a kernel, from the ONNX operator
// specification. They return output 0.
var bruteEval = map[string]func(n *Node, ins []*Tensor, out *Tensor) []float64{}

func init() {
	cmp := map[string]func(a, b float64) bool{
		"Equal": func(a, b float64) bool { return a == b }, "Less": func(a, b float64) bool { return a < b },
		"Greater": func(a, b float64) bool { return a > b }, "LessOrEqual": func(a, b float64) bool { return a <= b },
		"GreaterOrEqual": func(a, b float64) bool { return a >= b },
		"And":            func(a, b float64) bool { return a != 0 && b != 0 }, "Or": func(a, b float64) bool { return a != 0 || b != 0 },
		"Xor": func(a, b float64) bool { return (a != 0) != (b != 0) },
	}
	for typ, f := range cmp {
		bruteEval[typ] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
			return overCoords(out.Shape, func(c []int) float64 {
				return bool01(f(bAt(ins[0], c), bAt(ins[1], c)))
			})
		}
	}
	unary := map[string]func(float64) bool{"Not": func(v float64) bool { return v == 0 }, "IsNaN": math.IsNaN,
		"IsInf": func(v float64) bool { return math.IsInf(v, 0) }}
	for typ, f := range unary {
		bruteEval[typ] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
			return overCoords(out.Shape, func(c []int) float64 { return bool01(f(bAt(ins[0], c))) })
		}
	}
	bruteEval["Mod"] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
		return overCoords(out.Shape, func(c []int) float64 {
			a, b := bAt(ins[0], c), bAt(ins[1], c)
			return a - b*math.Floor(a/b) // Python's %: the divisor's sign
		})
	}
	bruteEval["Where"] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
		return overCoords(out.Shape, func(c []int) float64 {
			if bAt(ins[0], c) != 0 {
				return bAt(ins[1], c)
			}
			return bAt(ins[2], c)
		})
	}
	bruteEval["ConstantOfShape"] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
		return make([]float64, out.Len())
	}
	bruteEval["CastLike"] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
		return overCoords(out.Shape, func(c []int) float64 { return float64(float32(bAt(ins[0], c))) })
	}
	bruteEval["Range"] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
		var v []float64
		for x := at(ins[0], 0); x < at(ins[1], 0); x += at(ins[2], 0) {
			v = append(v, x)
		}
		return v
	}
	for _, typ := range []string{"ArgMax", "ArgMin"} {
		bruteEval[typ] = func(n *Node, ins []*Tensor, out *Tensor) []float64 {
			a, _ := n.AttrInt("axis", 0)
			return groups(ins[0], []int64{a}, func(vals []float64, pos []int) float64 {
				best := 0
				for i, v := range vals {
					if (n.Op == "ArgMax" && v > vals[best]) || (n.Op == "ArgMin" && v < vals[best]) {
						best = i
					}
				}
				return float64(pos[best])
			})
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// overCoords evaluates f at every coordinate of shape, row-major.
func overCoords(shape []int, f func(c []int) float64) []float64 {
	var v []float64
	var rec func(c []int)
	rec = func(c []int) {
		if len(c) == len(shape) {
			v = append(v, f(c))
			return
		}
		for i := 0; i < shape[len(c)]; i++ {
			rec(append(c, i))
		}
	}
	rec(nil)
	return v
}

// bAt reads t at output coordinate c under numpy broadcasting (trailing
// axes aligned, size-1 axes repeated).
func bAt(t *Tensor, c []int) float64 {
	off, idx := len(c)-len(t.Shape), 0
	for d, s := range t.Shape {
		i := c[off+d]
		if s == 1 {
			i = 0
		}
		idx = idx*s + i
	}
	return at(t, idx)
}

// groups reduces x over axes (none: all) by f, which receives the values
// of one output element and their coordinates along the first reduced
// axis; output elements in row-major order of the kept axes.
func groups(x *Tensor, axes []int64, f func(vals []float64, pos []int) float64) []float64 {
	r := len(x.Shape)
	red := make([]bool, r)
	for _, a := range axes {
		red[(int(a)+r)%r] = true
	}
	if len(axes) == 0 {
		for i := range red {
			red[i] = true
		}
	}
	first := slices.Index(red, true)
	keyOf := map[string]int{}
	var vals [][]float64
	var pos [][]int
	var k int
	overCoords(x.Shape, func(c []int) float64 {
		key := ""
		for d := range c {
			if !red[d] {
				key += fmt.Sprint(c[d], ",")
			}
		}
		g, ok := keyOf[key]
		if !ok {
			g = len(vals)
			keyOf[key] = g
			vals, pos = append(vals, nil), append(pos, nil)
		}
		vals[g] = append(vals[g], at(x, k))
		pos[g] = append(pos[g], c[first])
		k++
		return 0
	})
	out := make([]float64, len(vals))
	for g := range vals {
		out[g] = f(vals[g], pos[g])
	}
	return out
}

// TestFoldEvalBruteForce folds every case of every operator evaluated by
// an Eval, on random inputs (small integers, so that comparisons tie and
// conditions are both true and false), and compares output 0 with the
// coordinate-by-coordinate definitions above. An Eval operator without a
// definition there fails.
func TestFoldEvalBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	n := 0
	for _, d := range Defs() {
		if d.Eval == nil {
			continue
		}
		ref := bruteEval[d.Type]
		if ref == nil {
			t.Errorf("%s: has an Eval but no brute-force definition in fold_test.go", d.Type)
			continue
		}
		for _, c := range d.Cases {
			for it := 0; it < 20; it++ {
				nd := &Node{Op: d.Type, Name: "n", Outputs: []string{"y"}, Attrs: map[string]*Attr{}}
				for _, a := range c.Attrs {
					nd.Attrs[a.Name] = a
				}
				ins := make([]*Tensor, len(c.Inputs))
				for i, in := range c.Inputs {
					nd.Inputs = append(nd.Inputs, fmt.Sprintf("x%d", i))
					switch {
					case in.Ints != nil:
						ins[i] = &Tensor{Type: Int64, Shape: in.Shape, Int: in.Ints}
					case in.Const != nil:
						ins[i] = &Tensor{Type: Float, Shape: in.Shape, Float: in.Const}
					default:
						v := make([]float64, Numel(in.Shape))
						for e := range v {
							if in.Lo != 0 || in.Hi != 0 {
								v[e] = float64(float32(in.Lo + (in.Hi-in.Lo)*rng.Float64()))
							} else {
								v[e] = float64(rng.IntN(5) - 2)
							}
						}
						ins[i] = &Tensor{Type: Float, Shape: in.Shape, Float: v}
					}
				}
				opset := c.Opset
				if opset == 0 {
					opset = 17
				}
				outs, err := Fold(nd, opset, ins, nil)
				if err != nil {
					t.Fatalf("%s case %q: %v", d.Type, c.Name, err)
				}
				got := outs[0].Values()
				want := ref(nd, ins, outs[0])
				if len(got) != len(want) {
					t.Fatalf("%s case %q: %d elements, want %d", d.Type, c.Name, len(got), len(want))
				}
				for e := range got {
					if math.Abs(got[e]-want[e]) > 1e-6*max(1, math.Abs(want[e])) {
						t.Fatalf("%s case %q inputs %v: element %d is %v, want %v", d.Type, c.Name, ins, e, got[e], want[e])
					}
				}
				n++
			}
		}
	}
	t.Logf("%d folds compared", n)
}

// TestFoldVariadic: Max, Min, Sum and Mean of one, three and four constant
// inputs (ONNX allows any number; torch exports two) fold to the
// elementwise extreme, sum or mean over the broadcast inputs, in the
// inputs' element type (Max and Min of integers too; Sum and Mean are
// defined on floating-point types only).
func TestFoldVariadic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	floats := func(shape ...int) *Tensor {
		v := make([]float64, Numel(shape))
		for i := range v {
			v[i] = float64(float32(rng.NormFloat64()))
		}
		return &Tensor{Type: Float, Shape: shape, Float: v}
	}
	for _, c := range []struct {
		ins  []*Tensor
		want []int
	}{
		{[]*Tensor{floats(2, 3)}, []int{2, 3}},
		{[]*Tensor{floats(2, 1), floats(3), floats(1, 3)}, []int{2, 3}},
		{[]*Tensor{floats(4, 1, 1), floats(2, 1), floats(3), floats(4, 2, 3)}, []int{4, 2, 3}},
		{[]*Tensor{{Type: Int64, Shape: []int{3}, Int: []int64{5, -2, 7}}, {Type: Int64, Shape: []int{1}, Int: []int64{0}},
			{Type: Int64, Shape: []int{3}, Int: []int64{1, 9, -4}}}, []int{3}},
	} {
		for _, typ := range []string{"Max", "Min", "Sum", "Mean"} {
			if (typ == "Sum" || typ == "Mean") && c.ins[0].Type != Float {
				continue
			}
			nd := &Node{Op: typ, Name: "v", Outputs: []string{"y"}}
			for i := range c.ins {
				nd.Inputs = append(nd.Inputs, fmt.Sprintf("x%d", i))
			}
			outs, err := Fold(nd, 13, c.ins, nil)
			if err != nil {
				t.Fatalf("%s of %d inputs: %v", typ, len(c.ins), err)
			}
			y := outs[0]
			if !slices.Equal(y.Shape, c.want) || y.Type != c.ins[0].Type {
				t.Fatalf("%s of %d inputs: shape %v type %v, want %v %v", typ, len(c.ins), y.Shape, y.Type, c.want, c.ins[0].Type)
			}
			// Brute force: every output coordinate against every input's
			// broadcast element.
			got := y.Values()
			for k := range got {
				want := map[string]float64{"Max": math.Inf(-1), "Min": math.Inf(1)}[typ]
				for _, x := range c.ins {
					v := x.Values()[BroadcastIndex(x.Shape, c.want)[k]]
					switch typ {
					case "Max":
						want = math.Max(want, v)
					case "Min":
						want = math.Min(want, v)
					default:
						want += v
					}
				}
				if typ == "Mean" {
					want /= float64(len(c.ins))
				}
				if typ == "Sum" || typ == "Mean" {
					want = float64(float32(want)) // FLOAT output
				}
				if got[k] != want {
					t.Fatalf("%s of %d inputs: element %d is %v, want %v", typ, len(c.ins), k, got[k], want)
				}
			}
		}
	}
}

// TestFoldNotFoldable: a node Fold cannot evaluate is reported naming the
// operator, distinctly from a malformed node.
func TestFoldNotFoldable(t *testing.T) {
	x := &Tensor{Type: Float, Shape: []int{1, 2, 3, 3}, Float: make([]float64, 18)}
	for _, c := range []struct {
		n    *Node
		want string
	}{
		{&Node{Op: "LRN", Name: "lrn", Inputs: []string{"x"}, Outputs: []string{"y"},
			Attrs: map[string]*Attr{"size": {Name: "size", Type: AttrInt, Int: 3}}}, "LRN has no kernel or constant evaluation"},
		{&Node{Op: "NoSuchOp", Name: "z", Inputs: []string{"x"}, Outputs: []string{"y"}}, "operator NoSuchOp has no record"},
		{&Node{Op: "Relu", Domain: "com.example", Inputs: []string{"x"}, Outputs: []string{"y"}}, "domain"},
	} {
		_, err := Fold(c.n, 17, []*Tensor{x}, nil)
		if !IsNotFoldable(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a NotFoldable about %q", c.n.Op, err, c.want)
		}
	}
	// An input of unknown value: not folded, naming the input.
	add := &Node{Op: "Add", Name: "add", Inputs: []string{"a", "b"}, Outputs: []string{"y"}}
	if _, err := Fold(add, 17, []*Tensor{x, nil}, nil); !IsNotFoldable(err) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("Add with an unknown input: %v", err)
	}
	// A node its kernel refuses (training-mode Dropout) is left for the
	// engine.
	drop := &Node{Op: "Dropout", Name: "drop", Inputs: []string{"x", "r", "train"}, Outputs: []string{"y"}}
	train := &Tensor{Type: Bool, Shape: []int{}, Int: []int64{1}}
	ratio := &Tensor{Type: Float, Shape: []int{}, Float: []float64{0.5}}
	if _, err := Fold(drop, 17, []*Tensor{x, ratio, train}, nil); !IsNotFoldable(err) || !strings.Contains(err.Error(), "kernel does not run it") {
		t.Errorf("training-mode Dropout: %v", err)
	}
	// A variadic Max with an input of unknown value is not folded, naming
	// the input.
	mx := &Node{Op: "Max", Name: "max", Inputs: []string{"a", "b", "c"}, Outputs: []string{"y"}}
	if _, err := Fold(mx, 17, []*Tensor{x, x, nil}, nil); !IsNotFoldable(err) || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("Max with an unknown third input: %v", err)
	}
	// A malformed node is an error, not NotFoldable.
	g := &Node{Op: "Gather", Name: "g", Inputs: []string{"x", "i"}, Outputs: []string{"y"}}
	_, err := Fold(g, 17, []*Tensor{{Type: Int64, Shape: []int{2}, Int: []int64{1, 2}}, {Type: Int64, Shape: []int{}, Int: []int64{5}}}, nil)
	if err == nil || IsNotFoldable(err) {
		t.Errorf("Gather out of range: %v, want an error", err)
	}
}

// TestFoldStoresOutputType: results are stored in the output's element
// type, and INT64_MAX (a slice end) survives a kernel.
func TestFoldStoresOutputType(t *testing.T) {
	castTo := func(to DataType, x *Tensor) *Tensor {
		n := &Node{Op: "Cast", Name: "c", Inputs: []string{"x"}, Outputs: []string{"y"},
			Attrs: map[string]*Attr{"to": {Name: "to", Type: AttrInt, Int: int64(to)}}}
		outs, err := Fold(n, 17, []*Tensor{x}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return outs[0]
	}
	f := &Tensor{Type: Double, Shape: []int{4}, Float: []float64{-2.7, 0.1, 1e30, math.NaN()}}
	if y := castTo(Int64, f); fmt.Sprint(y.Int) != fmt.Sprint([]int64{-2, 0, math.MaxInt64, 0}) {
		t.Errorf("cast to INT64: %v", y.Int)
	}
	if y := castTo(Bool, f); fmt.Sprint(y.Int) != "[1 1 1 1]" {
		t.Errorf("cast to BOOL: %v", y.Int)
	}
	if y := castTo(Float, f); y.Float[1] != float64(float32(0.1)) {
		t.Errorf("cast to FLOAT: %v, want float32 rounding", y.Float)
	}
	big := &Tensor{Type: Int64, Shape: []int{2, 1}, Int: []int64{math.MaxInt64, math.MinInt64}}
	tr := &Node{Op: "Transpose", Name: "t", Inputs: []string{"x"}, Outputs: []string{"y"}}
	outs, err := Fold(tr, 17, []*Tensor{big}, nil)
	if err != nil || fmt.Sprint(outs[0].Int) != fmt.Sprint([]int64{math.MaxInt64, math.MinInt64}) {
		t.Errorf("transpose of INT64 extremes: %v, %v", outs, err)
	}
}
