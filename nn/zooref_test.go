package nn

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
)

// zooRefTol is the agreement required with the PyTorch float64 reference
// of scripts/make_transformer_reference.py (double backprop on the module whose
// float32 weights the ONNX file holds): 1e-6 relative. The exporter folds
// nothing in these models' weights (no BatchNorm), so both sides compute
// with identical parameters and differ by float64 rounding only.
const zooRefTol = 1e-6

// zooRefSmall bounds the units whose exact traces are checked on every run:
// an exact trace costs one Hessian-vector product per parameter (about
// 2 ms each on this machine), so the default run checks every embedding
// table (the token table on the rows its ids select, see zooTrace) and
// every unit of at most zooRefSmall parameters (tiny_bert's position and
// type embeddings and classifier; tiny_vit's classifier), and
// BITPLAN_ZOOREF_ALL=1 checks them all (every unit passed when the
// references were committed: testdata/ref/README.md).
const zooRefSmall = 600

// zooRefMeta mirrors testdata/ref/<model>/meta.json.
type zooRefMeta struct {
	Model            string             `json:"model"`
	ONNX             string             `json:"onnx"`
	Inputs           []string           `json:"inputs"`
	N                int                `json:"n"`
	Loss             float64            `json:"loss"`
	ExactBlockTraces map[string]float64 `json:"exact_block_traces"`
	GradSqNorms      map[string]float64 `json:"grad_sq_norms"`
	BlockSizes       map[string]int     `json:"block_sizes"`
}

// modulePath returns the PyTorch module path of a unit of an exported
// graph: from its bias or weight initializer's name ("layers.0.f1.bias"),
// else from the node's scope name ("/blocks/blocks.0/att/qkv/MatMul"
// → "blocks.0.att.qkv").
func modulePath(u UnitLayout) string {
	if p, ok := strings.CutSuffix(u.Bias, ".bias"); ok {
		return p
	}
	if p, ok := strings.CutSuffix(u.Weight, ".weight"); ok && !strings.HasPrefix(u.Weight, "onnx::") {
		return p
	}
	segs := strings.Split(strings.Trim(u.Name, "/"), "/")
	segs = segs[:len(segs)-1] // the operator
	var keep []string
	for i, s := range segs {
		if i+1 < len(segs) && strings.HasPrefix(segs[i+1], s+".") {
			continue // a container's scope repeated in its child's
		}
		keep = append(keep, s)
	}
	return strings.Join(keep, ".")
}

// zooTrace returns the exact trace of unit u's Hessian block. For an
// embedding table gathered by a graph input (token ids) only the rows the
// ids select can have a non-zero Hessian: their blocks are traced, and a
// product with a random direction on the other rows must vanish exactly
// (the loss does not depend on them), which makes the lookup's linearity
// in the table part of the check at a fraction of the cost.
func zooTrace(ctx context.Context, t *testing.T, e *Engine, ds data.Dataset, m *model.Model, u UnitLayout, inputs []string, vals [][]float64) (float64, error) {
	var ids []float64
	if u.Op == "Gather" {
		nd := m.Nodes[m.Units[slices.IndexFunc(m.Units, func(x model.Unit) bool { return x.Name == u.Name })].Node]
		if i := slices.Index(inputs, nd.Input(1)); i >= 0 {
			ids = vals[i]
		}
	}
	if ids == nil {
		return e.BlockTrace(ctx, ds, hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}, 64)
	}
	rows, width := u.WeightShape[0], u.Size/u.WeightShape[0]
	used := make([]bool, rows)
	for _, v := range ids {
		used[int(v)] = true
	}
	tr := 0.0
	v, hv := make([]float64, e.Dim()), make([]float64, e.Dim())
	for r := 0; r < rows; r++ {
		if !used[r] {
			v[u.Offset+r*width] = 1 + float64(r%3)
			continue
		}
		x, err := e.BlockTrace(ctx, ds, hessian.Block{Name: u.Name, Offset: u.Offset + r*width, Size: width}, 64)
		if err != nil {
			return 0, err
		}
		tr += x
	}
	if err := e.HVP(ctx, ds, [][]float64{hv}, [][]float64{v}); err != nil {
		return 0, err
	}
	for i, x := range hv {
		if x != 0 {
			t.Errorf("%s: H·v is %g at θ[%d] for a direction on table rows no id selects, want exactly 0", u.Name, x, i)
			break
		}
	}
	return tr, nil
}

// TestZooTorchReference compares the engine with PyTorch's double backprop
// on tiny_bert (token ids and an attention mask: embedding lookups, the
// mask's integer arithmetic, LayerNorm, exact GELU, attention) and
// tiny_vit, at every committed opset: logits, loss, and for every unit the
// exact trace of its Hessian block (BlockTrace, one product per
// parameter) and its gradient's squared norm.
func TestZooTorchReference(t *testing.T) {
	for _, name := range []string{"tiny_bert", "tiny_vit"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "ref", name)
			raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
			if err != nil {
				t.Fatalf("committed reference missing (regenerate with /usr/bin/python3 scripts/make_transformer_reference.py): %v", err)
			}
			var meta zooRefMeta
			if err := json.Unmarshal(raw, &meta); err != nil {
				t.Fatalf("meta.json: %v", err)
			}
			var arrays []*data.Array
			for _, in := range meta.Inputs {
				arrays = append(arrays, readNPY(t, filepath.Join(dir, in+".npy")))
			}
			lab := readNPY(t, filepath.Join(dir, "labels.npy"))
			labels := make([]int, len(lab.Int))
			for i, v := range lab.Int {
				labels[i] = int(v)
			}
			ds, err := data.NewArrays(meta.Inputs, arrays, labels)
			if err != nil {
				t.Fatal(err)
			}
			wantLogits := readNPY(t, filepath.Join(dir, "logits.npy")).Float
			ctx := context.Background()
			for _, opset := range []int{11, 13, 17} {
				m, err := model.Load(filepath.Join("..", "testdata", "zoo", name, fmt.Sprintf("op%d.onnx", opset)))
				if err != nil {
					t.Fatal(err)
				}
				e, err := New(m, &Options{BatchSize: meta.N})
				if err != nil {
					t.Fatal(err)
				}
				vals := make([][]float64, len(arrays))
				for i, a := range arrays {
					vals[i] = arrayValues(a)
				}
				logits, err := e.LogitsInputs(vals, meta.N)
				if err != nil {
					t.Fatal(err)
				}
				worst, scale := 0.0, 0.0
				for i, v := range wantLogits {
					worst, scale = math.Max(worst, math.Abs(logits[i]-v)), math.Max(scale, math.Abs(v))
				}
				if worst > zooRefTol*scale {
					t.Errorf("op%d: logits differ by %.3g (scale %.3g)", opset, worst, scale)
				}
				g := make([]float64, e.Dim())
				ev, err := e.Gradient(ctx, ds, g)
				if err != nil {
					t.Fatal(err)
				}
				if r := math.Abs(ev.Loss-meta.Loss) / meta.Loss; r > zooRefTol {
					t.Errorf("op%d: loss %.12g, PyTorch %.12g", opset, ev.Loss, meta.Loss)
				}
				seen, skipped := 0, 0
				for _, u := range e.Units() {
					path := modulePath(u)
					want, ok := meta.ExactBlockTraces[path]
					if !ok {
						t.Errorf("op%d: unit %s (module %q) has no reference", opset, u.Name, path)
						continue
					}
					seen++
					if meta.BlockSizes[path] != u.Size {
						t.Errorf("op%d: unit %s has %d parameters, module %s %d", opset, u.Name, u.Size, path, meta.BlockSizes[path])
						continue
					}
					g2 := 0.0
					for _, x := range g[u.Offset : u.Offset+u.Size] {
						g2 += x * x
					}
					if w := meta.GradSqNorms[path]; math.Abs(g2-w) > zooRefTol*w {
						t.Errorf("op%d: unit %s: |g|² %.12g, PyTorch %.12g", opset, u.Name, g2, w)
					}
					if opset != 13 {
						continue // exact traces once; the opsets' graphs agree in value and gradient
					}
					if u.Size > zooRefSmall && u.Op != "Gather" && os.Getenv("BITPLAN_ZOOREF_ALL") == "" {
						skipped++
						continue
					}
					got, err := zooTrace(ctx, t, e, ds, m, u, meta.Inputs, vals)
					if err != nil {
						t.Fatal(err)
					}
					if math.Abs(got-want) > zooRefTol*math.Abs(want) {
						t.Errorf("op%d: exact trace of %s: %.12g, PyTorch %.12g (relative %.3g)", opset, u.Name, got, want, math.Abs(got-want)/math.Abs(want))
					}
				}
				if skipped > 0 {
					t.Logf("op%d: exact traces of %d larger units not checked (set BITPLAN_ZOOREF_ALL=1 to check every unit)", opset, skipped)
				}
				if seen != len(meta.ExactBlockTraces) {
					t.Errorf("op%d: %d units matched of the reference's %d layers", opset, seen, len(meta.ExactBlockTraces))
				}
			}
		})
	}
}
