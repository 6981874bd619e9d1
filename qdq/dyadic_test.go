package qdq

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	mt "github.com/bitplan/bitplan/model/modeltest"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/op"
)

// passThroughNet is x N×2×4×4 → Conv c1 → SpaceToDepth(2) → Conv c2 →
// DepthToSpace(2) → Conv c3 → Transpose(0,1,3,2) → Conv c4 → ReduceMax
// over axis 3 (keepdims) → Conv c5 → ReduceMin over axis 2 (keepdims) →
// Conv c6 → GlobalMaxPool → Flatten → Gemm fc: every unit's output reaches
// the next unit's input through one operator that commutes with a
// per-tensor quantizer.
func passThroughNet() []byte {
	r := rand.New(rand.NewPCG(5, 8))
	w := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = 0.5 * r.NormFloat64()
		}
		return v
	}
	b := mt.New("passthrough", 17).Input("x", -1, 2, 4, 4).Output("logits")
	conv := func(name, in, out string, co, ci int) {
		b.Float(name+".w", []int{co, ci, 1, 1}, w(co*ci)).Float(name+".b", []int{co}, w(co))
		b.Node("Conv", name, []string{in, name + ".w", name + ".b"}, []string{out})
	}
	conv("c1", "x", "y1", 2, 2)
	b.Node("SpaceToDepth", "s2d", []string{"y1"}, []string{"z1"}, mt.Int("blocksize", 2))
	conv("c2", "z1", "y2", 8, 8)
	b.Node("DepthToSpace", "d2s", []string{"y2"}, []string{"z2"}, mt.Int("blocksize", 2))
	conv("c3", "z2", "y3", 3, 2)
	b.Node("Transpose", "tr", []string{"y3"}, []string{"z3"}, mt.Ints("perm", 0, 1, 3, 2))
	conv("c4", "z3", "y4", 3, 3)
	b.Node("ReduceMax", "max", []string{"y4"}, []string{"z4"}, mt.Ints("axes", 3), mt.Int("keepdims", 1))
	conv("c5", "z4", "y5", 3, 3)
	b.Node("ReduceMin", "min", []string{"y5"}, []string{"z5"}, mt.Ints("axes", 2), mt.Int("keepdims", 1))
	conv("c6", "z5", "y6", 4, 3)
	b.Node("GlobalMaxPool", "gmp", []string{"y6"}, []string{"z6"})
	b.Node("Flatten", "flat", []string{"z6"}, []string{"f"})
	b.Float("fc.w", []int{2, 4}, w(8)).Float("fc.b", []int{2}, w(2))
	b.Node("Gemm", "fc", []string{"f", "fc.w", "fc.b"}, []string{"logits"}, mt.Int("transB", 1))
	return b.Bytes()
}

// TestDyadicPassThrough: with Dyadic set, each of passThroughNet's six
// convolutions records its requantization multipliers onto the next unit's
// quantized input, through SpaceToDepth, DepthToSpace, Transpose,
// ReduceMax, ReduceMin and GlobalMaxPool + Flatten (a layer whose output
// passes through an operator not in passThrough records none).
func TestDyadicPassThrough(t *testing.T) {
	b := passThroughNet()
	m, err := model.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.New(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 3))
	ds := &data.Memory{Inputs: make([]float64, 16*32), Labels: make([]int, 16), Shape: e.SampleShape()}
	for i := range ds.Inputs {
		ds.Inputs[i] = r.NormFloat64()
	}
	var layers []eval.Layer
	for _, u := range e.Units() {
		layers = append(layers, eval.Layer{Name: u.Name, Bits: 8, ABits: 8})
	}
	res, err := Export(context.Background(), &Config{Model: b, Engine: e, Layers: layers, Calib: ds, Dyadic: true})
	if err != nil {
		t.Fatal(err)
	}
	input := map[string]string{}
	for _, l := range res.Summary.Layers {
		input[l.Node] = l.Input
	}
	through := map[string]string{"c1": "SpaceToDepth", "c2": "DepthToSpace", "c3": "Transpose", "c4": "ReduceMax", "c5": "ReduceMin", "c6": "GlobalMaxPool"}
	next := map[string]string{"c1": "c2", "c2": "c3", "c3": "c4", "c4": "c5", "c5": "c6", "c6": "fc"}
	seen := 0
	for _, l := range res.Summary.Layers {
		op, ok := through[l.Node]
		if !ok {
			continue
		}
		seen++
		switch d := l.Dyadic; {
		case d == nil:
			t.Errorf("%s: no dyadic multipliers through %s", l.Node, op)
		case d.Output != input[next[l.Node]] || d.OutputScale <= 0 || len(d.Multiplier) != l.Channels:
			t.Errorf("%s: dyadic output %q (scale %g, %d multipliers), want %s's input %q with %d", l.Node, d.Output, d.OutputScale, len(d.Multiplier), next[l.Node], input[next[l.Node]], l.Channels)
		}
	}
	if seen != len(through) {
		t.Errorf("%d of the %d convolutions quantized", seen, len(through))
	}
}

// passSlots are the slots of one node run by TestPassThroughCommutes.
type passSlots struct {
	shapes [][]int
	consts [][]float64
}

func (s *passSlots) Shape(i int) []int { return s.shapes[i] }
func (s *passSlots) Const(i int) ([]float64, bool) {
	return s.consts[i], s.consts[i] != nil
}
func (s *passSlots) Name(i int) string { return fmt.Sprintf("s%d", i) }

// TestPassThroughCommutes checks passThrough's claim on every conformance
// case of its operators (op.Def.Cases) that the engine runs as a kernel:
// the output on the dequantized codes of a random input equals the
// dequantized codes of the output, exactly, for a per-tensor INT8
// quantizer with a zero point off 0 that clamps a third of the values.
// The view operators (Reshape, Flatten, ...) run no kernel and change no
// value.
func TestPassThroughCommutes(t *testing.T) {
	const s, z = 0.02, -3.0
	q := func(x float64) float64 { return s * (math.Max(-128, math.Min(127, math.RoundToEven(x/s)+z)) - z) }
	r := rand.New(rand.NewPCG(9, 9))
	run := 0
	for _, typ := range slices.Sorted(maps.Keys(passThrough)) {
		d := op.Lookup(typ, 0)
		if d == nil {
			t.Fatalf("%s: not in the op registry", typ)
		}
		if d.View {
			continue
		}
		for _, c := range d.Cases {
			opset := c.Opset
			if opset == 0 {
				opset = 17
			}
			n := &op.Node{Op: typ, Name: "n", Attrs: map[string]*op.Attr{}, Outputs: []string{"y"}}
			for _, a := range c.Attrs {
				n.Attrs[a.Name] = a
			}
			sh := &op.Shapes{Dims: map[string][]int{}, Types: map[string]op.DataType{}, Ints: map[string][]int64{}, Values: map[string]*op.Tensor{}}
			slots := &passSlots{}
			for i, in := range c.Inputs {
				name := fmt.Sprintf("s%d", i)
				n.Inputs = append(n.Inputs, name)
				sh.Dims[name], sh.Types[name] = in.Shape, op.Float
				var cv []float64
				if in.Ints != nil {
					sh.Types[name], sh.Ints[name] = op.Int64, in.Ints
					sh.Values[name] = &op.Tensor{Name: name, Type: op.Int64, Shape: in.Shape, Int: in.Ints}
					for _, v := range in.Ints {
						cv = append(cv, float64(v))
					}
				}
				slots.shapes, slots.consts = append(slots.shapes, in.Shape), append(slots.consts, cv)
			}
			if err := d.Infer(n, sh); err != nil {
				t.Fatalf("%s %q: %v", typ, c.Name, err)
			}
			ys := sh.Dims["y"]
			slots.shapes, slots.consts = append(slots.shapes, ys), append(slots.consts, nil)
			in := make([]int, len(c.Inputs))
			for i := range in {
				in[i] = i
			}
			k, err := op.NewKernel[float64](d.Exec, &op.Build{Node: n, Opset: opset, In: in, Out: []int{len(in)}, Slots: slots})
			if err != nil {
				t.Fatalf("%s %q: %v", typ, c.Name, err)
			}
			// forward returns the output on input 0 = x.
			forward := func(x []float64) []float64 {
				w := &op.Work[float64]{Val: make([][]float64, len(in)+1), RV: make([][]float64, len(in)+1),
					Adj: make([][]float64, len(in)+1), RAdj: make([][]float64, len(in)+1)}
				for i := range in {
					w.Val[i] = slots.consts[i]
				}
				w.Val[0] = x
				w.Val[len(in)] = make([]float64, op.Numel(ys))
				if st, ok := k.(op.Stateful); ok {
					w.State = []any{st.NewState()}
				}
				k.Forward(w)
				return w.Val[len(in)]
			}
			x := make([]float64, op.Numel(c.Inputs[0].Shape))
			qx := make([]float64, len(x))
			for i := range x {
				x[i] = 3 * r.NormFloat64()
				qx[i] = q(x[i])
			}
			y, yq := forward(x), forward(qx)
			for i := range y {
				if q(y[i]) != yq[i] {
					t.Fatalf("%s %q: y[%d]: Q(op(x)) = %g, op(Q(x)) = %g", typ, c.Name, i, q(y[i]), yq[i])
				}
			}
			run++
		}
	}
	if run == 0 {
		t.Fatal("no case ran")
	}
	t.Logf("%d cases", run)
}
