package nn

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/model"
)

// TestFloat32SharesInitializers checks that a float32 engine reads θ from
// the model's initializers without copying them until θ is changed, and
// that changing θ leaves the model's initializers as they were.
func TestFloat32SharesInitializers(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "testdata", "models", "lenet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(m, &Options{Precision: Float32, BatchSize: 2, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if e.theta != nil {
		t.Fatal("a float32 engine copied θ before it changed")
	}
	u := e.Units()[1]
	orig := slices.Clone(m.Initializers[u.Weight].Float)
	w, err := e.Weights(u.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w, orig) {
		t.Fatal("Weights differs from the model's initializer")
	}
	theta := e.Theta()
	if got := theta[u.WeightOffset : u.WeightOffset+u.WeightSize]; !slices.Equal(got, orig) {
		t.Fatal("Theta differs from the model's initializer")
	}
	th32 := e.theta32()
	for i, v := range theta {
		if th32[i] != float32(v) {
			t.Fatalf("float32 θ[%d] = %v, want %v", i, th32[i], float32(v))
		}
	}
	for i := range w {
		w[i] = 2*w[i] + 1
	}
	if err := e.SetWeights(u.Name, w); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Initializers[u.Weight].Float, orig) {
		t.Fatal("SetWeights changed the model's initializer")
	}
	got, _ := e.Weights(u.Name)
	if !slices.Equal(got, w) {
		t.Fatal("Weights after SetWeights differs from what was set")
	}
	if th32 := e.theta32(); th32[u.WeightOffset] != float32(w[0]) {
		t.Fatalf("float32 θ after SetWeights: %v, want %v", th32[u.WeightOffset], float32(w[0]))
	}
	theta[0]++
	if err := e.SetTheta(theta); err != nil {
		t.Fatal(err)
	}
	if got := e.Theta(); !slices.Equal(got, theta) {
		t.Fatal("Theta after SetTheta differs from what was set")
	}
	if m.Initializers[e.Params()[0].Name].Float[0] == theta[0] {
		t.Fatal("SetTheta changed the model's initializer")
	}
}
