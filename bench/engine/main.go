// Command engine times the Go engine on one ONNX model with random inputs
// and labels: a forward pass, a gradient and a Hessian-vector product per
// batch, each the median of -reps runs, and the peak resident memory of the
// process. bench/engine_vs_torch.sh runs it beside the same measurement in
// PyTorch. Output: one line of JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bitplan/bitplan/budget"
	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	bitop "github.com/bitplan/bitplan/op"
)

func main() {
	batch := flag.Int("batch", 4, "samples per batch `N`")
	reps := flag.Int("reps", 3, "timed repetitions `N` of each measurement")
	workers := flag.Int("workers", 0, "engine workers `N` (0: one per core)")
	memory := flag.String("memory", "", "engine memory limit `SIZE` (e.g. 12GB; batch and workers are lowered to fit, as bitplan's --memory)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the HVP runs to `FILE`")
	memprofile := flag.String("memprofile", "", "write a heap profile after the HVP runs to `FILE` (every allocation sampled: go tool pprof -sample_index=inuse_space or alloc_space)")
	precision := flag.String("precision", "float32", "engine arithmetic `P`: float32 (as PyTorch) or float64")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: engine [-batch N] [-reps N] [-workers N] [-precision P] MODEL.onnx")
		os.Exit(2)
	}
	prec, err := nn.ParsePrecision(*precision)
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(2)
	}
	var lim int64
	if *memory != "" {
		spec, err := budget.Parse(budget.Size, *memory)
		if err != nil || spec.Relative {
			fmt.Fprintln(os.Stderr, "engine: -memory: want a size such as 12GB")
			os.Exit(2)
		}
		lim = int64(spec.Value)
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	if err := run(flag.Arg(0), *batch, *reps, *workers, prec, lim, *cpuprofile, *memprofile); err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(1)
	}
}

// randomData makes batch random samples of every model input: standard
// normal floats; for integer inputs, ones for an attention mask (a name
// containing "mask") and token ids uniform over the rows of the first
// embedding table (Gather unit) otherwise; random class labels.
func randomData(e *nn.Engine, batch int, r *rand.Rand) (data.Dataset, error) {
	vocab := 2
	for _, u := range e.Units() {
		if u.Op == "Gather" {
			vocab = u.WeightShape[0]
			break
		}
	}
	var names []string
	var arrays []*data.Array
	for _, in := range e.Inputs() {
		size := 1
		for _, d := range in.Sample {
			size *= d
		}
		a := &data.Array{Shape: append([]int{batch}, in.Sample...)}
		switch {
		case !in.Integer:
			a.Float = make([]float64, batch*size)
			for i := range a.Float {
				a.Float[i] = r.NormFloat64()
			}
		case strings.Contains(strings.ToLower(in.Name), "mask"):
			a.Int = make([]int64, batch*size)
			for i := range a.Int {
				a.Int[i] = 1
			}
		default:
			a.Int = make([]int64, batch*size)
			for i := range a.Int {
				a.Int[i] = int64(r.IntN(vocab))
			}
		}
		names, arrays = append(names, in.Name), append(arrays, a)
	}
	y := make([]int, batch)
	for i := range y {
		y[i] = r.IntN(e.Classes())
	}
	return data.NewArrays(names, arrays, y)
}

func run(path string, batch, reps, workers int, prec nn.Precision, lim int64, cpuprofile, memprofile string) error {
	m, err := model.Load(path)
	if err != nil {
		return err
	}
	// One chunk per worker, so a pass is one batch split over the workers.
	w := workers
	if w <= 0 {
		w = 2
	}
	e, err := nn.New(m, &nn.Options{BatchSize: (batch + w - 1) / w, Workers: w, Precision: prec, Memory: lim})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 1))
	ds, err := randomData(e, batch, r)
	if err != nil {
		return err
	}
	ctx := context.Background()
	g := make([]float64, e.Dim())
	v := make([]float64, e.Dim())
	for i := range v {
		v[i] = float64(2*r.IntN(2) - 1)
	}
	hv := g // the gradient's buffer is reused: a trace holds a direction and its product
	op, err := e.Operator(ds)
	if err != nil {
		return err
	}
	// hvpCPU is the median process CPU time of the HVP runs (user and
	// system, all threads), which a loaded machine inflates less than
	// wall time.
	var hvpCPU float64
	median := func(f func() error) (float64, error) {
		var t, c []float64
		for i := 0; i < reps; i++ {
			start, cpu0 := time.Now(), cpuSeconds()
			if err := f(); err != nil {
				return 0, err
			}
			t, c = append(t, time.Since(start).Seconds()), append(c, cpuSeconds()-cpu0)
		}
		slices.Sort(t)
		slices.Sort(c)
		hvpCPU = c[len(c)/2]
		return t[len(t)/2], nil
	}
	fwd, err := median(func() error { _, err := e.Evaluate(ctx, ds); return err })
	if err != nil {
		return err
	}
	grad, err := median(func() error { _, err := e.Gradient(ctx, ds, g); return err })
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	hvp, err := median(func() error { return op.HVP(ctx, hv, v) })
	if err != nil {
		return err
	}
	if memprofile != "" {
		runtime.GC()
		f, err := os.Create(memprofile)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	wb, err := e.WorkBytes(e.BatchSize())
	if err != nil {
		return err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"forward_s": fwd, "gradient_s": grad, "hvp_s": hvp, "hvp_cpu_s": hvpCPU,
		"peak_rss_mb": float64(ru.Maxrss) / 1024, "params": e.Dim(), "batch": batch, "blas": bitop.BLAS, "precision": e.Precision().String(), "chunk": e.BatchSize(), "workers": e.Workers(), "work_mb": float64(wb) / 1e6,
	})
}

// cpuSeconds returns the process's user and system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
