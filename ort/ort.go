//go:build ort

package ort

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/nn"
)

var (
	initMu  sync.Mutex
	initLib string
)

// Init loads the ONNX Runtime shared library at lib (or, when lib is "",
// at $BITPLAN_ORT_LIB) and starts its environment. Later calls with the
// same or no path do nothing; another path is an error (a process loads
// one library).
func Init(lib string) error {
	if lib == "" {
		lib = os.Getenv(LibraryEnv)
	}
	initMu.Lock()
	defer initMu.Unlock()
	if initLib != "" {
		if lib != "" && lib != initLib {
			return fmt.Errorf("ort: ONNX Runtime is already loaded from %s, cannot load %s", initLib, lib)
		}
		return nil
	}
	if lib == "" {
		return ErrNoLibrary
	}
	if _, err := os.Stat(lib); err != nil {
		return fmt.Errorf("ort: library %s: %v (%s)", lib, err, Install)
	}
	ortgo.SetSharedLibraryPath(lib)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		return fmt.Errorf("ort: loading %s: %w", lib, err)
	}
	initLib = lib
	return nil
}

// Version returns the loaded library's version ("1.24.1"), "" before Init.
func Version() string {
	if !ortgo.IsInitialized() {
		return ""
	}
	return ortgo.GetVersion()
}

// Session is a model loaded in ONNX Runtime (CPU execution provider).
type Session struct {
	s        *ortgo.DynamicAdvancedSession
	in, out  string
	sample   []int64
	perInput int
}

func options(o *Options, optimized string) (*ortgo.SessionOptions, error) {
	var set Options
	if o != nil {
		set = *o
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	threads := set.Threads
	if threads <= 0 {
		threads = 1
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		so.Destroy()
		return nil, fmt.Errorf("ort: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		so.Destroy()
		return nil, fmt.Errorf("ort: %w", err)
	}
	var level ortgo.GraphOptimizationLevel = ortgo.GraphOptimizationLevelEnableAll
	if set.NoOptimize {
		level = ortgo.GraphOptimizationLevelDisableAll
	}
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		so.Destroy()
		return nil, fmt.Errorf("ort: %w", err)
	}
	if optimized != "" {
		if err := so.SetOptimizedModelFilePath(optimized); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("ort: %w", err)
		}
	}
	return so, nil
}

// Open loads a serialized model. Init must have succeeded.
func Open(model []byte, o *Options) (*Session, error) {
	return open(model, o, "")
}

func open(model []byte, o *Options, optimized string) (*Session, error) {
	if !ortgo.IsInitialized() {
		return nil, fmt.Errorf("ort: call Init first (%s)", Install)
	}
	in, sample, out, err := modelIO(model)
	if err != nil {
		return nil, err
	}
	so, err := options(o, optimized)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(model, []string{in}, []string{out}, so)
	if err != nil {
		return nil, fmt.Errorf("ort: ONNX Runtime rejects the model: %w", err)
	}
	per := 1
	for _, d := range sample {
		per *= int(d)
	}
	return &Session{s: s, in: in, out: out, sample: sample, perInput: per}, nil
}

// Close releases the session.
func (s *Session) Close() {
	if s.s != nil {
		s.s.Destroy()
		s.s = nil
	}
}

// Run returns the first output for a batch of n samples x (n × the
// model's per-sample input shape, float32).
func (s *Session) Run(x []float32, n int) ([]float32, error) {
	z, _, err := s.run(x, n)
	return z, err
}

// run returns the first output and its shape per sample.
func (s *Session) run(x []float32, n int) ([]float32, []int, error) {
	if n <= 0 || len(x) != n*s.perInput {
		return nil, nil, fmt.Errorf("ort: %d input values for %d samples of %d", len(x), n, s.perInput)
	}
	shape := append(ortgo.Shape{int64(n)}, s.sample...)
	xt, err := ortgo.NewTensor(shape, x)
	if err != nil {
		return nil, nil, fmt.Errorf("ort: %w", err)
	}
	defer xt.Destroy()
	outs := []ortgo.Value{nil}
	if err := s.s.Run([]ortgo.Value{xt}, outs); err != nil {
		return nil, nil, fmt.Errorf("ort: run: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ortgo.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("ort: output %q is not a float32 tensor", s.out)
	}
	osh := t.GetShape()
	if len(osh) < 1 || osh[0] != int64(n) {
		return nil, nil, fmt.Errorf("ort: output %q has shape %v for %d samples", s.out, osh, n)
	}
	per := make([]int, len(osh)-1)
	for i, d := range osh[1:] {
		per[i] = int(d)
	}
	return append([]float32(nil), t.GetData()...), per, nil
}

// Evaluate returns the model's accuracy and mean loss on ds (o.Loss, by
// default the cross-entropy against ds's class labels), scored as the
// engine's simulation scores them, and the outputs when o.Keep is set.
func (s *Session) Evaluate(ctx context.Context, ds data.Dataset, o *EvalOptions) (eval.Result, []float32, error) {
	if o == nil {
		o = &EvalOptions{}
	}
	batch := o.Batch
	if batch <= 0 {
		batch = 100
	}
	per := data.SampleSize(ds)
	if per != s.perInput {
		return eval.Result{}, nil, fmt.Errorf("ort: samples have %d values (shape %v), the model's input %q takes %d", per, ds.SampleShape(), s.in, s.perInput)
	}
	sc := newScorer(o.Loss, ds)
	_, referenced := sc.loss.(nn.Referenced)
	if referenced && o.Ref == nil {
		return eval.Result{}, nil, fmt.Errorf("ort: the loss compares the model with a reference model, and no reference session was given")
	}
	var logits []float32
	in := make([]float64, batch*per)
	x := make([]float32, batch*per)
	labels := make([]int, batch)
	for start := 0; start < ds.Len(); start += batch {
		if err := ctx.Err(); err != nil {
			return eval.Result{}, nil, err
		}
		n := min(batch, ds.Len()-start)
		if err := ds.Read(start, in[:n*per], labels[:n]); err != nil {
			return eval.Result{}, nil, err
		}
		for i, v := range in[:n*per] {
			x[i] = float32(v)
		}
		z, shape, err := s.run(x[:n*per], n)
		if err != nil {
			return eval.Result{}, nil, err
		}
		var ref []float32
		if referenced {
			if ref, err = o.Ref.Run(x[:n*per], n); err != nil {
				return eval.Result{}, nil, fmt.Errorf("reference model: %w", err)
			}
		}
		if err := sc.add(start, n, z, shape, labels, ref); err != nil {
			return eval.Result{}, nil, err
		}
		if o.Keep {
			logits = append(logits, z...)
		}
	}
	return sc.result(), logits, nil
}

// Time runs the model on x (n samples) warm times untimed, then runs times
// timed, and summarises the wall times.
func (s *Session) Time(x []float32, n, warm, runs int) (Latency, error) {
	if runs <= 0 {
		return Latency{}, fmt.Errorf("ort: %d timed runs", runs)
	}
	for i := 0; i < warm; i++ {
		if _, err := s.Run(x, n); err != nil {
			return Latency{}, err
		}
	}
	ts := make([]time.Duration, runs)
	for i := range ts {
		t0 := time.Now()
		if _, err := s.Run(x, n); err != nil {
			return Latency{}, err
		}
		ts[i] = time.Since(t0)
	}
	return summarize(ts, n), nil
}

// OptimizedKernels loads the model with ONNX Runtime's graph
// optimizations (those of o) and counts the operators of the optimized
// graph it runs.
func OptimizedKernels(model []byte, o *Options) (Kernels, error) {
	dir, err := os.MkdirTemp("", "bitplan-ort-")
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "optimized.onnx")
	s, err := open(model, o, path)
	if err != nil {
		return nil, err
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ort: ONNX Runtime wrote no optimized model: %w", err)
	}
	return countKernels(b)
}
