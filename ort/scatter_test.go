//go:build ort

package ort_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/ort"
)

// scatterDupTol bounds |ONNX Runtime − engine| on the duplicates graph:
// the scatters copy values, so the two differ by float32 rounding of the
// products around them (values of size ~3, ε32 ≈ 6e-8).
const scatterDupTol = 1e-5

// TestScatterTinyORT: testdata/models/scatter_tiny_op13.onnx and _op17.onnx
// (ScatterND from index assignment, ScatterElements by the INT64 input
// "index" and from scatter_add) run in ONNX Runtime on the two inputs of
// scatter_tiny_ref.npz and give PyTorch's logits; their W8A8 QDQ export
// loads and runs there and agrees with bitplan's simulation of the plan on
// 200 random inputs (random distinct widths as "index"); tolerances
// tinyFloatTol, tinyQDQTol.
func TestScatterTinyORT(t *testing.T) {
	tinyORT(t, "scatter_tiny", tinyCase{seed: 8, inputs: []string{"input", "index"},
		gen: func(t *testing.T, r *rand.Rand, n int) (data.Dataset, [][]float64) {
			x := &data.Array{Shape: []int{n, 1, 8, 8}, DType: "<f4", Float: make([]float64, n*64)}
			for i := range x.Float {
				x.Float[i] = float64(float32(r.NormFloat64()))
			}
			ix := &data.Array{Shape: []int{n, 3, 8, 2}, DType: "<i8"}
			for range n * 3 * 8 {
				p := r.Perm(8)
				ix.Int = append(ix.Int, int64(p[0]), int64(p[1]))
			}
			ds, err := data.NewArrays([]string{"input", "index"}, []*data.Array{x, ix}, make([]int, n))
			if err != nil {
				t.Fatal(err)
			}
			return ds, [][]float64{x.Float, ints(ix.Int)}
		}})
}

// scatterDupModel is x N×6 (float) and ix N×6 (INT64) → d = x·w (N×6,
// a Gemm, so that data and updates are computed), then at opset 18:
//
//	ScatterElements(d, ix, 2·tanh(d), axis 1)                 computed indices
//	ScatterElements(d, [[1, 4, 1, 4, 0, 1]]·ones, d², axis 1, add)  constant duplicates
//	ScatterND(dᵀ (6×N), [[2], [5], [2]], (3·d)ᵀ[:3])            duplicate rows
//	ScatterND(dᵀ, [[0], [0]], dᵀ[:2], add)
//
// summed and multiplied back to N×6 logits: every scatter's duplicates
// reach the output.
func scatterDupModel(t *testing.T) ([]byte, *model.Model) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 8))
	b := mt.New("scatter-dups", 18)
	b.Input("x", -1, 6)
	b.IntInput("ix", -1, 6)
	w := make([]float64, 36)
	for i := range w {
		w[i] = r.NormFloat64() / 2
	}
	b.Float("w", []int{6, 6}, w)
	b.Float("two", []int{}, []float64{2}).Float("three", []int{}, []float64{3})
	b.Int64("cols", []int{1, 6}, []int64{1, 4, 1, 4, 0, 1})
	b.Int64("rows", []int{3, 1}, []int64{2, 5, 2})
	b.Int64("zeros", []int{2, 1}, []int64{0, 0})
	b.Int64("s0", []int{1}, []int64{0}).Int64("s3", []int{1}, []int64{3}).Int64("s2", []int{1}, []int64{2})
	b.Node("Gemm", "gemm", []string{"x", "w"}, []string{"d"})
	b.Node("Tanh", "", []string{"d"}, []string{"td"})
	b.Node("Mul", "", []string{"td", "two"}, []string{"u1"})
	b.Node("ScatterElements", "computed", []string{"d", "ix", "u1"}, []string{"e1"}, mt.Int("axis", 1))
	b.Node("Shape", "", []string{"d"}, []string{"ds"})
	b.Node("Expand", "", []string{"cols", "ds"}, []string{"ce"})
	b.Node("Mul", "", []string{"d", "d"}, []string{"dd"})
	b.Node("ScatterElements", "adddup", []string{"d", "ce", "dd"}, []string{"e2"}, mt.Int("axis", 1), mt.String("reduction", "add"))
	b.Node("Transpose", "", []string{"d"}, []string{"dt"})
	b.Node("Mul", "", []string{"d", "three"}, []string{"d3"})
	b.Node("Transpose", "", []string{"d3"}, []string{"d3t"})
	b.Node("Slice", "", []string{"d3t", "s0", "s3"}, []string{"u3"})
	b.Node("ScatterND", "rows", []string{"dt", "rows", "u3"}, []string{"n1t"})
	b.Node("Slice", "", []string{"dt", "s0", "s2"}, []string{"u4"})
	b.Node("ScatterND", "addrows", []string{"dt", "zeros", "u4"}, []string{"n2t"}, mt.String("reduction", "add"))
	b.Node("Add", "", []string{"n1t", "n2t"}, []string{"nt"})
	b.Node("Transpose", "", []string{"nt"}, []string{"n"})
	b.Node("Add", "", []string{"e1", "e2"}, []string{"e"})
	b.Node("Mul", "", []string{"e", "n"}, []string{"logits"})
	b.Output("logits")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), m
}

// TestScatterDuplicatesORT: the engine's rule for duplicate indices with
// reduction none — the last in the indices' row-major order wins — is ONNX
// Runtime's, for ScatterElements with constant and computed (random, most
// rows with duplicates) indices and ScatterND with a repeated row, and
// both add every duplicate with reduction add: the logits of
// scatterDupModel agree on 64 random samples within float32 rounding.
func TestScatterDuplicatesORT(t *testing.T) {
	initORT(t)
	b, m := scatterDupModel(t)
	e, err := nn.New(m, &nn.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	r := rand.New(rand.NewPCG(2, 8))
	x, ix := make([]float64, n*6), make([]float64, n*6)
	dups := 0
	for s := 0; s < n; s++ {
		seen := map[int]bool{}
		for j := 0; j < 6; j++ {
			x[s*6+j] = float64(float32(r.NormFloat64()))
			v := r.IntN(12) - 6
			ix[s*6+j] = float64(v)
			if seen[(v+6)%6] {
				dups++
			}
			seen[(v+6)%6] = true
		}
	}
	want, err := e.LogitsInputs([][]float64{x, ix}, n)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.Open(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.RunInputs([][]float64{x, ix}, nil, n)
	if err != nil {
		t.Fatal(err)
	}
	maxd, scale := 0.0, 1.0
	for i, v := range want {
		maxd, scale = math.Max(maxd, math.Abs(v-float64(got[i]))), math.Max(scale, math.Abs(v))
	}
	t.Logf("%d duplicate computed indices in %d samples; engine against ONNX Runtime: max |Δ| %.3g (scale %.3g)", dups, n, maxd, scale)
	if maxd > scatterDupTol*scale {
		t.Errorf("engine and ONNX Runtime differ by %.3g (scale %.3g) on duplicate indices", maxd, scale)
	}
}
