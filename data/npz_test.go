package data_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// npzBytes builds an archive as np.savez (stored) or np.savez_compressed
// (deflated) does, from .npy members made by hand.
func npzBytes(t testing.TB, deflate bool, members ...any) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i < len(members); i += 2 {
		m := zip.Store
		if deflate {
			m = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: members[i].(string) + ".npy", Method: m})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(members[i+1].([]byte))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func i64s(v ...int64) []byte {
	var b bytes.Buffer
	for _, x := range v {
		for k := 0; k < 8; k++ {
			b.WriteByte(byte(uint64(x) >> (8 * k)))
		}
	}
	return b.Bytes()
}

func TestNPZ(t *testing.T) {
	dir := t.TempDir()
	for _, deflate := range []bool{false, true} {
		p := write(t, dir, fmt.Sprintf("tok%v.npz", deflate), npzBytes(t, deflate,
			"input_ids", npyBytes("<i8", false, "(3, 4)", i64s(101, 7, 8, 102, 101, 9, 102, 0, 101, 5, 6, 102)),
			"attention_mask", npyBytes("|u1", false, "(3, 4)", []byte{1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1}),
			"labels", npyBytes("<i4", false, "(3,)", []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0})))
		z, err := data.OpenNPZ(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(z.Names(), z.Shape("input_ids")); got != "[input_ids attention_mask labels] [3 4]" {
			t.Errorf("names %s", got)
		}
		ds, err := z.Match([]string{"input_ids", "attention_mask"})
		if err != nil {
			t.Fatal(err)
		}
		ids, mask := make([]float64, 8), make([]float64, 8)
		y := make([]int, 2)
		if err := ds.ReadInputs(1, [][]float64{ids, mask}, y); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids, mask, y, ds.SampleShapes()); got != "[101 9 102 0 101 5 6 102] [1 1 1 0 1 1 1 1] [0 1] [[4] [4]]" {
			t.Errorf("deflate %v: read %s", deflate, got)
		}
		if err := ds.Read(0, ids, y); err == nil || !strings.Contains(err.Error(), "ReadInputs") {
			t.Errorf("Read with two inputs: %v", err)
		}
		// One model input of another name takes the only other array.
		one := write(t, dir, "one.npz", npzBytes(t, deflate,
			"x", npyBytes("<f4", false, "(2, 2)", f32s(1, 2, 3, 4)),
			"y", npyBytes("<i8", false, "(2,)", i64s(0, 3))))
		z1, err := data.OpenNPZ(one)
		if err != nil {
			t.Fatal(err)
		}
		d1, err := z1.Match([]string{"input"})
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float64, 4)
		if err := d1.Read(0, x, y); err != nil || fmt.Sprint(x, y) != "[1 2 3 4] [0 3]" {
			t.Errorf("single input: %v %v %v", x, y, err)
		}
		z.Close()
		z1.Close()
	}

	bad := []struct {
		name   string
		b      []byte
		inputs []string
		want   string
	}{
		{"mismatched", npzBytes(t, false, "input_ids", npyBytes("<i8", false, "(3, 1)", i64s(1, 2, 3)), "attention_mask", npyBytes("<i8", false, "(2, 1)", i64s(1, 1)), "labels", npyBytes("<i8", false, "(3,)", i64s(0, 1, 0))),
			[]string{"input_ids", "attention_mask"}, `array "attention_mask" has 2 samples but labels "labels" have 3`},
		{"no labels", npzBytes(t, false, "x", npyBytes("<f4", false, "(1,)", f32s(1))), []string{"x"}, "no labels array (want one named labels"},
		{"missing input", npzBytes(t, true, "input_ids", npyBytes("<i8", false, "(1,)", i64s(1)), "labels", npyBytes("<i8", false, "(1,)", i64s(0))),
			[]string{"input_ids", "token_type_ids"}, `no array for model input "token_type_ids" (the archive has input_ids [1] <i8, labels [1] <i8)`},
		{"float labels", npzBytes(t, false, "x", npyBytes("<f4", false, "(1,)", f32s(1)), "labels", npyBytes("<f4", false, "(1,)", f32s(1))), []string{"x"}, "labels \"labels\" have dtype <f4"},
		{"bad member", npzBytes(t, true, "x", []byte("not numpy")), []string{"x"}, `array "x": npy: not a NumPy .npy file`},
		{"truncated member", npzBytes(t, false, "x", npyBytes("<f4", false, "(3,)", f32s(1))), []string{"x"}, "needs 12 data bytes, the file has 4"},
		{"not zip", []byte("PK garbage"), []string{"x"}, "not an .npz archive"},
	}
	for _, c := range bad {
		p := write(t, dir, c.name+".npz", c.b)
		z, err := data.OpenNPZ(p)
		if err == nil {
			_, err = z.Match(c.inputs)
			z.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want it to name the file and contain %q", c.name, err, c.want)
		}
	}
}

func FuzzOpenNPZ(f *testing.F) {
	f.Add(npzBytes(f, false, "x", npyBytes("<f4", false, "(2, 1)", f32s(1, 2)), "labels", npyBytes("<i8", false, "(2,)", i64s(0, 1))))
	f.Add(npzBytes(f, true, "x", npyBytes("<f8", false, "(1,)", make([]byte, 8)), "y", npyBytes("|u1", false, "(1,)", []byte{1})))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.npz")
		os.WriteFile(p, b, 0o644)
		z, err := data.OpenNPZ(p)
		if err != nil {
			return
		}
		defer z.Close()
		ds, err := z.Match([]string{"x"})
		if err != nil {
			return
		}
		size := data.SampleSize(ds)
		if size > 1<<20 || ds.Len() > 1<<10 {
			return
		}
		// Reading may fail (a corrupt deflate stream, NaN), but must not panic.
		ds.Read(0, make([]float64, ds.Len()*size), make([]int, ds.Len()))
	})
}
