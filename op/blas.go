package op

import "gonum.org/v1/gonum/blas"

// Real is the element type of the engine's kernels: float32 for speed and
// memory, float64 for reference tests.
type Real interface{ float32 | float64 }

// blasImpl is the BLAS every matrix product goes through: gonum's native
// Go implementation by default (blas_gonum.go), the system OpenBLAS with
// the build tag openblas (blas_openblas.go).
type blasImpl interface {
	blas.Float32
	blas.Float64
}

// Gemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices, with
// op(a) m×k (a transposed when ta) and op(b) k×n (b transposed when tb).
// It is the one matrix-product entry point of the package: every Conv,
// Gemm and MatMul kernel calls it, so the BLAS behind it (BLAS) is chosen
// in one place. k == 0 scales c by beta.
func Gemm[T Real](ta, tb bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if beta != 1 {
			for i := 0; i < m; i++ {
				row := c[i*ldc : i*ldc+n]
				for j := range row {
					row[j] *= beta
				}
			}
		}
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	switch c := any(c).(type) {
	case []float64:
		impl.Dgemm(tA, tB, m, n, k, float64(alpha), any(a).([]float64), lda, any(b).([]float64), ldb, float64(beta), c, ldc)
	case []float32:
		impl.Sgemm(tA, tB, m, n, k, float32(alpha), any(a).([]float32), lda, any(b).([]float32), ldb, float32(beta), c, ldc)
	}
}
