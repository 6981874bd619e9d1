package op

import (
	"fmt"
	"math/rand/v2"
	"strings"
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

// benchNode is one node of a benchmarked graph: its operator, attributes
// and input and output slots.
type benchNode struct {
	op    string
	attrs []*Attr
	in    []int
	out   int
}

// benchGraph runs the kernels of nodes (in order) on slots of the given
// shapes filled with seeded normal values. With hvp, b.N counts full
// forward + R-forward + backward + R-backward sets (one Hessian-vector
// product; the backward passes in reverse order); otherwise forward passes
// only.
func benchGraph[T Real](b *testing.B, shapes [][]int, nodes []benchNode, hvp bool) {
	names := make([]string, len(shapes))
	for i := range names {
		names[i] = fmt.Sprintf("s%d", i)
	}
	slots := &testSlots{shapes: shapes, consts: make([][]float64, len(shapes)), names: names}
	var ks []Kernel[T]
	for _, n := range nodes {
		node := &Node{Op: n.op, Attrs: map[string]*Attr{}}
		for _, a := range n.attrs {
			node.Attrs[a.Name] = a
		}
		k, err := NewKernel[T](Lookup(n.op, 17).Exec, &Build{Node: node, Opset: 17, In: n.in, Out: []int{n.out}, Slots: slots})
		if err != nil {
			b.Fatal(err)
		}
		ks = append(ks, k)
	}
	r := rand.New(rand.NewPCG(1, 2))
	w := &Work[T]{Val: make([][]T, len(shapes)), RV: make([][]T, len(shapes)), Adj: make([][]T, len(shapes)), RAdj: make([][]T, len(shapes))}
	for i, s := range shapes {
		for _, buf := range []*[]T{&w.Val[i], &w.RV[i], &w.Adj[i], &w.RAdj[i]} {
			*buf = make([]T, Numel(s))
			for j := range *buf {
				(*buf)[j] = T(r.NormFloat64())
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, k := range ks {
			k.Forward(w)
		}
		if !hvp {
			continue
		}
		for _, k := range ks {
			k.RForward(w)
		}
		for j := len(ks) - 1; j >= 0; j-- {
			ks[j].Backward(w)
		}
		for j := len(ks) - 1; j >= 0; j-- {
			ks[j].RBackward(w)
		}
	}
}

// BenchmarkEinsum compares Einsum on the attention equations of a
// BERT-base-sized layer (batch 4, 12 heads, 128 tokens, head size 64,
// width 768) with the MatMul graph torch.onnx would export without einsum
// (a Transpose where the equation contracts an operand's last axis or
// both operands would be transposed: 'bhkq,bhdk->bhqd'), in both
// precisions, forward only and for a full Hessian-vector product.
func BenchmarkEinsum(b *testing.B) {
	eq := func(e string) []*Attr { return []*Attr{{Name: "equation", Type: AttrString, String: e}} }
	perm := func(p ...int64) []*Attr { return []*Attr{{Name: "perm", Type: AttrInts, Ints: p}} }
	for _, tc := range []struct {
		name           string
		shapes         [][]int // inputs a, b, output, then the MatMul graph's intermediates
		einsum, matmul []benchNode
	}{
		{"bhqd,bhkd->bhqk", [][]int{{4, 12, 128, 64}, {4, 12, 128, 64}, {4, 12, 128, 128}, {4, 12, 64, 128}},
			[]benchNode{{"Einsum", eq("bhqd,bhkd->bhqk"), []int{0, 1}, 2}},
			[]benchNode{{"Transpose", perm(0, 1, 3, 2), []int{1}, 3}, {"MatMul", nil, []int{0, 3}, 2}}},
		{"bhqk,bhkd->bhqd", [][]int{{4, 12, 128, 128}, {4, 12, 128, 64}, {4, 12, 128, 64}},
			[]benchNode{{"Einsum", eq("bhqk,bhkd->bhqd"), []int{0, 1}, 2}},
			[]benchNode{{"MatMul", nil, []int{0, 1}, 2}}},
		{"bhkq,bhdk->bhqd", [][]int{{4, 12, 128, 128}, {4, 12, 64, 128}, {4, 12, 128, 64}, {4, 12, 128, 128}, {4, 12, 128, 64}},
			[]benchNode{{"Einsum", eq("bhkq,bhdk->bhqd"), []int{0, 1}, 2}},
			[]benchNode{{"Transpose", perm(0, 1, 3, 2), []int{0}, 3}, {"Transpose", perm(0, 1, 3, 2), []int{1}, 4}, {"MatMul", nil, []int{3, 4}, 2}}},
		{"bld,hd->blh", [][]int{{4, 128, 768}, {768, 768}, {4, 128, 768}, {768, 768}},
			[]benchNode{{"Einsum", eq("bld,hd->blh"), []int{0, 1}, 2}},
			[]benchNode{{"Transpose", perm(1, 0), []int{1}, 3}, {"MatMul", nil, []int{0, 3}, 2}}},
	} {
		for _, impl := range []struct {
			name  string
			nodes []benchNode
		}{{"einsum", tc.einsum}, {"matmul", tc.matmul}} {
			for _, pass := range []struct {
				name string
				hvp  bool
			}{{"forward", false}, {"hvp", true}} {
				name := strings.NewReplacer(",", "_", "->", "_").Replace(tc.name) + "/" + impl.name + "/" + pass.name
				b.Run(name+"/float32", func(b *testing.B) { benchGraph[float32](b, tc.shapes, impl.nodes, pass.hvp) })
				b.Run(name+"/float64", func(b *testing.B) { benchGraph[float64](b, tc.shapes, impl.nodes, pass.hvp) })
			}
		}
	}
}

// BenchmarkGemmForms times Gemm's four forms (A and B each plain or
// transposed) on the products of BenchmarkEinsum's equations: the
// attention scores' 128×128×64 per head, the mix's 128×64×128 and a
// 768-wide projection of 512 tokens. With gonum's GEMM, B transposed
// (dot products) costs what the plain form (axpys along rows) costs, and
// both transposed (strided axpys) several times more, which is why
// Einsum swaps two transposed operands rather than copying one.
func BenchmarkGemmForms(b *testing.B) {
	for _, s := range [][3]int{{128, 128, 64}, {128, 64, 128}, {512, 768, 768}} {
		m, n, k := s[0], s[1], s[2]
		r := rand.New(rand.NewPCG(1, 2))
		x, y, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for i := range y {
			y[i] = float32(r.NormFloat64())
		}
		for _, f := range []struct {
			name   string
			ta, tb bool
		}{{"plain", false, false}, {"transB", false, true}, {"transA", true, false}, {"both", true, true}} {
			lda, ldb := k, n
			if f.ta {
				lda = m
			}
			if f.tb {
				ldb = k
			}
			b.Run(fmt.Sprintf("%dx%dx%d/%s", m, n, k, f.name), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					Gemm(f.ta, f.tb, m, n, k, 1, x, lda, y, ldb, 0, c, n)
				}
			})
		}
	}
}
