package data_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
)

// npyBytes builds a .npy file by hand (independently of the package's
// writer) with the given header fields and little-endian payload.
func npyBytes(descr string, fortran bool, shape string, payload []byte) []byte {
	order := "False"
	if fortran {
		order = "True"
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, order, shape)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
	return append(append(b, h...), payload...)
}

func f32s(v ...float32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, v)
	return b.Bytes()
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNPYTypes(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"f4", npyBytes("<f4", false, "(2, 2)", f32s(1, 2, 3, 4.5)), "[2 2] [1 2 3 4.5] []"},
		{"f8 big-endian", npyBytes(">f8", false, "(2,)", []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0}), "[2] [1 -2] []"},
		{"fortran", npyBytes("<f4", true, "(2, 3)", f32s(1, 4, 2, 5, 3, 6)), "[2 3] [1 2 3 4 5 6] []"},
		{"i8", npyBytes("<i8", false, "(2,)", []byte{7, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), "[2] [] [7 -1]"},
		{"i4", npyBytes("<i4", false, "(2,)", []byte{3, 0, 0, 0, 9, 0, 0, 0}), "[2] [] [3 9]"},
		{"u1", npyBytes("|u1", false, "(3,)", []byte{0, 5, 255}), "[3] [] [0 5 255]"},
		{"empty", npyBytes("<f8", false, "(0, 4)", nil), "[0 4] [] []"},
	}
	for _, c := range cases {
		a, err := data.ReadNPY(bytes.NewReader(c.b))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := fmt.Sprint(a.Shape, a.Float, a.Int); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestNPYErrors(t *testing.T) {
	good := npyBytes("<f4", false, "(2, 2)", f32s(1, 2, 3, 4))
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"garbage", []byte("hello world, not numpy"), "missing \\x93NUMPY magic"},
		{"truncated header", good[:20], "truncated file"},
		{"truncated data", good[:len(good)-3], "needs 16 data bytes, the file has 13"},
		{"version", append([]byte("\x93NUMPY\x07\x00"), good[8:]...), "format version 7.0"},
		{"dtype", npyBytes("<c16", false, "(1,)", make([]byte, 16)), `dtype "<c16" is not supported`},
		{"object", npyBytes("|O", false, "(1,)", make([]byte, 8)), `dtype "|O" is not supported`},
		{"shape", npyBytes("<f4", false, "(2, x)", f32s(1, 2)), `dimension "x"`},
		{"huge", npyBytes("<f8", false, "(100000, 100000, 100000)", nil), "more than"},
		{"no shape", npyBytes("<f4", false, "", f32s(1)), "lacks"},
	}
	for _, c := range cases {
		_, err := data.ReadNPY(bytes.NewReader(c.b))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestLoadNPY(t *testing.T) {
	dir := t.TempDir()
	var xb bytes.Buffer
	x := []float64{0, 0.5, 1, 0.25, 0.75, 0.125}
	if err := data.WriteNPY(&xb, []int{3, 1, 2}, x); err != nil {
		t.Fatal(err)
	}
	xp := write(t, dir, "x.npy", xb.Bytes())
	var yb bytes.Buffer
	if err := data.WriteNPYInt64(&yb, []int{3}, []int64{2, 0, 1}); err != nil {
		t.Fatal(err)
	}
	yp := write(t, dir, "y.npy", yb.Bytes())
	ds, err := data.LoadNPY(xp, yp)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ds.Len(), ds.SampleShape(), ds.Inputs, ds.Labels); got != "3 [1 2] [0 0.5 1 0.25 0.75 0.125] [2 0 1]" {
		t.Errorf("loaded %s", got)
	}
	if err := data.Check(ds, []int{1, 2}, 3); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := data.Check(ds, []int{1, 2}, 2); !errors.Is(err, data.ErrLabel) || !strings.Contains(err.Error(), "sample 0 has label 2, the model has 2 classes") {
		t.Errorf("Check with 2 classes: %v", err)
	}
	if err := data.Check(ds, []int{2, 1}, 3); err == nil || !strings.Contains(err.Error(), "expects [2 1]") {
		t.Errorf("Check with another shape: %v", err)
	}

	// uint8 labels of shape N×1 and float32 inputs.
	u8 := write(t, dir, "u8.npy", npyBytes("|u1", false, "(3, 1)", []byte{1, 1, 0}))
	f4 := write(t, dir, "f4.npy", npyBytes("<f4", false, "(3, 2)", f32s(1, 2, 3, 4, 5, 6)))
	if ds, err := data.LoadNPY(f4, u8); err != nil || fmt.Sprint(ds.Labels, ds.Shape) != "[1 1 0] [2]" {
		t.Errorf("f4/u1: %v %v", ds, err)
	}

	bad := []struct {
		name, x, y, want string
	}{
		{"N differs", xp, write(t, dir, "y2.npy", npyBytes("<i8", false, "(2,)", make([]byte, 16))), "x.npy has 3 samples but"},
		{"NaN", write(t, dir, "nan.npy", npyBytes("<f4", false, "(1, 2)", f32s(1, float32(math.NaN())))), write(t, dir, "one.npy", npyBytes("|u1", false, "(1,)", []byte{0})), "value 1 (sample 0) is NaN"},
		{"negative label", xp, write(t, dir, "neg.npy", npyBytes("<i4", false, "(3,)", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})), "label 1 is -1"},
		{"float labels", xp, xp, "labels have dtype <f8"},
		{"int inputs", yp, yp, "inputs have dtype <i8"},
		{"label shape", xp, write(t, dir, "y3.npy", npyBytes("<i8", false, "(1, 3)", make([]byte, 24))), "want [N] or [N 1]"},
		{"missing", filepath.Join(dir, "absent.npy"), yp, "absent.npy"},
	}
	for _, c := range bad {
		_, err := data.LoadNPY(c.x, c.y)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestBatches(t *testing.T) {
	x := make([]float64, 10*2)
	y := make([]int, 10)
	for i := range y {
		y[i] = i
		x[2*i], x[2*i+1] = float64(i), -float64(i)
	}
	ds, err := data.NewMemory(x, y, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for b, err := range data.Batches(ds, 4) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(b.Start, b.Labels, b.Inputs[len(b.Inputs)-1]))
	}
	if s := strings.Join(got, "; "); s != "0 [0 1 2 3] -3; 4 [4 5 6 7] -7; 8 [8 9] -9" {
		t.Errorf("batches: %s", s)
	}
	if sub := ds.Subset(3); sub.Len() != 3 || len(sub.Inputs) != 6 {
		t.Errorf("subset: %+v", sub)
	}
	if _, err := data.NewMemory(x[:5], y, []int{2}); err == nil {
		t.Error("NewMemory accepted a short input slice")
	}
}

func TestMNIST(t *testing.T) {
	if _, err := data.MNISTDir(); err != nil {
		t.Skipf("MNIST files not available: %v", err)
	}
	ds, err := data.MNIST(data.Test, 100)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 100 || fmt.Sprint(ds.SampleShape()) != "[1 28 28]" {
		t.Fatalf("len %d shape %v", ds.Len(), ds.SampleShape())
	}
	// The first test digits of MNIST are 7, 2, 1, 0, 4.
	if got := fmt.Sprint(ds.Labels[:5]); got != "[7 2 1 0 4]" {
		t.Errorf("first test labels %s", got)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range ds.Inputs {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo != 0 || hi != 1 {
		t.Errorf("pixel range [%v, %v], want [0, 1]", lo, hi)
	}
	if _, err := data.MNIST("validation", 0); err == nil {
		t.Error("unknown split accepted")
	}
	// The reference inputs are the first 32 test images.
	ref := filepath.Join("..", "testdata", "ref", "lenet", "inputs.npy")
	f, err := os.Open(ref)
	if err != nil {
		t.Logf("no reference inputs (%v); skipping the comparison", err)
		return
	}
	defer f.Close()
	a, err := data.ReadNPY(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Float {
		if math.Abs(a.Float[i]-ds.Inputs[i]) > 1e-6 {
			t.Fatalf("%s value %d: %v, MNIST gives %v", ref, i, a.Float[i], ds.Inputs[i])
		}
	}
}

func FuzzReadNPY(f *testing.F) {
	f.Add(npyBytes("<f4", false, "(2, 2)", f32s(1, 2, 3, 4)))
	f.Add(npyBytes("<i8", true, "(1, 2)", make([]byte, 16)))
	f.Add(npyBytes("|u1", false, "(3,)", []byte{1, 2, 3}))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := data.ReadNPY(bytes.NewReader(b))
		if err != nil {
			return
		}
		if n := a.Len(); len(a.Float)+len(a.Int) != n {
			t.Fatalf("shape %v but %d+%d values", a.Shape, len(a.Float), len(a.Int))
		}
	})
}

func ExampleLoadNPY() {
	dir, _ := os.MkdirTemp("", "npy")
	defer os.RemoveAll(dir)
	xf, _ := os.Create(filepath.Join(dir, "x.npy"))
	data.WriteNPY(xf, []int{2, 1, 2, 2}, []float64{0, 1, 0, 1, 1, 1, 0, 0})
	xf.Close()
	yf, _ := os.Create(filepath.Join(dir, "y.npy"))
	data.WriteNPYInt64(yf, []int{2}, []int64{3, 8})
	yf.Close()

	ds, err := data.LoadNPY(filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ds.Len(), ds.SampleShape(), ds.Labels)
	fmt.Println(data.Check(ds, []int{1, 2, 2}, 5))
	// Output:
	// 2 [1 2 2] [3 8]
	// data: label out of range: sample 1 has label 8, the model has 5 classes (want 0..4)
}
