//go:build openblas

package op

// The system OpenBLAS through cgo (gonum's netlib binding); needs the
// library at link time (Debian: libopenblas-dev).

/*
#cgo LDFLAGS: -lopenblas
*/
import "C"

import "gonum.org/v1/netlib/blas/netlib"

// BLAS names the implementation behind Gemm: "openblas" (the system
// OpenBLAS through cgo), or "gonum" without the build tag openblas.
const BLAS = "openblas"

var impl blasImpl = netlib.Implementation{}
