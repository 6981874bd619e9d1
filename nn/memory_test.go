package nn_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/bitplan/bitplan/nn"
)

// TestMemoryLimit checks the memory plan: work bytes are affine in the
// batch size, a limit chooses the largest batch that fits, a limit below
// one sample is refused with the figure needed, and the chosen batch does
// not change the results.
func TestMemoryLimit(t *testing.T) {
	m := lenetLike()
	e, err := nn.New(m, &nn.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]int64, 6)
	for n := 1; n < len(b); n++ {
		if b[n], err = e.WorkBytes(n); err != nil {
			t.Fatal(err)
		}
	}
	per := b[2] - b[1]
	for n := 3; n < len(b); n++ {
		if b[n] != b[1]+int64(n-1)*per {
			t.Fatalf("work bytes %v are not affine in the batch size", b[1:])
		}
	}
	// Two work areas (one worker and the partial chunk) of 5 samples fit,
	// of 6 do not.
	lim := 2*b[5] + per/2
	e5, err := nn.New(m, &nn.Options{Workers: 1, Memory: lim})
	if err != nil {
		t.Fatal(err)
	}
	if e5.BatchSize() != 5 || e5.Workers() != 1 {
		t.Errorf("limit %d: batch %d, workers %d; want 5 and 1", lim, e5.BatchSize(), e5.Workers())
	}
	// Workers are lowered before a batch of 1 is refused.
	e2, err := nn.New(m, &nn.Options{Workers: 4, Memory: 2 * b[1]})
	if err != nil {
		t.Fatal(err)
	}
	if e2.Workers() != 1 || e2.BatchSize() != 1 {
		t.Errorf("limit of two samples: batch %d, workers %d; want 1 and 1", e2.BatchSize(), e2.Workers())
	}
	_, err = nn.New(m, &nn.Options{Memory: 2*b[1] - 1})
	var me *nn.MemoryError
	if !errors.As(err, &me) || me.Need != 2*b[1] || me.Limit != 2*b[1]-1 {
		t.Errorf("limit below one sample: %v, want a MemoryError needing %d bytes", err, 2*b[1])
	}
	// Same gradient at any batch size.
	ds := sampleData()
	g1, g5 := make([]float64, e.Dim()), make([]float64, e.Dim())
	if _, err := e.Gradient(context.Background(), ds, g1); err != nil {
		t.Fatal(err)
	}
	if _, err := e5.Gradient(context.Background(), ds, g5); err != nil {
		t.Fatal(err)
	}
	for i := range g1 {
		if math.Abs(g1[i]-g5[i]) > 1e-12*max(1, math.Abs(g1[i])) {
			t.Fatalf("gradient component %d: %g at batch 32, %g at batch 5", i, g1[i], g5[i])
		}
	}
}
