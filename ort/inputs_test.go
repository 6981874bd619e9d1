//go:build ort

package ort_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/ort"
)

// TestTimeInputs times the zoo's tiny_bert (token ids and an attention
// mask, int64) on its committed batch-2 inputs; a wrong input name or type
// is an error.
func TestTimeInputs(t *testing.T) {
	initORT(t)
	dir := filepath.Join("..", "testdata", "zoo", "tiny_bert")
	b, err := os.ReadFile(filepath.Join(dir, "op13.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var feeds []ort.Feed
	for _, name := range []string{"input_ids", "attention_mask"} {
		a, err := data.LoadNPYArray(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		feeds = append(feeds, ort.Feed{Name: name, Shape: []int64{int64(a.Shape[0]), int64(a.Shape[1])}, Int: a.Int})
	}
	l, err := ort.TimeInputs(b, nil, feeds, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if l.Runs != 3 || l.Batch != 2 || l.Median <= 0 || l.Min > l.Median || l.Max < l.Median {
		t.Errorf("latency %+v", l)
	}
	bad := append([]ort.Feed(nil), feeds...)
	bad[1].Name = "mask"
	if _, err := ort.TimeInputs(b, nil, bad, 0, 1); err == nil {
		t.Error("a wrong input name was accepted")
	}
	bad[1] = ort.Feed{Name: "attention_mask", Shape: feeds[1].Shape, Float: make([]float32, 32)}
	if _, err := ort.TimeInputs(b, nil, bad, 0, 1); err == nil {
		t.Error("a float mask was accepted")
	}
}
