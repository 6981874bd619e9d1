package op

import (
	"fmt"
	"math"
)

// The broadcasting elementwise binary operators: each gives f with its
// first and second partials (see Binary). Comparisons and logical
// operators have integer or boolean outputs and no derivatives. Max, Min,
// Sum and Mean, of one or more inputs, are in variadic.go.

// binaryCases are conformance cases with equal shapes and with broadcasting
// of the second operand (a per-channel constant and a differentiable row).
func binaryCases(lo, hi float64) []Case {
	return []Case{
		{Name: "same shape", Inputs: []CaseInput{{Shape: []int{2, 3}, Lo: lo, Hi: hi}, {Shape: []int{2, 3}, Lo: lo, Hi: hi}}, Want: []int{2, 3}},
		{Name: "broadcast row", Inputs: []CaseInput{{Shape: []int{2, 3, 2}, Lo: lo, Hi: hi}, {Shape: []int{3, 1}, Lo: lo, Hi: hi}}, Want: []int{2, 3, 2}},
		{Name: "constant operand", Inputs: []CaseInput{{Shape: []int{2, 2}, Lo: lo, Hi: hi}, {Shape: []int{2}, Const: []float64{0.7, 1.3}}}, Want: []int{2, 2}},
	}
}

func negOne(a, b float64) float64 { return -1 }
func oneAB(a, b float64) float64  { return 1 }

func init() {
	arith := []struct {
		typ  string
		fns  BinaryFns
		lo   float64
		flow Flow
	}{
		{"Add", BinaryFns{F: func(a, b float64) float64 { return a + b }, Da: oneAB, Db: oneAB, Linear: true}, -1, FlowBroadcast},
		{"Sub", BinaryFns{F: func(a, b float64) float64 { return a - b }, Da: oneAB, Db: negOne, Linear: true}, -1, FlowBroadcast},
		{"Mul", BinaryFns{F: func(a, b float64) float64 { return a * b }, ScaleA: true, ScaleB: true,
			Da: func(a, b float64) float64 { return b }, Db: func(a, b float64) float64 { return a }, Dab: oneAB}, -1, FlowBroadcast},
		{"Div", BinaryFns{F: func(a, b float64) float64 { return a / b }, ScaleA: true,
			Da:  func(a, b float64) float64 { return 1 / b },
			Db:  func(a, b float64) float64 { return -a / (b * b) },
			Dab: func(a, b float64) float64 { return -1 / (b * b) },
			Dbb: func(a, b float64) float64 { return 2 * a / (b * b * b) }}, 0.5, FlowBroadcast},
		{"Pow", BinaryFns{F: math.Pow,
			Da:  func(a, b float64) float64 { return b * math.Pow(a, b-1) },
			Db:  func(a, b float64) float64 { return math.Pow(a, b) * math.Log(a) },
			Daa: func(a, b float64) float64 { return b * (b - 1) * math.Pow(a, b-2) },
			Dab: func(a, b float64) float64 { return math.Pow(a, b-1) * (1 + b*math.Log(a)) },
			Dbb: func(a, b float64) float64 { l := math.Log(a); return math.Pow(a, b) * l * l }}, 0.5, FlowBlocks},
		{"PRelu", BinaryFns{
			F: func(x, s float64) float64 {
				if x < 0 {
					return s * x
				}
				return x
			},
			Da: func(x, s float64) float64 {
				if x < 0 {
					return s
				}
				return 1
			},
			Db: func(x, s float64) float64 { return min(x, 0) },
			Dab: func(x, s float64) float64 {
				if x < 0 {
					return 1
				}
				return 0
			}}, -1, FlowBlocks},
	}
	for _, a := range arith {
		Register(&Def{Type: a.typ, Infer: InferBroadcast, Exec: Binary(a.fns), Class: Elementwise, Channels: a.flow, Cases: binaryCases(a.lo, 2)})
	}
	// Comparisons and logical operators: BOOL outputs, evaluated only on
	// constants (Eval).
	tf := func(p bool) float64 { return float64(b2i(p)) }
	nz := func(v float64) bool { return v != 0 }
	cmp := []struct {
		typ string
		f   func(a, b float64) float64
	}{
		{"Equal", func(a, b float64) float64 { return tf(a == b) }},
		{"Less", func(a, b float64) float64 { return tf(a < b) }},
		{"Greater", func(a, b float64) float64 { return tf(a > b) }},
		{"LessOrEqual", func(a, b float64) float64 { return tf(a <= b) }},
		{"GreaterOrEqual", func(a, b float64) float64 { return tf(a >= b) }},
		{"And", func(a, b float64) float64 { return tf(nz(a) && nz(b)) }},
		{"Or", func(a, b float64) float64 { return tf(nz(a) || nz(b)) }},
		{"Xor", func(a, b float64) float64 { return tf(nz(a) != nz(b)) }},
	}
	for _, c := range cmp {
		Register(&Def{Type: c.typ, Infer: InferBroadcastBool, Fold: true, Eval: evalBroadcast(c.f), Cases: []Case{{Name: "broadcast",
			Inputs: []CaseInput{{Shape: []int{2, 1}}, {Shape: []int{3}}}, Want: []int{2, 3}}}})
	}
	preds := []struct {
		typ string
		f   func(v float64) bool
	}{
		{"Not", func(v float64) bool { return v == 0 }},
		{"IsNaN", math.IsNaN},
		{"IsInf", func(v float64) bool { return math.IsInf(v, 0) }},
	}
	for _, p := range preds {
		Register(&Def{Type: p.typ, Infer: InferSameBool, Fold: true, Eval: evalPredicate(p.f),
			Cases: []Case{{Name: "2x3", Inputs: []CaseInput{{Shape: []int{2, 3}}}, Want: []int{2, 3}}}})
	}
	Register(&Def{Type: "Mod", Infer: InferBroadcast, Fold: true, Eval: evalMod, Cases: []Case{{Name: "broadcast",
		Inputs: []CaseInput{{Shape: []int{2, 1}, Lo: -5, Hi: 5}, {Shape: []int{3}, Lo: 1, Hi: 2}}, Want: []int{2, 3}}}})
	Register(&Def{Type: "Where", Infer: inferWhere, Fold: true, Eval: evalWhere, Cases: []Case{{Name: "broadcast",
		Inputs: []CaseInput{{Shape: []int{2, 1}}, {Shape: []int{3}}, {Shape: []int{1}}}, Want: []int{2, 3}}}})
}

// evalPredicate is the Eval of a unary BOOL-valued operator.
func evalPredicate(f func(v float64) bool) func(n *Node, ins, outs []*Tensor) error {
	return func(n *Node, ins, outs []*Tensor) error {
		for k := range outs[0].Int {
			outs[0].Int[k] = b2i(f(at(ins[0], k)))
		}
		return nil
	}
}

// evalMod is Mod's Eval: the remainder with the sign of the divisor
// (Python's %), or of the dividend with fmod = 1 (C's fmod); integer
// operands are exact.
func evalMod(n *Node, ins, outs []*Tensor) error {
	if len(ins) != 2 {
		return errInputs(2, len(ins))
	}
	fmod, err := n.AttrInt("fmod", 0)
	if err != nil {
		return err
	}
	a, b, y := ins[0], ins[1], outs[0]
	if a.Type.IsFloat() != b.Type.IsFloat() || a.Type.IsFloat() != y.Type.IsFloat() {
		return fmt.Errorf("inputs of types %v and %v", a.Type, b.Type)
	}
	ia, ib := BroadcastIndex(a.Shape, y.Shape), BroadcastIndex(b.Shape, y.Shape)
	for k := range ia {
		if !y.Type.IsFloat() {
			p, q := a.Int[ia[k]], b.Int[ib[k]]
			if q == 0 {
				return fmt.Errorf("integer modulo by zero")
			}
			r := p % q
			if fmod == 0 && r != 0 && (r < 0) != (q < 0) {
				r += q
			}
			y.Int[k] = r
			continue
		}
		p, q := a.Float[ia[k]], b.Float[ib[k]]
		r := math.Mod(p, q)
		if fmod == 0 && r != 0 && (r < 0) != (q < 0) {
			r += q
		}
		y.Float[k] = r
	}
	if y.Type == Float {
		StoreAs(y, y.Float)
	}
	return nil
}

// evalWhere is Where's Eval: X where the condition is non-zero, else Y,
// broadcast, exactly in either element type.
func evalWhere(n *Node, ins, outs []*Tensor) error {
	if len(ins) != 3 {
		return errInputs(3, len(ins))
	}
	c, a, b, y := ins[0], ins[1], ins[2], outs[0]
	if a.Type.IsFloat() != b.Type.IsFloat() {
		return fmt.Errorf("branches of types %v and %v", a.Type, b.Type)
	}
	ic, ia, ib := BroadcastIndex(c.Shape, y.Shape), BroadcastIndex(a.Shape, y.Shape), BroadcastIndex(b.Shape, y.Shape)
	src := make([]int, len(ic))
	for k := range ic {
		src[k] = -1 - ib[k]
		if at(c, ic[k]) != 0 {
			src[k] = ia[k]
		}
	}
	for k, j := range src {
		x := a
		if j < 0 {
			x, j = b, -1-j
		}
		if y.Type.IsFloat() {
			y.Float[k] = x.Float[j]
		} else {
			y.Int[k] = x.Int[j]
		}
	}
	return nil
}
