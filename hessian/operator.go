package hessian

import (
	"context"
	"errors"
	"fmt"
)

// Block is a named, contiguous range of the parameter vector (a layer, or a
// channel of a layer).
type Block struct {
	Name   string
	Offset int
	Size   int
}

// End returns the exclusive end of the block's range, Offset+Size.
func (b Block) End() int { return b.Offset + b.Size }

// Operator is a symmetric linear operator (a Hessian) over R^Dim, partitioned
// into blocks.
type Operator interface {
	Dim() int
	// Blocks partitions [0, Dim) into contiguous, non-overlapping ranges in
	// increasing Offset order (they need not cover everything: parameters
	// outside every block still take part in products).
	Blocks() []Block
	// HVP sets dst = H·v. len(dst) == len(v) == Dim(). It must be safe for
	// concurrent calls.
	HVP(ctx context.Context, dst, v []float64) error
}

// BatchOperator is optionally implemented by operators that compute several
// products at once more cheaply (e.g. sharing a forward pass).
type BatchOperator interface {
	Operator
	HVPBatch(ctx context.Context, dst, v [][]float64) error
}

// ErrZeroDim is returned when an operator reports a dimension below one.
var ErrZeroDim = errors.New("hessian: operator dimension must be positive")

// ValidateBlocks checks that blocks are well formed for an operator of
// dimension dim: dim > 0, every block has a positive size, lies inside
// [0, dim), and blocks appear in strictly increasing, non-overlapping Offset
// order. The error names the offending block and values.
func ValidateBlocks(dim int, blocks []Block) error {
	if dim <= 0 {
		return fmt.Errorf("%w (got %d)", ErrZeroDim, dim)
	}
	prevEnd := 0
	for i, b := range blocks {
		switch {
		case b.Size <= 0:
			return fmt.Errorf("hessian: block %d (%q): size %d, want > 0", i, b.Name, b.Size)
		case b.Offset < 0 || b.Offset > dim-b.Size:
			return fmt.Errorf("hessian: block %d (%q): range [%d, %d) outside [0, %d)",
				i, b.Name, b.Offset, b.Offset+b.Size, dim)
		case b.Offset < prevEnd:
			return fmt.Errorf("hessian: block %d (%q): offset %d overlaps or precedes previous block ending at %d (blocks must be sorted and disjoint)",
				i, b.Name, b.Offset, prevEnd)
		}
		prevEnd = b.Offset + b.Size
	}
	return nil
}

// Validate checks op's dimension and blocks with ValidateBlocks.
func Validate(op Operator) error {
	if op == nil {
		return errors.New("hessian: nil operator")
	}
	return ValidateBlocks(op.Dim(), op.Blocks())
}
