package model

import (
	"github.com/bitplan/bitplan/op"
)

// Foldable reports whether Fold can evaluate operator typ on constant
// inputs: its record in package op has shape inference and a kernel, a
// constant evaluation or integer-valued inference (op.Def.CanFold).
func Foldable(typ string) bool {
	d := op.Lookup(typ, 0)
	return d != nil && d.CanFold()
}

// Fold evaluates node n on constant inputs by its operator's record
// (op.Fold: the record's shape inference, its Eval, or its own kernel run
// once in float64): ins[i] is the value of input i (nil for an omitted
// optional input). Shape and Size read only the shape of their input,
// given in shape0 (ins[0] may then be nil). It returns the values of n's
// outputs, or ok=false when n is not folded (an operator whose record
// cannot evaluate it, an unknown input, or a result larger than
// op.MaxFold elements). An error reports inputs inconsistent with the
// operator's definition.
func Fold(n *Node, opset int64, ins []*Tensor, shape0 []int) (outs []*Tensor, ok bool, err error) {
	outs, err = op.Fold(n, opset, ins, shape0)
	switch {
	case op.IsNotFoldable(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return outs, true, nil
}
