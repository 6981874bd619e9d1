package hessian

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

// HutchinsonRows over rows computed from the same probes and products as
// Hutchinson gives Hutchinson's result (samples, stop, estimates), and
// passes extra values through per accepted probe.
func TestHutchinsonRowsMatchesHutchinson(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := 24
	op := Dense(fromSpectrum(indefiniteSpectrum(d, rng), rng), []Block{{"a", 0, 10}, {"b", 10, 14}})
	set := &Settings{Seed: 7, Tol: 0.05, MinProbes: 5, MaxProbes: 200, Workers: 3}
	want, err := Hutchinson(context.Background(), op, &Settings{Seed: 7, Tol: 0.05, MinProbes: 5, MaxProbes: 200, Workers: 1, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, extra, err := HutchinsonRows(context.Background(), op.Blocks(), set, func(ctx context.Context, i int) ([]float64, error) {
		v, hv := make([]float64, d), make([]float64, d)
		fillProbe(v, Rademacher, 7, streamHutchinson, i)
		if err := op.HVP(ctx, hv, v); err != nil {
			return nil, err
		}
		row := probeSamples(v, hv, op.Blocks())
		return append(row[:2], float64(i)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Probes != want.Probes || got.Stop != want.Stop || got.Matvecs != want.Probes {
		t.Fatalf("rows: %d probes (%s, %d products), Hutchinson %d (%s)", got.Probes, got.Stop, got.Matvecs, want.Probes, want.Stop)
	}
	for b := range want.Blocks {
		if got.Blocks[b].Trace != want.Blocks[b].Trace || got.Blocks[b].StdErr != want.Blocks[b].StdErr {
			t.Errorf("block %d: %+v, Hutchinson %+v", b, got.Blocks[b], want.Blocks[b])
		}
	}
	if len(extra) != got.Probes {
		t.Fatalf("%d extra rows for %d probes", len(extra), got.Probes)
	}
	for i, e := range extra {
		if len(e) != 1 || e[0] != float64(i) {
			t.Fatalf("extra row %d = %v, want [%d]", i, e, i)
		}
	}
	boom := errors.New("boom")
	if _, _, err := HutchinsonRows(context.Background(), op.Blocks(), set, func(context.Context, int) ([]float64, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("a failing row: %v", err)
	}
	if _, _, err := HutchinsonRows(context.Background(), op.Blocks(), set, func(context.Context, int) ([]float64, error) { return []float64{1}, nil }); err == nil {
		t.Error("a short row was accepted")
	}
	if _, _, err := HutchinsonRows(context.Background(), nil, set, nil); err == nil {
		t.Error("no blocks was accepted")
	}
}
