package data

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
)

// Inputs is a labelled dataset whose samples have several inputs (token ids
// and an attention mask, an image and its metadata), each with its own
// sample shape. With one input it reads like any Dataset; NPZDataset and
// Arrays implement it.
type Inputs interface {
	Dataset
	// SampleShapes returns every input's sample shape in input order.
	SampleShapes() [][]int
	// ReadInputs reads samples [start, start+len(labels)): inputs[i]
	// receives input i's values, len(labels)·prod(SampleShapes()[i]).
	ReadInputs(start int, inputs [][]float64, labels []int) error
}

// ShapesOf returns the per-sample shape of every input of ds: its
// SampleShapes when it has several inputs (Inputs), else its one
// SampleShape.
func ShapesOf(ds Dataset) [][]int {
	if m, ok := ds.(Inputs); ok {
		return m.SampleShapes()
	}
	return [][]int{ds.SampleShape()}
}

// ReadAll reads samples [start, start+len(labels)) of every input of ds
// into bufs, one buffer per input as ShapesOf orders them.
func ReadAll(ds Dataset, start int, bufs [][]float64, labels []int) error {
	if m, ok := ds.(Inputs); ok {
		return m.ReadInputs(start, bufs, labels)
	}
	return ds.Read(start, bufs[0], labels)
}

// InputSpec is what a model declares for one input, for MatchInputs.
type InputSpec struct {
	Name string
	// Integer is true for integer and boolean inputs (token ids, masks),
	// false for floating-point ones.
	Integer bool
	// Type names the element type in messages, e.g. "INT64".
	Type string
	// Shape is the sample shape without the batch dimension; -1 marks a
	// symbolic dimension (any size). Nil means unknown (not checked).
	Shape []int
}

// Arrays is a dataset of several NumPy arrays held in memory, one per model
// input, sharing their first (sample) dimension, with integer labels.
type Arrays struct {
	// Names are the input names in input order (after MatchInputs, the
	// model's; before, the files' base names without .npy).
	Names []string
	// Files are the source files in input order.
	Files  []string
	arrays []*Array
	labels []int
}

// NewArrays returns a dataset of in-memory arrays, one per input (named
// names, sharing their first dimension), with one class label per sample;
// labels nil makes an unlabelled dataset (every label 0), for losses that
// take no class labels (KL to the model's own predictions, per-position
// labels or targets given to the loss).
func NewArrays(names []string, arrays []*Array, labels []int) (*Arrays, error) {
	if len(arrays) == 0 || len(names) != len(arrays) {
		return nil, fmt.Errorf("data: %d names for %d arrays, want one name per array and at least one", len(names), len(arrays))
	}
	d := &Arrays{Names: slices.Clone(names), Files: make([]string, len(arrays))}
	for i, a := range arrays {
		if len(a.Shape) < 1 || a.Len() != max(len(a.Float), len(a.Int)) {
			return nil, fmt.Errorf("data: array %q: shape %v with %d values, want N×sample shape", names[i], a.Shape, max(len(a.Float), len(a.Int)))
		}
		if a.Shape[0] != arrays[0].Shape[0] {
			return nil, fmt.Errorf("data: array %q has %d samples but %q has %d", names[i], a.Shape[0], names[0], arrays[0].Shape[0])
		}
		d.Files[i] = "array " + names[i]
	}
	d.arrays = slices.Clone(arrays)
	if labels == nil {
		labels = make([]int, arrays[0].Shape[0])
	}
	if len(labels) != arrays[0].Shape[0] {
		return nil, fmt.Errorf("data: %d labels for %d samples", len(labels), arrays[0].Shape[0])
	}
	d.labels = labels
	return d, nil
}

// LoadNPYInputs loads one .npy file per model input (float or integer
// dtypes: token ids and masks stay exact up to 2^53) and the labels
// (integer, shape N or N×1; labels "" makes an unlabelled dataset whose
// labels are all 0, see NewArrays). Every array must have the same number
// of samples. Errors name the file.
func LoadNPYInputs(inputs []string, labels string) (*Arrays, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("data: no input files")
	}
	d := &Arrays{}
	for _, p := range inputs {
		a, err := loadNPYFile(p)
		if err != nil {
			return nil, err
		}
		if len(a.Shape) < 1 {
			return nil, fmt.Errorf("data: %s: a scalar, want N×sample shape", p)
		}
		for i, v := range a.Float {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("data: %s: value %d is %v, want a finite number", p, i, v)
			}
		}
		if len(d.arrays) > 0 && a.Shape[0] != d.arrays[0].Shape[0] {
			return nil, fmt.Errorf("data: %s has %d samples but %s has %d", p, a.Shape[0], d.Files[0], d.arrays[0].Shape[0])
		}
		d.arrays = append(d.arrays, a)
		d.Files = append(d.Files, p)
		d.Names = append(d.Names, strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)))
	}
	if labels == "" {
		d.labels = make([]int, d.arrays[0].Shape[0])
		return d, nil
	}
	ya, err := loadNPYFile(labels)
	if err != nil {
		return nil, err
	}
	if ya.Int == nil {
		return nil, fmt.Errorf("data: %s: labels have dtype %s, want an integer type (int64, int32, uint8)", labels, ya.DType)
	}
	if len(ya.Shape) != 1 && !(len(ya.Shape) == 2 && ya.Shape[1] == 1) {
		return nil, fmt.Errorf("data: %s: labels have shape %v, want [N] or [N 1]", labels, ya.Shape)
	}
	if n := d.arrays[0].Shape[0]; ya.Shape[0] != n {
		return nil, fmt.Errorf("data: %s has %d samples but %s has %d labels", d.Files[0], n, labels, ya.Shape[0])
	}
	d.labels = make([]int, len(ya.Int))
	for i, l := range ya.Int {
		if l < 0 || l > math.MaxInt32 {
			return nil, fmt.Errorf("data: %s: label %d is %d, want a class index ≥ 0", labels, i, l)
		}
		d.labels[i] = int(l)
	}
	return d, nil
}

// MatchInputs orders the arrays as the model's inputs: by name when every
// input has a file of its name (ids.npy for input "ids"), else in the order
// given, and checks each array against its input: an integer input needs an
// integer array (token ids must not be rounded floats), a floating-point
// input a float array, and the sample shape must equal the declared one
// (symbolic dimensions match any size). Errors name the file, the input and
// what was expected.
func (d *Arrays) MatchInputs(specs []InputSpec) error {
	if len(specs) != len(d.arrays) {
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		return fmt.Errorf("data: %d input files (%s) for a model with %d inputs (%s); give one file per input, in order or named after them",
			len(d.arrays), strings.Join(d.Files, ", "), len(specs), strings.Join(names, ", "))
	}
	order := make([]int, len(specs))
	byName := true
	for i, s := range specs {
		j := slices.Index(d.Names, s.Name)
		if j < 0 {
			byName = false
			break
		}
		order[i] = j
	}
	if !byName {
		for i := range order {
			order[i] = i
		}
	}
	arrays, files := make([]*Array, len(specs)), make([]string, len(specs))
	for i, s := range specs {
		a, f := d.arrays[order[i]], d.Files[order[i]]
		isInt := a.Int != nil
		switch {
		case s.Integer && !isInt:
			return fmt.Errorf("data: %s has dtype %s but model input %q is %s: give integer ids (e.g. int64)", f, a.DType, s.Name, s.Type)
		case !s.Integer && isInt:
			return fmt.Errorf("data: %s has dtype %s but model input %q is %s: give float32 or float64 values", f, a.DType, s.Name, s.Type)
		}
		got := sampleShape(a.Shape)
		if s.Shape != nil {
			ok := len(got) == len(s.Shape)
			for k := 0; ok && k < len(got); k++ {
				ok = s.Shape[k] < 0 || s.Shape[k] == got[k]
			}
			if !ok {
				return fmt.Errorf("data: %s has samples of shape %v but model input %q takes %v (−1: any size)", f, got, s.Name, s.Shape)
			}
		}
		arrays[i], files[i] = a, f
	}
	d.arrays, d.Files = arrays, files
	d.Names = make([]string, len(specs))
	for i, s := range specs {
		d.Names[i] = s.Name
	}
	return nil
}

// Len returns the number of samples.
func (d *Arrays) Len() int { return len(d.labels) }

// ClassLabels returns the labels (Check reads them without the inputs).
func (d *Arrays) ClassLabels() []int { return d.labels }

// headInputs is the first n samples of a dataset of several inputs.
type headInputs struct {
	Inputs
	n int
}

func (h headInputs) Len() int { return h.n }

func (h headInputs) Read(start int, inputs []float64, labels []int) error {
	if start < 0 || start+len(labels) > h.n {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+len(labels), h.n)
	}
	return h.Inputs.Read(start, inputs, labels)
}

func (h headInputs) ReadInputs(start int, inputs [][]float64, labels []int) error {
	if start < 0 || start+len(labels) > h.n {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+len(labels), h.n)
	}
	return h.Inputs.ReadInputs(start, inputs, labels)
}

// SampleShape returns the first input's sample shape.
func (d *Arrays) SampleShape() []int { return sampleShape(d.arrays[0].Shape) }

// SampleShapes returns every input's sample shape.
func (d *Arrays) SampleShapes() [][]int {
	s := make([][]int, len(d.arrays))
	for i, a := range d.arrays {
		s[i] = sampleShape(a.Shape)
	}
	return s
}

// Read reads samples of the only input.
func (d *Arrays) Read(start int, inputs []float64, labels []int) error {
	if len(d.arrays) != 1 {
		return fmt.Errorf("data: %d inputs (%s); read them with ReadInputs", len(d.arrays), strings.Join(d.Names, ", "))
	}
	return d.ReadInputs(start, [][]float64{inputs}, labels)
}

// ReadInputs reads samples [start, start+len(labels)) of every input;
// integer arrays are converted to float64.
func (d *Arrays) ReadInputs(start int, inputs [][]float64, labels []int) error {
	n := len(labels)
	if start < 0 || start+n > d.Len() {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+n, d.Len())
	}
	if len(inputs) != len(d.arrays) {
		return fmt.Errorf("data: %d input buffers for %d inputs", len(inputs), len(d.arrays))
	}
	for i, a := range d.arrays {
		size := a.Len() / max(a.Shape[0], 1)
		if len(inputs[i]) != n*size {
			return fmt.Errorf("data: input buffer %d has %d values, want %d", i, len(inputs[i]), n*size)
		}
		if a.Float != nil {
			copy(inputs[i], a.Float[start*size:(start+n)*size])
			continue
		}
		for k, v := range a.Int[start*size : (start+n)*size] {
			inputs[i][k] = float64(v)
		}
	}
	copy(labels, d.labels[start:start+n])
	return nil
}
