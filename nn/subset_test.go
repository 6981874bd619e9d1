package nn_test

import (
	"context"
	"math"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/nn"
)

// TestSubset: an operator's Subset (plain and per-channel) multiplies by
// the Hessian of the mean loss over exactly those samples, the operator
// built on data.Rows of them.
func TestSubset(t *testing.T) {
	ctx := context.Background()
	c := netCases[0]
	e, err := nn.New(buildNet(t, c, 0), &nn.Options{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ds := randomData(t, e, 6, 0)
	idx := []int{1, 3, 4}
	rows, err := data.Rows(ds, idx)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e.Operator(ds)
	if err != nil {
		t.Fatal(err)
	}
	channels, err := e.ChannelOperator(ds)
	if err != nil {
		t.Fatal(err)
	}
	wantPlain, _ := e.Operator(rows)
	wantChannels, _ := e.ChannelOperator(rows)
	for _, tc := range []struct {
		op   hessian.Sampled
		want hessian.Operator
	}{{plain, wantPlain}, {channels, wantChannels}} {
		if tc.op.Samples() != 6 {
			t.Fatalf("Samples %d, want 6", tc.op.Samples())
		}
		sub, err := tc.op.Subset(idx)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float64, e.Dim())
		for i := range v {
			v[i] = math.Sin(float64(i) + 1)
		}
		got, want := make([]float64, len(v)), make([]float64, len(v))
		if err := sub.HVP(ctx, got, v); err != nil {
			t.Fatal(err)
		}
		if err := tc.want.HVP(ctx, want, v); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
				t.Fatalf("%T: (H_S v)[%d] = %g, want %g", tc.op, i, got[i], want[i])
			}
		}
	}
	if _, err := plain.Subset([]int{6}); err == nil {
		t.Error("sample 6 of 6 accepted")
	}
}
