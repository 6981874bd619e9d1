package model_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
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

// TestPerSampleCountsSequenceFirst: torch's nn.MultiheadAttention exports
// its projections on sequence-first T×N×E activations (the output
// projection as a Gemm on T·N×E rows) and folds the heads into the first
// axis of Q·Kᵀ and P·V (N·H×T×d). Per-sample counts divide by the batch
// the shapes were inferred at, not by that first axis: hand counts for
// T = 5 tokens, E = 8, H = 2 heads of d = 4, equal at batch 1 and 3 (they
// were once divided by T, or by N·H).
func TestPerSampleCountsSequenceFirst(t *testing.T) {
	const T, E, H, d = 5, 8, 2, 4
	b := mt.New("mha", 13).Input("x", -1, T, E).Output("y")
	w := make([]float64, E*E)
	for i := range w {
		w[i] = float64(i%7) - 3
	}
	for _, n := range []string{"wq", "wk", "wv", "wo"} {
		b.Float(n, []int{E, E}, w)
	}
	b.Int64("heads", []int{3}, []int64{T, -1, d})
	b.Int64("rows", []int{2}, []int64{-1, E})
	b.Int64("back", []int{3}, []int64{T, -1, E})
	b.Node("Transpose", "seq_first", []string{"x"}, []string{"xt"}, mt.Ints("perm", 1, 0, 2))
	for _, p := range []string{"q", "k", "v"} {
		b.Node("MatMul", p+"_proj", []string{"xt", "w" + p}, []string{p})
		b.Node("Reshape", p+"_heads", []string{p, "heads"}, []string{p + "h"})
	}
	b.Node("Transpose", "q_t", []string{"qh"}, []string{"qt"}, mt.Ints("perm", 1, 0, 2))
	b.Node("Transpose", "k_t", []string{"kh"}, []string{"kt"}, mt.Ints("perm", 1, 2, 0))
	b.Node("Transpose", "v_t", []string{"vh"}, []string{"vt"}, mt.Ints("perm", 1, 0, 2))
	b.Node("MatMul", "scores", []string{"qt", "kt"}, []string{"s"})
	b.Node("Softmax", "softmax", []string{"s"}, []string{"p"}, mt.Int("axis", -1))
	b.Node("MatMul", "mix", []string{"p", "vt"}, []string{"o"})
	b.Node("Transpose", "o_t", []string{"o"}, []string{"ot"}, mt.Ints("perm", 1, 0, 2))
	b.Node("Reshape", "o_rows", []string{"ot", "rows"}, []string{"or"})
	b.Node("Gemm", "out_proj", []string{"or", "wo"}, []string{"g"})
	b.Node("Reshape", "o_back", []string{"g", "back"}, []string{"gb"})
	b.Node("Transpose", "batch_first", []string{"gb"}, []string{"y"}, mt.Ints("perm", 1, 0, 2))
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	s3, err := m.Specialize(map[string][]int{"x": {3, T, E}})
	if err != nil {
		t.Fatal(err)
	}
	for batch, mm := range map[int]*model.Model{1: m, 3: s3} {
		units := map[string]int64{}
		for _, u := range mm.Units {
			units[u.Name] = u.MACs
		}
		want := map[string]int64{"q_proj": T * E * E, "k_proj": T * E * E, "v_proj": T * E * E, "out_proj": T * E * E}
		if fmt.Sprint(units) != fmt.Sprint(want) {
			t.Errorf("batch %d: unit MACs %v, want %v", batch, units, want)
		}
		am := mm.ActMatMuls()
		if len(am) != 2 {
			t.Fatalf("batch %d: activation MatMuls %v, want scores and mix", batch, am)
		}
		for _, a := range am {
			if a.MACs != H*T*T*d || a.OutElems != map[string]int64{"scores": H * T * T, "mix": H * T * d}[a.Name] {
				t.Errorf("batch %d: %s: %d MACs, %d output elements; want %d, %d", batch, a.Name, a.MACs, a.OutElems, H*T*T*d,
					map[string]int64{"scores": H * T * T, "mix": H * T * d}[a.Name])
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

// TestNonLinearsZoo finds tiny_bert's and tiny_vit's non-linearities at
// both opsets: per layer one Softmax (rows of 16 keys: 4 heads × 16
// queries × 16 keys per sample), one GELU (16 × 64 per sample) and two
// LayerNorms (16 × 32), plus the embedding's (BERT) or the final (ViT)
// LayerNorm, decomposed at opset 13 and LayerNormalization at 17.
func TestNonLinearsZoo(t *testing.T) {
	for _, name := range []string{"tiny_bert", "tiny_vit"} {
		dir := filepath.Join("..", "testdata", "zoo", name)
		meta := readZooMeta(t, dir)
		for _, f := range []string{"op13.onnx", "op17.onnx"} {
			_, s := specializeZoo(t, filepath.Join(dir, f), meta, 2)
			count := map[string]int{}
			for _, nl := range s.NonLinears() {
				count[nl.Kind]++
				n := s.Nodes[nl.Node]
				switch nl.Kind {
				case model.Softmax:
					if nl.Row != 16 && name == "tiny_bert" || nl.Elems != 4*int64(nl.Row)*int64(nl.Row) {
						t.Errorf("%s/%s: softmax %s: row %d, %d elements", name, f, nl.Name, nl.Row, nl.Elems)
					}
				case model.GELU:
					if n.Op != "Mul" && n.Op != "Gelu" || nl.Row != 64 {
						t.Errorf("%s/%s: GELU at %s node %s, row %d", name, f, n.Op, nl.Name, nl.Row)
					}
				case model.LayerNorm:
					want := "Div"
					if f == "op17.onnx" {
						want = "LayerNormalization"
					}
					if n.Op != want || nl.Row != 32 {
						t.Errorf("%s/%s: layer norm at %s node %s, row %d", name, f, n.Op, nl.Name, nl.Row)
					}
				}
				if nl.Kind != model.LayerNorm && !strings.HasPrefix(nl.Block, "/") {
					t.Errorf("%s/%s: %s has no block", name, f, nl.Name)
				}
			}
			if count[model.Softmax] != 2 || count[model.GELU] != 2 || count[model.LayerNorm] != 5 {
				t.Errorf("%s/%s: found %v, want 2 softmax, 2 GELU, 5 layer norms", name, f, count)
			}
		}
	}
}

// TestNonLinearBlocks: the blocks of PyTorch module paths.
func TestNonLinearBlocks(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "testdata", "models", "fmnist_vit.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Specialize(map[string][]int{m.Inputs[0].Name: append([]int{1}, m.Inputs[0].Shape[1:]...)})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, nl := range s.NonLinears() {
		count[nl.Block]++
	}
	// Per block two layer norms, a softmax and a GELU; the final norm.
	if len(count) != 3 || count["/blocks/blocks.0"] != 4 || count["/blocks/blocks.1"] != 4 || count["/norm"] != 1 {
		t.Errorf("fmnist_vit blocks: %v", count)
	}
}
