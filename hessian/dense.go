package hessian

import (
	"context"
	"fmt"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// DenseOperator is an explicit symmetric matrix seen as an Operator. It also
// implements BatchOperator (one matrix-matrix product per batch).
type DenseOperator struct {
	m      *mat.Dense // full (both triangles) storage, for BLAS Gemv/Gemm
	blocks []Block
}

// Dense returns an Operator backed by a copy of the explicit symmetric matrix
// m, partitioned into blocks. Blocks are not checked here; every estimator
// validates them and reports bad ones as errors. A nil m gives a
// zero-dimensional operator, which estimators reject.
func Dense(m mat.Symmetric, blocks []Block) *DenseOperator {
	op := &DenseOperator{blocks: append([]Block(nil), blocks...)}
	if m != nil && m.SymmetricDim() > 0 {
		n := m.SymmetricDim()
		op.m = mat.NewDense(n, n, nil)
		for i := range n {
			for j := i; j < n; j++ {
				v := m.At(i, j)
				op.m.Set(i, j, v)
				op.m.Set(j, i, v)
			}
		}
	}
	return op
}

// Dim returns the matrix order.
func (d *DenseOperator) Dim() int {
	if d.m == nil {
		return 0
	}
	r, _ := d.m.Dims()
	return r
}

// Blocks returns the blocks given to Dense.
func (d *DenseOperator) Blocks() []Block { return d.blocks }

// HVP sets dst = M·v.
func (d *DenseOperator) HVP(ctx context.Context, dst, v []float64) error {
	n := d.Dim()
	if len(dst) != n || len(v) != n {
		return fmt.Errorf("hessian: dense HVP lengths dst=%d v=%d, want %d", len(dst), len(v), n)
	}
	if n == 0 {
		return nil
	}
	blas64.Gemv(blas.NoTrans, 1, d.m.RawMatrix(), blas64.Vector{N: n, Inc: 1, Data: v}, 0, blas64.Vector{N: n, Inc: 1, Data: dst})
	return nil
}

// HVPBatch sets dst[j] = M·v[j] for every j with one matrix product.
func (d *DenseOperator) HVPBatch(ctx context.Context, dst, v [][]float64) error {
	n, k := d.Dim(), len(v)
	if len(dst) != k {
		return fmt.Errorf("hessian: dense HVPBatch has %d outputs for %d inputs", len(dst), k)
	}
	if k == 0 || n == 0 {
		return nil
	}
	// Row j of X is v[j]; Y = X·M (M symmetric) has row j = (M·v[j])ᵀ.
	x := blas64.General{Rows: k, Cols: n, Stride: n, Data: make([]float64, k*n)}
	for j := range v {
		if len(v[j]) != n || len(dst[j]) != n {
			return fmt.Errorf("hessian: dense HVPBatch vector %d lengths dst=%d v=%d, want %d", j, len(dst[j]), len(v[j]), n)
		}
		copy(x.Data[j*n:], v[j])
	}
	y := blas64.General{Rows: k, Cols: n, Stride: n, Data: make([]float64, k*n)}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, x, d.m.RawMatrix(), 0, y)
	for j := range dst {
		copy(dst[j], y.Data[j*n:(j+1)*n])
	}
	return nil
}

// Counter wraps an Operator and counts the matrix-vector products it
// performs (a batch of k vectors counts k). It is safe for concurrent use and
// always implements BatchOperator, delegating to the wrapped operator's
// HVPBatch when it has one.
type Counter struct {
	Op Operator
	n  atomic.Int64
}

// Count returns a Counter around op.
func Count(op Operator) *Counter { return &Counter{Op: op} }

// Matvecs returns the number of products performed so far.
func (c *Counter) Matvecs() int64 { return c.n.Load() }

// Reset sets the count to zero.
func (c *Counter) Reset() { c.n.Store(0) }

// Dim returns the wrapped operator's dimension.
func (c *Counter) Dim() int { return c.Op.Dim() }

// Blocks returns the wrapped operator's blocks.
func (c *Counter) Blocks() []Block { return c.Op.Blocks() }

// HVP counts one product and delegates.
func (c *Counter) HVP(ctx context.Context, dst, v []float64) error {
	c.n.Add(1)
	return c.Op.HVP(ctx, dst, v)
}

// HVPBatch counts len(v) products and delegates.
func (c *Counter) HVPBatch(ctx context.Context, dst, v [][]float64) error {
	c.n.Add(int64(len(v)))
	if b, ok := c.Op.(BatchOperator); ok {
		return b.HVPBatch(ctx, dst, v)
	}
	if len(dst) != len(v) {
		return fmt.Errorf("hessian: HVPBatch has %d outputs for %d inputs", len(dst), len(v))
	}
	for j := range v {
		if err := c.Op.HVP(ctx, dst[j], v[j]); err != nil {
			return err
		}
	}
	return nil
}

const (
	blasNoTrans = blas.NoTrans
	blasTrans   = blas.Trans
)
