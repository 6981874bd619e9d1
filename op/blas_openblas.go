//go:build openblas

package op

// The system OpenBLAS through cgo (gonum's netlib binding); needs the
// library at link time (Debian: libopenblas-dev).

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);
*/
import "C"

import (
	"os"

	"gonum.org/v1/netlib/blas/netlib"
)

// BLAS names the implementation behind Gemm: "openblas" (the system
// OpenBLAS through cgo), or "gonum" without the build tag openblas.
const BLAS = "openblas"

var impl blasImpl = netlib.Implementation{}

// OpenBLAS runs single-threaded unless OPENBLAS_NUM_THREADS or
// OMP_NUM_THREADS says otherwise: the engine keeps the cores busy with its
// workers (one chunk of the batch each), and OpenBLAS's own threads on top
// of them oversubscribe the cores (ResNet18 at 32×32, batch 32, two
// workers on two cores: an HVP took 0.87–1.0 s with one OpenBLAS thread,
// 5.0–6.8 s with two, measured under load).
func init() {
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" && os.Getenv("OMP_NUM_THREADS") == "" {
		C.openblas_set_num_threads(1)
	}
}
