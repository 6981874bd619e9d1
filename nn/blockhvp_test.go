package nn_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/nn"
)

// BlockHVP's block-local products equal the full-length product's block
// (directions zero outside it), for every unit block and several
// directions at once; a block that splits a parameter tensor and vectors
// of the wrong length are errors.
func TestBlockHVPMatchesFullProduct(t *testing.T) {
	e, err := nn.New(lenetLike(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := sampleData()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, u := range e.Units() {
		b := hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}
		vs, hv := make([][]float64, 3), make([][]float64, 3)
		full, fhv := make([][]float64, 3), make([][]float64, 3)
		for j := range vs {
			vs[j], hv[j] = make([]float64, b.Size), make([]float64, b.Size)
			full[j], fhv[j] = make([]float64, e.Dim()), make([]float64, e.Dim())
			for k := range vs[j] {
				vs[j][k] = rng.NormFloat64()
			}
			copy(full[j][b.Offset:], vs[j])
		}
		if err := e.BlockHVP(ctx, ds, b, hv, vs); err != nil {
			t.Fatal(err)
		}
		if err := e.HVP(ctx, ds, fhv, full); err != nil {
			t.Fatal(err)
		}
		for j := range vs {
			for k, x := range hv[j] {
				if want := fhv[j][b.Offset+k]; math.Abs(x-want) > 1e-12*(1+math.Abs(want)) {
					t.Fatalf("%s, direction %d, entry %d: block-local %v, full %v", u.Name, j, k, x, want)
				}
			}
		}
	}
	u := e.Units()[0]
	v := [][]float64{make([]float64, u.Size-1)}
	if err := e.BlockHVP(ctx, ds, hessian.Block{Name: "part", Offset: u.Offset, Size: u.Size - 1}, v, v); err == nil || !strings.Contains(err.Error(), "splits a parameter tensor") {
		t.Errorf("a block splitting a tensor: %v", err)
	}
	w := [][]float64{make([]float64, u.Size+1)}
	if err := e.BlockHVP(ctx, ds, hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}, w, w); err == nil || !strings.Contains(err.Error(), "want the block's") {
		t.Errorf("vectors of the wrong length: %v", err)
	}
}
