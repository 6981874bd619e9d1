package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestForwardNaive compares the im2col convolution and the pooling kernels
// with direct loops written from the ONNX definitions, on random geometries
// (groups, strides, dilations, asymmetric pads, ceil mode) that gonnx cannot
// run.
func TestForwardNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for it := 0; it < 60; it++ {
		g := 1 + r.IntN(3)
		c, m := g*(1+r.IntN(2)), g*(1+r.IntN(2))
		h, wd := 3+r.IntN(6), 3+r.IntN(6)
		kh, kw := 1+r.IntN(3), 1+r.IntN(3)
		sh, sw, dh, dw := 1+r.IntN(2), 1+r.IntN(3), 1+r.IntN(2), 1+r.IntN(2)
		pads := []int64{int64(r.IntN(kh)), int64(r.IntN(kw)), int64(r.IntN(kh)), int64(r.IntN(kw))}
		if h+int(pads[0]+pads[2]) < (kh-1)*dh+1 || wd+int(pads[1]+pads[3]) < (kw-1)*dw+1 {
			continue
		}
		const n = 2
		b := mt.New("naive", 13)
		b.Input("x", -1, c, h, wd)
		wv := randn(r, m*(c/g)*kh*kw, 1)
		bv := randn(r, m, 1)
		b.Double("w", []int{m, c / g, kh, kw}, wv).Double("b", []int{m}, bv)
		b.Node("Conv", "conv", []string{"x", "w", "b"}, []string{"y"}, mt.Int("group", int64(g)),
			mt.Ints("strides", int64(sh), int64(sw)), mt.Ints("dilations", int64(dh), int64(dw)), mt.Ints("pads", pads...))
		ceil := int64(r.IntN(2))
		inc := int64(r.IntN(2))
		pk := []int64{int64(kh), int64(kw)}
		ppads := []int64{min(pads[0], pk[0]/2), min(pads[1], pk[1]/2), min(pads[2], pk[0]/2), min(pads[3], pk[1]/2)}
		b.Node("MaxPool", "mp", []string{"x"}, []string{"p1"}, mt.Ints("kernel_shape", pk...), mt.Ints("strides", int64(sh), int64(sw)),
			mt.Ints("pads", ppads...), mt.Int("ceil_mode", ceil))
		b.Node("AveragePool", "ap", []string{"x"}, []string{"p2"}, mt.Ints("kernel_shape", pk...), mt.Ints("strides", int64(sh), int64(sw)),
			mt.Ints("pads", ppads...), mt.Int("ceil_mode", ceil), mt.Int("count_include_pad", inc))
		b.Node("Flatten", "", []string{"y"}, []string{"yf"})
		b.Node("Flatten", "", []string{"p1"}, []string{"p1f"})
		b.Node("Flatten", "", []string{"p2"}, []string{"p2f"})
		b.Node("Concat", "", []string{"yf", "p1f", "p2f"}, []string{"out"}, mt.Int("axis", 1))
		b.Output("out")
		md, err := model.Decode(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		e, err := nn.New(md, nil)
		if err != nil {
			t.Fatal(err)
		}
		x := randn(r, n*c*h*wd, 1)
		vals, err := e.Intermediates(x, n)
		if err != nil {
			t.Fatal(err)
		}
		at := func(s, ch, i, j int) (float64, bool) {
			if i < 0 || i >= h || j < 0 || j >= wd {
				return 0, false
			}
			return x[((s*c+ch)*h+i)*wd+j], true
		}
		// Convolution.
		y := vals["y"]
		oh, ow := y.Shape[2], y.Shape[3]
		for s := 0; s < n; s++ {
			for o := 0; o < m; o++ {
				gi := o / (m / g)
				for i := 0; i < oh; i++ {
					for j := 0; j < ow; j++ {
						want := bv[o]
						for cl := 0; cl < c/g; cl++ {
							for a := 0; a < kh; a++ {
								for q := 0; q < kw; q++ {
									v, _ := at(s, gi*(c/g)+cl, i*sh-int(pads[0])+a*dh, j*sw-int(pads[1])+q*dw)
									want += v * wv[((o*(c/g)+cl)*kh+a)*kw+q]
								}
							}
						}
						if got := y.Data[((s*m+o)*oh+i)*ow+j]; math.Abs(got-want) > 1e-12*max(1, math.Abs(want)) {
							t.Fatalf("case %d conv [%d %d %d %d] = %v, direct %v", it, s, o, i, j, got, want)
						}
					}
				}
			}
		}
		// Pools.
		p1, p2 := vals["p1"], vals["p2"]
		oh, ow = p1.Shape[2], p1.Shape[3]
		for s := 0; s < n; s++ {
			for ch := 0; ch < c; ch++ {
				for i := 0; i < oh; i++ {
					for j := 0; j < ow; j++ {
						mx, sum, cnt, padCnt := math.Inf(-1), 0.0, 0, 0
						for a := 0; a < kh; a++ {
							for q := 0; q < kw; q++ {
								ii, jj := i*sh-int(ppads[0])+a, j*sw-int(ppads[1])+q
								if ii < h+int(ppads[2]) && jj < wd+int(ppads[3]) {
									padCnt++ // inside the padded input
								}
								if v, ok := at(s, ch, ii, jj); ok {
									mx, sum, cnt = max(mx, v), sum+v, cnt+1
								}
							}
						}
						k := ((s*c+ch)*oh+i)*ow + j
						if p1.Data[k] != mx {
							t.Fatalf("case %d maxpool %v = %v, direct %v", it, []int{s, ch, i, j}, p1.Data[k], mx)
						}
						div := cnt
						if inc == 1 {
							div = padCnt
						}
						if want := sum / float64(div); math.Abs(p2.Data[k]-want) > 1e-14 {
							t.Fatalf("case %d avgpool(include_pad=%d, ceil=%d) %v = %v, direct %v", it, inc, ceil, []int{s, ch, i, j}, p2.Data[k], want)
						}
					}
				}
			}
		}
	}
}
