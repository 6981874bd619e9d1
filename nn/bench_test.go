package nn_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
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

// BenchmarkHVPMemory measures the memory of Hessian-vector products
// (float32) on a transformer, the zoo's tiny_bert (token ids and a mask,
// 2 sequences of 16 on one worker; attention, LayerNorm, GELU), and on a
// CNN, rescnn (64 samples on two workers): allocations per product, the engine's work area as
// planned (work-MB: the peak of the recycled buffers, see WorkBytes) and
// the heap in use after the products (heap-MB, parameters included).
func BenchmarkHVPMemory(b *testing.B) {
	b.Run("tiny_bert", func(b *testing.B) {
		dir := filepath.Join("..", "testdata", "zoo", "tiny_bert")
		m, err := model.Load(filepath.Join(dir, "op13.onnx"))
		if err != nil {
			b.Fatal(err)
		}
		ids, mask := benchNPY(b, filepath.Join(dir, "input_ids.npy")), benchNPY(b, filepath.Join(dir, "attention_mask.npy"))
		ds, err := data.NewArrays([]string{"input_ids", "attention_mask"}, []*data.Array{ids, mask}, make([]int, ids.Shape[0]))
		if err != nil {
			b.Fatal(err)
		}
		e, err := nn.New(m, &nn.Options{BatchSize: ids.Shape[0], Workers: 1, Precision: nn.Float32})
		if err != nil {
			b.Fatal(err)
		}
		benchHVPMemory(b, e, ds)
	})
	b.Run("rescnn", func(b *testing.B) {
		e, ds := benchEngine(b, "rescnn", 2, nn.Float32)
		benchHVPMemory(b, e, ds)
	})
}

func benchHVPMemory(b *testing.B, e *nn.Engine, ds data.Dataset) {
	ctx := context.Background()
	v, hv := make([]float64, e.Dim()), make([]float64, e.Dim())
	for i := range v {
		v[i] = float64(i%2*2 - 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.HVP(ctx, ds, [][]float64{hv}, [][]float64{v}); err != nil {
			b.Fatal(err)
		}
	}
	wb, err := e.WorkBytes(e.BatchSize())
	if err != nil {
		b.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(wb)/1e6, "work-MB")
	b.ReportMetric(float64(ms.HeapInuse)/1e6, "heap-MB")
}

func benchNPY(b *testing.B, path string) *data.Array {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	a, err := data.ReadNPY(f)
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	return a
}
