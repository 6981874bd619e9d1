package op

import (
	"math/rand/v2"
	"testing"
)

// benchConv runs the four passes of a ResNet-sized 3×3 convolution (64 → 64
// channels, 56×56, padding 1: ResNet18's first stage at 224×224) on a batch
// of n samples; b.N counts full forward + R-forward + backward + R-backward
// sets, the work of one Hessian-vector product.
func benchConv[T Real](b *testing.B, n int) {
	xs, ws, bs, ys := []int{n, 64, 56, 56}, []int{64, 64, 3, 3}, []int{64}, []int{n, 64, 56, 56}
	slots := &testSlots{shapes: [][]int{xs, ws, bs, ys}, consts: make([][]float64, 4), names: []string{"x", "w", "b", "y"}}
	node := &Node{Op: "Conv", Attrs: map[string]*Attr{"pads": {Name: "pads", Type: AttrInts, Ints: []int64{1, 1, 1, 1}}}}
	k, err := NewKernel[T](Lookup("Conv", 17).Exec, &Build{Node: node, Opset: 17, In: []int{0, 1, 2}, Out: []int{3}, Slots: slots})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	w := &Work[T]{Val: make([][]T, 4), RV: make([][]T, 4), Adj: make([][]T, 4), RAdj: make([][]T, 4)}
	for i, s := range slots.shapes {
		for _, buf := range []*[]T{&w.Val[i], &w.RV[i], &w.Adj[i], &w.RAdj[i]} {
			*buf = make([]T, Numel(s))
			for j := range *buf {
				(*buf)[j] = T(r.NormFloat64())
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k.Forward(w)
		k.RForward(w)
		k.Backward(w)
		k.RBackward(w)
	}
	// 6 products of 2·n·56²·64·576 flops each.
	b.ReportMetric(6*2*float64(n)*56*56*64*576*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkConv3x3 runs benchConv in both precisions; with -tags openblas
// the products run on the system OpenBLAS.
func BenchmarkConv3x3(b *testing.B) {
	b.Run("float64", func(b *testing.B) { benchConv[float64](b, 2) })
	b.Run("float32", func(b *testing.B) { benchConv[float32](b, 2) })
}
