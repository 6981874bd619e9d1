package prune

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// TestCompensationKeepsMeans prunes lenet's conv2 (its consumer is fc1,
// behind a Flatten) with mean replacement and checks that fc1's outputs
// have the original means over the calibration data, output by output.
func TestCompensationKeepsMeans(t *testing.T) {
	l := load(t, "lenet")
	ds, err := data.MNIST(data.Train, 32)
	if err != nil {
		t.Fatal(err) // MNIST ships with the GoMNIST module: missing data is a failure
	}
	means, err := InputMeans(l.e, ds, l.st)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 5))
	keep := randomKeep(r, l.st)
	for g := range keep { // only conv2 loses channels
		if g == 1 {
			continue
		}
		keep[g] = nil
		for c := 0; c < l.st.Groups[g].Channels; c++ {
			keep[g] = append(keep[g], c)
		}
	}
	mp, skipped, err := ApplyCompensated(l.mp, l.st, keep, means)
	if err != nil || len(skipped) > 0 {
		t.Fatal(err, skipped)
	}
	pl := loadProto(t, mp)
	x := make([]float64, 32*784)
	if err := ds.Read(0, x, make([]int, 32)); err != nil {
		t.Fatal(err)
	}
	orig, _ := l.e.Intermediates(x, 32)
	got, _ := pl.e.Intermediates(x, 32)
	chanMeans := func(v []float64, c int) []float64 {
		m := make([]float64, c)
		inner := len(v) / 32 / c
		for i, y := range v {
			m[(i/inner)%c] += y
		}
		return m
	}
	o3, g3 := chanMeans(orig["/fc1/Gemm_output_0"].Data, 120), chanMeans(got["/fc1/Gemm_output_0"].Data, 120)
	for c := range o3 {
		// The compensated bias is stored as float32: relative 1e-7 per
		// sample, summed over the 32 samples here.
		if math.Abs(o3[c]-g3[c]) > 1e-6*math.Max(1, math.Abs(o3[c])) {
			t.Errorf("fc1 output %d: mean %.9g, original %.9g", c, g3[c], o3[c])
		}
	}
}
