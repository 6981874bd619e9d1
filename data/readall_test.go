package data_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// TestReadAll reads a one-input and a two-input dataset through ShapesOf
// and ReadAll: the single dataset's one buffer, and each array's own
// values into its own buffer.
func TestReadAll(t *testing.T) {
	one, err := data.NewMemory([]float64{1, 2, 3, 4, 5, 6}, []int{0, 1, 1}, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(data.ShapesOf(one)); got != "[[2]]" {
		t.Errorf("ShapesOf(memory) = %s, want [[2]]", got)
	}
	bufs, labels := [][]float64{make([]float64, 4)}, make([]int, 2)
	if err := data.ReadAll(one, 1, bufs, labels); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bufs[0], []float64{3, 4, 5, 6}) || !slices.Equal(labels, []int{1, 1}) {
		t.Errorf("ReadAll(memory, 1) = %v %v, want [3 4 5 6] [1 1]", bufs[0], labels)
	}
	ids := &data.Array{Shape: []int{3, 2}, DType: "<i8", Int: []int64{7, 8, 9, 10, 11, 12}}
	mask := &data.Array{Shape: []int{3, 2}, DType: "<i8", Int: []int64{1, 1, 1, 0, 0, 0}}
	two, err := data.NewArrays([]string{"ids", "mask"}, []*data.Array{ids, mask}, []int{2, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(data.ShapesOf(two)); got != "[[2] [2]]" {
		t.Errorf("ShapesOf(arrays) = %s, want [[2] [2]]", got)
	}
	bufs = [][]float64{make([]float64, 2), make([]float64, 2)}
	labels = labels[:1]
	if err := data.ReadAll(two, 1, bufs, labels); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bufs[0], []float64{9, 10}) || !slices.Equal(bufs[1], []float64{1, 0}) || labels[0] != 0 {
		t.Errorf("ReadAll(arrays, 1) = %v %v %v, want [9 10] [1 0] [0]", bufs[0], bufs[1], labels)
	}
}
