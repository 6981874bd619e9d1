package ibert_test

import (
	"fmt"
	"math"

	"github.com/bitplan/bitplan/ibert"
)

// I-BERT's integer-only GELU on a 16-bit grid over [−4, 4], beside the
// exact GELU.
func ExampleSimGELU() {
	x := []float64{-2, -0.5, 0, 0.5, 2}
	y := make([]float64, len(x))
	ibert.SimGELU(y, x, ibert.InputScale(4))
	for i, v := range x {
		fmt.Printf("x %4.1f  i-GELU %7.4f  GELU %7.4f\n", v, y[i], v/2*(1+math.Erf(v/math.Sqrt2)))
	}
	// Output:
	// x -2.0  i-GELU -0.0364  GELU -0.0455
	// x -0.5  i-GELU -0.1447  GELU -0.1543
	// x  0.0  i-GELU  0.0000  GELU  0.0000
	// x  0.5  i-GELU  0.3554  GELU  0.3457
	// x  2.0  i-GELU  1.9637  GELU  1.9545
}

// The integer square root of Algorithm 4 and its iterations.
func ExampleSqrt() {
	for _, n := range []uint64{15, 16, 1 << 31, 1<<32 - 1} {
		r, it := ibert.Sqrt(n)
		fmt.Println(n, r, it)
	}
	// Output:
	// 15 3 2
	// 16 4 3
	// 2147483648 46340 5
	// 4294967295 65535 2
}
