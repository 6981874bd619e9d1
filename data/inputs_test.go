package data_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
)

var (
	_ data.Inputs = (*data.Arrays)(nil)
	_ data.Inputs = (*data.NPZDataset)(nil)
)

// bertSpecs are the inputs of testdata/zoo/tiny_bert (token ids and an
// attention mask, int64, batch×16).
var bertSpecs = []data.InputSpec{
	{Name: "input_ids", Integer: true, Type: "INT64", Shape: []int{16}},
	{Name: "attention_mask", Integer: true, Type: "INT64", Shape: []int{16}},
}

func writeInt64(t *testing.T, path string, shape []int, v []int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteNPYInt64(f, shape, v); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func writeFloat(t *testing.T, path string, shape []int, v []float64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteNPY(f, shape, v); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestArraysZooBERT loads the committed tiny_bert sample inputs (written by
// NumPy) given in the wrong order: they are matched by name, integer ids
// stay exact, and a mismatch in dtype, shape or count is a clear error.
func TestArraysZooBERT(t *testing.T) {
	zoo := filepath.Join("..", "testdata", "zoo", "tiny_bert")
	ids, mask := filepath.Join(zoo, "input_ids.npy"), filepath.Join(zoo, "attention_mask.npy")
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.npy")
	writeInt64(t, labels, []int{2}, []int64{0, 2})

	a, err := data.LoadNPYInputs([]string{mask, ids}, labels)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.MatchInputs(bertSpecs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Names, []string{"input_ids", "attention_mask"}) || a.Files[0] != ids {
		t.Fatalf("matched %v from %v", a.Names, a.Files)
	}
	if a.Len() != 2 || !slices.Equal(a.SampleShapes()[1], []int{16}) {
		t.Fatalf("len %d shapes %v", a.Len(), a.SampleShapes())
	}
	bufs := [][]float64{make([]float64, 32), make([]float64, 32)}
	lab := make([]int, 2)
	if err := a.ReadInputs(0, bufs, lab); err != nil {
		t.Fatal(err)
	}
	// The mask of sample 1 ends in zeros (scripts/zoo.py), sample 0 is all ones.
	if bufs[1][0] != 1 || bufs[1][15] != 1 || bufs[1][31] != 0 || !slices.Equal(lab, []int{0, 2}) {
		t.Errorf("mask %v labels %v", bufs[1], lab)
	}
	for _, v := range bufs[0] {
		if v != float64(int64(v)) || v < 0 || v >= 100 {
			t.Fatalf("token id %v is not an id < 100", v)
		}
	}
	if err := a.Read(0, make([]float64, 32), lab); err == nil {
		t.Error("Read of a two-input dataset succeeded")
	}

	// By order when the names do not match.
	ids2 := filepath.Join(dir, "tokens.npy")
	mask2 := filepath.Join(dir, "m.npy")
	writeInt64(t, ids2, []int{2, 16}, make([]int64, 32))
	writeInt64(t, mask2, []int{2, 16}, make([]int64, 32))
	a2, err := data.LoadNPYInputs([]string{ids2, mask2}, labels)
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.MatchInputs(bertSpecs); err != nil || a2.Files[0] != ids2 {
		t.Errorf("by order: %v %v", err, a2.Files)
	}

	cases := []struct {
		name  string
		files func() []string
		want  string
	}{
		{"float ids", func() []string {
			p := filepath.Join(dir, "input_ids.npy")
			writeFloat(t, p, []int{2, 16}, make([]float64, 32))
			return []string{p, mask}
		}, `input_ids.npy has dtype <f8 but model input "input_ids" is INT64: give integer ids`},
		{"shape", func() []string {
			p := filepath.Join(dir, "short.npy")
			writeInt64(t, p, []int{2, 8}, make([]int64, 16))
			return []string{p, mask}
		}, `short.npy has samples of shape [8] but model input "input_ids" takes [16]`},
		{"count", func() []string { return []string{ids} }, "1 input files"},
	}
	for _, c := range cases {
		a, err := data.LoadNPYInputs(c.files(), labels)
		if err == nil {
			err = a.MatchInputs(bertSpecs)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Differing sample counts are refused at load.
	p := filepath.Join(dir, "three.npy")
	writeInt64(t, p, []int{3, 16}, make([]int64, 48))
	if _, err := data.LoadNPYInputs([]string{ids, p}, labels); err == nil || !strings.Contains(err.Error(), "has 3 samples") {
		t.Errorf("sample counts: %v", err)
	}
	// A float input takes float arrays only.
	if err := a2.MatchInputs([]data.InputSpec{{Name: "x", Type: "FLOAT"}, {Name: "y", Type: "FLOAT"}}); err == nil || !strings.Contains(err.Error(), "give float32 or float64") {
		t.Errorf("int array for a float input: %v", err)
	}
}
