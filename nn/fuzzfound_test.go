package nn_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	mt "github.com/bitplan/bitplan/model/modeltest"
	"github.com/bitplan/bitplan/nn"
)

// Regression tests for what FuzzGraph found (its inputs are kept in
// testdata/fuzz/FuzzGraph as well).

// padNet is x → Pad(pads) → Flatten → ReduceSum → Gemm (3 classes), x of
// shape N×1×3×3.
func padNet(t *testing.T, pads []int64, extra func(b *mt.Builder) string) *model.Model {
	t.Helper()
	b := mt.New("pad", 18)
	b.Input("x", -1, 1, 3, 3)
	b.Int64("p", []int{8}, pads)
	b.Node("Pad", "pad", []string{"x", "p"}, []string{"y"})
	last := "y"
	if extra != nil {
		last = extra(b)
	}
	b.Node("Flatten", "f", []string{last}, []string{"f"})
	b.Int64("ax", []int{1}, []int64{1})
	b.Node("ReduceSum", "r", []string{"f", "ax"}, []string{"r"}, mt.Int("keepdims", 1))
	b.Float("w", []int{3, 1}, []float64{0.5, -0.25, 0.125})
	b.Node("Gemm", "g", []string{"r", "w"}, []string{"z"}, mt.Int("transB", 1))
	b.Output("z")
	m, err := model.Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOutputBeyondMemoryLimit checks that a tensor larger than the memory
// limit is refused, naming it, before its kernel is made: a Pad to
// 1×1×40003×40003 used to allocate its 6.4 GB index map while the plan was
// built, before the memory check.
func TestOutputBeyondMemoryLimit(t *testing.T) {
	m := padNet(t, []int64{0, 0, 20000, 20000, 0, 0, 20000, 20000}, nil)
	a0 := allocated()
	_, err := nn.New(m, &nn.Options{Workers: 1, Memory: 64 << 20})
	if a := allocated() - a0; a > 32<<20 {
		t.Errorf("refusing the model allocated %d bytes", a)
	}
	var me *nn.MemoryError
	if !errors.As(err, &me) || me.Limit != 64<<20 || me.Need != 8*40003*40003 {
		t.Fatalf("err = %v, want a MemoryError needing %d bytes", err, 8*40003*40003)
	}
	for _, want := range []string{`Pad node "pad"`, `output "y" of shape [1 1 40003 40003]`, "12801.9 MB", "limit of 67.1 MB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

// TestMaxPoolHugeWindow checks a max pool whose window is far wider than
// its input (kernel 1×60000, pads 59999 left and right, found by
// FuzzGraph): it visits only the taps inside the input (the loop over
// every tap took 10¹⁰ steps) and each output is the maximum of the inputs
// its window covers.
func TestMaxPoolHugeWindow(t *testing.T) {
	const k = 60000
	m := padNet(t, make([]int64, 8), func(b *mt.Builder) string {
		b.Node("MaxPool", "mp", []string{"y"}, []string{"mp"}, mt.Ints("kernel_shape", 1, k), mt.Ints("pads", 0, k-1, 0, k-1))
		return "mp"
	})
	e, err := nn.New(m, &nn.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := []float64{1, 5, 2, 7, 3, 0, 4, 6, 8}
	start := time.Now()
	got, err := e.Intermediates(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	// About 10⁶ taps: milliseconds.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the forward pass took %v: the pool visits taps outside its input", d)
	}
	y := got["mp"]
	const ow = k + 2
	if len(y.Shape) != 4 || y.Shape[2] != 3 || y.Shape[3] != ow {
		t.Fatalf("output shape %v, want [1 1 3 %d]", y.Shape, ow)
	}
	// Output (i, j) covers row i, columns j−k+1 … j.
	for i := 0; i < 3; i++ {
		for j := 0; j < ow; j++ {
			want := math.Inf(-1)
			for c := max(j-k+1, 0); c <= min(j, 2); c++ {
				want = math.Max(want, x[3*i+c])
			}
			if math.IsInf(want, -1) {
				want = 0 // a window of padding only
			}
			if v := y.Data[i*ow+j]; v != want {
				t.Fatalf("output (%d, %d) = %v, want %v", i, j, v, want)
			}
		}
	}
	ds, err := data.NewMemory(x, []int{1}, []int{1, 3, 3})
	if err != nil {
		t.Fatal(err)
	}
	g := make([]float64, e.Dim())
	if _, err := e.Gradient(context.Background(), ds, g); err != nil {
		t.Fatal(err)
	}
}
