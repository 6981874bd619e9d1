package nn_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// benchEngine loads testdata/models/<name>.onnx with one chunk of 64 samples
// of MNIST-like random data (pixels in [0,1]).
func benchEngine(b *testing.B, name string, workers int, prec nn.Precision) (*nn.Engine, *data.Memory) {
	path := filepath.Join("..", "testdata", "models", name+".onnx")
	if _, err := os.Stat(path); err != nil {
		b.Skipf("%s not present", path)
	}
	m, err := model.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	e, err := nn.New(m, &nn.Options{BatchSize: 64 / workers, Workers: workers, Precision: prec})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	x := make([]float64, 64*784)
	for i := range x {
		x[i] = r.Float64()
	}
	y := make([]int, 64)
	for i := range y {
		y[i] = r.IntN(10)
	}
	ds, err := data.NewMemory(x, y, e.SampleShape())
	if err != nil {
		b.Fatal(err)
	}
	return e, ds
}

func benchModel(b *testing.B, name string, workers int, prec nn.Precision) {
	ctx := context.Background()
	b.Run("forward", func(b *testing.B) {
		e, ds := benchEngine(b, name, workers, prec)
		for b.Loop() {
			if _, err := e.Evaluate(ctx, ds); err != nil {
				b.Fatal(err)
			}
		}
		wb, err := e.WorkBytes(64 / workers)
		if err != nil {
			b.Fatal(err)
		}
		// The engine memory of the pass: one work area per worker.
		b.ReportMetric(float64(int64(workers)*wb)/1e6, "engine-MB")
	})
	b.Run("gradient", func(b *testing.B) {
		e, ds := benchEngine(b, name, workers, prec)
		g := make([]float64, e.Dim())
		for b.Loop() {
			if _, err := e.Gradient(ctx, ds, g); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hvp", func(b *testing.B) {
		e, ds := benchEngine(b, name, workers, prec)
		op, err := e.Operator(ds)
		if err != nil {
			b.Fatal(err)
		}
		v, hv := make([]float64, e.Dim()), make([]float64, e.Dim())
		for i := range v {
			v[i] = float64(i%2*2 - 1)
		}
		for b.Loop() {
			if err := op.HVP(ctx, hv, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hvp-batch4", func(b *testing.B) {
		e, ds := benchEngine(b, name, workers, prec)
		op, err := e.Operator(ds)
		if err != nil {
			b.Fatal(err)
		}
		vs, hvs := make([][]float64, 4), make([][]float64, 4)
		for j := range vs {
			vs[j], hvs[j] = make([]float64, e.Dim()), make([]float64, e.Dim())
			for i := range vs[j] {
				vs[j][i] = float64((i+j)%2*2 - 1)
			}
		}
		for b.Loop() {
			if err := op.HVPBatch(ctx, hvs, vs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLeNet64 measures forward, gradient and HVP on LeNet for a batch
// of 64 on one and two workers, in float64 and float32.
func BenchmarkLeNet64(b *testing.B) {
	b.Run("workers=1/float64", func(b *testing.B) { benchModel(b, "lenet", 1, nn.Float64) })
	b.Run("workers=2/float64", func(b *testing.B) { benchModel(b, "lenet", 2, nn.Float64) })
	b.Run("workers=2/float32", func(b *testing.B) { benchModel(b, "lenet", 2, nn.Float32) })
}

// BenchmarkResCNN64 is the same for the residual CNN (1×1 and 3×3
// convolutions, BatchNorm, residual adds).
func BenchmarkResCNN64(b *testing.B) {
	b.Run("workers=1/float64", func(b *testing.B) { benchModel(b, "rescnn", 1, nn.Float64) })
	b.Run("workers=1/float32", func(b *testing.B) { benchModel(b, "rescnn", 1, nn.Float32) })
	b.Run("workers=2/float32", func(b *testing.B) { benchModel(b, "rescnn", 2, nn.Float32) })
}

// BenchmarkMLP64 is the same for the MLP.
func BenchmarkMLP64(b *testing.B) {
	b.Run("workers=1/float64", func(b *testing.B) { benchModel(b, "mlp", 1, nn.Float64) })
	b.Run("workers=1/float32", func(b *testing.B) { benchModel(b, "mlp", 1, nn.Float32) })
}
