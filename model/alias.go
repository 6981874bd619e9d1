package model

import "github.com/bitplan/bitplan/op"

// The graph's node and tensor types are defined by package op, whose
// operator registry is written over them; model decodes files into them.
type (
	// Node is one graph node (see op.Node).
	Node = op.Node
	// Attr is a decoded node attribute (see op.Attr).
	Attr = op.Attr
	// AttrType is the type of a node attribute (see op.AttrType).
	AttrType = op.AttrType
	// Tensor is a decoded constant tensor (see op.Tensor).
	Tensor = op.Tensor
	// DataType is an ONNX tensor element type (see op.DataType).
	DataType = op.DataType
	// Shapes is the result of static shape inference (see op.Shapes).
	Shapes = op.Shapes
	// Window is the resolved sliding-window geometry of a Conv or pooling
	// node (see op.Window).
	Window = op.Window
)

// The attribute types (see op.AttrType).
const (
	AttrOther   = op.AttrOther
	AttrInt     = op.AttrInt
	AttrFloat   = op.AttrFloat
	AttrString  = op.AttrString
	AttrInts    = op.AttrInts
	AttrFloats  = op.AttrFloats
	AttrStrings = op.AttrStrings
	AttrTensor  = op.AttrTensor
)

// The ONNX element types that the importer decodes (see op.DataType).
const (
	Undefined = op.Undefined
	Float     = op.Float
	Uint8     = op.Uint8
	Int8      = op.Int8
	Uint16    = op.Uint16
	Int16     = op.Int16
	Int32     = op.Int32
	Int64     = op.Int64
	Bool      = op.Bool
	Float16   = op.Float16
	Double    = op.Double
	Uint32    = op.Uint32
	Uint64    = op.Uint64
)
