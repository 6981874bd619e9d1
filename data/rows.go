package data

import (
	"fmt"
	"slices"
)

// Rows returns the samples idx[0], idx[1], … of ds as a Dataset: sample k
// of the result is sample idx[k] of ds. Indices must lie in [0, ds.Len())
// and may repeat. A *Memory ds gives a *Memory holding copies of the rows;
// any other ds gives a view that reads through to it (consecutive indices
// in one Read). Mini-batch Hessian probes use it to evaluate the loss on a
// subset of the calibration data.
func Rows(ds Dataset, idx []int) (Dataset, error) {
	for k, i := range idx {
		if i < 0 || i >= ds.Len() {
			return nil, fmt.Errorf("data: row %d is sample %d, outside [0, %d)", k, i, ds.Len())
		}
	}
	if m, ok := ds.(*Memory); ok {
		size := SampleSize(m)
		out := &Memory{Inputs: make([]float64, len(idx)*size), Labels: make([]int, len(idx)), Shape: m.Shape}
		for k, i := range idx {
			copy(out.Inputs[k*size:(k+1)*size], m.Inputs[i*size:(i+1)*size])
			out.Labels[k] = m.Labels[i]
		}
		return out, nil
	}
	return &rows{ds: ds, idx: slices.Clone(idx)}, nil
}

// rows is the view Rows returns for datasets not held in memory.
type rows struct {
	ds  Dataset
	idx []int
}

func (r *rows) Len() int           { return len(r.idx) }
func (r *rows) SampleShape() []int { return r.ds.SampleShape() }

// Read copies rows [start, start+len(labels)), one Read of ds per run of
// consecutive sample indices.
func (r *rows) Read(start int, inputs []float64, labels []int) error {
	n, size := len(labels), SampleSize(r.ds)
	if start < 0 || start+n > len(r.idx) {
		return fmt.Errorf("data: rows [%d, %d) outside [0, %d)", start, start+n, len(r.idx))
	}
	if len(inputs) != n*size {
		return fmt.Errorf("data: input buffer has %d values, want %d", len(inputs), n*size)
	}
	for k := 0; k < n; {
		run := 1
		for k+run < n && r.idx[start+k+run] == r.idx[start+k]+run {
			run++
		}
		if err := r.ds.Read(r.idx[start+k], inputs[k*size:(k+run)*size], labels[k:k+run]); err != nil {
			return err
		}
		k += run
	}
	return nil
}
