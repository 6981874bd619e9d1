package nn_test

import (
	"testing"

	"github.com/bitplan/bitplan/model"
)

// TestVariadicTinyMatchesTorch runs testdata/models/variadic_tiny_op13.onnx
// and _op17.onnx (scripts/make_variadic_tiny.py: torch.onnx exports with
// three-input Sum, Max, Min and Mean nodes on computed tensors, broadcast
// against pooled and one-channel maps) on the four inputs of
// variadic_tiny_ref.npz and compares with PyTorch's float64 module (see
// matchTinyTorch).
func TestVariadicTinyMatchesTorch(t *testing.T) {
	matchTinyTorch(t, "variadic_tiny", tinyTorch{
		want: []string{"Max", "Mean", "Min", "Sum"},
		nodes: func(t *testing.T, m *model.Model) {
			joins := 0
			for _, n := range m.Nodes {
				switch n.Op {
				case "Max", "Min", "Sum", "Mean":
					if len(n.Inputs) != 3 {
						t.Errorf("%s has %d inputs, want 3", n.Label(), len(n.Inputs))
					}
					joins++
				}
			}
			if joins != 4 {
				t.Fatalf("%d variadic nodes, want 4", joins)
			}
		},
	})
}
