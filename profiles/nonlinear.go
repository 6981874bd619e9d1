package profiles

import (
	"fmt"
	"math"
)

// The keys of Profile.ALU.
const (
	ALUInt   = "int32"
	ALUFloat = "fp32"
)

// ALUSpec is a device's element-wise (vector) arithmetic in one format:
// the units that run GELU, Softmax and LayerNorm, not the tensor cores.
type ALUSpec struct {
	// OpsPerSec is the peak of element-wise instructions per second (an
	// FMA is one instruction).
	OpsPerSec float64
	// AddEnergy and MulEnergy are the energies of one add-class
	// (add, compare, shift, min/max) and one multiply-class (multiply,
	// divide) operation, in joules.
	AddEnergy, MulEnergy float64
}

// OpCount is the arithmetic of one element of a non-linearity.
type OpCount struct {
	// Add counts add-class operations (add, subtract, compare, min/max,
	// shift, sign, round), Mul multiply-class ones (a division counts as
	// one: row-wise divisions and square roots, amortised over a row, are
	// left out).
	Add, Mul int
	// InBytes and OutBytes are the bytes read and written per element.
	InBytes, OutBytes int
}

// NonlinearOps gives the per-element operation counts of each non-linearity
// ("gelu", "softmax", "layernorm") computed integer-only (I-BERT, Kim et
// al., ICML 2021, counted from Algorithms 1–4 as package ibert implements
// them) and in float (counted from the float kernels named below, plus the
// dequantize of an INT32 input, one multiply, and the requantize of the
// output, a multiply and a round, that a float non-linearity between
// integer layers needs and I-BERT avoids):
//
//	gelu, int:   sgn, |q|, min, +q_b, square, +q_c, ×sgn, +q_1, ×q        7 add, 3 mul
//	gelu, float: x/√2, erf (rational approximation: clamp 2, x² 1, degree-6
//	             numerator and degree-4 denominator in Horner form 10 mul
//	             10 add, a division), +1, ×x, ×0.5, dequantize, requantize
//	                                                                     14 add, 19 mul
//	softmax, int:   max, −max, clamp, ⌊−q/q_ln2⌋ (reciprocal multiply and
//	             shift), q + z·q_ln2, I-POLY (2 add, 1 mul), >>z, Σ, ×factor,
//	             >>                                                      10 add, 4 mul
//	softmax, float: max, −max, exp (range reduction 2 mul 2 add, degree-5
//	             polynomial 5 mul 5 add, exponent add 1), Σ, ×1/Σ, dequantize,
//	             requantize                                             12 add, 11 mul
//	layernorm, int:   Σ (mean), −mean, square, Σ, ×factor, >>1, +bias, ×γ
//	                                                                     5 add, 3 mul
//	layernorm, float: Σ, −mean, square, Σ, ×rstd, ×γ, +β, dequantize,
//	             requantize                                              5 add, 5 mul
//
// Bytes: integer-only reads the INT32 accumulator and writes INT8 (4 + 1
// B), float reads and writes FP32 (4 + 4 B).
var NonlinearOps = map[string][2]OpCount{ // [integer, float]
	"gelu":      {{Add: 7, Mul: 3, InBytes: 4, OutBytes: 1}, {Add: 14, Mul: 19, InBytes: 4, OutBytes: 4}},
	"softmax":   {{Add: 10, Mul: 4, InBytes: 4, OutBytes: 1}, {Add: 12, Mul: 11, InBytes: 4, OutBytes: 4}},
	"layernorm": {{Add: 5, Mul: 3, InBytes: 4, OutBytes: 1}, {Add: 5, Mul: 5, InBytes: 4, OutBytes: 4}},
}

// NonlinearCost returns the cost of elems elements (per sample) of the
// non-linearity fn computed integer-only (integer) or in float:
//
//	compute = B·elems·(add + mul) / OpsPerSec
//	memory  = B·elems·(in + out bytes) / (BW · η_mem)
//	latency = max(compute, memory)          (no layer overhead: the
//	          element-wise pass is fused into its neighbours' kernels)
//	energy  = B·elems·(add·E_add + mul·E_mul) + traffic·E_DRAM
//
// with the counts of NonlinearOps and the profile's ALU ("int32" or
// "fp32"). The error names the profile when it has no ALU of that format,
// and the function when it is unknown.
func (p *Profile) NonlinearCost(name, fn string, elems int64, integer bool, o *Options) (Cost, error) {
	ops, ok := NonlinearOps[fn]
	if !ok {
		return Cost{}, fmt.Errorf("layer %q: unknown non-linearity %q (want gelu, softmax or layernorm)", name, fn)
	}
	key, oc := ALUFloat, ops[1]
	if integer {
		key, oc = ALUInt, ops[0]
	}
	alu, ok := p.ALU[key]
	if !ok || !(alu.OpsPerSec > 0) {
		return Cost{}, fmt.Errorf("layer %q: profile %s has no %q entry in \"alu\" (element-wise throughput and energy), which costs non-linearities", name, p.Name, key)
	}
	if elems < 0 {
		return Cost{}, fmt.Errorf("layer %q: elements must be ≥ 0, got %d", name, elems)
	}
	b := o.batch()
	n := b * float64(elems)
	c := Cost{Layer: name, Bound: ComputeBound}
	c.Compute = n * float64(oc.Add+oc.Mul) / alu.OpsPerSec
	c.Activation = n * float64(oc.OutBytes)
	c.Traffic = n*float64(oc.InBytes) + c.Activation
	c.Memory = c.Traffic / p.bandwidth()
	c.Latency = math.Max(c.Compute, c.Memory)
	if c.Memory > c.Compute {
		c.Bound = MemoryBound
	}
	c.Energy = n*(float64(oc.Add)*alu.AddEnergy+float64(oc.Mul)*alu.MulEnergy) + c.Traffic*p.DRAMEnergy
	c.EnergyKnown = p.DRAMEnergy > 0 && (alu.AddEnergy > 0 || alu.MulEnergy > 0)
	c.Notes = append(c.Notes, fmt.Sprintf("%s %s on the %s ALUs", map[bool]string{true: "integer-only", false: "float"}[integer], fn, key))
	return c, nil
}
