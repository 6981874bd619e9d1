package model_test

import (
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/model"
)

// TestActMatMulsTinyBERT checks the attention products of the zoo's
// BERT-style encoder against a hand count: 2 layers, hidden 32, 4 heads of
// width 8, sequence 16, so per layer and sample Q·Kᵀ (4×16×8 · 4×8×16) and
// P·V (4×16×16 · 4×16×8) each take 4·16·16·8 = 8,192 MACs, 32,768 in all;
// at every batch size and both opsets, and no weight MatMul among them.
func TestActMatMulsTinyBERT(t *testing.T) {
	dir := filepath.Join("..", "testdata", "zoo", "tiny_bert")
	meta := readZooMeta(t, dir)
	for _, f := range []string{"op13.onnx", "op17.onnx"} {
		for _, batch := range []int{1, 2, 5} {
			_, s := specializeZoo(t, filepath.Join(dir, f), meta, batch)
			am := s.ActMatMuls()
			want := []string{"/layers.0/att/MatMul", "/layers.0/att/MatMul_1", "/layers.1/att/MatMul", "/layers.1/att/MatMul_1"}
			if len(am) != len(want) {
				t.Fatalf("%s batch %d: %d activation MatMuls %v, want %v", f, batch, len(am), am, want)
			}
			var total int64
			for i, a := range am {
				if a.Name != want[i] || !a.ShapeKnown {
					t.Errorf("%s batch %d: #%d = %q (shape known %v), want %q", f, batch, i, a.Name, a.ShapeKnown, want[i])
				}
				if a.MACs != 4*16*16*8 {
					t.Errorf("%s batch %d: %s: %d MACs, want %d", f, batch, a.Name, a.MACs, 4*16*16*8)
				}
				// Q 4×16×8 and Kᵀ 4×8×16; P 4×16×16 and V 4×16×8.
				wa, wb, wo := int64(4*16*8), int64(4*8*16), int64(4*16*16)
				if i%2 == 1 {
					wa, wb, wo = 4*16*16, 4*16*8, 4*16*8
				}
				if a.AElems != wa || a.BElems != wb || a.OutElems != wo {
					t.Errorf("%s batch %d: %s: elements %d, %d → %d, want %d, %d → %d", f, batch, a.Name, a.AElems, a.BElems, a.OutElems, wa, wb, wo)
				}
				total += a.MACs
			}
			if total != 32768 {
				t.Errorf("%s batch %d: attention MACs %d, want 32768", f, batch, total)
			}
			for _, u := range s.Units {
				for _, a := range am {
					if u.Node == a.Node {
						t.Errorf("%s: unit %q counted as an activation MatMul", f, u.Name)
					}
				}
			}
		}
	}
}

// TestActMatMulsNoneInCNN: a CNN has no activation × activation product.
func TestActMatMulsNoneInCNN(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "testdata", "models", "lenet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if am := m.ActMatMuls(); len(am) != 0 {
		t.Errorf("lenet: %d activation MatMuls, want 0: %v", len(am), am)
	}
}
