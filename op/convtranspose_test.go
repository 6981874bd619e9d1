package op

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestConvTransposeBruteForce compares the kernel's forward pass on every
// conformance case with the operator's definition written as a scatter
// (ONNX ConvTranspose): each input element x[n, c, i] adds
// x·W[c, m, k] to y[n, g·M/G + m, i·s − pad + k·d] for every kernel tap k
// landing inside the output, c in group g.
func TestConvTransposeBruteForce(t *testing.T) {
	d := Lookup("ConvTranspose", 0)
	for ci, c := range d.Cases {
		rng := rand.New(rand.NewPCG(uint64(ci), 3))
		n := &Node{Op: "ConvTranspose", Name: "t", Attrs: map[string]*Attr{}, Outputs: []string{"y"}}
		for _, a := range c.Attrs {
			n.Attrs[a.Name] = a
		}
		ts := &testSlots{}
		b := &Build{Node: n, Opset: 17, Slots: ts}
		var vals [][]float64
		for _, in := range c.Inputs {
			b.In = append(b.In, len(ts.shapes))
			ts.shapes = append(ts.shapes, in.Shape)
			ts.consts = append(ts.consts, nil)
			ts.names = append(ts.names, "in")
			v := make([]float64, Numel(in.Shape))
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			vals = append(vals, v)
		}
		xs, ws := c.Inputs[0].Shape, c.Inputs[1].Shape
		ys, pb, err := convTransposeGeom(n, xs, ws)
		if err != nil {
			t.Fatal(err)
		}
		b.Out = []int{len(ts.shapes)}
		ts.shapes = append(ts.shapes, ys)
		ts.consts = append(ts.consts, nil)
		ts.names = append(ts.names, "y")
		k, err := NewKernel[float64](d.Exec, b)
		if err != nil {
			t.Fatal(err)
		}
		w := &Work[float64]{Val: append(vals, make([]float64, Numel(ys))), RV: make([][]float64, 4), Adj: make([][]float64, 4), RAdj: make([][]float64, 4)}
		k.Forward(w)
		got := w.Val[b.Out[0]]

		// The definition, for 1-D and 2-D alike (1-D as height 1).
		grp, _ := n.AttrInt("group", 1)
		g := int(grp)
		sp := len(xs) - 2
		strides, _ := n.AttrDims("strides", sp, 1, 1)
		dil, _ := n.AttrDims("dilations", sp, 1, 1)
		h, wd, kh, kw, oh, ow := 1, xs[2], 1, ws[2], 1, ys[2]
		sh, sw, dh, dw, ph, pw := 1, strides[0], 1, dil[0], 0, pb[0]
		if sp == 2 {
			h, wd, kh, kw, oh, ow = xs[2], xs[3], ws[2], ws[3], ys[2], ys[3]
			sh, sw, dh, dw, ph, pw = strides[0], strides[1], dil[0], dil[1], pb[0], pb[1]
		}
		C, M := xs[1], ys[1]
		mg, cg := M/g, C/g
		want := make([]float64, Numel(ys))
		x, wt := vals[0], vals[1]
		for s := 0; s < xs[0]; s++ {
			for cc := 0; cc < C; cc++ {
				grpIdx := cc / cg
				for i := 0; i < h; i++ {
					for j := 0; j < wd; j++ {
						xv := x[((s*C+cc)*h+i)*wd+j]
						for m := 0; m < mg; m++ {
							for a := 0; a < kh; a++ {
								for bb := 0; bb < kw; bb++ {
									oi, oj := i*sh-ph+a*dh, j*sw-pw+bb*dw
									if oi < 0 || oi >= oh || oj < 0 || oj >= ow {
										continue
									}
									mo := grpIdx*mg + m
									want[((s*M+mo)*oh+oi)*ow+oj] += xv * wt[((cc*mg+m)*kh+a)*kw+bb]
								}
							}
						}
					}
				}
			}
		}
		if len(vals) > 2 {
			for s := 0; s < xs[0]; s++ {
				for m := 0; m < M; m++ {
					for p := 0; p < oh*ow; p++ {
						want[(s*M+m)*oh*ow+p] += vals[2][m]
					}
				}
			}
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12*max(1, math.Abs(want[i])) {
				t.Fatalf("case %q: y[%d] = %.15g, the definition gives %.15g", c.Name, i, got[i], want[i])
			}
		}
	}
}
