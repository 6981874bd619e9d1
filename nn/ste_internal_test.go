package nn

import (
	"context"
	"fmt"
	"math"
	"testing"
)

// TestQuantizedGradientRecycling checks that a straight-through gradient
// pass (every unit's input on a grid of step 1/16 clipped to [−1, 1], the
// attention products' inputs too, for the models that have them) gives
// bit for bit the same loss and gradient with recycled buffers, and with
// recycled buffers poisoned by NaN, as keeping every buffer: the
// quantized copies, masks and private adjoints outlive the forward pass
// whatever the schedule gives back; and that the clips bite (the gradient
// differs from the float one).
func TestQuantizedGradientRecycling(t *testing.T) {
	q := func(x []float64) {
		for i, v := range x {
			x[i] = math.Min(math.Max(math.Round(v*16)/16, -1), 1)
		}
	}
	run := func(c liveCase, prec Precision, ck bufferCheck, on bool) (Eval, []float64) {
		e, err := New(c.m, &Options{Precision: prec, BatchSize: 2, Workers: 1, Loss: c.loss, check: ck})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range e.units {
			if !u.HasInput {
				continue
			}
			if err := e.SetInputQuantizer(u.Name, q); err != nil {
				t.Fatal(err)
			}
			if err := e.SetInputClip(u.Name, -1, 1); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range e.m.Nodes {
			if n.Op != "MatMul" || e.m.Unit(n.Name) != nil || len(n.Inputs) < 2 {
				continue
			}
			for in := 0; in < 2; in++ {
				if err := e.SetNodeInputQuantizer(n.Name, in, q); err != nil {
					t.Fatal(err)
				}
				if err := e.SetNodeInputClip(n.Name, in, -1, 1); err != nil {
					t.Fatal(err)
				}
			}
		}
		e.SetQuantizedGradient(on)
		g := make([]float64, e.Dim())
		ev, err := e.Gradient(context.Background(), c.ds, g)
		if err != nil {
			t.Fatal(err)
		}
		return ev, g
	}
	for _, c := range liveCases(t) {
		for _, prec := range []Precision{Float64, Float32} {
			name := fmt.Sprintf("%s/%v", c.name, prec)
			ev, g := run(c, prec, checkKeep, true)
			evf, gf := run(c, prec, checkKeep, false)
			if ev == evf {
				t.Errorf("%s: quantized gradient pass has the float loss %v", name, ev.Loss)
			}
			same := true
			for i := range g {
				same = same && g[i] == gf[i]
			}
			if same {
				t.Errorf("%s: quantized gradient equals the float gradient", name)
			}
			for _, ck := range []bufferCheck{checkPoison, checkNone} {
				ev2, g2 := run(c, prec, ck, true)
				if ev2 != ev {
					t.Errorf("%s, check %d: evaluation %+v, kept buffers %+v", name, ck, ev2, ev)
					continue
				}
				for i := range g {
					if g2[i] != g[i] || math.IsNaN(g[i]) {
						t.Errorf("%s, check %d: gradient[%d] %v, kept buffers %v", name, ck, i, g2[i], g[i])
						break
					}
				}
			}
		}
	}
}
