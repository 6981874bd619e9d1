package op

import "fmt"

// The variadic elementwise operators Max, Min, Sum and Mean: one or more
// inputs, broadcast together (ONNX multidirectional broadcasting) to the
// output's shape. One kernel per family serves every input count, the
// two-input form included, on computed data and on constants alike
// (folding runs the same kernel once in float64):
//
//   - Sum and Mean are the linear map y = c·Σᵢ xᵢ (c = 1, or 1/n for n
//     inputs, applied as a division by n): R{y} = c·Σᵢ R{xᵢ},
//     x̄ᵢ += c·ȳ and R{x̄ᵢ} += c·R{ȳ}, summed over the dimensions along
//     which xᵢ is broadcast (class Linear).
//   - Max and Min route each output element to the one input that
//     attains the extreme (its pick, recorded by the forward pass, as
//     MaxPool records its argmax): y = x_p, R{y} = R{x_p}, x̄_p += ȳ,
//     R{x̄_p} += R{ȳ}. For fixed picks the map is linear, so its second
//     derivative is zero (piecewise linear).
//
// With one input each of the four is the identity.
//
// Ties. Max gives the derivative to the last of the inputs that attain the
// maximum, Min to the first of those that attain the minimum: the left fold
// x₁ ⊕ x₂ ⊕ … ⊕ xₙ of ONNX's two-input rule as this package always had
// it (Max(a, b) routes to a only where a > b, Min(a, b) to a where a ≤ b;
// so Max(x, 0) has Relu's derivative 0 at x = 0). PyTorch differs at
// ties: torch.maximum and torch.minimum split ȳ equally between two tied
// operands (a chain of them over three tied inputs gives ¼, ¼, ½),
// torch.max(dim) and torch.min(dim) give all of it to the returned
// (first) index, torch.amax and torch.amin split it equally among all tied
// inputs. Away from ties all agree. A NaN input makes the output NaN
// (as math.Max does) and takes the derivative.

func init() {
	for _, typ := range []string{"Max", "Min", "Sum", "Mean"} {
		class := Linear
		if typ == "Max" || typ == "Min" {
			class = Elementwise
		}
		Register(&Def{Type: typ, Infer: inferVariadic, Exec: Both(newVariadic[float64], newVariadic[float32]), Class: class,
			Channels: FlowBroadcast, Cases: variadicCases()})
	}
}

// variadicCases are the conformance cases of Max, Min, Sum and Mean: one
// to four inputs, equal shapes and broadcasting (every input broadcast
// along some axis), a constant operand, at opsets 11 (the engine's oldest),
// 13 (the operators' latest version: they changed at 8, broadcasting, 12,
// integer Max and Min, and 13, bfloat16), 17 and 21 (the engine's newest).
// One case draws its inputs from disjoint ranges (Max always picks the
// last, Min the first), the others from overlapping ones so that the picks
// mix; continuous values tie within a finite-difference step with
// negligible probability (ties are TestVariadicTies' subject).
func variadicCases() []Case {
	in := func(lo float64, shape ...int) CaseInput { return CaseInput{Shape: shape, Lo: lo, Hi: lo + 0.9} }
	return []Case{
		{Name: "one input", Inputs: []CaseInput{in(-1, 2, 3)}, Want: []int{2, 3}},
		{Name: "two inputs", Opset: 11, Inputs: []CaseInput{in(-1, 2, 3), in(-0.5, 2, 3)}, Want: []int{2, 3}},
		{Name: "two broadcast", Opset: 13, Inputs: []CaseInput{in(-1, 2, 3, 2), in(-0.5, 3, 1)}, Want: []int{2, 3, 2}},
		{Name: "three broadcast", Inputs: []CaseInput{in(-3, 2, 1), in(-1, 3), in(1, 1, 3)}, Want: []int{2, 3}},
		{Name: "three interleaved", Opset: 21, Inputs: []CaseInput{in(-1, 2, 3), in(-1, 2, 3), in(-1, 2, 3)}, Want: []int{2, 3}},
		{Name: "four broadcast", Inputs: []CaseInput{in(-1, 4, 1, 1), in(-1, 2, 1), in(-1, 3), in(-1, 4, 2, 3)}, Want: []int{4, 2, 3}},
		{Name: "constant operand", Inputs: []CaseInput{in(-1, 2, 2), {Shape: []int{2}, Const: []float64{-0.3, 0.4}}, in(-1, 1, 2)}, Want: []int{2, 2}},
	}
}

// inferVariadic is the output shape of Max, Min, Sum and Mean: the
// multidirectional broadcast of their (one or more) inputs, with input 0's
// element type.
func inferVariadic(n *Node, s *Shapes) error {
	if len(n.Inputs) == 0 {
		return fmt.Errorf("%s: %s needs at least one input", n.Label(), n.Op)
	}
	for i, in := range n.Inputs {
		if in == "" {
			return fmt.Errorf("%s: input %d of %s is empty (its inputs are not optional)", n.Label(), i, n.Op)
		}
	}
	return InferBroadcast(n, s)
}

// newVariadic builds the kernel of a Max, Min, Sum or Mean node of any
// number of inputs.
func newVariadic[T Real](b *Build) (Kernel[T], error) {
	if len(b.In) == 0 {
		return nil, fmt.Errorf("%s needs at least one input", b.Node.Op)
	}
	ys := b.Shape(b.Out[0])
	bs := make([]bcast, len(b.In))
	for i, s := range b.In {
		if s < 0 {
			return nil, errMissing(i)
		}
		bs[i] = newBcast(b.Shape(s), ys)
	}
	op := b.Node.Op
	if op == "Sum" || op == "Mean" || len(b.In) == 1 {
		div := T(1)
		if op == "Mean" {
			div = T(len(b.In))
		}
		return LinearKernel[T](&variadicSum[T]{bs: bs, div: div}, b.In, b.Out[0]), nil
	}
	if op != "Max" && op != "Min" {
		return nil, fmt.Errorf("operator %s is not variadic", op)
	}
	return &variadicPick[T]{ins: b.In, y: b.Out[0], bs: bs, min: op == "Min", size: Numel(ys), state: b.State}, nil
}

// variadicSum is Sum's and Mean's linear map y = (Σᵢ xᵢ)/div over
// broadcast inputs (div = 1 for Sum, the input count for Mean), and the
// identity of any variadic node of one input.
type variadicSum[T Real] struct {
	bs  []bcast
	div T
}

// Apply sets dst to the sum of the broadcast inputs over div, adding them
// in input order; a nil input is zero.
func (m *variadicSum[T]) Apply(dst []T, src [][]T) {
	clear(dst)
	for i, x := range src {
		if x == nil {
			continue
		}
		b := m.bs[i]
		if b.idx == nil {
			for k, v := range x {
				dst[k] += v
			}
			continue
		}
		for k, j := range b.idx {
			dst[k] += x[j]
		}
	}
	if m.div != 1 {
		for k := range dst {
			dst[k] /= m.div
		}
	}
}

// Transpose adds src/div into every wanted input's adjoint, summed over
// the dimensions along which the input is broadcast.
func (m *variadicSum[T]) Transpose(dst [][]T, src []T) {
	for i, d := range dst {
		if d == nil {
			continue
		}
		b := m.bs[i]
		for k, g := range src {
			if m.div != 1 {
				g /= m.div
			}
			d[b.at(k)] += g
		}
	}
}

// variadicPick is the kernel of Max and Min over two or more inputs: the
// forward pass records, for each output element, the input it takes (see
// the tie rule above); the derivative passes route through that pick.
type variadicPick[T Real] struct {
	ins  []int
	y    int
	bs   []bcast
	min  bool
	size int
	// state is the index of the picks in Work.State.
	state int
}

// NewState returns the picks of one Work: an input index per output
// element.
func (k *variadicPick[T]) NewState() any { return make([]int32, k.size) }

// StateBytes is the size of the picks.
func (k *variadicPick[T]) StateBytes() int64 { return 4 * int64(k.size) }

func (k *variadicPick[T]) picks(w *Work[T]) []int32 { return w.State[k.state].([]int32) }

func (k *variadicPick[T]) Forward(w *Work[T]) {
	y, p := w.Val[k.y], k.picks(w)
	x0, b0 := w.Val[k.ins[0]], k.bs[0]
	for o := range y {
		y[o], p[o] = x0[b0.at(o)], 0
	}
	for i := 1; i < len(k.ins); i++ {
		x, b := w.Val[k.ins[i]], k.bs[i]
		for o, cur := range y {
			v := x[b.at(o)]
			// Max: v ≥ the maximum so far (the last tied input wins); Min:
			// v < the minimum so far (the first wins). A NaN is taken and
			// then kept (no comparison with it holds).
			if (k.min && v < cur) || (!k.min && v >= cur) || (v != v && cur == cur) {
				y[o], p[o] = v, int32(i)
			}
		}
	}
}

// route adds src[o] into the picked input's element of dst for every
// output o; nil dst entries (constants, adjoints nobody needs) are skipped.
func (k *variadicPick[T]) route(dst [][]T, src []T, p []int32) {
	for o, g := range src {
		i := p[o]
		if d := dst[k.ins[i]]; d != nil {
			d[k.bs[i].at(o)] += g
		}
	}
}

func (k *variadicPick[T]) RForward(w *Work[T]) {
	ry := w.RV[k.y]
	if ry == nil {
		return
	}
	p := k.picks(w)
	for o := range ry {
		i := p[o]
		if rx := w.RV[k.ins[i]]; rx != nil {
			ry[o] = rx[k.bs[i].at(o)]
		} else {
			ry[o] = 0
		}
	}
}

func (k *variadicPick[T]) Backward(w *Work[T]) {
	if g := w.Adj[k.y]; g != nil {
		k.route(w.Adj, g, k.picks(w))
	}
}

func (k *variadicPick[T]) RBackward(w *Work[T]) {
	if g := w.RAdj[k.y]; g != nil {
		k.route(w.RAdj, g, k.picks(w))
	}
}

// Retains: the passes route through the picks kept in the kernel's state,
// reading no values (as MaxPool's argmax).
func (k *variadicPick[T]) Retains() Retains { return Retains{} }
