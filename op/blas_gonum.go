//go:build !openblas

package op

import "gonum.org/v1/gonum/blas/gonum"

// BLAS names the implementation behind Gemm: "gonum" (gonum's native Go
// BLAS, which runs large products on GOMAXPROCS goroutines), or "openblas"
// when built with -tags openblas.
const BLAS = "gonum"

var impl blasImpl = gonum.Implementation{}
