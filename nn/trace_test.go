package nn_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/nn"
)

// TestBlockTrace compares the restricted-pass exact trace of every unit's
// block with the diagonal of full Hessian-vector products, and the channel
// operator with the permuted plain operator.
func TestBlockTrace(t *testing.T) {
	ctx := context.Background()
	for ci, c := range netCases {
		t.Run(c.name, func(t *testing.T) {
			m := buildNet(t, c, uint64(ci))
			e, err := nn.New(m, &nn.Options{BatchSize: 3})
			if err != nil {
				t.Fatal(err)
			}
			ds := randomData(t, e, 4, uint64(ci))
			op, err := e.Operator(ds)
			if err != nil {
				t.Fatal(err)
			}
			blocks := op.Blocks()
			// A block that cuts through parameter tensors takes the
			// full-length path.
			if b0 := blocks[0]; b0.Size > 3 {
				blocks = append(blocks, hessian.Block{Name: "part", Offset: b0.Offset + 1, Size: b0.Size - 2})
			}
			for _, b := range blocks {
				got, err := e.BlockTrace(ctx, ds, b, 7)
				if err != nil {
					t.Fatal(err)
				}
				want := 0.0
				v, hv := make([]float64, e.Dim()), make([]float64, e.Dim())
				for i := b.Offset; i < b.Offset+b.Size; i++ {
					clear(v)
					v[i] = 1
					if err := op.HVP(ctx, hv, v); err != nil {
						t.Fatal(err)
					}
					want += hv[i]
				}
				if math.Abs(got-want) > 1e-12*max(1, math.Abs(want)) {
					t.Errorf("block %s: BlockTrace %.15g, full products %.15g", b.Name, got, want)
				}
			}
			co, err := e.ChannelOperator(ds)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(5, uint64(ci)))
			pv := randn(r, e.Dim(), 1)
			v := make([]float64, e.Dim())
			for i, q := range co.Perm {
				v[q] = pv[i]
			}
			hv, phv := make([]float64, e.Dim()), make([]float64, e.Dim())
			if err := op.HVP(ctx, hv, v); err != nil {
				t.Fatal(err)
			}
			if err := co.HVP(ctx, phv, pv); err != nil {
				t.Fatal(err)
			}
			for i, q := range co.Perm {
				if phv[i] != hv[q] {
					t.Fatalf("channel operator coordinate %d: %v, plain operator %v", i, phv[i], hv[q])
				}
			}
			seen := make([]bool, e.Dim())
			for _, q := range co.Perm {
				if seen[q] {
					t.Fatalf("Perm repeats %d", q)
				}
				seen[q] = true
			}
			if nb := len(co.Blocks()); nb < len(op.Blocks()) {
				t.Errorf("%d channel blocks for %d units", nb, len(op.Blocks()))
			}
		})
	}
}
