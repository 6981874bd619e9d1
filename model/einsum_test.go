package model_test

import (
	"math/rand/v2"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
)

// TestActMatMulsEinsum: torch.einsum attention — scores 'bhqd,bhkd->bhqk'
// and mix 'bhqk,bhkd->bhqd' of computed tensors — are activation ×
// activation products with H·T·T·d MACs per sample each, at batch 1 and
// specialised to batch 3; an Einsum with a constant operand or of one
// operand is not one.
func TestActMatMulsEinsum(t *testing.T) {
	const H, T, d = 2, 5, 3
	r := rand.New(rand.NewPCG(1, 1))
	w := make([]float64, d*d)
	for i := range w {
		w[i] = r.NormFloat64()
	}
	b := mt.New("einsum_attention", 17)
	b.Input("x", -1, H, T, d)
	b.Double("w", []int{d, d}, w)
	b.Node("Einsum", "q", []string{"x", "w"}, []string{"q"}, mt.String("equation", "bhtd,de->bhte"))
	b.Node("Einsum", "scores", []string{"q", "x"}, []string{"s"}, mt.String("equation", "bhqd,bhkd->bhqk"))
	b.Node("Softmax", "", []string{"s"}, []string{"p"}, mt.Int("axis", -1))
	b.Node("Einsum", "mix", []string{"p", "x"}, []string{"o"}, mt.String("equation", "bhqk,bhkd->bhqd"))
	b.Node("Einsum", "sum", []string{"o"}, []string{"y"}, mt.String("equation", "bhqd->bd"))
	b.Output("y")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	s3, err := m.Specialize(map[string][]int{"x": {3, H, T, d}})
	if err != nil {
		t.Fatal(err)
	}
	for batch, mm := range map[int]*model.Model{1: m, 3: s3} {
		am := mm.ActMatMuls()
		if len(am) != 2 || am[0].Name != "scores" || am[1].Name != "mix" {
			t.Fatalf("batch %d: activation products %v, want scores and mix", batch, am)
		}
		for _, a := range am {
			out := map[string]int64{"scores": H * T * T, "mix": H * T * d}[a.Name]
			if !a.ShapeKnown || a.MACs != H*T*T*d || a.OutElems != out || a.AElems+a.BElems != map[string]int64{"scores": 2 * H * T * d, "mix": H*T*T + H*T*d}[a.Name] {
				t.Errorf("batch %d: %s: %+v, want %d MACs and %d output elements", batch, a.Name, a, H*T*T*d, out)
			}
		}
		if len(mm.Units) != 1 || mm.Units[0].Name != "q" || mm.Units[0].MACs != H*T*d*d {
			t.Errorf("batch %d: units %+v, want q with %d MACs", batch, mm.Units, H*T*d*d)
		}
	}
}
