package model_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/model"
)

// TestTestdataModels checks the units of the exported models against their
// documented architectures (testdata/models/README.md).
func TestTestdataModels(t *testing.T) {
	cases := []struct {
		name   string
		units  int
		params int64
		check  func(t *testing.T, m *model.Model)
	}{
		{"mlp", 3, 235146, nil},
		{"lenet", 5, 61706, func(t *testing.T, m *model.Model) {
			// conv1: 6 output maps of 28×28, 25 MACs each.
			if u := m.Units[0]; u.MACs != 6*28*28*25 || u.InElems != 784 || u.OutElems != 6*28*28 {
				t.Errorf("conv1 %+v", u)
			}
		}},
		{"rescnn", 7, -1, func(t *testing.T, m *model.Model) {
			dw := 0
			for _, u := range m.Units {
				if u.Op == "Conv" && u.Group > 1 && u.Group == u.OutChannels {
					dw++
				}
			}
			if dw == 0 {
				t.Error("no depthwise convolution found")
			}
			if ops := m.Ops(); len(ops) == 0 {
				t.Error("no ops")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "models", c.name+".onnx")
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("committed model %s missing: %v", path, err)
			}
			m, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var params int64
			for _, u := range m.Units {
				params += u.Params
				if !u.ShapeKnown || u.MACs <= 0 {
					t.Errorf("unit %s: shapes unknown or no MACs: %+v", u.Name, u)
				}
			}
			if len(m.Units) != c.units || (c.params >= 0 && params != c.params) {
				t.Errorf("%d units with %d parameters, want %d and %d", len(m.Units), params, c.units, c.params)
			}
			if c.check != nil {
				c.check(t, m)
			}
		})
	}
}
