package hessian

import (
	"context"
	"fmt"
)

// ExactDiagonal returns the diagonal entries H_ii for i in block b, from one
// product with the unit vector e_i per coordinate (b.Size products, run on
// up to workers goroutines; 0 means GOMAXPROCS). It is the ground truth for
// small blocks and tests; the result is independent of workers.
func ExactDiagonal(ctx context.Context, op Operator, b Block, workers int) ([]float64, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	d := op.Dim()
	if err := ValidateBlocks(d, []Block{b}); err != nil {
		return nil, fmt.Errorf("hessian: ExactDiagonal: %w", err)
	}
	diag := make([]float64, b.Size)
	// Chunks of unit vectors keep memory at O(chunk·d).
	const chunk = 64
	for lo := 0; lo < b.Size; lo += chunk {
		hi := min(lo+chunk, b.Size)
		in := make([][]float64, hi-lo)
		for j := range in {
			in[j] = make([]float64, d)
			in[j][b.Offset+lo+j] = 1
		}
		out, err := applyMany(ctx, op, workers, 0, in)
		if err != nil {
			return nil, fmt.Errorf("hessian: ExactDiagonal of block %q at coordinate %d: %w", b.Name, b.Offset+lo, err)
		}
		for j := range out {
			diag[lo+j] = out[j][b.Offset+lo+j]
		}
	}
	return diag, nil
}

// Exact returns the exact trace of op and of every block from the whole
// diagonal: Dim products with unit vectors (see ExactDiagonal), so it is
// meant for small operators and tests; for one small layer of a large
// network call ExactDiagonal on its block. The estimates have zero
// standard error and degenerate intervals.
func Exact(ctx context.Context, op Operator, workers int) (*TraceResult, error) {
	if err := Validate(op); err != nil {
		return nil, err
	}
	d := op.Dim()
	diag, err := ExactDiagonal(ctx, op, Block{Name: "all", Offset: 0, Size: d}, workers)
	if err != nil {
		return nil, err
	}
	exact := func(name string, off, size int) Estimate {
		t := sum(diag[off : off+size])
		return Estimate{Name: name, Offset: off, Size: size, Trace: t, Lo: t, Hi: t}
	}
	res := &TraceResult{Method: "exact", Converged: true, Confidence: 1, Matvecs: d, Total: exact("", 0, d)}
	for _, b := range op.Blocks() {
		res.Blocks = append(res.Blocks, exact(b.Name, b.Offset, b.Size))
	}
	return res, nil
}
