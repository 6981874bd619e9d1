package nn_test

import (
	"math"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// eye6 is the 6×6 identity: the weight unit the engine needs, which leaves
// the attention's output as it is.
var eye6 = func() []float64 {
	w := make([]float64, 36)
	for i := 0; i < 6; i++ {
		w[i*7] = 1
	}
	return w
}()

// selfAttention builds x (N×2×3) → s = Softmax(x·xᵀ) (N×2×2) → P·x
// (N×2×3) → Flatten (N×6) → MatMul by the identity: two activation × activation MatMuls and a
// Softmax, the nodes the node hooks act on.
func selfAttention(t *testing.T, prec nn.Precision) *nn.Engine {
	t.Helper()
	b := mt.New("selfatt", 13)
	b.Input("x", -1, 2, 3)
	b.Node("Transpose", "tr", []string{"x"}, []string{"xt"}, mt.Ints("perm", 0, 2, 1))
	b.Node("MatMul", "qk", []string{"x", "xt"}, []string{"y"})
	b.Node("Softmax", "sm", []string{"y"}, []string{"p"}, mt.Int("axis", -1))
	b.Node("MatMul", "pv", []string{"p", "x"}, []string{"z"})
	b.Node("Flatten", "fl", []string{"z"}, []string{"f"}, mt.Int("axis", 1))
	b.Double("w", []int{6, 6}, eye6)
	b.Node("MatMul", "head", []string{"f", "w"}, []string{"out"})
	b.Output("out")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{BatchSize: 2, Workers: 2, Precision: prec})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// attRef computes the same graph by loops, with the operands of qk and pv
// passed through qa, qb (qk) and pa, pb (pv) and the softmax replaced by sm.
func attRef(x []float64, n int, qa, qb, pa, pb func(float64) float64, sm func(row []float64) []float64) []float64 {
	var out []float64
	for s := 0; s < n; s++ {
		xs := x[s*6 : s*6+6]
		for i := 0; i < 2; i++ {
			row := make([]float64, 2)
			for j := 0; j < 2; j++ {
				for k := 0; k < 3; k++ {
					row[j] += qa(xs[i*3+k]) * qb(xs[j*3+k])
				}
			}
			p := sm(row)
			for k := 0; k < 3; k++ {
				var v float64
				for j := 0; j < 2; j++ {
					v += pa(p[j]) * pb(xs[j*3+k])
				}
				out = append(out, v)
			}
		}
	}
	return out
}

func softmaxRow(r []float64) []float64 {
	m := math.Max(r[0], r[1])
	a, b := math.Exp(r[0]-m), math.Exp(r[1]-m)
	return []float64{a / (a + b), b / (a + b)}
}

// TestNodeHooks checks SetNodeInputQuantizer and SetNodeOutput against the
// loop reference in both precisions: rounding both operands of each
// MatMul to different grids and replacing the Softmax by a hard arg-max
// change the outputs exactly as the reference says, and ClearInputQuantizers
// gives the float model back.
func TestNodeHooks(t *testing.T) {
	x := []float64{0.3, -1.2, 0.7, 1.1, 0.05, -0.4, -0.9, 0.6, 0.25, 0.45, -0.35, 1.3}
	id := func(v float64) float64 { return v }
	grid := func(s float64) func(float64) float64 { return func(v float64) float64 { return s * math.Round(v/s) } }
	hook := func(f func(float64) float64) nn.InputQuantizer {
		return func(v []float64) {
			for i := range v {
				v[i] = f(v[i])
			}
		}
	}
	hard := func(r []float64) []float64 {
		if r[0] >= r[1] {
			return []float64{1, 0}
		}
		return []float64{0, 1}
	}
	for _, prec := range []nn.Precision{nn.Float64, nn.Float32} {
		tol := 1e-12
		if prec == nn.Float32 {
			tol = 1e-5
		}
		e := selfAttention(t, prec)
		check := func(what string, want []float64) {
			t.Helper()
			got, err := e.Logits(x, 2)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > tol {
					t.Fatalf("%v %s: out[%d] = %g, want %g", prec, what, i, got[i], want[i])
				}
			}
		}
		check("float", attRef(x, 2, id, id, id, id, softmaxRow))
		for _, h := range []struct {
			node string
			in   int
			s    float64
		}{{"qk", 0, 0.23}, {"qk", 1, 0.47}, {"pv", 0, 0.13}, {"pv", 1, 0.31}} {
			if err := e.SetNodeInputQuantizer(h.node, h.in, hook(grid(h.s))); err != nil {
				t.Fatal(err)
			}
		}
		check("quantized", attRef(x, 2, grid(0.23), grid(0.47), grid(0.13), grid(0.31), softmaxRow))
		err := e.SetNodeOutput("sm", 0, func(in, out []float64) {
			for r := 0; r+2 <= len(in); r += 2 {
				copy(out[r:r+2], hard(in[r:r+2]))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		check("quantized, hard softmax", attRef(x, 2, grid(0.23), grid(0.47), grid(0.13), grid(0.31), hard))
		e.ClearInputQuantizers()
		check("cleared", attRef(x, 2, id, id, id, id, softmaxRow))
		if err := e.SetNodeInputQuantizer("nope", 0, hook(id)); err == nil {
			t.Error("a node that does not exist was accepted")
		}
		if err := e.SetNodeInputQuantizer("qk", 2, hook(id)); err == nil {
			t.Error("input 2 of a MatMul was accepted")
		}
	}
}
