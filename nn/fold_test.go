package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// TestFoldedWeights checks model.FoldedWeights: a convolution with the
// folded weights and bias reproduces Conv followed by BatchNormalization.
func TestFoldedWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	b := mt.New("bn", 13)
	b.Input("x", -1, 2, 5, 5)
	b.Double("w", []int{3, 2, 3, 3}, randn(r, 54, 1))
	b.Double("g", []int{3}, randn(r, 3, 1)).Double("beta", []int{3}, randn(r, 3, 1))
	b.Double("mu", []int{3}, randn(r, 3, 1)).Double("var", []int{3}, []float64{0.5, 1.5, 2})
	b.Double("fw", []int{27, 2}, randn(r, 54, 1))
	b.Node("Conv", "conv", []string{"x", "w"}, []string{"h"})
	b.Node("BatchNormalization", "bn", []string{"h", "g", "beta", "mu", "var"}, []string{"y"}, mt.Float32("epsilon", 1e-3))
	b.Node("Flatten", "", []string{"y"}, []string{"f"})
	b.Node("MatMul", "fc", []string{"f", "fw"}, []string{"out"})
	b.Output("out")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	u := m.Units[0]
	if u.BatchNorm != 1 || m.Units[1].BatchNorm != -1 {
		t.Fatalf("BatchNorm links: %d, %d", u.BatchNorm, m.Units[1].BatchNorm)
	}
	fw, fb, err := m.FoldedWeights(u)
	if err != nil {
		t.Fatal(err)
	}
	b2 := mt.New("folded", 13)
	b2.Input("x", -1, 2, 5, 5)
	b2.Double("w", []int{3, 2, 3, 3}, fw).Double("b", []int{3}, fb).Double("fw", []int{27, 2}, randn(r, 54, 1))
	b2.Node("Conv", "conv", []string{"x", "w", "b"}, []string{"y"})
	b2.Node("Flatten", "", []string{"y"}, []string{"f"})
	b2.Node("MatMul", "fc", []string{"f", "fw"}, []string{"out"})
	b2.Output("out")
	m2, err := model.Decode(b2.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	x := randn(r, 2*50, 1)
	var ys [2][]float64
	for i, mm := range []*model.Model{m, m2} {
		e, err := nn.New(mm, nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.Intermediates(x, 2)
		if err != nil {
			t.Fatal(err)
		}
		ys[i] = v["y"].Data
	}
	for i := range ys[0] {
		if math.Abs(ys[0][i]-ys[1][i]) > 1e-12 {
			t.Fatalf("element %d: Conv+BN %v, folded Conv %v", i, ys[0][i], ys[1][i])
		}
	}
}
