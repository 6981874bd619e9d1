package data

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// NPZ is a NumPy .npz archive (np.savez or np.savez_compressed) opened for
// streaming: only the arrays' headers are read when it is opened; samples
// are read from the file (stored members) or decompressed as far as needed
// (deflated members) when a dataset reads them. codeberg.org/sbinet/npyio's
// npz package reads whole arrays into memory, so this uses archive/zip and
// the .npy header validation of ReadNPY.
type NPZ struct {
	// Path is the archive's file name.
	Path   string
	arrays []*npzArray
	f      *os.File
}

// npzArray is one array of an archive with random access to its data.
type npzArray struct {
	name string
	h    *npyHeader
	data io.ReaderAt // at the first data byte
	sp   *spool
}

// maxNPZMembers bounds the arrays an archive may hold.
const maxNPZMembers = 1 << 12

// OpenNPZ opens an .npz archive and validates every member's .npy header
// (dtype, shape, data length). Errors name the file and the array.
func OpenNPZ(path string) (*NPZ, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %w", err)
	}
	z, err := readNPZ(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	z.f = f
	return z, nil
}

func readNPZ(r io.ReaderAt, size int64, path string) (*NPZ, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("data: %s: not an .npz archive: %w", path, err)
	}
	if len(zr.File) > maxNPZMembers {
		return nil, fmt.Errorf("data: %s: %d archive members, want at most %d", path, len(zr.File), maxNPZMembers)
	}
	z := &NPZ{Path: path}
	for _, m := range zr.File {
		name := strings.TrimSuffix(m.Name, ".npy")
		a, err := openMember(r, m, path)
		if err != nil {
			z.Close()
			return nil, fmt.Errorf("data: %s: array %q: %w", path, name, err)
		}
		a.name = name
		z.arrays = append(z.arrays, a)
	}
	if len(z.arrays) == 0 {
		return nil, fmt.Errorf("data: %s: the archive holds no arrays", path)
	}
	return z, nil
}

func openMember(r io.ReaderAt, m *zip.File, path string) (*npzArray, error) {
	if m.UncompressedSize64 > 1<<40 {
		return nil, fmt.Errorf("member of %d bytes", m.UncompressedSize64)
	}
	total := int64(m.UncompressedSize64)
	a := &npzArray{}
	var ra io.ReaderAt
	switch m.Method {
	case zip.Store:
		off, err := m.DataOffset()
		if err != nil {
			return nil, err
		}
		if int64(m.CompressedSize64) != total {
			return nil, fmt.Errorf("stored member of %d bytes declares %d uncompressed", m.CompressedSize64, total)
		}
		ra = io.NewSectionReader(r, off, total)
	default:
		rc, err := m.Open()
		if err != nil {
			return nil, err
		}
		sp, err := newSpool(rc, path+":"+m.Name)
		if err != nil {
			return nil, err
		}
		a.sp, ra = sp, sp
	}
	prefix := make([]byte, min(total, 12))
	if _, err := ra.ReadAt(prefix, 0); err != nil && !errors.Is(err, io.EOF) {
		a.close()
		return nil, err
	}
	if len(prefix) >= 10 {
		hlen := int64(binary.LittleEndian.Uint16(prefix[8:])) + 10
		if prefix[6] >= 2 && len(prefix) >= 12 {
			hlen = int64(binary.LittleEndian.Uint32(prefix[8:])) + 12
		}
		if hlen > maxNPYHeader {
			a.close()
			return nil, fmt.Errorf("npy: header of %d bytes, want at most %d", hlen, maxNPYHeader)
		}
		prefix = make([]byte, min(total, hlen))
		if _, err := ra.ReadAt(prefix, 0); err != nil && !errors.Is(err, io.EOF) {
			a.close()
			return nil, err
		}
	}
	h, err := parseNPYHeader(prefix, total)
	if err != nil {
		a.close()
		return nil, err
	}
	if h.fortran && len(h.shape) > 1 {
		a.close()
		return nil, errors.New("the array is Fortran-ordered; save it with np.ascontiguousarray")
	}
	a.h = h
	a.data = io.NewSectionReader(ra, int64(h.off), int64(h.n*h.size))
	return a, nil
}

func (a *npzArray) close() {
	if a.sp != nil {
		a.sp.Close()
	}
}

// Close releases the archive's file and temporary files.
func (z *NPZ) Close() error {
	for _, a := range z.arrays {
		a.close()
	}
	if z.f != nil {
		return z.f.Close()
	}
	return nil
}

// Names returns the arrays' names in archive order (without ".npy").
func (z *NPZ) Names() []string {
	n := make([]string, len(z.arrays))
	for i, a := range z.arrays {
		n[i] = a.name
	}
	return n
}

// Shape returns the shape of the named array, or nil if there is none.
func (z *NPZ) Shape(name string) []int {
	if a := z.array(name); a != nil {
		return slices.Clone(a.h.shape)
	}
	return nil
}

func (z *NPZ) array(name string) *npzArray {
	for _, a := range z.arrays {
		if a.name == name {
			return a
		}
	}
	return nil
}

// LabelNames are the array names Match takes for labels, in order of
// preference.
var LabelNames = []string{"labels", "label", "targets", "target", "y"}

// Match pairs the archive's arrays with a model's input names: each input
// takes the array of its name; a model with one input whose name is not in
// the archive takes the archive's only array that is not a label. Labels
// come from the first of LabelNames present. Every array must hold the same
// number of samples (its first dimension). Errors list the arrays there are.
func (z *NPZ) Match(inputs []string) (*NPZDataset, error) {
	return z.match(inputs, true)
}

// MatchUnlabelled is Match for a loss that takes no class labels (KL to
// the model's own predictions, or per-position labels and targets the
// caller reads with Array): a labels array is not needed, and an array of
// one of LabelNames is never taken as an input. The dataset's labels are
// all 0.
func (z *NPZ) MatchUnlabelled(inputs []string) (*NPZDataset, error) {
	return z.match(inputs, false)
}

func (z *NPZ) match(inputs []string, labelled bool) (*NPZDataset, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("data: %s: no model inputs to match", z.Path)
	}
	var lab *npzArray
	for _, n := range LabelNames {
		if lab = z.array(n); lab != nil {
			break
		}
	}
	if lab == nil && labelled {
		return nil, fmt.Errorf("data: %s: no labels array (want one named %s; the archive has %s)", z.Path, strings.Join(LabelNames, ", "), z.describe())
	}
	if !labelled {
		lab = nil
	}
	d := &NPZDataset{Path: z.Path, Names: slices.Clone(inputs), labels: lab}
	for _, in := range inputs {
		a := z.array(in)
		if a == nil && len(inputs) == 1 {
			var others []*npzArray
			for _, b := range z.arrays {
				if !slices.Contains(LabelNames, b.name) {
					others = append(others, b)
				}
			}
			if len(others) == 1 {
				a = others[0]
			}
		}
		if a == nil {
			return nil, fmt.Errorf("data: %s: no array for model input %q (the archive has %s)", z.Path, in, z.describe())
		}
		if len(a.h.shape) == 0 {
			return nil, fmt.Errorf("data: %s: array %q is a scalar, want N×sample shape", z.Path, a.name)
		}
		if a.h.kind == 'b' {
			return nil, fmt.Errorf("data: %s: array %q is boolean, want numbers", z.Path, a.name)
		}
		d.inputs = append(d.inputs, a)
	}
	if lab == nil {
		d.n = d.inputs[0].h.shape[0]
		for _, a := range d.inputs {
			if a.h.shape[0] != d.n {
				return nil, fmt.Errorf("data: %s: array %q has %d samples but %q has %d", z.Path, a.name, a.h.shape[0], d.inputs[0].name, d.n)
			}
		}
		return d, nil
	}
	if lab.h.kind == 'f' {
		return nil, fmt.Errorf("data: %s: labels %q have dtype %s, want an integer type", z.Path, lab.name, lab.h.dtype)
	}
	if len(lab.h.shape) != 1 && !(len(lab.h.shape) == 2 && lab.h.shape[1] == 1) {
		return nil, fmt.Errorf("data: %s: labels %q have shape %v, want [N] or [N 1]", z.Path, lab.name, lab.h.shape)
	}
	d.n = lab.h.shape[0]
	for _, a := range d.inputs {
		if a.h.shape[0] != d.n {
			return nil, fmt.Errorf("data: %s: array %q has %d samples but labels %q have %d", z.Path, a.name, a.h.shape[0], lab.name, d.n)
		}
	}
	return d, nil
}

func (z *NPZ) describe() string {
	s := make([]string, len(z.arrays))
	for i, a := range z.arrays {
		s[i] = fmt.Sprintf("%s %v %s", a.name, a.h.shape, a.h.dtype)
	}
	return strings.Join(s, ", ")
}

// NPZDataset is a labelled dataset over arrays of an NPZ archive, read
// sample by sample from the file. With one input it is a Dataset; with
// several (token ids and attention masks) read them with ReadInputs.
type NPZDataset struct {
	// Path is the archive's file name.
	Path string
	// Names are the model inputs, in the order of ReadInputs.
	Names  []string
	inputs []*npzArray
	labels *npzArray
	n      int
}

// Len returns the number of samples.
func (d *NPZDataset) Len() int { return d.n }

// SampleShape returns the first input's sample shape.
func (d *NPZDataset) SampleShape() []int { return sampleShape(d.inputs[0].h.shape) }

// SampleShapes returns every input's sample shape, in the order of Names.
func (d *NPZDataset) SampleShapes() [][]int {
	s := make([][]int, len(d.inputs))
	for i, a := range d.inputs {
		s[i] = sampleShape(a.h.shape)
	}
	return s
}

func sampleShape(shape []int) []int {
	if len(shape) == 1 {
		return []int{1}
	}
	return shape[1:]
}

// Read reads samples [start, start+len(labels)) of the only input.
func (d *NPZDataset) Read(start int, inputs []float64, labels []int) error {
	if len(d.inputs) != 1 {
		return fmt.Errorf("data: %s: the model has %d inputs (%s); read them with ReadInputs", d.Path, len(d.inputs), strings.Join(d.Names, ", "))
	}
	return d.ReadInputs(start, [][]float64{inputs}, labels)
}

// ReadInputs reads samples [start, start+len(labels)): inputs[i] receives
// input i's values (len(labels)·prod(SampleShapes()[i]) of them). Integer
// arrays (token ids) are converted to float64; NaN or infinite values and
// negative labels are errors naming the array and sample.
func (d *NPZDataset) ReadInputs(start int, inputs [][]float64, labels []int) error {
	n := len(labels)
	if start < 0 || start+n > d.n {
		return fmt.Errorf("data: samples [%d, %d) outside [0, %d)", start, start+n, d.n)
	}
	if len(inputs) != len(d.inputs) {
		return fmt.Errorf("data: %d input buffers for %d inputs", len(inputs), len(d.inputs))
	}
	for i, a := range d.inputs {
		size := a.h.n / max(a.h.shape[0], 1)
		if len(inputs[i]) != n*size {
			return fmt.Errorf("data: input buffer %d has %d values, want %d", i, len(inputs[i]), n*size)
		}
		if err := a.read(start*size, inputs[i], nil); err != nil {
			return fmt.Errorf("data: %s: array %q, samples [%d, %d): %w", d.Path, a.name, start, start+n, err)
		}
		for k, v := range inputs[i] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("data: %s: array %q, sample %d: value %v, want a finite number", d.Path, a.name, start+k/max(size, 1), v)
			}
		}
	}
	if d.labels == nil {
		clear(labels)
		return nil
	}
	if err := d.labels.read(start, nil, labels); err != nil {
		return fmt.Errorf("data: %s: labels %q, samples [%d, %d): %w", d.Path, d.labels.name, start, start+n, err)
	}
	for k, l := range labels {
		if l < 0 {
			return fmt.Errorf("data: %s: labels %q: sample %d has label %d, want a class index ≥ 0", d.Path, d.labels.name, start+k, l)
		}
	}
	return nil
}

// read decodes len(f) (or len(ints)) elements from element index at.
func (a *npzArray) read(at int, f []float64, ints []int) error {
	cnt := max(len(f), len(ints))
	raw := make([]byte, cnt*a.h.size)
	if _, err := a.data.ReadAt(raw, int64(at*a.h.size)); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the archive ends early (truncated?)")
		}
		return err
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if a.h.dtype[0] == '>' {
		bo = binary.BigEndian
	}
	for i := range cnt {
		b := raw[i*a.h.size:]
		var v float64
		var iv int64
		isInt := true
		switch a.h.kind {
		case 'f':
			isInt = false
			if a.h.size == 4 {
				v = float64(math.Float32frombits(bo.Uint32(b)))
			} else {
				v = math.Float64frombits(bo.Uint64(b))
			}
		case 'b', 'u':
			switch a.h.size {
			case 1:
				iv = int64(b[0])
			case 2:
				iv = int64(bo.Uint16(b))
			case 4:
				iv = int64(bo.Uint32(b))
			default:
				u := bo.Uint64(b)
				if u > math.MaxInt64 {
					u = math.MaxInt64
				}
				iv = int64(u)
			}
		default:
			switch a.h.size {
			case 1:
				iv = int64(int8(b[0]))
			case 2:
				iv = int64(int16(bo.Uint16(b)))
			case 4:
				iv = int64(int32(bo.Uint32(b)))
			default:
				iv = int64(bo.Uint64(b))
			}
		}
		if isInt {
			v = float64(iv)
		}
		if f != nil {
			f[i] = v
		} else {
			if !isInt || iv > math.MaxInt32 {
				return fmt.Errorf("label %v at sample %d is not a class index", v, at+i)
			}
			ints[i] = int(iv)
		}
	}
	return nil
}

// Array reads the whole named array into memory (floats in Float, integers
// and booleans in Int).
func (z *NPZ) Array(name string) (*Array, error) {
	a := z.array(name)
	if a == nil {
		return nil, fmt.Errorf("data: %s: no array %q (the archive has %s)", z.Path, name, z.describe())
	}
	if a.h.fortran {
		return nil, fmt.Errorf("data: %s: array %q is Fortran-ordered", z.Path, name)
	}
	out := &Array{Shape: slices.Clone(a.h.shape), DType: a.h.dtype}
	f := make([]float64, a.h.n)
	if err := a.read(0, f, nil); err != nil {
		return nil, fmt.Errorf("data: %s: array %q: %w", z.Path, name, err)
	}
	if a.h.kind == 'f' {
		out.Float = f
		return out, nil
	}
	out.Int = make([]int64, len(f))
	for i, v := range f {
		out.Int[i] = int64(v)
	}
	return out, nil
}
