package nn_test

import (
	"context"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// inputHVPSetup loads rescnn in float64 with 3 reference samples: /conv1
// and /down read the same tensor (the stem's output), so the two units'
// inputs are different edges of one value.
func inputHVPSetup(t *testing.T) (*nn.Engine, data.Dataset) {
	t.Helper()
	m, err := model.Load(filepath.Join("..", "testdata", "models", "rescnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Precision: nn.Float64, BatchSize: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "testdata", "ref", "rescnn")
	all, err := data.LoadNPY(filepath.Join(dir, "inputs.npy"), filepath.Join(dir, "labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	return e, data.Head(all, 3)
}

// coord is one coordinate of a unit's input over the whole dataset
// (sample-major index into the dataset's batch of that input).
type coord struct{ unit, idx int }

// productsAt returns H restricted to the coordinates cs (dense, by unit
// vectors, one direction per coordinate) from InputHVP, with directions
// over all units or, when own, each on its coordinate's unit only (the
// entries between units are then NaN).
func productsAt(t *testing.T, e *nn.Engine, ds data.Dataset, units []string, cs []coord, own bool) [][]float64 {
	t.Helper()
	h := make([][]float64, len(cs))
	dirs := make([]int, len(cs))
	for i := range h {
		h[i] = make([]float64, len(cs))
		dirs[i] = -1
		if own {
			dirs[i] = cs[i].unit
			for j := range h[i] {
				if cs[j].unit != cs[i].unit {
					h[i][j] = math.NaN()
				}
			}
		}
	}
	var mu sync.Mutex
	err := e.InputHVP(context.Background(), ds, units, dirs, func(c *nn.InputChunk) {
		for j, cj := range cs {
			per := len(c.X[cj.unit]) / c.N
			if q := cj.idx - c.Start*per; q >= 0 && q < len(c.X[cj.unit]) {
				c.V[j][cj.unit][q] = 1
			}
		}
	}, func(c *nn.InputChunk) error {
		mu.Lock()
		defer mu.Unlock()
		for j := range cs {
			for i, ci := range cs {
				per := len(c.X[ci.unit]) / c.N
				if q := ci.idx - c.Start*per; q >= 0 && q < len(c.X[ci.unit]) && c.HV[j][ci.unit] != nil {
					h[i][j] += c.HV[j][ci.unit][q]
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// edgeLoss evaluates the loss with δ added to the listed coordinates of the
// units' inputs through input quantizers (which act on each unit's own
// copy, as InputHVP's perturbations do).
func edgeLoss(t *testing.T, e *nn.Engine, ds data.Dataset, units []string, cs []coord, d []float64) float64 {
	t.Helper()
	if ds.Len() > e.BatchSize() {
		t.Fatalf("edgeLoss needs one chunk, got %d samples at batch size %d", ds.Len(), e.BatchSize())
	}
	e.ClearInputQuantizers()
	defer e.ClearInputQuantizers()
	for u, name := range units {
		var mine []int
		var amt []float64
		for k, c := range cs {
			if c.unit == u && d[k] != 0 {
				mine, amt = append(mine, c.idx), append(amt, d[k])
			}
		}
		if len(mine) == 0 {
			continue
		}
		// ds must be one chunk: the quantizer sees all of it.
		if err := e.SetInputQuantizer(name, func(x []float64) {
			for k, q := range mine {
				x[q] += amt[k]
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := e.Evaluate(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	return r.Loss
}

// The products of InputHVP restricted to a few coordinates of /conv1's,
// /down's (the same tensor, two edges) and /fc's inputs equal the
// central second differences of the loss evaluated with the inputs
// perturbed through input quantizers, diagonal and off-diagonal entries,
// across units and within a unit; the matrix is symmetric and zero
// between different samples.
func TestInputHVPMatchesFiniteDifferences(t *testing.T) {
	e, all := inputHVPSetup(t)
	// One chunk (2 samples) so the perturbing quantizers know their
	// samples.
	ds := data.Head(all, 2)
	units := []string{"/conv1/Conv", "/down/Conv", "/fc/Gemm"}
	per := 16 * 28 * 28
	// /down is a 1×1 convolution of stride 2: it reads even rows and
	// columns only. The coordinates are away from ReLU kinks at ±ε (a
	// second difference across a kink is O(1/ε); at channel 9 of /down's
	// input it was).
	cs := []coord{{0, 6*28 + 8}, {0, 3*784 + 14*28 + 14}, {1, 6*28 + 8}, {1, 2*784 + 10*28 + 12}, {1, 2*784 + 10*28 + 13},
		{2, 3}, {2, 17}, {2, 64 + 3}, {0, per + 3*784 + 14*28 + 14}}
	h := productsAt(t, e, ds, units, cs, false)
	// Directions on their own unit give the same diagonal blocks.
	own := productsAt(t, e, ds, units, cs, true)
	for i := range cs {
		for j := range cs {
			if cs[i].unit == cs[j].unit && math.Abs(own[i][j]-h[i][j]) > 1e-12*(1+math.Abs(h[i][j])) {
				t.Errorf("H(%v, %v) = %g from directions on all units, %g from directions on one", cs[i], cs[j], h[i][j], own[i][j])
			}
		}
	}
	const eps = 1e-3 // loss round-off ≈ 1e-15, so entries to ±1.5e-9
	for i := range cs {
		for j := range cs {
			if d := math.Abs(h[i][j] - h[j][i]); d > 1e-10*(1+math.Abs(h[i][j])) {
				t.Errorf("H not symmetric at (%v, %v): %g vs %g", cs[i], cs[j], h[i][j], h[j][i])
			}
		}
	}
	sample := func(c coord) int {
		if c.unit == 2 {
			return c.idx / 64
		}
		return c.idx / per
	}
	for i := range cs {
		for j := i; j < len(cs); j++ {
			if sample(cs[i]) != sample(cs[j]) {
				if h[i][j] != 0 {
					t.Errorf("H between samples (%v, %v) = %g, want 0", cs[i], cs[j], h[i][j])
				}
				continue
			}
			d := make([]float64, len(cs))
			f := func(a, b float64) float64 {
				clear(d)
				d[i] += a
				d[j] += b
				return edgeLoss(t, e, ds, units, cs, d)
			}
			var fd float64
			if i == j {
				fd = (f(eps, 0) - 2*f(0, 0) + f(-eps, 0)) / (eps * eps)
			} else {
				fd = (f(eps, eps) - f(eps, -eps) - f(-eps, eps) + f(-eps, -eps)) / (4 * eps * eps)
			}
			if math.Abs(fd-h[i][j]) > 1.5e-9+1e-3*math.Abs(fd) {
				t.Errorf("H(%v, %v) = %.8g, finite differences %.8g", cs[i], cs[j], h[i][j], fd)
			}
		}
	}
	// /conv1 and /down read one tensor: their edges differ (the skip path
	// does not see /conv1's perturbation), so the entries differ too.
	// /down does not read odd positions.
	if h[0][0] == h[2][2] || h[2][2] == 0 || h[4][4] != 0 {
		t.Errorf("/conv1 and /down at one position: %g and %g; /down at an odd column %g (want 0)", h[0][0], h[2][2], h[4][4])
	}
}

// Several chunks on several workers give the products of one chunk, and
// bad arguments are errors naming what is wrong.
func TestInputHVPChunksAndErrors(t *testing.T) {
	e, ds := inputHVPSetup(t)
	units := []string{"/fc/Gemm"}
	cs := []coord{{0, 3}, {0, 64 + 5}, {0, 128 + 7}}
	h := productsAt(t, e, ds, units, cs, false) // 3 samples: chunks of 2 and 1
	one, err := nn.New(e.Model(), &nn.Options{Precision: nn.Float64, BatchSize: 8, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	h1 := productsAt(t, one, ds, units, cs, false)
	for i := range h {
		for j := range h {
			if math.Abs(h[i][j]-h1[i][j]) > 1e-12*(1+math.Abs(h1[i][j])) {
				t.Errorf("H(%d, %d): %g in chunks of 2, %g in one chunk", i, j, h[i][j], h1[i][j])
			}
		}
		if h[i][i] == 0 {
			t.Errorf("H(%d, %d) = 0", i, i)
		}
	}
	nop := func(*nn.InputChunk) {}
	take := func(*nn.InputChunk) error { return nil }
	for _, c := range []struct {
		units []string
		dirs  []int
	}{{[]string{"nope"}, []int{-1}}, {nil, []int{-1}}, {units, nil}, {units, []int{1}}, {units, []int{-2}}} {
		if err := e.InputHVP(context.Background(), ds, c.units, c.dirs, nop, take); err == nil {
			t.Errorf("units %v, directions %v: no error", c.units, c.dirs)
		}
	}
}
