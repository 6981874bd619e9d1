package hessian

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
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

// NonFiniteError reports a Hessian-vector product that produced NaN or ±Inf.
type NonFiniteError struct {
	Index int     // coordinate of the first non-finite entry
	Value float64 // the offending value
}

// Error describes the offending coordinate and value.
func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("hessian: HVP output[%d] = %v, want a finite value", e.Index, e.Value)
}

// checkFinite returns a *NonFiniteError for the first non-finite entry of x.
func checkFinite(x []float64) error {
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &NonFiniteError{Index: i, Value: v}
		}
	}
	return nil
}

// apply computes dst = op·v, checking the context first and the output for
// non-finite values afterwards.
func apply(ctx context.Context, op Operator, dst, v []float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := op.HVP(ctx, dst, v); err != nil {
		return fmt.Errorf("hessian: HVP: %w", err)
	}
	return checkFinite(dst)
}

// applyBatch computes dst[j] = op·v[j] for every j, with one HVPBatch call if
// op is a BatchOperator and len(v) > 1, else with one HVP per vector.
func applyBatch(ctx context.Context, op Operator, dst, v [][]float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if bop, ok := op.(BatchOperator); ok && len(v) > 1 {
		if err := bop.HVPBatch(ctx, dst, v); err != nil {
			return fmt.Errorf("hessian: HVPBatch: %w", err)
		}
		for _, d := range dst {
			if err := checkFinite(d); err != nil {
				return err
			}
		}
		return nil
	}
	for j := range v {
		if err := apply(ctx, op, dst[j], v[j]); err != nil {
			return err
		}
	}
	return nil
}

// workerCount returns the number of goroutines to use for n independent
// jobs: w if positive, else GOMAXPROCS, and never more than n.
func workerCount(w, n int) int {
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	return max(1, min(w, n))
}

// applyMany computes out[j] = op·in[j] for all j using up to workers
// goroutines, each handling consecutive chunks of at most batch vectors. The
// result does not depend on workers or batch. The first error cancels the
// remaining work and is returned.
func applyMany(ctx context.Context, op Operator, workers, batch int, in [][]float64) ([][]float64, error) {
	d := op.Dim()
	out := make([][]float64, len(in))
	for j := range out {
		out[j] = make([]float64, d)
	}
	if len(in) == 0 {
		return out, nil
	}
	if batch <= 0 {
		batch = 1
		if _, ok := op.(BatchOperator); ok {
			batch = defaultBatch
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	nw := workerCount(workers, (len(in)+batch-1)/batch)
	for range nw {
		wg.Go(func() {
			for {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= len(in) {
					return
				}
				// applyBatch checks ctx, so cancellation is reported.
				hi := min(lo+batch, len(in))
				if err := applyBatch(ctx, op, out[lo:hi], in[lo:hi]); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

// defaultBatch is the number of vectors passed to one HVPBatch call when the
// caller does not choose: large enough to share a forward pass, small enough
// to keep adaptive stopping from overshooting by much.
const defaultBatch = 8

// strataBatch is the number of stratified probes (Settings.Strata) a
// Hutchinson worker computes at once, unless Settings.BatchSize says
// otherwise: their whole strata share one batched product.
const strataBatch = 4

// Func adapts a function to an Operator. It is convenient for tests and for
// engines that keep their own state; Multiply must be safe for concurrent
// calls.
type Func struct {
	N        int                                               // dimension
	Parts    []Block                                           // blocks, as returned by Blocks
	Multiply func(ctx context.Context, dst, v []float64) error // sets dst = H·v
}

// Dim returns f.N.
func (f *Func) Dim() int { return f.N }

// Blocks returns f.Parts.
func (f *Func) Blocks() []Block { return f.Parts }

// HVP calls f.Multiply after checking the slice lengths.
func (f *Func) HVP(ctx context.Context, dst, v []float64) error {
	if len(dst) != f.N || len(v) != f.N {
		return fmt.Errorf("hessian: HVP lengths dst=%d v=%d, want %d", len(dst), len(v), f.N)
	}
	if f.Multiply == nil {
		return errors.New("hessian: Func.Multiply is nil")
	}
	return f.Multiply(ctx, dst, v)
}

// Sub returns the operator H_bb, the diagonal block of op for block b, acting
// on R^b.Size. Each product costs one full HVP of op (the input is zero
// outside b). Its blocks are those of op lying entirely inside b, shifted to
// start at b.Offset = 0; with none, the single block b itself. Sub is how
// per-layer eigenvalues (HAWQ-V1) are computed with Lanczos.
func Sub(op Operator, b Block) (Operator, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	if err := ValidateBlocks(op.Dim(), []Block{b}); err != nil {
		return nil, fmt.Errorf("hessian: Sub: %w", err)
	}
	var inner []Block
	for _, c := range op.Blocks() {
		if c.Offset >= b.Offset && c.End() <= b.End() {
			inner = append(inner, Block{Name: c.Name, Offset: c.Offset - b.Offset, Size: c.Size})
		}
	}
	if len(inner) == 0 {
		inner = []Block{{Name: b.Name, Offset: 0, Size: b.Size}}
	}
	d := op.Dim()
	return &Func{N: b.Size, Parts: inner, Multiply: func(ctx context.Context, dst, v []float64) error {
		full := make([]float64, d)
		copy(full[b.Offset:b.End()], v)
		out := make([]float64, d)
		if err := op.HVP(ctx, out, full); err != nil {
			return err
		}
		copy(dst, out[b.Offset:b.End()])
		return nil
	}}, nil
}
