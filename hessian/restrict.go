package hessian

import (
	"context"
	"fmt"
)

// Restrict returns the operator H_WW = EᵀHE, the principal submatrix of op
// on the union W of the given blocks, where E embeds R^|W| into R^Dim by
// placing the blocks' coordinates in order (the coordinates outside every
// block are zero). Its Dim is Σ Size_b and its blocks are the given ones,
// renumbered to lie contiguously from offset 0 in the same order.
//
// Estimating on H_WW instead of H is how the traces of a network's weight
// blocks are estimated without its biases (or any other coordinates that
// are not wanted): a probe of H_WW is zero off the blocks, so the
// cross terms H_ij v_i v_j with j outside W, which add variance to every
// block's Hutchinson sample and no information, are gone, and the
// operator's total trace is Σ_b tr(H_bb), the blocks' trace only. Each
// product costs one product of op.
//
// The result is a BatchOperator (one batched product of op when op is
// one) and, when op is Sampled, Sampled too (its Subset restricts
// op.Subset the same way). Errors: blocks that
// are empty or not valid for op (see ValidateBlocks).
func Restrict(op Operator, blocks []Block) (Operator, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("hessian: Restrict: no blocks")
	}
	if err := ValidateBlocks(op.Dim(), blocks); err != nil {
		return nil, fmt.Errorf("hessian: Restrict: %w", err)
	}
	r := &restricted{op: op, from: make([]Block, len(blocks)), to: make([]Block, len(blocks))}
	off := 0
	for i, b := range blocks {
		r.from[i] = b
		r.to[i] = Block{Name: b.Name, Offset: off, Size: b.Size}
		off += b.Size
	}
	r.dim = off
	if s, ok := op.(Sampled); ok {
		return &sampledRestricted{restricted: r, s: s}, nil
	}
	return r, nil
}

// restricted is the operator of Restrict.
type restricted struct {
	op       Operator
	from, to []Block // the blocks in op's coordinates and in ours
	dim      int
}

func (r *restricted) Dim() int        { return r.dim }
func (r *restricted) Blocks() []Block { return r.to }

// embed returns E·v (length op.Dim()).
func (r *restricted) embed(v []float64) []float64 {
	full := make([]float64, r.op.Dim())
	for i, b := range r.from {
		copy(full[b.Offset:b.End()], v[r.to[i].Offset:r.to[i].End()])
	}
	return full
}

// pick sets dst = Eᵀ·full.
func (r *restricted) pick(dst, full []float64) {
	for i, b := range r.from {
		copy(dst[r.to[i].Offset:r.to[i].End()], full[b.Offset:b.End()])
	}
}

// HVP sets dst = EᵀHE·v.
func (r *restricted) HVP(ctx context.Context, dst, v []float64) error {
	if len(dst) != r.dim || len(v) != r.dim {
		return fmt.Errorf("hessian: restricted HVP lengths dst=%d v=%d, want %d", len(dst), len(v), r.dim)
	}
	out := make([]float64, r.op.Dim())
	if err := r.op.HVP(ctx, out, r.embed(v)); err != nil {
		return err
	}
	r.pick(dst, out)
	return nil
}

// HVPBatch applies HVP to every vector, with one batched product of op
// when it has one.
func (r *restricted) HVPBatch(ctx context.Context, dst, v [][]float64) error {
	in := make([][]float64, len(v))
	out := make([][]float64, len(v))
	for j := range v {
		if len(dst[j]) != r.dim || len(v[j]) != r.dim {
			return fmt.Errorf("hessian: restricted HVP lengths dst=%d v=%d, want %d", len(dst[j]), len(v[j]), r.dim)
		}
		in[j] = r.embed(v[j])
		out[j] = make([]float64, r.op.Dim())
	}
	if bop, ok := r.op.(BatchOperator); ok {
		if err := bop.HVPBatch(ctx, out, in); err != nil {
			return err
		}
	} else {
		for j := range in {
			if err := r.op.HVP(ctx, out[j], in[j]); err != nil {
				return err
			}
		}
	}
	for j := range out {
		r.pick(dst[j], out[j])
	}
	return nil
}

// sampledRestricted is Restrict's result for a Sampled operator.
type sampledRestricted struct {
	*restricted
	s Sampled
}

func (r *sampledRestricted) Samples() int { return r.s.Samples() }

// Subset returns the restriction of op's subset operator.
func (r *sampledRestricted) Subset(idx []int) (Operator, error) {
	sub, err := r.s.Subset(idx)
	if err != nil {
		return nil, err
	}
	return &restricted{op: sub, from: r.from, to: r.to, dim: r.dim}, nil
}
