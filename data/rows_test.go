package data

import (
	"slices"
	"testing"
)

// stream hides a Memory's type, so Rows takes the view path.
type stream struct{ *Memory }

func (s stream) Read(start int, in []float64, l []int) error { return s.Memory.Read(start, in, l) }

// TestRows: both paths return the chosen samples in the chosen order, and
// out-of-range indices are refused.
func TestRows(t *testing.T) {
	in := make([]float64, 6*2)
	for i := range in {
		in[i] = float64(i)
	}
	m, err := NewMemory(in, []int{0, 1, 2, 3, 4, 5}, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	idx := []int{4, 1, 2, 3, 4}
	for _, ds := range []Dataset{m, stream{m}} {
		r, err := Rows(ds, idx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Len() != 5 || !slices.Equal(r.SampleShape(), []int{2}) {
			t.Fatalf("%T: len %d shape %v", ds, r.Len(), r.SampleShape())
		}
		x, y := make([]float64, 8), make([]int, 4)
		if err := r.Read(1, x, y); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(y, []int{1, 2, 3, 4}) || !slices.Equal(x, []float64{2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("%T: read %v %v", ds, x, y)
		}
		if err := r.Read(3, x, y); err == nil {
			t.Errorf("%T: read past the end accepted", ds)
		}
	}
	if _, err := Rows(m, []int{6}); err == nil {
		t.Error("index 6 of 6 accepted")
	}
}
