package model

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// External data: models over protobuf's 2 GiB limit keep initializers in
// side files (onnx.save(..., save_as_external_data=True)). Such a tensor
// has data_location = EXTERNAL and external_data entries "location" (a
// file path relative to the model's directory), "offset" and "length"
// (bytes; offset defaults to 0, length to the rest of the tensor's
// size), as the ONNX specification's external data section defines them.
// Load reads each tensor's own byte range from its file into raw_data
// before decoding, so memory holds the weights once and a file larger
// than the model's tensors is never read whole.

// isExternal reports whether tp keeps its data outside the model file.
func isExternal(tp *onnx.TensorProto) bool {
	return tp.DataLocation == onnx.TensorProto_EXTERNAL || len(tp.ExternalData) > 0
}

// errNoDir is the error for external data met without a model directory.
func errNoDir(tp *onnx.TensorProto) error {
	return fmt.Errorf("tensor %q keeps its data in an external file; load the model from its file (model.Load) so that the file can be found", tp.Name)
}

// resolveExternal replaces the external data of every initializer of mp
// (and of Constant nodes' tensors, in subgraphs too) by raw_data read from
// the files they name, relative to dir.
func resolveExternal(mp *onnx.ModelProto, dir string) error {
	_, err := ResolveExternal(mp, dir)
	return err
}

// ResolveExternal reads the external data of every tensor of mp
// (initializers and Constant nodes' tensors, in subgraphs too) into
// raw_data from the files they name relative to dir, the directory of the
// model file, with Load's checks (locations inside dir, byte ranges
// inside the file and of the tensor's size), and returns the files read
// (none for a self-contained model). Tools that rewrite a model (the QDQ
// export) or hand it to a runtime from memory call it first, so no
// reference to a side file is left that would resolve against another
// directory. dir "" with external data is an error naming the tensor.
func ResolveExternal(mp *onnx.ModelProto, dir string) ([]string, error) {
	if mp == nil || mp.Graph == nil {
		return nil, nil
	}
	r := &externalReader{dir: dir, files: map[string]*externalFile{}}
	defer r.close()
	if err := r.graph(mp.Graph); err != nil {
		return nil, err
	}
	files := make([]string, 0, len(r.files))
	for p := range r.files {
		files = append(files, p)
	}
	slices.Sort(files)
	return files, nil
}

type externalFile struct {
	f    *os.File
	size int64
}

type externalReader struct {
	dir   string
	base  string // dir with symbolic links resolved, set on first use
	files map[string]*externalFile
}

func (r *externalReader) close() {
	for _, f := range r.files {
		f.f.Close()
	}
}

func (r *externalReader) graph(g *onnx.GraphProto) error {
	for _, tp := range g.Initializer {
		if tp != nil && isExternal(tp) {
			if err := r.tensor(tp); err != nil {
				return fmt.Errorf("initializer %q: %w", tp.Name, err)
			}
		}
	}
	for _, n := range g.Node {
		if n == nil {
			continue
		}
		for _, a := range n.Attribute {
			if a == nil {
				continue
			}
			ts := append([]*onnx.TensorProto{a.T}, a.Tensors...)
			for _, tp := range ts {
				if tp != nil && isExternal(tp) {
					if err := r.tensor(tp); err != nil {
						return fmt.Errorf("node %q attribute %q: %w", n.Name, a.Name, err)
					}
				}
			}
			for _, sg := range append([]*onnx.GraphProto{a.G}, a.Graphs...) {
				if sg != nil {
					if err := r.graph(sg); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// tensor reads tp's bytes into tp.RawData.
func (r *externalReader) tensor(tp *onnx.TensorProto) error {
	if r.dir == "" {
		return errNoDir(tp)
	}
	var loc string
	off, length := int64(0), int64(-1)
	for _, kv := range tp.ExternalData {
		if kv == nil {
			continue
		}
		switch kv.Key {
		case "location":
			loc = kv.Value
		case "offset", "length":
			v, err := strconv.ParseInt(kv.Value, 10, 64)
			if err != nil || v < 0 {
				return fmt.Errorf("%w: external data %s %q, want a byte count ≥ 0", ErrFormat, kv.Key, kv.Value)
			}
			if kv.Key == "offset" {
				off = v
			} else {
				length = v
			}
		}
	}
	if loc == "" {
		return fmt.Errorf("%w: external data without a location", ErrFormat)
	}
	if filepath.IsAbs(loc) || strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, `\`) {
		return fmt.Errorf("%w: external data location %q is absolute, want a path relative to the model's directory", ErrFormat, loc)
	}
	clean := filepath.Clean(filepath.FromSlash(loc))
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%w: external data location %q leaves the model's directory", ErrFormat, loc)
	}
	want, err := rawBytes(tp)
	if err != nil {
		return err
	}
	if length < 0 {
		length = want
	}
	path := filepath.Join(r.dir, clean)
	if length != want {
		return fmt.Errorf("%w: %s: external data length %d bytes, the tensor's shape %v of %v needs %d", ErrFormat, path, length, tp.Dims, DataType(tp.DataType), want)
	}
	if err := r.inside(path, loc); err != nil {
		return err
	}
	f, err := r.open(path)
	if err != nil {
		return err
	}
	if off > f.size || length > f.size-off {
		return fmt.Errorf("%w: %s: the tensor's bytes [%d, %d) lie beyond the file's %d bytes (truncated file?)", ErrFormat, path, off, off+length, f.size)
	}
	raw := make([]byte, length)
	if _, err := f.f.ReadAt(raw, off); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return fmt.Errorf("%s: %w", path, err)
	}
	tp.RawData = raw
	tp.ExternalData = nil
	tp.DataLocation = onnx.TensorProto_DEFAULT
	return nil
}

// inside refuses a path that resolves, through symbolic links, to a file
// outside the model's directory (the lexical checks catch ".." and
// absolute locations; a link inside the directory may still point out).
func (r *externalReader) inside(path, loc string) error {
	if r.base == "" {
		base, err := filepath.EvalSymlinks(r.dir)
		if err != nil {
			return fmt.Errorf("external data: %w", err)
		}
		r.base = base
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("external data: %w", err)
	}
	rel, err := filepath.Rel(r.base, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%w: external data location %q is a link to %s, outside the model's directory", ErrFormat, loc, real)
	}
	return nil
}

func (r *externalReader) open(path string) (*externalFile, error) {
	if f, ok := r.files[path]; ok {
		return f, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("external data: %s is not a regular file", path)
	}
	ef := &externalFile{f: f, size: st.Size()}
	r.files[path] = ef
	return ef, nil
}

// rawBytes returns the bytes of tp's data in raw_data form, with the
// bounds TensorFromProto applies to dimensions and element counts.
func rawBytes(tp *onnx.TensorProto) (int64, error) {
	size := elemSize(DataType(tp.DataType))
	packed := tp.DataType == dataTypeInt4 || tp.DataType == dataTypeUint4
	if packed {
		size = 1
	}
	if size == 0 {
		return 0, fmt.Errorf("data type %v is not supported (want FLOAT, DOUBLE, FLOAT16 or an integer type)", DataType(tp.DataType))
	}
	n := int64(1)
	for i, d := range tp.Dims {
		if d < 0 || d > maxDim {
			return 0, fmt.Errorf("%w: dimension %d is %d, want 0..%d", ErrFormat, i, d, maxDim)
		}
		if d != 0 && n > int64(maxElems)/d {
			return 0, fmt.Errorf("%w: shape %v has more than %d elements", ErrFormat, tp.Dims, maxElems)
		}
		n *= d
	}
	if packed { // two 4-bit codes a byte
		return (n + 1) / 2, nil
	}
	return n * int64(size), nil
}

// The ONNX 1.16 4-bit element types (newer than the generated enum):
// external data of a QDQ model's INT4 weight codes resolves too.
const (
	dataTypeUint4 = 21
	dataTypeInt4  = 22
)

// elemSize returns the bytes of one element of t in raw_data (0: not a
// type the importer reads).
func elemSize(t DataType) int {
	switch t {
	case Float, Int32, Uint32:
		return 4
	case Double, Int64, Uint64:
		return 8
	case Float16, Int16, Uint16:
		return 2
	case Int8, Uint8, Bool:
		return 1
	}
	return 0
}

// Inline returns the serialized model b with every external tensor read
// inline from the files relative to dir (ResolveExternal), for a runtime
// that loads the model from memory; b itself when it has no external
// data. The result is subject to protobuf's 2 GiB limit.
func Inline(b []byte, dir string) ([]byte, error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		return nil, fmt.Errorf("%w: not a ModelProto (truncated or not ONNX?): %v", ErrFormat, err)
	}
	files, err := ResolveExternal(mp, dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return b, nil
	}
	out, err := proto.Marshal(mp)
	if err != nil {
		return nil, fmt.Errorf("model: inlining the external data of %s: %w", strings.Join(files, ", "), err)
	}
	return out, nil
}
