//go:build ort

package prune

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestLayersORT: the decoder net with random ConvTranspose output
// channels (and the channels it reads) removed, the grouped ConvTranspose
// (and grouped Conv) net with random channels of every convolution group
// removed, the reduction net (opsets
// 13 and 18), the global max and Lp pooling net and its torch.onnx
// export pool_tiny_op13 and the torch.onnx exports variadic_tiny_op13 and
// grouped_tiny (grouped Conv and ConvTranspose, a spatial mean head) with
// random channels removed run in ONNX Runtime, which
// computes what the original with those channels silenced computes there
// and what the engine computes on the pruned model.
func TestLayersORT(t *testing.T) {
	initORT(t)
	cases := []struct {
		name   string
		l      *loaded
		sample int
	}{
		{"convtranspose", loadBytes(t, convTransposeNet(1)), 50},
		{"grouped convtranspose", loadBytes(t, groupedConvTransposeNet(1, 2, 6, 1)), 50},
		{"grouped convtranspose and conv", loadBytes(t, groupedConvTransposeNet(1, 2, 6, 2)), 50},
		{"reduce op13", loadBytes(t, reduceNet(1, 13).Bytes()), 50},
		{"reduce op18", loadBytes(t, reduceNet(1, 18).Bytes()), 50},
		{"global pools", loadBytes(t, globalPoolNet(1).Bytes()), 50},
		{"pool_tiny_op13", load(t, "pool_tiny_op13"), 64},
		{"variadic_tiny_op13", load(t, "variadic_tiny_op13"), 64},
		{"grouped_tiny_op13", load(t, "grouped_tiny_op13"), 64},
		{"grouped_tiny_op17", load(t, "grouped_tiny_op17"), 64},
	}
	r := rand.New(rand.NewPCG(11, 11))
	for _, c := range cases {
		l := c.l
		for trial := 0; trial < 3; trial++ {
			keep := randomKeep(r, l.st)
			out, err := Apply(l.mp, l.st, keep)
			if err != nil {
				t.Fatal(err)
			}
			pl := loadProto(t, out)
			ref := zeroRemovedAll(t, l.mp, l.st, keep)
			for _, n := range []int{1, 3} {
				checkORT(t, l, pl, out, ref, [][]float64{normals(r, n*c.sample, 1)}, n, fmt.Sprintf("%s, trial %d", c.name, trial))
			}
		}
	}
}
