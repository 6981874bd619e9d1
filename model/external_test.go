package model

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// TestExternalData loads testdata/models/external/rescnn.onnx, written by
// onnx.save with save_as_external_data=True (scripts/make_external_data.py),
// and checks every initializer against the inline model's.
func TestExternalData(t *testing.T) {
	dir := filepath.Join("..", "testdata", "models")
	ext, err := Load(filepath.Join(dir, "external", "rescnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load(filepath.Join(dir, "rescnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ext.InitializerNames, ref.InitializerNames) || len(ext.Initializers) == 0 {
		t.Fatalf("initializers %v, want %v", ext.InitializerNames, ref.InitializerNames)
	}
	for name, r := range ref.Initializers {
		e := ext.Initializers[name]
		if !slices.Equal(e.Shape, r.Shape) || !slices.Equal(e.Float, r.Float) || !slices.Equal(e.Int, r.Int) {
			t.Errorf("initializer %q differs from the inline model's", name)
		}
	}
	if len(ext.Units) != len(ref.Units) {
		t.Errorf("%d units, want %d", len(ext.Units), len(ref.Units))
	}
	// Decode has no directory to find the side file in.
	raw, err := os.ReadFile(filepath.Join(dir, "external", "rescnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(raw); err == nil || !strings.Contains(err.Error(), "model.Load") {
		t.Errorf("Decode of a model with external data: %v, want an error pointing to model.Load", err)
	}
}

// TestExternalDataErrors checks that bad external references are refused
// with the file and tensor named: a missing file, a range beyond the
// file's end, a length that does not match the shape, a location outside
// the model's directory, an absolute location and a malformed offset.
func TestExternalDataErrors(t *testing.T) {
	cases := []struct {
		name string
		kv   map[string]string
		data int // bytes of w.bin
		want []string
	}{
		{"missing file", map[string]string{"location": "nothere.bin"}, 24, []string{"nothere.bin", `"w"`}},
		{"truncated", map[string]string{"location": "w.bin", "offset": "8"}, 24, []string{"w.bin", "beyond the file's 24 bytes", `"w"`}},
		{"length", map[string]string{"location": "w.bin", "length": "20"}, 24, []string{"w.bin", "length 20", "needs 24"}},
		{"escapes", map[string]string{"location": "../w.bin"}, 24, []string{"leaves the model's directory"}},
		{"absolute", map[string]string{"location": "/etc/passwd"}, 24, []string{"absolute"}},
		{"offset", map[string]string{"location": "w.bin", "offset": "-3"}, 24, []string{"offset", "-3"}},
		{"no location", map[string]string{"offset": "0"}, 24, []string{"without a location"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "w.bin"), make([]byte, c.data), 0o644); err != nil {
				t.Fatal(err)
			}
			tp := &onnx.TensorProto{Name: "w", Dims: []int64{2, 3}, DataType: int32(onnx.TensorProto_FLOAT), DataLocation: onnx.TensorProto_EXTERNAL}
			for _, k := range []string{"location", "offset", "length"} {
				if v, ok := c.kv[k]; ok {
					tp.ExternalData = append(tp.ExternalData, &onnx.StringStringEntryProto{Key: k, Value: v})
				}
			}
			path := writeExternalModel(t, dir, tp)
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// A good reference with an offset into a shared file loads.
	dir := t.TempDir()
	blob := make([]byte, 8+24)
	blob[8+3] = 0x3f // float32 bits 0x3f800000 = 1 at element 0
	blob[8+2] = 0x80
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	tp := &onnx.TensorProto{Name: "w", Dims: []int64{2, 3}, DataType: int32(onnx.TensorProto_FLOAT), DataLocation: onnx.TensorProto_EXTERNAL,
		ExternalData: []*onnx.StringStringEntryProto{{Key: "location", Value: "w.bin"}, {Key: "offset", Value: "8"}, {Key: "length", Value: "24"}}}
	m, err := Load(writeExternalModel(t, dir, tp))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Initializers["w"].Float; len(got) != 6 || got[0] != 1 || got[1] != 0 {
		t.Errorf("w = %v, want [1 0 0 0 0 0]", got)
	}
}

// writeExternalModel writes a one-node model (y = MatMul(x, w)) with
// initializer w to dir and returns its path.
func writeExternalModel(t *testing.T, dir string, w *onnx.TensorProto) string {
	t.Helper()
	dim := func(v int64) *onnx.TensorShapeProto_Dimension {
		return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	vi := func(name string, d ...int64) *onnx.ValueInfoProto {
		var dims []*onnx.TensorShapeProto_Dimension
		for _, v := range d {
			dims = append(dims, dim(v))
		}
		return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: int32(onnx.TensorProto_FLOAT), Shape: &onnx.TensorShapeProto{Dim: dims}}}}}
	}
	mp := &onnx.ModelProto{IrVersion: 8, OpsetImport: []*onnx.OperatorSetIdProto{{Version: 17}},
		Graph: &onnx.GraphProto{Name: "g", Initializer: []*onnx.TensorProto{w},
			Node:   []*onnx.NodeProto{{Name: "mm", OpType: "MatMul", Input: []string{"x", "w"}, Output: []string{"y"}}},
			Input:  []*onnx.ValueInfoProto{vi("x", 1, 2)},
			Output: []*onnx.ValueInfoProto{vi("y", 1, 3)}}}
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// FuzzExternalData loads a one-initializer model whose external data
// reference (location, offset, length, shape and type) and side file come
// from the fuzzer. Beside the model's directory lies a file the reference
// must never reach (through "..", an absolute path or a symbolic link).
// Load must not panic; when it succeeds, the tensor has the elements its
// shape declares and its bytes came from a file inside the directory.
func FuzzExternalData(f *testing.F) {
	f.Add("w.bin", "", "", int64(2), int64(3), int32(onnx.TensorProto_FLOAT), make([]byte, 24))
	f.Add("w.bin", "8", "24", int64(2), int64(3), int32(onnx.TensorProto_FLOAT), make([]byte, 32))
	f.Add("sub/w.bin", "0", "48", int64(2), int64(3), int32(onnx.TensorProto_DOUBLE), make([]byte, 48))
	f.Add("link.bin", "", "", int64(2), int64(3), int32(onnx.TensorProto_FLOAT), make([]byte, 24))
	f.Add("../secret.bin", "0", "24", int64(2), int64(3), int32(onnx.TensorProto_FLOAT), make([]byte, 24))
	f.Add("sub/../w.bin", "4", "", int64(2), int64(3), int32(onnx.TensorProto_INT64), make([]byte, 60))
	f.Add("w.bin", "18446744073709551615", "-1", int64(1<<40), int64(3), int32(onnx.TensorProto_FLOAT16), []byte{1, 2})
	root := f.TempDir()
	secret := bytes.Repeat([]byte{0xa5}, 64)
	if err := os.WriteFile(filepath.Join(root, "secret.bin"), secret, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, loc, off, length string, d0, d1 int64, dtype int32, data []byte) {
		if len(data) > 1<<16 || !utf8.ValidString(loc) || !utf8.ValidString(off) || !utf8.ValidString(length) {
			return // protobuf strings are UTF-8: no model file holds others
		}
		dir, err := os.MkdirTemp(root, "m")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"w.bin", filepath.Join("sub", "w.bin")} {
			if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(filepath.Join(root, "secret.bin"), filepath.Join(dir, "link.bin")); err != nil {
			t.Fatal(err)
		}
		tp := &onnx.TensorProto{Name: "w", Dims: []int64{d0, d1}, DataType: dtype, DataLocation: onnx.TensorProto_EXTERNAL,
			ExternalData: []*onnx.StringStringEntryProto{{Key: "location", Value: loc}}}
		if off != "" {
			tp.ExternalData = append(tp.ExternalData, &onnx.StringStringEntryProto{Key: "offset", Value: off})
		}
		if length != "" {
			tp.ExternalData = append(tp.ExternalData, &onnx.StringStringEntryProto{Key: "length", Value: length})
		}
		m, err := Load(writeExternalModel(t, dir, tp))
		if err != nil {
			return
		}
		w := m.Initializers["w"]
		if w == nil || int64(len(w.Float)+len(w.Int)) != d0*d1 {
			t.Fatalf("loaded w = %+v, want %d×%d elements", w, d0, d1)
		}
		real, err := filepath.EvalSymlinks(filepath.Join(dir, filepath.FromSlash(loc)))
		if err != nil {
			t.Fatalf("loaded from %q, which does not resolve: %v", loc, err)
		}
		base, _ := filepath.EvalSymlinks(dir)
		if rel, err := filepath.Rel(base, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			t.Fatalf("location %q read %s, outside the model's directory %s", loc, real, base)
		}
	})
}
