package model_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/model"
)

// zooMeta is the part of testdata/zoo/<name>/meta.json the tests read.
type zooMeta struct {
	Model  string `json:"model"`
	Opsets []int  `json:"opsets"`
	Inputs []struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
		Dtype string `json:"dtype"`
	} `json:"inputs"`
	LogitsShape []int `json:"logits_shape"`
}

// zooModels lists the committed small zoo models (testdata/zoo/README.md).
var zooModels = []string{"tiny_resnet", "tiny_bert", "tiny_vit", "tiny_quartznet", "tiny_lstm", "tiny_gru", "tiny_unet"}

func readZooMeta(t *testing.T, dir string) zooMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		t.Fatalf("committed zoo model missing: %v (regenerate with scripts/zoo.py)", err)
	}
	var m zooMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s/meta.json: %v", dir, err)
	}
	return m
}

// specializeZoo loads one exported file and specialises it to the batch
// of the committed sample inputs.
func specializeZoo(t *testing.T, path string, meta zooMeta, batch int) (*model.Model, *model.Model) {
	t.Helper()
	m, err := model.Load(path)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	in := make(map[string][]int)
	for _, v := range meta.Inputs {
		in[v.Name] = append([]int{batch}, v.Shape[1:]...)
	}
	s, err := m.Specialize(in)
	if err != nil {
		t.Fatalf("specialize at batch %d: %v", batch, err)
	}
	return m, s
}

// TestZooImport checks import normalisation on every committed zoo model at
// both opsets: the graph loads, specialised at two batch sizes no node
// computes on shapes any more (Shape, ConstantOfShape, Range, Constant are
// all folded), no Identity is left, and the logits' shape is inferred and
// equals PyTorch's.
func TestZooImport(t *testing.T) {
	for _, name := range zooModels {
		dir := filepath.Join("..", "testdata", "zoo", name)
		meta := readZooMeta(t, dir)
		for _, op := range meta.Opsets {
			t.Run(fmt.Sprintf("%s/op%d", name, op), func(t *testing.T) {
				path := filepath.Join(dir, fmt.Sprintf("op%d.onnx", op))
				for _, batch := range []int{meta.LogitsShape[0], 5} {
					m, s := specializeZoo(t, path, meta, batch)
					if m.Opset != int64(op) {
						t.Errorf("opset %d, want %d", m.Opset, op)
					}
					if r := s.Residual(); len(r) > 0 {
						var l []string
						for _, n := range r {
							l = append(l, n.Label())
						}
						t.Errorf("batch %d: shape computations left after folding: %s", batch, strings.Join(l, "; "))
					}
					if slices.Contains(s.Ops(), "Identity") {
						t.Errorf("Identity left: ops %v", s.Ops())
					}
					want := append([]int{batch}, meta.LogitsShape[1:]...)
					if got, ok := s.Shapes.Dims["logits"]; !ok || !slices.Equal(got, want) {
						t.Errorf("batch %d: logits shape %v (known %v), want %v", batch, got, ok, want)
					}
					for _, u := range s.Units {
						if !u.ShapeKnown {
							t.Errorf("batch %d: unit %s: shape unknown", batch, u.Name)
						}
					}
				}
			})
		}
	}
}

// TestZooTinyResNetBiasesAndTie checks the two import rules on the real
// export of tiny_resnet: the zero biases torch de-duplicated through an
// Identity node are separate parameters again (hid.bias is its own
// initializer, Gemm hid has a bias), and proj.weight, read by two Conv
// nodes, is one unit over both nodes with summed MACs.
func TestZooTinyResNetBiasesAndTie(t *testing.T) {
	for _, op := range []int{11, 13, 17} {
		m, err := model.Load(filepath.Join("..", "testdata", "zoo", "tiny_resnet", fmt.Sprintf("op%d.onnx", op)))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(m.Ops(), "Identity") {
			t.Errorf("op%d: Identity left: %v", op, m.Ops())
		}
		var proj, hid *model.Unit
		for i := range m.Units {
			switch m.Units[i].Weight {
			case "proj.weight":
				proj = &m.Units[i]
			case "hid.weight":
				hid = &m.Units[i]
			}
		}
		if hid == nil || hid.Bias != "hid.bias" || m.Initializers["hid.bias"] == nil {
			t.Fatalf("op%d: hid unit %+v, want bias hid.bias as its own initializer", op, hid)
		}
		if &m.Initializers["hid.bias"].Float[0] == &m.Initializers["proj.bias"].Float[0] {
			t.Errorf("op%d: hid.bias shares storage with proj.bias", op)
		}
		if proj == nil || len(proj.Nodes) != 2 || proj.Bias != "proj.bias" {
			t.Fatalf("op%d: proj unit %+v, want one unit over 2 Conv nodes", op, proj)
		}
		// 1×1 conv 16→16 on 8×8, twice.
		if want := int64(2 * 16 * 16 * 8 * 8); proj.MACs != want {
			t.Errorf("op%d: proj MACs %d, want %d", op, proj.MACs, want)
		}
		if n := len(m.Units); n != 9 {
			t.Errorf("op%d: %d units, want 9 (7 convs, proj once, 2 gemms)", op, n)
		}
	}
}

// TestZooCache reports import normalisation on the large zoo models when
// BITPLAN_ZOO_DIR names a directory written by
// `scripts/zoo.py --large --out DIR` (skipped otherwise).
func TestZooCache(t *testing.T) {
	dir := os.Getenv("BITPLAN_ZOO_DIR")
	if dir == "" {
		t.Skip("set BITPLAN_ZOO_DIR to a directory made by /usr/bin/python3 scripts/zoo.py --large --out DIR")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m, err := model.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			in := make(map[string][]int)
			for _, v := range m.Inputs {
				s := slices.Clone(v.Shape)
				s[0] = 2
				in[v.Name] = s
			}
			s, err := m.Specialize(in)
			if err != nil {
				t.Fatal(err)
			}
			var res []string
			for _, n := range s.Residual() {
				res = append(res, n.Label())
			}
			unknown := 0
			for _, n := range s.Nodes {
				for _, o := range n.Outputs {
					if _, ok := s.Shapes.Dims[o]; !ok && o != "" {
						unknown++
					}
				}
			}
			t.Logf("%d nodes, %d units, ops %v, residual %v, unknown shapes %d, logits %v",
				len(s.Nodes), len(s.Units), s.Ops(), res, unknown, s.Shapes.Dims[m.Outputs[0].Name])
			if len(res) > 0 {
				t.Errorf("residual shape computations: %v", res)
			}
		})
	}
}

// TestNormalizeProto checks that the normalised proto of every committed
// zoo export imports to the same graph: the same nodes in the same
// positions, the same initializers with equal values, the same units.
func TestNormalizeProto(t *testing.T) {
	for _, name := range zooModels {
		for _, op := range []int{11, 13, 17} {
			b, err := os.ReadFile(filepath.Join("..", "testdata", "zoo", name, fmt.Sprintf("op%d.onnx", op)))
			if err != nil {
				t.Fatal(err)
			}
			mp := &onnx.ModelProto{}
			if err := proto.Unmarshal(b, mp); err != nil {
				t.Fatal(err)
			}
			orig := len(mp.Graph.Node)
			np, m, err := model.NormalizeProto(mp)
			if err != nil {
				t.Fatalf("%s/op%d: %v", name, op, err)
			}
			if len(mp.Graph.Node) != orig {
				t.Fatalf("%s/op%d: the input proto was modified", name, op)
			}
			m2, err := model.FromProto(np)
			if err != nil {
				t.Fatalf("%s/op%d: normalised proto: %v", name, op, err)
			}
			if len(m2.Nodes) != len(m.Nodes) || len(np.Graph.Node) != len(m.Nodes) {
				t.Fatalf("%s/op%d: %d nodes, reimported %d, proto %d", name, op, len(m.Nodes), len(m2.Nodes), len(np.Graph.Node))
			}
			for i, n := range m.Nodes {
				n2 := m2.Nodes[i]
				if n.Op != n2.Op || !slices.Equal(n.Inputs, n2.Inputs) || n.FileIndex != i || n2.FileIndex != i {
					t.Fatalf("%s/op%d: node %d: %s %v vs %s %v", name, op, i, n.Label(), n.Inputs, n2.Label(), n2.Inputs)
				}
			}
			for k, v := range m.Initializers {
				w := m2.Initializers[k]
				if w == nil || !slices.Equal(v.Shape, w.Shape) || !slices.Equal(v.Int, w.Int) || !slices.Equal(v.Float, w.Float) {
					t.Fatalf("%s/op%d: initializer %q differs after the round trip", name, op, k)
				}
			}
			if len(m.Units) != len(m2.Units) {
				t.Errorf("%s/op%d: %d units, reimported %d", name, op, len(m.Units), len(m2.Units))
			}
		}
	}
}
