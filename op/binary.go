package op

import "math"

// The broadcasting elementwise binary operators: each gives f with its
// first and second partials (see Binary). Comparisons and logical
// operators have integer or boolean outputs and no derivatives.

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
		{"Mul", BinaryFns{F: func(a, b float64) float64 { return a * b },
			Da: func(a, b float64) float64 { return b }, Db: func(a, b float64) float64 { return a }, Dab: oneAB}, -1, FlowBroadcast},
		{"Div", BinaryFns{F: func(a, b float64) float64 { return a / b },
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
		{"Max", BinaryFns{F: math.Max,
			Da: func(a, b float64) float64 { return step(a - b) }, Db: func(a, b float64) float64 { return 1 - step(a-b) }}, -1, FlowBlocks},
		{"Min", BinaryFns{F: math.Min,
			Da: func(a, b float64) float64 { return 1 - step(a-b) }, Db: func(a, b float64) float64 { return step(a - b) }}, -1, FlowBlocks},
	}
	for _, a := range arith {
		Register(&Def{Type: a.typ, Infer: InferBroadcast, Exec: Binary(a.fns), Class: Elementwise, Channels: a.flow, Cases: binaryCases(a.lo, 2)})
	}
	// Variadic reductions over inputs: shapes only (the engine runs the
	// two-input forms above).
	for _, typ := range []string{"Sum", "Mean"} {
		Register(&Def{Type: typ, Infer: InferBroadcast, Cases: []Case{{Name: "three inputs",
			Inputs: []CaseInput{{Shape: []int{2, 1}}, {Shape: []int{3}}, {Shape: []int{1, 3}}}, Want: []int{2, 3}}}})
	}
	for _, typ := range []string{"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"} {
		Register(&Def{Type: typ, Infer: InferBroadcastBool, Cases: []Case{{Name: "broadcast",
			Inputs: []CaseInput{{Shape: []int{2, 1}}, {Shape: []int{3}}}, Want: []int{2, 3}}}})
	}
	for _, typ := range []string{"Not", "IsNaN", "IsInf"} {
		Register(&Def{Type: typ, Infer: InferSameBool, Cases: []Case{{Name: "2x3", Inputs: []CaseInput{{Shape: []int{2, 3}}}, Want: []int{2, 3}}}})
	}
	Register(&Def{Type: "Mod", Infer: InferBroadcast, Cases: []Case{{Name: "broadcast",
		Inputs: []CaseInput{{Shape: []int{2, 1}}, {Shape: []int{3}}}, Want: []int{2, 3}}}})
	Register(&Def{Type: "Where", Infer: inferWhere, Cases: []Case{{Name: "broadcast",
		Inputs: []CaseInput{{Shape: []int{2, 1}}, {Shape: []int{3}}, {Shape: []int{1}}}, Want: []int{2, 3}}}})
}
