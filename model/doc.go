// Package model imports ONNX models: the graph (nodes, attributes, inputs,
// outputs), the initializers decoded to float64 or int64, import
// normalisation (normalize.go: Constant and Identity nodes and every
// subgraph computable from initializers folded at import, de-duplicated
// initializers made separate parameters again; Fold evaluates a node by
// its operator's record, op.Fold), static shape inference that also folds what depends on the input
// shapes (Shape → Gather → Unsqueeze → Concat → Reshape, ConstantOfShape,
// Expand and Where to the batch: Shapes.Values; Specialize removes those
// nodes for one batch size), and the list of quantizable units (Conv, Gemm,
// MatMul with a constant weight; a weight read by several nodes is one unit)
// with their parameter counts, MACs and activation sizes.
//
// The file is decoded with the generated protobuf types of
// github.com/advancedclimatesystems/gonnx/onnx and proto.Unmarshal; no part of
// the wire format is parsed by hand.
//
// What model knows of each operator (its shape inference, how it is folded
// on constants, whether it owns a quantizable weight) comes from the
// operator registry, package op,
// which also defines the node and tensor types model decodes into.
//
// Import only describes the graph: it succeeds on graphs whose operators no
// engine here can execute (their output shapes are taken from the graph's
// value_info when present and are otherwise unknown). Whether a graph can be
// run is decided by the engine (package nn), which names the offending node.
//
// Bad input never panics: truncated or garbage files, missing initializers,
// unsupported data types and bad attribute values return errors naming the
// node, tensor or attribute and the value that was expected.
package model
