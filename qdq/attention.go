package qdq

import (
	"fmt"

	"github.com/bitplan/bitplan/eval"
)

// AttentionSummary records one quantized activation × activation MatMul
// (attention's Q·Kᵀ or P·V): both of its inputs pass through a
// QuantizeLinear → DequantizeLinear pair.
type AttentionSummary struct {
	// Name is the plan layer (the MatMul node of the engine's model), Node
	// the node's name in the exported graph.
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
	// Bits is the width of both inputs.
	Bits int `json:"bits"`
	// Inputs describe the two quantized operands.
	Inputs [2]ActSummary `json:"inputs"`
}

// ActSummary describes one per-tensor activation quantizer.
type ActSummary struct {
	Input     string  `json:"input"`
	Type      string  `json:"type"`
	Scale     float32 `json:"scale"`
	ZeroPoint int64   `json:"zero_point"`
	Min       int64   `json:"min"`
	Max       int64   `json:"max"`
	Narrowed  bool    `json:"narrowed,omitempty"`
	RangeMin  float64 `json:"range_min"`
	RangeMax  float64 `json:"range_max"`
}

// actMatMulNode returns the index in the graph of the MatMul (or Einsum)
// node the engine's model has at index node (matched by its type and first
// output, as unitNode matches units).
func (x *exporter) actMatMulNode(node int) (int, error) {
	mn := x.e.Model().Nodes[node]
	for i, n := range x.g.Node {
		if n.OpType == mn.Op && len(n.Output) > 0 && len(mn.Outputs) > 0 && n.Output[0] == mn.Outputs[0] {
			return i, nil
		}
	}
	return 0, fmt.Errorf("the engine's node %s is not in the model bytes (engine built from another file?)", mn.Label())
}

// attention inserts Q → DQ pairs on both inputs of a quantized attention
// point, with the quantizers eval.Apply calibrated.
func (x *exporter) attention(aa eval.AppliedAttention) (AttentionSummary, error) {
	ni, err := x.actMatMulNode(aa.Node)
	if err != nil {
		return AttentionSummary{}, err
	}
	node := x.g.Node[ni]
	s := AttentionSummary{Name: aa.Name, Node: node.Name, Bits: aa.Bits}
	at, err := ActType(aa.Bits)
	if err != nil {
		return s, err
	}
	_, thi := at.Range()
	for in := 0; in < 2; in++ {
		q := aa.Acts[in]
		al := eval.AppliedLayer{Layer: eval.Layer{Name: aa.Name, ABits: aa.Bits}, Input: aa.Inputs[in], Act: q}
		src := node.Input[in]
		name, sc, err := x.quantizeInput(ni, in, al)
		if err != nil {
			return s, err
		}
		sf, z := q.Scale()
		s.Inputs[in] = ActSummary{Input: src, Type: at.String(), Scale: sc, ZeroPoint: int64(z), Min: 0, Max: int64(q.Levels()),
			Narrowed: int64(q.Levels()) < thi, RangeMin: aa.Inputs[in].Min, RangeMax: aa.Inputs[in].Max}
		node.Input[in] = name
		x.qin[name] = sf
	}
	return s, nil
}
