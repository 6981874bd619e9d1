package model_test

import (
	"strings"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
)

// TestInferredShapeBounds checks that an inferred output shape is bounded
// like a decoded tensor's: a Pad of 2⁴⁰ (found by FuzzGraph) is an error
// naming the node and output at import, not an overflow or an allocation
// later.
func TestInferredShapeBounds(t *testing.T) {
	for _, c := range []struct {
		name string
		pads []int64
		want string
	}{
		{"pad", []int64{0, 1 << 40, 0, 0}, `pads [0 1099511627776], [0 0] on axis 1 exceed ±2147483648`},
		{"dimension", []int64{0, 1 << 30, 0, 1 << 30}, `output "y" has shape [1 2147483651]: dimension 2147483651, want 0..2147483648`},
		{"elements", []int64{0, 1 << 20, 0, 1 << 20}, `output "y" has shape [1 2097155]`},
		{"product", []int64{1 << 16, 1 << 16, 1 << 16, 1 << 16}, "more than 2147483648 elements"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := mt.New("pad", 18)
			b.Input("x", -1, 3)
			b.Int64("p", []int{4}, c.pads)
			b.Node("Pad", "pad", []string{"x", "p"}, []string{"y"})
			b.Output("y")
			_, err := model.Decode(b.Bytes())
			if c.name == "elements" {
				if err != nil {
					t.Fatalf("a pad within the bounds: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), `Pad node "pad"`) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("pads %v: %v, want an error naming the node and %q", c.pads, err, c.want)
			}
		})
	}
}

// TestTransposeNotAPermutation checks that a perm with a repeated axis
// (found by FuzzGraph: it indexed past the input in the engine) is refused
// at import.
func TestTransposeNotAPermutation(t *testing.T) {
	for _, perm := range [][]int64{{0, 2, 0}, {0, 1, 1}, {0, 3, 1}, {0, 1}} {
		b := mt.New("transpose", 17)
		b.Input("x", -1, 3, 2)
		b.Node("Transpose", "tr", []string{"x"}, []string{"y"}, mt.Ints("perm", perm...))
		b.Output("y")
		_, err := model.Decode(b.Bytes())
		if err == nil || !strings.Contains(err.Error(), "is not a permutation of 3 axes") {
			t.Errorf("perm %v: %v, want an error saying it is not a permutation", perm, err)
		}
	}
}
