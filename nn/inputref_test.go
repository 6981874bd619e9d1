package nn_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// inputRefTol is the agreement required of a float64 InputHVP with the
// PyTorch float64 reference (double backprop with the layer's input
// perturbed as that layer reads it), relative to the largest magnitude of
// each compared vector. Both sides are exact up to rounding: the products
// chain four passes through at most 15 layers of sums of at most 1,200
// terms, which rounding moves by far less than 1e-12 of the scale
// (the script's module and ONNX-graph computations agree to 6e-15); a
// wrong term (a dropped cross term, a perturbation seen by a residual
// branch, a loss normalised by the chunk instead of the dataset) is off by
// orders of magnitude more.
const inputRefTol = 1e-9

// inputRefMeta mirrors testdata/ref/<model>/input_hvp.json, written by
// scripts/make_input_hvp_reference.py.
type inputRefMeta struct {
	Model  string  `json:"model"`
	ONNX   string  `json:"onnx"`
	N      int     `json:"n"`
	Inputs string  `json:"inputs"`
	Labels string  `json:"labels"`
	Loss   float64 `json:"loss"`
	Units  []struct {
		Name   string  `json:"name"`
		Input  string  `json:"input"`
		Shape  []int   `json:"shape"`
		Offset int     `json:"offset"`
		Size   int     `json:"size"`
		ASum   float64 `json:"a_sum"`
		ASqSum float64 `json:"a_sq_sum"`
		VTHV   float64 `json:"vTHv"`
	} `json:"units"`
	Size      int     `json:"size"`
	VTHVJoint float64 `json:"vTHv_joint"`
}

// TestInputHVPPyTorchReference compares InputHVP with the PyTorch
// reference of every unit's input Hessian: per unit the product H_a·v_u
// with the direction on that unit only, and the joint product with the
// direction on every unit (its cross terms Σ_k H_uk v_k), on the reference
// samples in chunks of 3 on 2 workers (so a chunk boundary splits the
// samples). rescnn has two units reading one tensor (/conv1 and /down read
// the stem's output) and fmnist_mbv2 units whose input an identity
// shortcut also reads; lenet's first two units read tensors on which max
// pooling has tied maxima (blank background), where the reference and the
// engine must break ties alike.
func TestInputHVPPyTorchReference(t *testing.T) {
	for _, name := range []string{"mlp", "lenet", "rescnn", "fmnist_mbv2"} {
		t.Run(name, func(t *testing.T) { checkInputHVPReference(t, name, nn.Float64, inputRefTol) })
		t.Run("float32_"+name, func(t *testing.T) { checkInputHVPReference(t, name, nn.Float32, refTol32) })
	}
}

func checkInputHVPReference(t *testing.T, name string, prec nn.Precision, tol float64) {
	dir := filepath.Join("..", "testdata", "ref", name)
	raw, err := os.ReadFile(filepath.Join(dir, "input_hvp.json"))
	if err != nil {
		t.Fatalf("committed reference missing (regenerate with /usr/bin/python3 scripts/make_input_hvp_reference.py): %v", err)
	}
	var meta inputRefMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("input_hvp.json: %v", err)
	}
	m, err := model.Load(filepath.Join(dir, meta.ONNX))
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{Precision: prec, BatchSize: 3, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	all, err := data.LoadNPY(filepath.Join(dir, meta.Inputs), filepath.Join(dir, meta.Labels))
	if err != nil {
		t.Fatal(err)
	}
	if all.Len() < meta.N {
		t.Fatalf("%s has %d samples, the reference uses %d", meta.Inputs, all.Len(), meta.N)
	}
	ds := data.Head(all, meta.N)

	// The reference's loss is the engine's: the mean over the samples.
	g := make([]float64, e.Dim())
	ev, err := e.Gradient(context.Background(), ds, g)
	if err != nil {
		t.Fatal(err)
	}
	if r := math.Abs(ev.Loss-meta.Loss) / meta.Loss; r > tol {
		t.Errorf("loss %.12g, reference %.12g (relative %.3g)", ev.Loss, meta.Loss, r)
	}

	units := e.Units()
	if len(units) != len(meta.Units) {
		t.Fatalf("%d units, reference has %d", len(units), len(meta.Units))
	}
	names := make([]string, len(units))
	for i, u := range meta.Units {
		if units[i].Name != u.Name {
			t.Fatalf("unit %d is %s, reference %s", i, units[i].Name, u.Name)
		}
		names[i] = u.Name
	}
	va := readNPY(t, filepath.Join(dir, "input_hvp_v.npy"))
	if va.Len() != meta.Size || len(va.Int) != meta.Size {
		t.Fatalf("input_hvp_v.npy: %d integers (%s), want %d", len(va.Int), va.DType, meta.Size)
	}
	v := make([]float64, meta.Size)
	for i, s := range va.Int {
		v[i] = float64(s)
	}
	wantOwn := readNPY(t, filepath.Join(dir, "input_hvp_hv.npy")).Float
	wantJoint := readNPY(t, filepath.Join(dir, "input_hvp_hv_joint.npy")).Float
	if len(wantOwn) != meta.Size || len(wantJoint) != meta.Size {
		t.Fatalf("products of %d and %d values, want %d", len(wantOwn), len(wantJoint), meta.Size)
	}

	// Directions 0..U−1 on their own unit, direction U on every unit.
	U := len(units)
	dirs := make([]int, U+1)
	for i := range U {
		dirs[i] = i
	}
	dirs[U] = -1
	own, joint := make([]float64, meta.Size), make([]float64, meta.Size)
	sum, sq := make([]float64, U), make([]float64, U)
	// part returns unit u's part of a flat vector on chunk c.
	part := func(x []float64, c *nn.InputChunk, u int) []float64 {
		per := len(c.X[u]) / c.N
		o := meta.Units[u].Offset + c.Start*per
		return x[o : o+c.N*per]
	}
	var mu sync.Mutex
	err = e.InputHVP(context.Background(), ds, names, dirs, func(c *nn.InputChunk) {
		for u := range U {
			if want := meta.N * len(c.X[u]) / c.N; want != meta.Units[u].Size {
				t.Errorf("unit %s: input of %d values on %d samples, reference %d on %d", names[u], len(c.X[u]), c.N, meta.Units[u].Size, meta.N)
				return
			}
			copy(c.V[u][u], part(v, c, u))
			copy(c.V[U][u], part(v, c, u))
		}
	}, func(c *nn.InputChunk) error {
		mu.Lock()
		defer mu.Unlock()
		for u := range U {
			copy(part(own, c, u), c.HV[u][u])
			copy(part(joint, c, u), c.HV[U][u])
			for _, x := range c.X[u] {
				sum[u] += x
				sq[u] += x * x
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}
	worstOwn, worstJoint := 0.0, 0.0
	for u, ru := range meta.Units {
		s := ru.Offset
		if r := math.Abs(sq[u]-ru.ASqSum) / ru.ASqSum; r > tol || math.Abs(sum[u]-ru.ASum) > tol*math.Sqrt(ru.ASqSum*float64(ru.Size)) {
			t.Errorf("unit %s: input Σa %.12g, Σa² %.12g; reference (%s) %.12g, %.12g", ru.Name, sum[u], sq[u], ru.Input, ru.ASum, ru.ASqSum)
		}
		ro := maxRel(own[s:s+ru.Size], wantOwn[s:s+ru.Size])
		rj := maxRel(joint[s:s+ru.Size], wantJoint[s:s+ru.Size])
		if ro > tol {
			t.Errorf("unit %s: H_a·v relative difference %.3g", ru.Name, ro)
		}
		if rj > tol {
			t.Errorf("unit %s: joint H·v relative difference %.3g", ru.Name, rj)
		}
		if got := dot(v[s:s+ru.Size], own[s:s+ru.Size]); math.Abs(got-ru.VTHV) > tol*math.Abs(ru.VTHV) {
			t.Errorf("unit %s: vᵀH_a v %.12g, reference %.12g", ru.Name, got, ru.VTHV)
		}
		worstOwn, worstJoint = max(worstOwn, ro), max(worstJoint, rj)
	}
	if got := dot(v, joint); math.Abs(got-meta.VTHVJoint) > tol*math.Abs(meta.VTHVJoint) {
		t.Errorf("joint vᵀHv %.12g, reference %.12g", got, meta.VTHVJoint)
	}
	t.Logf("%v, %d units, %d samples: max relative difference H_a·v %.3g, joint H·v %.3g; loss %.3g", prec, U, meta.N, worstOwn, worstJoint, math.Abs(ev.Loss-meta.Loss)/meta.Loss)
}
