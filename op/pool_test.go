package op

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// globalPoolRun runs GlobalMaxPool or GlobalLpPool (p > 0: its attribute)
// on an input of the given shape through the four passes (see
// reductionRun).
func globalPoolRun[T Real](typ string, p int64, shape []int, x, r, g, rg []float64) (y, ry, dx, rdx []float64, err error) {
	nd := &Node{Op: typ, Name: "gp", Inputs: []string{"x"}, Outputs: []string{"y"}, Attrs: map[string]*Attr{}}
	if p > 0 {
		nd.Attrs["p"] = &Attr{Name: "p", Type: AttrInt, Int: p}
	}
	s := &Shapes{Dims: map[string][]int{"x": shape}, Types: map[string]DataType{"x": Float}, Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
	ts := &testSlots{shapes: [][]int{shape}, consts: [][]float64{nil}, names: []string{"x"}}
	return runReductionNode[T](nd, 17, s, ts, x, r, g, rg)
}

// planeSlices are the slices of global pooling: plane n·C + c holds the
// elements of x[n, c, …] (the brute force does not share the kernels'
// reduceSlices).
func planeSlices(shape []int) [][]int {
	planes, size := shape[0]*shape[1], Numel(shape[2:])
	sl := make([][]int, planes)
	for pl := range sl {
		for i := range size {
			sl[pl] = append(sl[pl], pl*size+i)
		}
	}
	return sl
}

// TestGlobalPoolBruteForce runs GlobalMaxPool and GlobalLpPool (p = 1, 2
// by default and set, 3, 4) on 1-D, 2-D and 3-D inputs and single-element
// planes, in both precisions, through all four passes, against the
// definitions of bruteReduction over each N, C plane: the maximum (the
// first tied element takes the derivative) and (Σ |x|^p)^(1/p) with its
// gradient and Hessian written out for every p (so the dispatch of p = 1
// and 2 to ReduceL1 and ReduceL2 is checked too), on continuous inputs,
// small integers (ties, zeros) and planes of zeros.
func TestGlobalPoolBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	type pool struct {
		typ   string
		p     int64
		brute string
	}
	pools := []pool{{"GlobalMaxPool", 0, "ReduceMax"}, {"GlobalLpPool", 0, "Lp2"}, {"GlobalLpPool", 1, "Lp1"},
		{"GlobalLpPool", 2, "Lp2"}, {"GlobalLpPool", 3, "Lp3"}, {"GlobalLpPool", 4, "Lp4"}}
	n := 0
	for _, pl := range pools {
		for _, shape := range [][]int{{2, 3, 2, 2}, {2, 3, 5}, {1, 2, 2, 2, 3}, {2, 2, 1, 1}, {1, 1, 1}} {
			for _, draw := range []string{"continuous", "integers", "zeros"} {
				size := Numel(shape)
				x, r := make([]float64, size), make([]float64, size)
				for i := range x {
					switch draw {
					case "continuous":
						x[i] = float64(float32(2*rng.Float64() - 1))
					case "integers":
						x[i] = float64(rng.IntN(3) - 1)
					case "zeros":
						if i >= size/2 {
							x[i] = float64(rng.IntN(2)) * float64(float32(rng.NormFloat64()))
						}
					}
					r[i] = float64(float32(rng.NormFloat64()))
				}
				sl := planeSlices(shape)
				g, rg := make([]float64, len(sl)), make([]float64, len(sl))
				for o := range g {
					g[o], rg[o] = float64(float32(rng.NormFloat64())), float64(float32(rng.NormFloat64()))
				}
				want := bruteFour(pl.brute, sl, x, r, g, rg)
				for _, prec := range []string{"float64", "float32"} {
					run, tol := globalPoolRun[float64], 1e-12
					if prec == "float32" {
						run, tol = globalPoolRun[float32], 1e-5
					}
					y, ry, dx, rdx, err := run(pl.typ, pl.p, shape, x, r, g, rg)
					if err != nil {
						t.Fatalf("%s p %d %v: %v", pl.typ, pl.p, shape, err)
					}
					compareFour(t, fmt.Sprintf("%s p %d %v %s, %s inputs %v", pl.typ, pl.p, shape, prec, draw, x), [4][]float64{y, ry, dx, rdx}, want, tol)
					n++
				}
			}
		}
	}
	t.Logf("%d runs compared", n)
}

// TestGlobalPoolBadInput: a rank-2 input and a p out of range are errors
// naming the problem.
func TestGlobalPoolBadInput(t *testing.T) {
	for _, c := range []struct {
		typ   string
		p     int64
		shape []int
		want  string
	}{
		{"GlobalMaxPool", 0, []int{2, 3}, "want N×C×spatial"},
		{"GlobalLpPool", -1, []int{2, 3, 4}, `attribute "p"`},
		{"GlobalLpPool", 33, []int{2, 3, 4}, "is 33, want 1..32"},
	} {
		nd := &Node{Op: c.typ, Name: "gp", Inputs: []string{"x"}, Outputs: []string{"y"}, Attrs: map[string]*Attr{}}
		if c.p != 0 {
			nd.Attrs["p"] = &Attr{Name: "p", Type: AttrInt, Int: c.p}
		}
		ts := &testSlots{shapes: [][]int{c.shape, {c.shape[0], c.shape[1], 1}}, consts: [][]float64{nil, nil}, names: []string{"x", "y"}}
		b := &Build{Node: nd, Opset: 17, Slots: ts, In: []int{0}, Out: []int{1}}
		_, err := NewKernel[float64](Lookup(c.typ, 17).Exec, b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s p %d %v: error %v, want %q", c.typ, c.p, c.shape, err, c.want)
		}
	}
}
