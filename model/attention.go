package model

import (
	"github.com/bitplan/bitplan/op"
)

// ActMatMul is a MatMul (or a two-operand Einsum) whose two operands are
// both activations (neither is a constant): the Q·Kᵀ and P·V products of
// attention ('bhqd,bhkd->bhqk' as torch.einsum writes them). It has no weight,
// so it is not a Unit; its inputs are activation quantization points, and
// its MACs belong to the model's totals.
type ActMatMul struct {
	// Name is the node name (the first output's name when it has none).
	Name string
	// Node is the index of the node in Model.Nodes.
	Node int
	// MACs is the number of multiply-accumulates per sample:
	// Numel(Y)·K / batch for A (…×M×K) · B (…×K×N) = Y (…×M×N), at the
	// shapes the model was inferred or specialised at (the sequence length
	// of the data). For attention with H heads, sequence T and head width
	// d, Q·Kᵀ and P·V each take H·T·T·d MACs per sample.
	MACs int64
	// AElems and BElems are the elements per sample of the two inputs,
	// OutElems those of the output.
	AElems, BElems, OutElems int64
	// ShapeKnown is false when the operands' shapes are unknown (MACs and
	// element counts are then 0).
	ShapeKnown bool
}

// InElems returns the activation elements read per sample (both inputs).
func (a ActMatMul) InElems() int64 { return a.AElems + a.BElems }

// ActMatMuls returns the activation × activation MatMuls of the model in
// node order: every default-domain MatMul, or Einsum of two operands,
// neither of whose operands is an initializer or a value computable from
// initializers and shapes (an Einsum's MACs are op.EinsumMACs). Counts
// are per sample: divided by the batch size the shapes were inferred at,
// as the units' are.
func (m *Model) ActMatMuls() []ActMatMul {
	var out []ActMatMul
	for _, n := range m.Nodes {
		if (n.Op != "MatMul" && n.Op != "Einsum") || !op.IsDefault(n.Domain) || len(n.Inputs) != 2 || len(n.Outputs) == 0 {
			continue
		}
		if m.isConstant(n.Inputs[0]) || m.isConstant(n.Inputs[1]) {
			continue
		}
		a := ActMatMul{Name: n.Name, Node: n.Index}
		if a.Name == "" {
			a.Name = n.Outputs[0]
		}
		if m.Shapes != nil {
			x, y, z := m.Shapes.Dims[n.Inputs[0]], m.Shapes.Dims[n.Inputs[1]], m.Shapes.Dims[n.Outputs[0]]
			if x != nil && y != nil && z != nil {
				macs, err := int64(0), error(nil)
				if n.Op == "Einsum" {
					macs, err = op.EinsumMACs(n, [][]int{x, y})
				} else {
					var k int
					_, k, err = op.MatMulShape(x, y)
					macs = int64(op.Numel(z)) * int64(k)
				}
				if err == nil {
					a.ShapeKnown = true
					a.MACs = macs
					a.AElems, a.BElems, a.OutElems = int64(op.Numel(x)), int64(op.Numel(y)), int64(op.Numel(z))
					// Per sample: the pass's counts over the batch the
					// shapes were inferred at (not over the first axis,
					// which holds batch × heads in torch's
					// MultiheadAttention and the sequence in
					// sequence-first layouts).
					if b := int64(m.Shapes.Batch); b > 1 {
						a.MACs /= b
						a.OutElems /= b
						// An operand without the batch dimension is shared
						// by every sample (broadcast): read once.
						if len(x) == len(z) && x[0] == z[0] {
							a.AElems /= b
						}
						if len(y) == len(z) && y[0] == z[0] {
							a.BElems /= b
						}
					}
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// isConstant reports whether tensor name is an initializer or a value
// shape inference computed without the data.
func (m *Model) isConstant(name string) bool {
	if _, ok := m.Initializers[name]; ok {
		return true
	}
	if m.Shapes != nil {
		if _, ok := m.Shapes.Values[name]; ok {
			return true
		}
	}
	return false
}
