package op

import (
	"fmt"
	"math"
)

// The elementwise unary operators: each gives f, f′ and f″ (see Unary); the
// derivative passes follow from the class. To add one, add an entry to
// unaryOps (or register a Def in a file of its own) with a test case.

// fixed wraps attribute-free functions.
func fixed(f UnaryFns) func(*Build) (UnaryFns, error) {
	return func(*Build) (UnaryFns, error) { return f, nil }
}

func zero(x, y float64) float64 { return 0 }
func step(x float64) float64 {
	if x > 0 {
		return 1
	}
	return 0
}

// unaryCase is a conformance case on a 2×3 input drawn from [lo, hi].
func unaryCase(lo, hi float64, attrs ...*Attr) []Case {
	return []Case{{Name: "2x3", Attrs: attrs, Inputs: []CaseInput{{Shape: []int{2, 3}, Lo: lo, Hi: hi}}, Want: []int{2, 3}}}
}

var sqrt2 = math.Sqrt2

// phi is the standard normal density.
func phi(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }

var unaryOps = []struct {
	typ   string
	fns   func(*Build) (UnaryFns, error)
	cases []Case
}{
	{"Relu", fixed(UnaryFns{Args: ArgsX,
		F:  func(x float64) float64 { return max(x, 0) },
		D1: func(x, _ float64) float64 { return step(x) },
	}), unaryCase(-1, 1)},
	{"LeakyRelu", func(b *Build) (UnaryFns, error) {
		a, err := b.Node.AttrFloat("alpha", 0.01)
		if err != nil {
			return UnaryFns{Args: ArgsX}, err
		}
		return UnaryFns{
			F: func(x float64) float64 {
				if x < 0 {
					return a * x
				}
				return x
			},
			D1: func(x, _ float64) float64 {
				if x > 0 {
					return 1
				}
				return a
			},
		}, nil
	}, unaryCase(-1, 1, &Attr{Name: "alpha", Type: AttrFloat, Float: 0.2})},
	{"Clip", clipFns, append(unaryCase(-1, 1, &Attr{Name: "min", Type: AttrFloat, Float: -0.5}, &Attr{Name: "max", Type: AttrFloat, Float: 0.5}),
		Case{Name: "bounds as inputs", Opset: 13, Inputs: []CaseInput{{Shape: []int{2, 3}}, {Shape: []int{}, Const: []float64{0}}, {Shape: []int{}, Const: []float64{0.6}}}, Want: []int{2, 3}})},
	{"Sigmoid", fixed(UnaryFns{Args: ArgsY,
		F:  func(x float64) float64 { return 1 / (1 + math.Exp(-x)) },
		D1: func(_, y float64) float64 { return y * (1 - y) },
		D2: func(_, y float64) float64 { return y * (1 - y) * (1 - 2*y) },
	}), unaryCase(-2, 2)},
	{"Tanh", fixed(UnaryFns{Args: ArgsY,
		F:  math.Tanh,
		D1: func(_, y float64) float64 { return 1 - y*y },
		D2: func(_, y float64) float64 { return -2 * y * (1 - y*y) },
	}), unaryCase(-2, 2)},
	{"Exp", fixed(UnaryFns{Args: ArgsY, F: math.Exp, D1: func(_, y float64) float64 { return y }, D2: func(_, y float64) float64 { return y }}), unaryCase(-1, 1)},
	{"Log", fixed(UnaryFns{Args: ArgsX, F: math.Log, D1: func(x, _ float64) float64 { return 1 / x }, D2: func(x, _ float64) float64 { return -1 / (x * x) }}), unaryCase(0.5, 2)},
	{"Neg", fixed(UnaryFns{Args: ArgsX, F: func(x float64) float64 { return -x }, D1: func(_, _ float64) float64 { return -1 }}), unaryCase(-1, 1)},
	{"Abs", fixed(UnaryFns{Args: ArgsX, F: math.Abs, D1: func(x, _ float64) float64 {
		if x < 0 {
			return -1
		}
		return 1
	}}), unaryCase(-1, 1)},
	{"Sqrt", fixed(UnaryFns{F: math.Sqrt, D1: func(_, y float64) float64 { return 0.5 / y }, D2: func(x, y float64) float64 { return -0.25 / (x * y) }}), unaryCase(0.5, 2)},
	{"Reciprocal", fixed(UnaryFns{Args: ArgsY, F: func(x float64) float64 { return 1 / x }, D1: func(_, y float64) float64 { return -y * y }, D2: func(_, y float64) float64 { return 2 * y * y * y }}), unaryCase(0.5, 2)},
	{"Erf", fixed(UnaryFns{Args: ArgsX, F: math.Erf,
		D1: func(x, _ float64) float64 { return 2 / math.SqrtPi * math.Exp(-x*x) },
		D2: func(x, _ float64) float64 { return -4 * x / math.SqrtPi * math.Exp(-x*x) }}), unaryCase(-2, 2)},
	{"Softplus", fixed(UnaryFns{Args: ArgsX,
		F: func(x float64) float64 {
			if x > 0 {
				return x + math.Log1p(math.Exp(-x))
			}
			return math.Log1p(math.Exp(x))
		},
		D1: func(x, _ float64) float64 { return 1 / (1 + math.Exp(-x)) },
		D2: func(x, _ float64) float64 { s := 1 / (1 + math.Exp(-x)); return s * (1 - s) },
	}), unaryCase(-2, 2)},
	{"Softsign", fixed(UnaryFns{Args: ArgsX,
		F:  func(x float64) float64 { return x / (1 + math.Abs(x)) },
		D1: func(x, _ float64) float64 { d := 1 + math.Abs(x); return 1 / (d * d) },
		D2: func(x, _ float64) float64 {
			d := 1 + math.Abs(x)
			if x < 0 {
				return 2 / (d * d * d)
			}
			return -2 / (d * d * d)
		},
	}), unaryCase(-2, 2)},
	{"Elu", eluFns("Elu"), unaryCase(-2, 2, &Attr{Name: "alpha", Type: AttrFloat, Float: 0.7})},
	{"Celu", eluFns("Celu"), unaryCase(-2, 2, &Attr{Name: "alpha", Type: AttrFloat, Float: 0.7})},
	{"Selu", eluFns("Selu"), unaryCase(-2, 2)},
	{"HardSigmoid", func(b *Build) (UnaryFns, error) {
		a, err := b.Node.AttrFloat("alpha", 0.2)
		if err != nil {
			return UnaryFns{Args: ArgsX}, err
		}
		c, err := b.Node.AttrFloat("beta", 0.5)
		if err != nil {
			return UnaryFns{}, err
		}
		return UnaryFns{
			F: func(x float64) float64 { return min(max(a*x+c, 0), 1) },
			D1: func(x, _ float64) float64 {
				if v := a*x + c; v > 0 && v < 1 {
					return a
				}
				return 0
			},
		}, nil
	}, unaryCase(-4, 4)},
	{"HardSwish", fixed(UnaryFns{Args: ArgsX,
		// x · HardSigmoid(x) with α = 1/6, β = 1/2.
		F: func(x float64) float64 { return x * min(max(x/6+0.5, 0), 1) },
		D1: func(x, _ float64) float64 {
			switch {
			case x <= -3:
				return 0
			case x >= 3:
				return 1
			}
			return x/3 + 0.5
		},
		D2: func(x, _ float64) float64 {
			if x > -3 && x < 3 {
				return 1.0 / 3
			}
			return 0
		},
	}), unaryCase(-4, 4)},
	{"Gelu", geluFns, append(unaryCase(-2, 2), unaryCase(-2, 2, &Attr{Name: "approximate", Type: AttrString, String: "tanh"})...)},
	{"Mish", fixed(UnaryFns{Args: ArgsX,
		// x · tanh(softplus(x)); f′ = t + x s (1 − t²) with s = σ(x), t = tanh(softplus(x)).
		F: func(x float64) float64 { return x * math.Tanh(math.Log1p(math.Exp(x))) },
		D1: func(x, _ float64) float64 {
			t, s := math.Tanh(math.Log1p(math.Exp(x))), 1/(1+math.Exp(-x))
			return t + x*s*(1-t*t)
		},
		D2: func(x, _ float64) float64 {
			t, s := math.Tanh(math.Log1p(math.Exp(x))), 1/(1+math.Exp(-x))
			dt := s * (1 - t*t)
			return 2*dt + x*(s*(1-s)*(1-t*t)-2*t*dt*s)
		},
	}), unaryCase(-2, 2)},
	{"Sin", fixed(UnaryFns{F: math.Sin, D1: func(x, _ float64) float64 { return math.Cos(x) }, D2: func(_, y float64) float64 { return -y }}), unaryCase(-2, 2)},
	{"Cos", fixed(UnaryFns{F: math.Cos, D1: func(x, _ float64) float64 { return -math.Sin(x) }, D2: func(_, y float64) float64 { return -y }}), unaryCase(-2, 2)},
	{"Floor", fixed(UnaryFns{Args: ArgsX, F: math.Floor, D1: zero}), unaryCase(0.1, 0.9)},
	{"Ceil", fixed(UnaryFns{Args: ArgsX, F: math.Ceil, D1: zero}), unaryCase(0.1, 0.9)},
	{"Round", fixed(UnaryFns{Args: ArgsX, F: math.RoundToEven, D1: zero}), unaryCase(0.1, 0.4)},
	{"Sign", fixed(UnaryFns{Args: ArgsX, F: func(x float64) float64 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return 0
	}, D1: zero}), unaryCase(-1, 1)},
	{"ThresholdedRelu", func(b *Build) (UnaryFns, error) {
		a, err := b.Node.AttrFloat("alpha", 1)
		if err != nil {
			return UnaryFns{Args: ArgsX}, err
		}
		return UnaryFns{
			F: func(x float64) float64 {
				if x > a {
					return x
				}
				return 0
			},
			D1: func(x, _ float64) float64 {
				if x > a {
					return 1
				}
				return 0
			},
		}, nil
	}, unaryCase(-1, 1, &Attr{Name: "alpha", Type: AttrFloat, Float: 0.1})},
}

func init() {
	for _, u := range unaryOps {
		Register(&Def{Type: u.typ, Infer: InferSame, Exec: Unary(u.fns), Class: Elementwise, Channels: FlowPass, Cases: u.cases})
	}
}

// clipFns reads Clip's bounds from attributes (opset < 11) or constant
// scalar inputs (opset ≥ 11). f′ = 1[lo < x < hi], f″ = 0.
func clipFns(b *Build) (UnaryFns, error) {
	n, in := b.Node, b.In
	lo, hi := math.Inf(-1), math.Inf(1)
	var err error
	if lo, err = n.AttrFloat("min", lo); err != nil {
		return UnaryFns{}, err
	}
	if hi, err = n.AttrFloat("max", hi); err != nil {
		return UnaryFns{}, err
	}
	for i, dst := range []*float64{&lo, &hi} {
		if len(in) > i+1 && in[i+1] >= 0 {
			v, ok := b.Const(in[i+1])
			if !ok || len(v) != 1 {
				return UnaryFns{}, fmt.Errorf("bound %q must be a constant scalar", b.Slots.Name(in[i+1]))
			}
			*dst = v[0]
		}
	}
	return UnaryFns{Args: ArgsX,
		F: func(x float64) float64 { return min(max(x, lo), hi) },
		D1: func(x, _ float64) float64 {
			if x > lo && x < hi {
				return 1
			}
			return 0
		},
	}, nil
}

// eluFns covers Elu (α(eˣ − 1) below 0), Celu (α(e^{x/α} − 1)) and Selu
// (γ·Elu with α, γ fixed by the attributes' defaults).
func eluFns(typ string) func(*Build) (UnaryFns, error) {
	return func(b *Build) (UnaryFns, error) {
		def := 1.0
		if typ == "Selu" {
			def = 1.67326319217681884765625
		}
		a, err := b.Node.AttrFloat("alpha", def)
		if err != nil {
			return UnaryFns{}, err
		}
		g := 1.0
		if typ == "Selu" {
			if g, err = b.Node.AttrFloat("gamma", 1.05070102214813232421875); err != nil {
				return UnaryFns{}, err
			}
		}
		s := 1.0 // exponent scale
		if typ == "Celu" {
			s = 1 / a
		}
		return UnaryFns{Args: ArgsX,
			F: func(x float64) float64 {
				if x > 0 {
					return g * x
				}
				return g * a * (math.Exp(s*x) - 1)
			},
			D1: func(x, _ float64) float64 {
				if x > 0 {
					return g
				}
				return g * a * s * math.Exp(s*x)
			},
			D2: func(x, _ float64) float64 {
				if x > 0 {
					return 0
				}
				return g * a * s * s * math.Exp(s*x)
			},
		}, nil
	}
}

// geluFns is Gelu (opset 20): x Φ(x), or with approximate = "tanh"
// 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))).
func geluFns(b *Build) (UnaryFns, error) {
	ap, err := b.Node.AttrString("approximate", "none")
	if err != nil {
		return UnaryFns{}, err
	}
	switch ap {
	case "none":
		return UnaryFns{Args: ArgsX,
			F:  func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/sqrt2)) },
			D1: func(x, _ float64) float64 { return 0.5*(1+math.Erf(x/sqrt2)) + x*phi(x) },
			D2: func(x, _ float64) float64 { return phi(x) * (2 - x*x) },
		}, nil
	case "tanh":
		c := math.Sqrt(2 / math.Pi)
		return UnaryFns{Args: ArgsX,
			F: func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(c*(x+0.044715*x*x*x))) },
			D1: func(x, _ float64) float64 {
				u := c * (x + 0.044715*x*x*x)
				t := math.Tanh(u)
				du := c * (1 + 3*0.044715*x*x)
				return 0.5*(1+t) + 0.5*x*(1-t*t)*du
			},
			D2: func(x, _ float64) float64 {
				u := c * (x + 0.044715*x*x*x)
				t := math.Tanh(u)
				du := c * (1 + 3*0.044715*x*x)
				d2u := c * 6 * 0.044715 * x
				s := 1 - t*t
				return s*du + 0.5*x*(-2*t*s*du*du+s*d2u)
			},
		}, nil
	}
	return UnaryFns{}, fmt.Errorf("attribute \"approximate\" is %q, want none or tanh", ap)
}
