package hessian

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// entryPoints runs every public estimator on op with small budgets.
func entryPoints() map[string]func(context.Context, Operator) error {
	wrap := func(f func(context.Context, Operator, *SketchSettings) (*TraceResult, error)) func(context.Context, Operator) error {
		return func(ctx context.Context, op Operator) error {
			_, err := f(ctx, op, &SketchSettings{Matvecs: 12})
			return err
		}
	}
	return map[string]func(context.Context, Operator) error{
		"Hutchinson": func(ctx context.Context, op Operator) error {
			_, err := Hutchinson(ctx, op, &Settings{MinProbes: 4, MaxProbes: 20})
			return err
		},
		"HutchPP":   wrap(HutchPP),
		"NAHutchPP": wrap(NAHutchPP),
		"XTrace":    wrap(XTrace),
		"Lanczos": func(ctx context.Context, op Operator) error {
			_, err := Lanczos(ctx, op, &LanczosSettings{K: 1, MaxSteps: 10})
			return err
		},
		"PowerIteration": func(ctx context.Context, op Operator) error {
			_, err := PowerIteration(ctx, op, &PowerSettings{K: 1, MaxIter: 10})
			return err
		},
		"Density": func(ctx context.Context, op Operator) error {
			_, err := Density(ctx, op, &DensitySettings{Runs: 2, Steps: 5})
			return err
		},
		"Exact": func(ctx context.Context, op Operator) error {
			_, err := Exact(ctx, op, 2)
			return err
		},
	}
}

func smallSym(d int) *mat.SymDense {
	m := mat.NewSymDense(d, nil)
	for i := range d {
		m.SetSym(i, i, float64(i+1))
		if i > 0 {
			m.SetSym(i-1, i, 0.5)
		}
	}
	return m
}

func TestBadOperators(t *testing.T) {
	const d = 20
	good := smallSym(d)
	cases := []struct {
		name string
		op   Operator
		want string // substring of the error
	}{
		{"nil matrix", Dense(nil, nil), "dimension must be positive"},
		{"zero dim func", &Func{N: 0}, "dimension must be positive"},
		{"overlap", Dense(good, []Block{{"a", 0, 10}, {"b", 5, 10}}), `block 1 ("b"): offset 5 overlaps`},
		{"unsorted", Dense(good, []Block{{"a", 10, 5}, {"b", 0, 5}}), "sorted"},
		{"out of range", Dense(good, []Block{{"a", 15, 10}}), "range [15, 25) outside [0, 20)"},
		{"negative offset", Dense(good, []Block{{"a", -1, 3}}), "outside"},
		{"empty block", Dense(good, []Block{{"a", 3, 0}}), "size 0"},
		{"NaN output", nanOp(d, math.NaN()), "output[3] = NaN"},
		{"Inf output", nanOp(d, math.Inf(1)), "output[3] = +Inf"},
		{"HVP error", &Func{N: d, Multiply: func(context.Context, []float64, []float64) error { return errors.New("engine exploded") }}, "engine exploded"},
		{"nil Multiply", &Func{N: d}, "Multiply is nil"},
	}
	for _, c := range cases {
		for name, run := range entryPoints() {
			err := run(context.Background(), c.op)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s / %s: error %v, want one containing %q", c.name, name, err, c.want)
			}
		}
	}
	var nf *NonFiniteError
	if _, err := Hutchinson(context.Background(), nanOp(d, math.NaN()), nil); !errors.As(err, &nf) || nf.Index != 3 {
		t.Errorf("NaN: error %v is not a *NonFiniteError at index 3", err)
	}
	if err := Validate(nil); err == nil {
		t.Error("Validate(nil) gave no error")
	}
}

// nanOp returns an operator whose products have value bad at coordinate 3.
func nanOp(d int, bad float64) Operator {
	return &Func{N: d, Multiply: func(_ context.Context, dst, v []float64) error {
		copy(dst, v)
		dst[3] = bad
		return nil
	}}
}

func TestCancelled(t *testing.T) {
	op := Dense(smallSym(20), []Block{{"a", 0, 10}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, run := range entryPoints() {
		if err := run(ctx, op); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled context: error %v, want context.Canceled", name, err)
		}
	}
	// Cancellation in the middle of a run.
	for name, run := range entryPoints() {
		ctx, cancel := context.WithCancel(context.Background())
		var calls atomic.Int64
		inner := Dense(smallSym(20), nil)
		mid := &Func{N: 20, Multiply: func(ctx context.Context, dst, v []float64) error {
			if calls.Add(1) == 3 {
				cancel()
			}
			return inner.HVP(ctx, dst, v)
		}}
		if err := run(ctx, mid); !errors.Is(err, context.Canceled) {
			t.Errorf("%s cancelled mid-run: error %v, want context.Canceled", name, err)
		}
		cancel()
	}
}

func TestBadSettings(t *testing.T) {
	op := Dense(smallSym(10), nil)
	ctx := context.Background()
	hut := []Settings{
		{MinProbes: 1}, {MinProbes: 10, MaxProbes: 5}, {Tol: -1}, {Tol: math.NaN()},
		{AbsTol: math.Inf(1)}, {Confidence: 1}, {Probe: 7}, {BatchSize: -1},
	}
	for _, s := range hut {
		if _, err := Hutchinson(ctx, op, &s); err == nil || !strings.Contains(err.Error(), "hessian:") {
			t.Errorf("Hutchinson %+v: error %v", s, err)
		}
	}
	for _, s := range []SketchSettings{{Matvecs: 3}, {Confidence: -0.5}, {Probe: -1}, {BatchSize: -2}} {
		for _, f := range []func(context.Context, Operator, *SketchSettings) (*TraceResult, error){HutchPP, NAHutchPP, XTrace} {
			if _, err := f(ctx, op, &s); err == nil {
				t.Errorf("sketch %+v: no error", s)
			}
		}
	}
	for _, s := range []LanczosSettings{{K: 11}, {K: -1}, {K: 5, MaxSteps: 3}, {Tol: -1}, {Which: 9}} {
		if _, err := Lanczos(ctx, op, &s); err == nil {
			t.Errorf("Lanczos %+v: no error", s)
		}
	}
	for _, s := range []DensitySettings{{Runs: -1}, {Steps: -1}, {GridPoints: 1}, {Sigma: -1}, {Min: 2, Max: 1}, {Min: 1, Max: 1}, {Max: math.Inf(1)}} {
		if _, err := Density(ctx, op, &s); err == nil {
			t.Errorf("Density %+v: no error", s)
		}
	}
	if _, err := ExactDiagonal(ctx, op, Block{"x", 8, 5}, 1); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("ExactDiagonal out of range: %v", err)
	}
	if _, err := Sub(op, Block{"x", 0, 0}); err == nil {
		t.Error("Sub with empty block: no error")
	}
	if _, err := Summarize([]float64{1}, 0.95); err == nil {
		t.Error("Summarize of one sample: no error")
	}
	d := Dense(smallSym(4), nil)
	if err := d.HVP(ctx, make([]float64, 3), make([]float64, 4)); err == nil {
		t.Error("Dense HVP with short dst: no error")
	}
	if err := d.HVPBatch(ctx, [][]float64{make([]float64, 4)}, [][]float64{make([]float64, 5)}); err == nil {
		t.Error("Dense HVPBatch with long v: no error")
	}
}

func FuzzValidateBlocks(f *testing.F) {
	f.Add(10, 0, 5, 5, 5)
	f.Add(10, 0, 6, 5, 5)
	f.Add(0, 0, 0, 0, 0)
	f.Add(3, -1, 2, 2, 1)
	f.Fuzz(func(t *testing.T, dim, o1, s1, o2, s2 int) {
		blocks := []Block{{"a", o1, s1}, {"b", o2, s2}}
		err := ValidateBlocks(dim, blocks)
		ok := dim > 0 && s1 > 0 && s2 > 0 && o1 >= 0 && o1+s1 <= o2 && o2+s2 <= dim && o1 <= dim-s1 && o2 <= dim-s2
		if (err == nil) != ok {
			t.Fatalf("ValidateBlocks(%d, %v) = %v, want ok=%v", dim, blocks, err, ok)
		}
	})
}
