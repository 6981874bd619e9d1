package model

import (
	"fmt"
	"github.com/bitplan/bitplan/op"
	"math"
	"slices"
)

// maxFold bounds the elements of a tensor that folding materialises; larger
// results are left to the engine.
const maxFold = 1 << 20

// foldable lists the operators Fold evaluates on constant inputs. Shape and
// Size need only their input's shape.
var foldable = map[string]bool{
	"Identity": true, "Constant": true, "Cast": true, "CastLike": true, "Shape": true, "Size": true,
	"Gather": true, "Unsqueeze": true, "Squeeze": true, "Concat": true, "Range": true, "Reshape": true,
	"Flatten": true, "Transpose": true, "Slice": true, "Expand": true, "ConstantOfShape": true,
	"Tile": true, "Where": true, "Not": true,
	"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true,
	"And": true, "Or": true, "Xor": true,
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Mod": true, "Max": true, "Min": true,
	"Neg": true, "Abs": true, "Sqrt": true, "Reciprocal": true, "Floor": true, "Ceil": true, "Exp": true,
	"Log": true, "Relu": true, "Sign": true, "ReduceProd": true, "ReduceSum": true, "ReduceMin": true,
	"ReduceMax": true, "Dropout": true,
}

// Foldable reports whether Fold can evaluate op on constant inputs.
func Foldable(op string) bool { return foldable[op] }

// Fold evaluates node n on constant inputs: ins[i] is the value of input i
// (nil for an omitted optional input). Shape and Size read only the shape
// of their input, given in shape0 (ins[0] may then be nil). It returns the
// values of n's outputs, or ok=false when n cannot be folded (an operator
// outside the folding set, or a result larger than maxFold elements). An
// error reports inputs inconsistent with the operator's definition.
func Fold(n *Node, opset int64, ins []*Tensor, shape0 []int) (outs []*Tensor, ok bool, err error) {
	if !foldable[n.Op] || (n.Domain != "" && n.Domain != "ai.onnx") {
		return nil, false, nil
	}
	in := func(i int) *Tensor {
		if i < len(ins) {
			return ins[i]
		}
		return nil
	}
	x := in(0)
	if n.Op != "Constant" && n.Op != "Shape" && n.Op != "Size" && n.Op != "Concat" && x == nil {
		return nil, false, nil
	}
	var t *Tensor
	switch n.Op {
	case "Constant":
		t, err = constantValue(n)
	case "Identity":
		t = x
	case "Dropout":
		t = x
		if len(n.Outputs) > 1 && n.Outputs[1] != "" {
			mask := &Tensor{Type: Bool, Shape: slices.Clone(x.Shape), Int: make([]int64, x.Len())}
			for i := range mask.Int {
				mask.Int[i] = 1
			}
			return []*Tensor{x, mask}, true, nil
		}
	case "Cast", "CastLike":
		to := Undefined
		if n.Op == "Cast" {
			v, e := n.AttrInt("to", 0)
			if e != nil {
				return nil, false, e
			}
			to = DataType(v)
		} else if y := in(1); y != nil {
			to = y.Type
		}
		t, err = cast(n, x, to)
	case "Shape":
		if shape0 == nil {
			return nil, false, nil
		}
		start, e := n.AttrInt("start", 0)
		if e != nil {
			return nil, false, e
		}
		end, e := n.AttrInt("end", int64(len(shape0)))
		if e != nil {
			return nil, false, e
		}
		r := int64(len(shape0))
		t = &Tensor{Type: Int64, Int: []int64{}}
		for i := clampIndex(start, r); i < clampIndex(end, r); i++ {
			t.Int = append(t.Int, int64(shape0[i]))
		}
		t.Shape = []int{len(t.Int)}
	case "Size":
		if shape0 == nil {
			return nil, false, nil
		}
		t = &Tensor{Type: Int64, Shape: []int{}, Int: []int64{int64(numElems(shape0))}}
	case "Gather":
		t, err = gatherT(n, x, in(1))
	case "Unsqueeze", "Squeeze":
		axes, e := axesArg(n, opset, in(1))
		if e != nil {
			return nil, false, e
		}
		var sh []int
		if n.Op == "Unsqueeze" {
			sh, err = op.UnsqueezeDims(n, x.Shape, axes)
		} else {
			sh, err = op.SqueezeDims(n, x.Shape, axes)
		}
		if err == nil {
			t = reshaped(x, sh)
		}
	case "Reshape":
		if y := in(1); y != nil {
			az, e := n.AttrInt("allowzero", 0)
			if e != nil {
				return nil, false, e
			}
			sh, e := op.ReshapeDims(x.Shape, y.Int, az != 0)
			if e != nil {
				return nil, false, fmt.Errorf("%s: %v", n.Label(), e)
			}
			t = reshaped(x, sh)
		} else {
			return nil, false, nil
		}
	case "Flatten":
		a, e := n.AttrInt("axis", 1)
		if e != nil {
			return nil, false, e
		}
		ax, e := normAxis(n, "axis", a, len(x.Shape), true)
		if e != nil {
			return nil, false, e
		}
		t = reshaped(x, []int{numElems(x.Shape[:ax]), numElems(x.Shape[ax:])})
	case "Concat":
		t, err = concatT(n, ins)
	case "Range":
		t, err = rangeT(n, x, in(1), in(2))
	case "Transpose":
		t, err = transposeT(n, x)
	case "Slice":
		t, err = sliceT(n, x, ins)
	case "Expand":
		y := in(1)
		if y == nil {
			return nil, false, nil
		}
		d, e := toDims(n, y.Int)
		if e != nil {
			return nil, false, e
		}
		o, e := op.BroadcastShapes(x.Shape, d)
		if e != nil {
			return nil, false, fmt.Errorf("%s: %v", n.Label(), e)
		}
		if numElems(o) > maxFold {
			return nil, false, nil
		}
		t = pick(x, broadcastIndex(x.Shape, o), o)
	case "Tile":
		t, err = tileT(n, x, in(1))
	case "ConstantOfShape":
		d, e := toDims(n, x.Int)
		if e != nil {
			return nil, false, e
		}
		if numElems(d) > maxFold {
			return nil, false, nil
		}
		v := &Tensor{Type: Float, Shape: []int{1}, Float: []float64{0}}
		if a, ok := n.Attrs["value"]; ok && a.Tensor != nil {
			v = a.Tensor
		}
		if v.Len() != 1 {
			return nil, false, attrErr(n, "value", "has %d elements, want 1", v.Len())
		}
		t = pick(v, make([]int, numElems(d)), d)
	case "Where":
		t, err = whereT(n, x, in(1), in(2))
	case "ReduceProd", "ReduceSum", "ReduceMin", "ReduceMax":
		t, err = reduceT(n, opset, x, in(1))
	default:
		if len(n.Inputs) == 1 || unaryFold[n.Op] != nil {
			t, err = unaryT(n, x)
		} else {
			t, err = binaryT(n, ins)
		}
	}
	if err != nil || t == nil {
		return nil, false, err
	}
	if t.Len() > maxFold {
		return nil, false, nil
	}
	out := *t
	out.Name = ""
	return []*Tensor{&out}, true, nil
}

func reshaped(x *Tensor, shape []int) *Tensor {
	return &Tensor{Type: x.Type, Shape: shape, Float: x.Float, Int: x.Int}
}

// pick returns the tensor of the given shape whose element k is x's element
// idx[k].
func pick(x *Tensor, idx []int, shape []int) *Tensor {
	t := &Tensor{Type: x.Type, Shape: slices.Clone(shape)}
	if x.Type.IsFloat() {
		t.Float = make([]float64, len(idx))
		for k, j := range idx {
			t.Float[k] = x.Float[j]
		}
	} else {
		t.Int = make([]int64, len(idx))
		for k, j := range idx {
			t.Int[k] = x.Int[j]
		}
	}
	return t
}

func strides(shape []int) []int {
	s := make([]int, len(shape))
	p := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = p
		p *= shape[i]
	}
	return s
}

// each calls f with every coordinate of shape in row-major order.
func each(shape []int, f func(c []int)) {
	n := numElems(shape)
	c := make([]int, len(shape))
	for k := 0; k < n; k++ {
		f(c)
		for d := len(shape) - 1; d >= 0; d-- {
			c[d]++
			if c[d] < shape[d] {
				break
			}
			c[d] = 0
		}
	}
}

func cast(n *Node, x *Tensor, to DataType) (*Tensor, error) {
	t := &Tensor{Type: to, Shape: slices.Clone(x.Shape)}
	switch {
	case to.IsFloat():
		t.Float = slices.Clone(x.Values())
		if to == Float {
			for i, v := range t.Float {
				t.Float[i] = float64(float32(v))
			}
		}
	case to.IsInt():
		t.Int = make([]int64, x.Len())
		for i := range t.Int {
			if x.Type.IsFloat() {
				v := x.Float[i]
				if to == Bool {
					if v != 0 {
						t.Int[i] = 1
					}
					continue
				}
				if math.IsNaN(v) || math.Abs(v) > 1<<63 {
					return nil, fmt.Errorf("%s: cannot cast %v to %v", n.Label(), v, to)
				}
				t.Int[i] = int64(v) // truncation toward zero, as C
			} else {
				t.Int[i] = x.Int[i]
				if to == Bool && t.Int[i] != 0 {
					t.Int[i] = 1
				}
			}
		}
	default:
		return nil, attrErr(n, "to", "is %v, want a numeric type", to)
	}
	return t, nil
}

func gatherT(n *Node, x, idx *Tensor) (*Tensor, error) {
	if idx == nil || idx.Type.IsFloat() {
		return nil, fmt.Errorf("%s: indices must be an integer tensor", n.Label())
	}
	if len(x.Shape) == 0 {
		return nil, fmt.Errorf("%s: cannot gather from a scalar", n.Label())
	}
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	ax, err := normAxis(n, "axis", a, len(x.Shape), false)
	if err != nil {
		return nil, err
	}
	d := x.Shape[ax]
	outer, inner := numElems(x.Shape[:ax]), numElems(x.Shape[ax+1:])
	o := append(append(slices.Clone(x.Shape[:ax]), idx.Shape...), x.Shape[ax+1:]...)
	if numElems(o) > maxFold {
		return nil, nil
	}
	src := make([]int, 0, numElems(o))
	for i := 0; i < outer; i++ {
		for _, j := range idx.Int {
			if j < 0 {
				j += int64(d)
			}
			if j < 0 || j >= int64(d) {
				return nil, fmt.Errorf("%s: index %d out of range for axis %d of shape %v", n.Label(), j, ax, x.Shape)
			}
			for k := 0; k < inner; k++ {
				src = append(src, (i*d+int(j))*inner+k)
			}
		}
	}
	return pick(x, src, o), nil
}

// axesArg returns the axes of Squeeze/Unsqueeze/Reduce*: an attribute
// before opset 13 (18 for reductions other than ReduceSum), an input after.
func axesArg(n *Node, opset int64, in *Tensor) ([]int64, error) {
	if in != nil {
		return in.Int, nil
	}
	return n.AttrInts("axes", nil)
}

func concatT(n *Node, ins []*Tensor) (*Tensor, error) {
	var xs []*Tensor
	for _, t := range ins {
		if t == nil {
			return nil, nil
		}
		if t.Len() > 0 || len(xs) == 0 {
			xs = append(xs, t)
		}
	}
	if len(xs) == 0 {
		return nil, nil
	}
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	r := len(xs[0].Shape)
	if r == 0 {
		return nil, fmt.Errorf("%s: cannot concatenate scalars", n.Label())
	}
	ax, err := normAxis(n, "axis", a, r, false)
	if err != nil {
		return nil, err
	}
	o := slices.Clone(xs[0].Shape)
	for i, t := range xs[1:] {
		if len(t.Shape) != r {
			return nil, fmt.Errorf("%s: input %d has shape %v, want rank %d", n.Label(), i+1, t.Shape, r)
		}
		for d := range t.Shape {
			if d != ax && t.Shape[d] != o[d] {
				return nil, fmt.Errorf("%s: input %d has shape %v, incompatible with %v on axis %d", n.Label(), i+1, t.Shape, xs[0].Shape, a)
			}
		}
		o[ax] += t.Shape[ax]
	}
	fl := xs[0].Type.IsFloat()
	out := &Tensor{Type: xs[0].Type, Shape: o}
	outer := numElems(o[:ax])
	for i := 0; i < outer; i++ {
		for _, t := range xs {
			if t.Type.IsFloat() != fl {
				return nil, fmt.Errorf("%s: inputs of types %v and %v", n.Label(), xs[0].Type, t.Type)
			}
			blk := numElems(t.Shape[ax:])
			if fl {
				out.Float = append(out.Float, t.Float[i*blk:(i+1)*blk]...)
			} else {
				out.Int = append(out.Int, t.Int[i*blk:(i+1)*blk]...)
			}
		}
	}
	return out, nil
}

func scalarOf(n *Node, t *Tensor, what string) (float64, error) {
	if t == nil || t.Len() != 1 {
		return 0, fmt.Errorf("%s: %s must be a scalar", n.Label(), what)
	}
	return t.Values()[0], nil
}

func rangeT(n *Node, s, l, d *Tensor) (*Tensor, error) {
	start, err := scalarOf(n, s, "start")
	if err != nil {
		return nil, err
	}
	limit, err := scalarOf(n, l, "limit")
	if err != nil {
		return nil, err
	}
	delta, err := scalarOf(n, d, "delta")
	if err != nil {
		return nil, err
	}
	if delta == 0 {
		return nil, fmt.Errorf("%s: delta is 0", n.Label())
	}
	cnt := int(max(math.Ceil((limit-start)/delta), 0))
	if cnt > maxFold {
		return nil, nil
	}
	t := &Tensor{Type: s.Type, Shape: []int{cnt}}
	for i := 0; i < cnt; i++ {
		v := start + float64(i)*delta
		if s.Type.IsFloat() {
			t.Float = append(t.Float, v)
		} else {
			t.Int = append(t.Int, int64(v))
		}
	}
	if t.Float == nil && t.Int == nil {
		t.Int, t.Float = []int64{}, nil
		if s.Type.IsFloat() {
			t.Float, t.Int = []float64{}, nil
		}
	}
	return t, nil
}

func transposeT(n *Node, x *Tensor) (*Tensor, error) {
	r := len(x.Shape)
	perm, err := n.AttrInts("perm", nil)
	if err != nil {
		return nil, err
	}
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != r {
		return nil, attrErr(n, "perm", "%v is not a permutation of %d axes", perm, r)
	}
	st := strides(x.Shape)
	o := make([]int, r)
	seen := make([]bool, r)
	for i, p := range perm {
		if p < 0 || p >= int64(r) || seen[p] {
			return nil, attrErr(n, "perm", "%v is not a permutation of %d axes", perm, r)
		}
		seen[p] = true
		o[i] = x.Shape[p]
	}
	idx := make([]int, 0, x.Len())
	each(o, func(c []int) {
		j := 0
		for i, p := range perm {
			j += c[i] * st[p]
		}
		idx = append(idx, j)
	})
	return pick(x, idx, o), nil
}

func sliceT(n *Node, x *Tensor, ins []*Tensor) (*Tensor, error) {
	var starts, ends, axes, steps []int64
	if len(n.Inputs) >= 3 {
		for i := 1; i < len(n.Inputs) && i < 5; i++ {
			if n.Inputs[i] != "" && (i >= len(ins) || ins[i] == nil) {
				return nil, nil
			}
		}
		starts, ends = ins[1].Int, ins[2].Int
		if len(ins) > 3 && ins[3] != nil {
			axes = ins[3].Int
		}
		if len(ins) > 4 && ins[4] != nil {
			steps = ins[4].Int
		}
	} else {
		var err error
		if starts, err = n.AttrInts("starts", nil); err != nil {
			return nil, err
		}
		if ends, err = n.AttrInts("ends", nil); err != nil {
			return nil, err
		}
		if axes, err = n.AttrInts("axes", nil); err != nil {
			return nil, err
		}
	}
	first, step, o, err := op.SliceRange(n, x.Shape, starts, ends, axes, steps)
	if err != nil {
		return nil, err
	}
	st := strides(x.Shape)
	idx := make([]int, 0, numElems(o))
	each(o, func(c []int) {
		j := 0
		for d := range c {
			j += (first[d] + c[d]*step[d]) * st[d]
		}
		idx = append(idx, j)
	})
	return pick(x, idx, o), nil
}

func tileT(n *Node, x, reps *Tensor) (*Tensor, error) {
	if reps == nil || len(reps.Int) != len(x.Shape) {
		return nil, fmt.Errorf("%s: repeats must have one entry per input axis (%d)", n.Label(), len(x.Shape))
	}
	o := make([]int, len(x.Shape))
	for i, r := range reps.Int {
		if r < 0 {
			return nil, fmt.Errorf("%s: repeat %d is negative", n.Label(), r)
		}
		o[i] = x.Shape[i] * int(r)
	}
	if numElems(o) > maxFold {
		return nil, nil
	}
	st := strides(x.Shape)
	idx := make([]int, 0, numElems(o))
	each(o, func(c []int) {
		j := 0
		for d := range c {
			j += (c[d] % x.Shape[d]) * st[d]
		}
		idx = append(idx, j)
	})
	return pick(x, idx, o), nil
}

func whereT(n *Node, c, a, b *Tensor) (*Tensor, error) {
	if a == nil || b == nil {
		return nil, nil
	}
	o, err := op.BroadcastShapes(c.Shape, a.Shape, b.Shape)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", n.Label(), err)
	}
	if a.Type.IsFloat() != b.Type.IsFloat() {
		return nil, fmt.Errorf("%s: branches of types %v and %v", n.Label(), a.Type, b.Type)
	}
	ic, ia, ib := broadcastIndex(c.Shape, o), broadcastIndex(a.Shape, o), broadcastIndex(b.Shape, o)
	cv := c.Values()
	t := &Tensor{Type: a.Type, Shape: o}
	for k := range ic {
		if a.Type.IsFloat() {
			v := b.Float[ib[k]]
			if cv[ic[k]] != 0 {
				v = a.Float[ia[k]]
			}
			t.Float = append(t.Float, v)
		} else {
			v := b.Int[ib[k]]
			if cv[ic[k]] != 0 {
				v = a.Int[ia[k]]
			}
			t.Int = append(t.Int, v)
		}
	}
	if t.Float == nil && t.Int == nil {
		t.Float, t.Int = nil, []int64{}
		if a.Type.IsFloat() {
			t.Float, t.Int = []float64{}, nil
		}
	}
	return t, nil
}

func reduceT(n *Node, opset int64, x, axesIn *Tensor) (*Tensor, error) {
	axes, err := axesArg(n, opset, axesIn)
	if err != nil {
		return nil, err
	}
	keep, err := n.AttrInt("keepdims", 1)
	if err != nil {
		return nil, err
	}
	noop, err := n.AttrInt("noop_with_empty_axes", 0)
	if err != nil {
		return nil, err
	}
	r := len(x.Shape)
	red := make([]bool, r)
	if len(axes) == 0 {
		if noop != 0 {
			return x, nil
		}
		for i := range red {
			red[i] = true
		}
	}
	for _, a := range axes {
		ax, err := normAxis(n, "axes", a, r, false)
		if err != nil {
			return nil, err
		}
		red[ax] = true
	}
	var o, ok []int
	for i, d := range x.Shape {
		if red[i] {
			ok = append(ok, 1)
		} else {
			ok = append(ok, d)
			o = append(o, d)
		}
	}
	if keep != 0 {
		o = ok
	}
	if o == nil {
		o = []int{}
	}
	acc := make([]float64, numElems(ok))
	init := map[string]float64{"ReduceProd": 1, "ReduceSum": 0, "ReduceMin": math.Inf(1), "ReduceMax": math.Inf(-1)}[n.Op]
	for i := range acc {
		acc[i] = init
	}
	vals := x.Values()
	ost := strides(ok)
	k := 0
	each(x.Shape, func(c []int) {
		j := 0
		for d := range c {
			if !red[d] {
				j += c[d] * ost[d]
			}
		}
		v := vals[k]
		k++
		switch n.Op {
		case "ReduceProd":
			acc[j] *= v
		case "ReduceSum":
			acc[j] += v
		case "ReduceMin":
			acc[j] = min(acc[j], v)
		case "ReduceMax":
			acc[j] = max(acc[j], v)
		}
	})
	t := &Tensor{Type: x.Type, Shape: o}
	if x.Type.IsFloat() {
		t.Float = acc
	} else {
		t.Int = make([]int64, len(acc))
		for i, v := range acc {
			t.Int[i] = int64(v)
		}
	}
	return t, nil
}

var unaryFold = map[string]func(float64) float64{
	"Neg": func(v float64) float64 { return -v }, "Abs": math.Abs, "Sqrt": math.Sqrt,
	"Reciprocal": func(v float64) float64 { return 1 / v }, "Floor": math.Floor, "Ceil": math.Ceil,
	"Exp": math.Exp, "Log": math.Log, "Relu": func(v float64) float64 { return max(v, 0) },
	"Sign": func(v float64) float64 {
		switch {
		case v > 0:
			return 1
		case v < 0:
			return -1
		}
		return v
	},
	"Not": func(v float64) float64 {
		if v == 0 {
			return 1
		}
		return 0
	},
}

func unaryT(n *Node, x *Tensor) (*Tensor, error) {
	f := unaryFold[n.Op]
	if f == nil {
		return nil, nil
	}
	t := &Tensor{Type: x.Type, Shape: slices.Clone(x.Shape)}
	if x.Type.IsFloat() {
		t.Float = make([]float64, len(x.Float))
		for i, v := range x.Float {
			t.Float[i] = f(v)
		}
		return t, nil
	}
	switch n.Op {
	case "Sqrt", "Reciprocal", "Exp", "Log":
		return nil, fmt.Errorf("%s: input of type %v, want a floating-point type", n.Label(), x.Type)
	}
	t.Int = make([]int64, len(x.Int))
	for i, v := range x.Int {
		t.Int[i] = int64(f(float64(v)))
	}
	return t, nil
}

var compareOps = map[string]bool{"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true,
	"GreaterOrEqual": true, "And": true, "Or": true, "Xor": true}

func binaryT(n *Node, ins []*Tensor) (*Tensor, error) {
	if len(ins) < 2 {
		return nil, fmt.Errorf("%s: want 2 inputs, have %d", n.Label(), len(ins))
	}
	acc := ins[0]
	for _, y := range ins[1:] {
		if y == nil {
			return nil, nil
		}
		t, err := binary2(n, acc, y)
		if err != nil || t == nil {
			return t, err
		}
		acc = t
	}
	return acc, nil
}

func binary2(n *Node, a, b *Tensor) (*Tensor, error) {
	o, err := op.BroadcastShapes(a.Shape, b.Shape)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", n.Label(), err)
	}
	if numElems(o) > maxFold {
		return nil, nil
	}
	fl := a.Type.IsFloat() || b.Type.IsFloat()
	if n.Op != "Pow" && a.Type.IsFloat() != b.Type.IsFloat() {
		return nil, fmt.Errorf("%s: inputs of types %v and %v", n.Label(), a.Type, b.Type)
	}
	ia, ib := broadcastIndex(a.Shape, o), broadcastIndex(b.Shape, o)
	av, bv := a.Values(), b.Values()
	typ := a.Type
	if compareOps[n.Op] {
		typ = Bool
	}
	t := &Tensor{Type: typ, Shape: o}
	fmod, _ := n.AttrInt("fmod", 0)
	for k := range ia {
		x, y := av[ia[k]], bv[ib[k]]
		var v float64
		switch n.Op {
		case "Add":
			v = x + y
		case "Sub":
			v = x - y
		case "Mul":
			v = x * y
		case "Div":
			if !fl {
				if y == 0 {
					return nil, fmt.Errorf("%s: integer division by zero", n.Label())
				}
				v = float64(a.Int[ia[k]] / b.Int[ib[k]])
			} else {
				v = x / y
			}
		case "Pow":
			v = math.Pow(x, y)
		case "Mod":
			if y == 0 {
				return nil, fmt.Errorf("%s: modulo by zero", n.Label())
			}
			v = math.Mod(x, y)
			if fmod == 0 && v != 0 && (v < 0) != (y < 0) {
				v += y // sign of the divisor, as Python
			}
		case "Max":
			v = max(x, y)
		case "Min":
			v = min(x, y)
		case "Equal":
			v = b2f(x == y)
		case "Less":
			v = b2f(x < y)
		case "Greater":
			v = b2f(x > y)
		case "LessOrEqual":
			v = b2f(x <= y)
		case "GreaterOrEqual":
			v = b2f(x >= y)
		case "And":
			v = b2f(x != 0 && y != 0)
		case "Or":
			v = b2f(x != 0 || y != 0)
		case "Xor":
			v = b2f((x != 0) != (y != 0))
		default:
			return nil, nil
		}
		if typ.IsFloat() {
			if typ == Float {
				v = float64(float32(v))
			}
			t.Float = append(t.Float, v)
		} else {
			if !fl && (n.Op == "Add" || n.Op == "Sub" || n.Op == "Mul") {
				// exact integer arithmetic beyond 2^53
				xa, yb := a.Int[ia[k]], b.Int[ib[k]]
				switch n.Op {
				case "Add":
					t.Int = append(t.Int, xa+yb)
				case "Sub":
					t.Int = append(t.Int, xa-yb)
				case "Mul":
					t.Int = append(t.Int, xa*yb)
				}
				continue
			}
			t.Int = append(t.Int, int64(v))
		}
	}
	if t.Float == nil && t.Int == nil {
		if typ.IsFloat() {
			t.Float = []float64{}
		} else {
			t.Int = []int64{}
		}
	}
	return t, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
