package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBertStudySmall runs the BERT study at a tiny scale (2 probes, 2
// fine-tuning steps, 50 test sequences, one budget) and checks that the
// doc has the table rows of every method and the fused projection's head
// groups.
func TestBertStudySmall(t *testing.T) {
	c := studies["bert"]
	root := filepath.Join("..", "..", "..")
	c.study = "bert"
	c.model = filepath.Join(root, c.model)
	c.train = filepath.Join(root, c.train)
	c.testData = filepath.Join(root, c.testData)
	c.out = filepath.Join(t.TempDir(), "bert.md")
	c.calib, c.tune, c.probes, c.steps, c.test = 16, 64, 2, 2, 50
	c.seed, c.fracs = 1, []float64{0.3}
	if err := run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, want := range []string{"| 30 % | ilp |", "| 30 % | uniform |", "| 30 % | l1 |", "| 30 % | threshold |",
		"/layers.0/att/qkv/MatMul: 4 structures", "/layers.1/f1/MatMul: 64 structures", "held fixed by the study (/pool/Gemm)"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the doc lacks %q:\n%s", want, doc)
		}
	}
}
