package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio/npy"

	"github.com/bitplan/bitplan/internal/readfile"
)

// Array is a decoded NumPy array in C (row-major) order. Floating-point
// arrays fill Float, integer and boolean arrays fill Int.
type Array struct {
	Shape []int
	// DType is the NumPy type string from the header, e.g. "<f8".
	DType string
	Float []float64
	Int   []int64
}

// Len returns the number of elements.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// maxNPYElems bounds the element count a header may declare.
const maxNPYElems = 1 << 31

var (
	descrRe = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	orderRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRe = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// ReadNPY decodes a .npy file (format versions 1–3) with
// codeberg.org/sbinet/npyio. The header is validated first (magic, version,
// header length, dtype, shape and data length) so that malformed input
// returns an error rather than reaching the decoder. Supported dtypes:
// float32/float64 and (u)int8/16/32/64 and bool, either byte order;
// Fortran-ordered arrays are transposed to C order.
func ReadNPY(r io.Reader) (*Array, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	return decodeNPY(b)
}

// npyHeader is a validated .npy header.
type npyHeader struct {
	shape   []int
	dtype   string
	kind    byte // 'f', 'i', 'u' or 'b'
	size    int  // bytes per element
	fortran bool
	n       int // elements
	off     int // bytes before the data
}

// maxNPYHeader bounds the header length a file may declare (NumPy's own
// limit is 10,000 bytes for version 1 files it writes).
const maxNPYHeader = 1 << 20

// parseNPYHeader validates the header at the start of b (which may hold
// more) for a file of total bytes: magic, version, header length, dtype,
// shape, and that the data length is shape·itemsize.
func parseNPYHeader(b []byte, total int64) (*npyHeader, error) {
	if len(b) < 10 || !bytes.Equal(b[:6], npy.Magic[:]) {
		return nil, fmt.Errorf("npy: not a NumPy .npy file (missing \\x93NUMPY magic)")
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, fmt.Errorf("npy: truncated header")
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:])), 12
	default:
		return nil, fmt.Errorf("npy: format version %d.%d, want 1.0, 2.0 or 3.0", b[6], b[7])
	}
	if hlen > len(b)-off {
		return nil, fmt.Errorf("npy: header of %d bytes but only %d bytes follow (truncated file?)", hlen, len(b)-off)
	}
	hdr := string(b[off : off+hlen])
	if !strings.HasSuffix(strings.TrimRight(hdr, " "), "\n") || !strings.Contains(hdr, "}") {
		return nil, fmt.Errorf("npy: malformed header %q", hdr)
	}
	dm, om, sm := descrRe.FindStringSubmatch(hdr), orderRe.FindStringSubmatch(hdr), shapeRe.FindStringSubmatch(hdr)
	if dm == nil || om == nil || sm == nil {
		return nil, fmt.Errorf("npy: header %q lacks 'descr', 'fortran_order' or 'shape'", strings.TrimSpace(hdr))
	}
	h := &npyHeader{dtype: dm[1], fortran: om[1] == "True", off: off + hlen, n: 1}
	for tok := range strings.SplitSeq(sm[1], ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		d, err := strconv.Atoi(tok)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("npy: shape (%s): dimension %q is not a non-negative integer", sm[1], tok)
		}
		if d > 0 && h.n > maxNPYElems/d {
			return nil, fmt.Errorf("npy: shape (%s) has more than %d elements", sm[1], maxNPYElems)
		}
		h.n *= d
		h.shape = append(h.shape, d)
	}
	dt := h.dtype
	if len(dt) != 3 || !strings.ContainsRune("<>|=", rune(dt[0])) {
		return nil, fmt.Errorf("npy: dtype %q is not supported (want float32/float64 or an integer type)", dt)
	}
	h.size = int(dt[2] - '0')
	h.kind = dt[1]
	switch {
	case h.kind == 'f' && (h.size == 4 || h.size == 8):
	case (h.kind == 'i' || h.kind == 'u') && (h.size == 1 || h.size == 2 || h.size == 4 || h.size == 8):
	case h.kind == 'b' && h.size == 1:
	default:
		return nil, fmt.Errorf("npy: dtype %q is not supported (want float32/float64 or an integer type)", dt)
	}
	if total-int64(h.off) != int64(h.n*h.size) {
		return nil, fmt.Errorf("npy: shape %v of %s needs %d data bytes, the file has %d (truncated?)", h.shape, dt, h.n*h.size, total-int64(h.off))
	}
	return h, nil
}

func decodeNPY(b []byte) (a *Array, err error) {
	h, err := parseNPYHeader(b, int64(len(b)))
	if err != nil {
		return nil, err
	}
	a = &Array{DType: h.dtype, Shape: h.shape}
	n, kind, size, dt := h.n, h.kind, h.size, h.dtype
	defer func() {
		// The header was validated above; this guards against decoder
		// panics on input we did not anticipate.
		if p := recover(); p != nil {
			a, err = nil, fmt.Errorf("npy: decoder failed: %v", p)
		}
	}()
	rd, err := npy.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if n == 0 {
		if kind == 'f' {
			a.Float = []float64{}
		} else {
			a.Int = []int64{}
		}
		return a, nil
	}
	if err := readTyped(rd, a, kind, size, n); err != nil {
		return nil, fmt.Errorf("npy: reading %s data: %w", dt, err)
	}
	if h.fortran {
		fortranToC(a)
	}
	return a, nil
}

func readTyped(rd *npy.Reader, a *Array, kind byte, size, n int) error {
	if kind == 'f' {
		if size == 8 {
			v := make([]float64, n)
			err := rd.Read(&v)
			a.Float = v
			return err
		}
		v := make([]float32, n)
		if err := rd.Read(&v); err != nil {
			return err
		}
		a.Float = make([]float64, n)
		for i, x := range v {
			a.Float[i] = float64(x)
		}
		return nil
	}
	a.Int = make([]int64, n)
	conv := func(err error, get func(i int) int64) error {
		if err != nil {
			return err
		}
		for i := range a.Int {
			a.Int[i] = get(i)
		}
		return nil
	}
	switch {
	case kind == 'b':
		v := make([]bool, n)
		return conv(rd.Read(&v), func(i int) int64 {
			if v[i] {
				return 1
			}
			return 0
		})
	case kind == 'i' && size == 1:
		v := make([]int8, n)
		return conv(rd.Read(&v), func(i int) int64 { return int64(v[i]) })
	case kind == 'u' && size == 1:
		v := make([]uint8, n)
		return conv(rd.Read(&v), func(i int) int64 { return int64(v[i]) })
	case kind == 'i' && size == 2:
		v := make([]int16, n)
		return conv(rd.Read(&v), func(i int) int64 { return int64(v[i]) })
	case kind == 'u' && size == 2:
		v := make([]uint16, n)
		return conv(rd.Read(&v), func(i int) int64 { return int64(v[i]) })
	case kind == 'i' && size == 4:
		v := make([]int32, n)
		return conv(rd.Read(&v), func(i int) int64 { return int64(v[i]) })
	case kind == 'u' && size == 4:
		v := make([]uint32, n)
		return conv(rd.Read(&v), func(i int) int64 { return int64(v[i]) })
	case kind == 'i' && size == 8:
		return rd.Read(&a.Int)
	default: // u8
		v := make([]uint64, n)
		return conv(rd.Read(&v), func(i int) int64 {
			if v[i] > math.MaxInt64 {
				return -1 // reported as out of range by callers
			}
			return int64(v[i])
		})
	}
}

// fortranToC reorders column-major data to row-major.
func fortranToC(a *Array) {
	r := len(a.Shape)
	if r < 2 {
		return
	}
	n := a.Len()
	// Column-major strides.
	fs := make([]int, r)
	s := 1
	for i := 0; i < r; i++ {
		fs[i] = s
		s *= a.Shape[i]
	}
	idx := make([]int, r)
	src := func() int {
		p := 0
		for i, c := range idx {
			p += c * fs[i]
		}
		return p
	}
	if a.Float != nil {
		out := make([]float64, n)
		for k := 0; k < n; k++ {
			out[k] = a.Float[src()]
			incr(idx, a.Shape)
		}
		a.Float = out
	} else {
		out := make([]int64, n)
		for k := 0; k < n; k++ {
			out[k] = a.Int[src()]
			incr(idx, a.Shape)
		}
		a.Int = out
	}
}

// incr advances a row-major multi-index.
func incr(idx, shape []int) {
	for d := len(idx) - 1; d >= 0; d-- {
		idx[d]++
		if idx[d] < shape[d] {
			return
		}
		idx[d] = 0
	}
}

// LoadNPY loads a dataset from NumPy files: inputs (float32 or float64, shape
// N×sample shape, any rank ≥ 1) and labels (int32, int64 or uint8 — any
// integer type — shape N or N×1). Errors name the file: differing N, NaN or
// infinite inputs, negative labels. Whether labels fit a model's classes is
// checked by Check.
func LoadNPY(inputs, labels string) (*Memory, error) {
	xa, err := loadNPYFile(inputs)
	if err != nil {
		return nil, err
	}
	ya, err := loadNPYFile(labels)
	if err != nil {
		return nil, err
	}
	if xa.Float == nil {
		return nil, fmt.Errorf("data: %s: inputs have dtype %s, want float32 or float64", inputs, xa.DType)
	}
	if ya.Int == nil {
		return nil, fmt.Errorf("data: %s: labels have dtype %s, want an integer type (int64, int32, uint8)", labels, ya.DType)
	}
	if len(xa.Shape) < 1 {
		return nil, fmt.Errorf("data: %s: inputs are a scalar, want N×sample shape", inputs)
	}
	if len(ya.Shape) != 1 && !(len(ya.Shape) == 2 && ya.Shape[1] == 1) {
		return nil, fmt.Errorf("data: %s: labels have shape %v, want [N] or [N 1]", labels, ya.Shape)
	}
	if xa.Shape[0] != ya.Shape[0] {
		return nil, fmt.Errorf("data: %s has %d samples but %s has %d labels", inputs, xa.Shape[0], labels, ya.Shape[0])
	}
	shape := slices.Clone(xa.Shape[1:])
	if len(shape) == 0 {
		shape = []int{1}
	}
	size := 1
	for _, d := range shape {
		size *= d
	}
	for i, v := range xa.Float {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("data: %s: value %d (sample %d) is %v, want a finite number", inputs, i, i/max(size, 1), v)
		}
	}
	y := make([]int, len(ya.Int))
	for i, l := range ya.Int {
		if l < 0 || l > math.MaxInt32 {
			return nil, fmt.Errorf("data: %s: label %d is %d, want a class index ≥ 0", labels, i, l)
		}
		y[i] = int(l)
	}
	return NewMemory(xa.Float, y, shape)
}

func loadNPYFile(path string) (*Array, error) {
	b, err := readfile.Read(path, readfile.NPY)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	a, err := decodeNPY(b)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return a, nil
}

// WriteNPY writes a float64 array of the given shape as a version 1.0 .npy
// file (little-endian, C order), for tests and tools.
func WriteNPY(w io.Writer, shape []int, v []float64) error {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(v) {
		return fmt.Errorf("npy: %d values for shape %v", len(v), shape)
	}
	raw := make([]byte, 8*n)
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(x))
	}
	return writeHeaderAndData(w, shape, "<f8", raw)
}

// WriteNPYInt64 writes an int64 array of the given shape as a version 1.0
// .npy file.
func WriteNPYInt64(w io.Writer, shape []int, v []int64) error {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return writeHeaderAndData(w, shape, "<i8", raw)
}

func writeHeaderAndData(w io.Writer, shape []int, dtype string, data []byte) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	sh := strings.Join(dims, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", dtype, sh)
	pad := 64 - (10+len(h)+1)%64
	h += strings.Repeat(" ", pad%64) + "\n"
	hdr := append(append([]byte{}, npy.Magic[:]...), 1, 0, byte(len(h)), byte(len(h)>>8))
	if _, err := w.Write(append(hdr, h...)); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// LoadNPYArray reads a whole .npy file of any dtype and shape (per-position
// labels, regression targets). Errors name the file.
func LoadNPYArray(path string) (*Array, error) { return loadNPYFile(path) }
