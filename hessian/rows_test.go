package hessian

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
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

// HutchinsonRowsFrom continues a pilot: the result equals HutchinsonRows
// from scratch on the same rows (samples, stop, estimates, extras), the
// pilot's rows are not recomputed, and a stop on them computes no row.
func TestHutchinsonRowsFrom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	d := 24
	op := Dense(fromSpectrum(indefiniteSpectrum(d, rng), rng), []Block{{"a", 0, 10}, {"b", 10, 14}})
	var calls atomic.Int64
	var minCalled atomic.Int64
	minCalled.Store(1 << 40)
	row := func(ctx context.Context, i int) ([]float64, error) {
		calls.Add(1)
		for {
			m := minCalled.Load()
			if int64(i) >= m || minCalled.CompareAndSwap(m, int64(i)) {
				break
			}
		}
		v, hv := make([]float64, d), make([]float64, d)
		fillProbe(v, Rademacher, 7, streamHutchinson, i)
		if err := op.HVP(ctx, hv, v); err != nil {
			return nil, err
		}
		return append(probeSamples(v, hv, op.Blocks())[:2], float64(i)), nil
	}
	ctx := context.Background()
	full := &Settings{Seed: 7, Tol: 0.05, MinProbes: 5, MaxProbes: 200, Workers: 3}
	want, wantExtra, err := HutchinsonRows(ctx, op.Blocks(), full, row)
	if err != nil {
		t.Fatal(err)
	}
	pilot, pilotExtra, err := HutchinsonRows(ctx, op.Blocks(), &Settings{Seed: 7, MinProbes: 8, MaxProbes: 8, Workers: 2}, row)
	if err != nil {
		t.Fatal(err)
	}
	if want.Probes <= pilot.Probes {
		t.Fatalf("the full run stopped at %d probes, within the pilot's %d: the test tests nothing", want.Probes, pilot.Probes)
	}
	calls.Store(0)
	minCalled.Store(1 << 40)
	got, gotExtra, err := HutchinsonRowsFrom(ctx, op.Blocks(), full, pilot, pilotExtra, row)
	if err != nil {
		t.Fatal(err)
	}
	if m := minCalled.Load(); m < int64(pilot.Probes) {
		t.Errorf("row %d was recomputed (the pilot had %d)", m, pilot.Probes)
	}
	if got.Probes != want.Probes || got.Stop != want.Stop || int64(got.Matvecs) != calls.Load() {
		t.Errorf("continued: %d probes (%s, %d rows counted, %d computed), from scratch %d (%s)", got.Probes, got.Stop, got.Matvecs, calls.Load(), want.Probes, want.Stop)
	}
	for b := range want.Blocks {
		if got.Blocks[b] != want.Blocks[b] {
			t.Errorf("block %d: %+v, from scratch %+v", b, got.Blocks[b], want.Blocks[b])
		}
	}
	if len(gotExtra) != len(wantExtra) {
		t.Fatalf("%d extra rows, from scratch %d", len(gotExtra), len(wantExtra))
	}
	for i := range wantExtra {
		if gotExtra[i][0] != wantExtra[i][0] {
			t.Fatalf("extra row %d = %v, from scratch %v", i, gotExtra[i], wantExtra[i])
		}
	}
	// A rule that stops on the pilot's rows: no row is computed.
	calls.Store(0)
	stop := *full
	stop.MinProbes = pilot.Probes
	stop.Check = func(*TraceResult) (string, error) { return "enough", nil }
	res, _, err := HutchinsonRowsFrom(ctx, op.Blocks(), &stop, pilot, pilotExtra, row)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != "enough" || res.Probes != pilot.Probes || calls.Load() != 0 {
		t.Errorf("stopped on the pilot: %q after %d probes, %d rows computed; want enough after %d, none", res.Stop, res.Probes, calls.Load(), pilot.Probes)
	}
	bad := *pilot
	bad.Samples = bad.Samples[:3]
	if _, _, err := HutchinsonRowsFrom(ctx, op.Blocks(), full, &bad, pilotExtra, row); err == nil {
		t.Error("an earlier estimate with missing rows was accepted")
	}
	if _, _, err := HutchinsonRowsFrom(ctx, op.Blocks()[:1], full, pilot, pilotExtra, row); err == nil {
		t.Error("an earlier estimate over other blocks was accepted")
	}
}
