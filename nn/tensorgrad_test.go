package nn_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// A unit's output gradient summed over the batch and positions is its
// bias gradient (y = W·x + b, ∂L/∂b_c = Σ ∂L/∂y_c): TensorGradients
// against Gradient on LeNet's reference samples, and the values against
// Intermediates.
func TestTensorGradientsMatchBiasGradient(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "testdata", "models", "lenet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "testdata", "ref", "lenet")
	all, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ds := data.Head(all, 8)
	g := make([]float64, e.Dim())
	if _, err := e.Gradient(context.Background(), ds, g); err != nil {
		t.Fatal(err)
	}
	var names []string
	units := e.Units()
	for _, u := range units {
		names = append(names, m.Nodes[m.Unit(u.Name).Node].Outputs[0])
	}
	vals, grads, err := e.TensorGradients(ds, names)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, 8*data.SampleSize(ds))
	if err := ds.Read(0, x, make([]int, 8)); err != nil {
		t.Fatal(err)
	}
	inter, err := e.Intermediates(x, 8)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range units {
		c := u.OutChannels
		per := len(grads[i]) / 8 / c // positions per channel
		for ch := 0; ch < c; ch++ {
			s := 0.0
			for n := 0; n < 8; n++ {
				for p := 0; p < per; p++ {
					s += grads[i][(n*c+ch)*per+p]
				}
			}
			want := g[u.BiasOffset+ch]
			if math.Abs(s-want) > 1e-9+1e-6*math.Abs(want) {
				t.Fatalf("%s channel %d: Σ ∂L/∂y = %.10g, bias gradient %.10g", u.Name, ch, s, want)
			}
		}
		iv := inter[names[i]].Data
		for j := range iv {
			if vals[i][j] != iv[j] {
				t.Fatalf("%s: value %d is %v, Intermediates has %v", names[i], j, vals[i][j], iv[j])
			}
		}
	}
	if _, _, err := e.TensorGradients(ds, []string{"input"}); err == nil {
		t.Error("the model input was accepted as a parameter-dependent activation")
	}
}
