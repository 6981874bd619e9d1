package nn

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAccumChunkOrder checks that per-parameter hand-overs are added in
// chunk order whatever order they arrive in: chunks handing over in
// reverse (and one with nothing to add) give, bit for bit, the sums of
// adding every chunk's vector in order, with values whose float sums
// depend on the order.
func TestAccumChunkOrder(t *testing.T) {
	e := &Engine{params: []Param{{Name: "w", Offset: 0, Size: 3}, {Name: "b", Offset: 3, Size: 2}}}
	const chunks = 5
	r := rand.New(rand.NewPCG(7, 8))
	vals := make([][]float32, chunks)
	for c := range vals {
		vals[c] = make([]float32, 5)
		for i := range vals[c] {
			vals[c][i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(16)-8)))
		}
	}
	want := make([]float64, 5)
	for c := range vals {
		n := 5
		if c == 2 {
			n = 3 // chunk 2 hands over nothing for the bias
		}
		addWide(want[:n], vals[c][:n])
	}
	// The same sums in reverse order differ: the test can fail.
	rev := make([]float64, 5)
	for c := chunks - 1; c >= 0; c-- {
		addWide(rev, vals[c])
	}
	differ := false
	for i := range rev {
		differ = differ || rev[i] != want[i]
	}
	if !differ {
		t.Fatal("the values do not make the order matter")
	}
	got := []float64{0, 0, 0, 0, 0}
	a := newAccum[float32](e, [][]float64{got}, 0)
	for c := chunks - 1; c >= 0; c-- {
		a.handOver(0, 0, c, append([]float32(nil), vals[c][:3]...))
		var b []float32
		if c != 2 {
			b = append([]float32(nil), vals[c][3:]...)
		}
		a.handOver(1, 0, c, b)
		if c > 0 && got[0] != 0 {
			t.Fatalf("chunk %d added before chunk 0", c)
		}
	}
	for i := range got {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Errorf("element %d: %v, want %v (in chunk order)", i, got[i], want[i])
		}
	}
	for i := range a.params {
		if n := len(a.params[i].pending); n != 0 {
			t.Errorf("parameter %d: %d hand-overs left pending", i, n)
		}
	}
}

// TestWorkersKeepResults checks that gradients and products do not depend
// on the number of workers: with one sample per chunk, three workers (so
// chunks hand their parameters over concurrently) give bit for bit the
// results of one.
func TestWorkersKeepResults(t *testing.T) {
	ctx := context.Background()
	for _, c := range liveCases(t)[:4] {
		for _, prec := range []Precision{Float64, Float32} {
			var ref [][]float64
			for _, workers := range []int{1, 3} {
				e, err := New(c.m, &Options{Precision: prec, BatchSize: 1, Workers: workers, Loss: c.loss})
				if err != nil {
					t.Fatal(err)
				}
				g := make([]float64, e.Dim())
				if _, err := e.Gradient(ctx, c.ds, g); err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(5, 6))
				vs, hv := make([][]float64, 2), make([][]float64, 2)
				for j := range vs {
					vs[j], hv[j] = make([]float64, e.Dim()), make([]float64, e.Dim())
					for i := range vs[j] {
						vs[j][i] = r.NormFloat64()
					}
				}
				if err := e.HVP(ctx, c.ds, hv, vs); err != nil {
					t.Fatal(err)
				}
				h1 := make([]float64, e.Dim())
				if err := e.HVP(ctx, c.ds, [][]float64{h1}, vs[:1]); err != nil {
					t.Fatal(err)
				}
				got := [][]float64{g, hv[0], hv[1], h1}
				if ref == nil {
					ref = got
					continue
				}
				for k := range got {
					for i := range got[k] {
						if math.Float64bits(got[k][i]) != math.Float64bits(ref[k][i]) {
							t.Errorf("%s/%v: result %d[%d] with 3 workers %v, with 1 %v", c.name, prec, k, i, got[k][i], ref[k][i])
							break
						}
					}
				}
			}
		}
	}
}
