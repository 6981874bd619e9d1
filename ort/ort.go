//go:build ort

package ort

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
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
	s   *ortgo.DynamicAdvancedSession
	ins []Input
	out string
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

// Open loads a serialized model. Init must have succeeded. A model with
// external data loads with OpenFile (or inline, model.Inline).
func Open(model []byte, o *Options) (*Session, error) {
	return open(model, "", o, "")
}

// OpenFile loads the model file at path; ONNX Runtime reads its external
// data, if any, from the files its tensors name relative to the file's
// directory. Init must have succeeded.
func OpenFile(path string, o *Options) (*Session, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	return open(b, path, o, "")
}

func open(model []byte, path string, o *Options, optimized string) (*Session, error) {
	if !ortgo.IsInitialized() {
		return nil, fmt.Errorf("ort: call Init first (%s)", Install)
	}
	ins, out, err := modelIO(model)
	if err != nil {
		return nil, err
	}
	so, err := options(o, optimized)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	names := make([]string, len(ins))
	for i, in := range ins {
		names[i] = in.Name
	}
	var s *ortgo.DynamicAdvancedSession
	if path != "" {
		s, err = ortgo.NewDynamicAdvancedSession(path, names, []string{out}, so)
	} else {
		s, err = ortgo.NewDynamicAdvancedSessionWithONNXData(model, names, []string{out}, so)
	}
	if err != nil {
		return nil, fmt.Errorf("ort: ONNX Runtime rejects the model: %w", err)
	}
	return &Session{s: s, ins: ins, out: out}, nil
}

// Inputs returns the model's data inputs in the order RunInputs takes
// them.
func (s *Session) Inputs() []Input { return slices.Clone(s.ins) }

// Close releases the session.
func (s *Session) Close() {
	if s.s != nil {
		s.s.Destroy()
		s.s = nil
	}
}

// Run returns the first output for a batch of n samples x (n × the
// model's per-sample input shape, float32) of a model with one input.
func (s *Session) Run(x []float32, n int) ([]float32, error) {
	if len(s.ins) != 1 {
		return nil, fmt.Errorf("ort: the model has %d inputs (%s); give each with RunInputs", len(s.ins), inputNames(s.ins))
	}
	shapes, err := sampleShapes(s.ins, nil)
	if err != nil {
		return nil, err
	}
	x64 := make([]float64, len(x))
	for i, v := range x {
		x64[i] = float64(v)
	}
	z, _, err := s.run([][]float64{x64}, shapes, n)
	return z, err
}

// RunInputs returns the first output for a batch of n samples of every
// input, in the order of Inputs: xs[i] holds n × input i's per-sample
// values of shape shapes[i] (nil: the model's declared shapes), converted
// to the input's element type (token ids and masks to INT64 exactly).
func (s *Session) RunInputs(xs [][]float64, shapes [][]int, n int) ([]float32, error) {
	sh, err := sampleShapes(s.ins, shapes)
	if err != nil {
		return nil, err
	}
	z, _, err := s.run(xs, sh, n)
	return z, err
}

// tensor makes input in's tensor of n samples of shape sample from x.
func tensor(in Input, x []float64, n int, sample []int64) (ortgo.Value, error) {
	shape := append(ortgo.Shape{int64(n)}, sample...)
	switch in.Type {
	case onnx.TensorProto_FLOAT:
		return ortgo.NewTensor(shape, convert[float32](x))
	case onnx.TensorProto_DOUBLE:
		return ortgo.NewTensor(shape, slices.Clone(x))
	case onnx.TensorProto_INT64:
		return ortgo.NewTensor(shape, convert[int64](x))
	case onnx.TensorProto_INT32:
		return ortgo.NewTensor(shape, convert[int32](x))
	case onnx.TensorProto_INT8:
		return ortgo.NewTensor(shape, convert[int8](x))
	case onnx.TensorProto_UINT8:
		return ortgo.NewTensor(shape, convert[uint8](x))
	case onnx.TensorProto_BOOL:
		b := make([]bool, len(x))
		for i, v := range x {
			b[i] = v != 0
		}
		return ortgo.NewTensor(shape, b)
	}
	return nil, fmt.Errorf("ort: input %q has element type %v; the binding feeds FLOAT, DOUBLE, INT64, INT32, INT8, UINT8 and BOOL inputs", in.Name, in.Type)
}

func convert[T float32 | int64 | int32 | int8 | uint8](x []float64) []T {
	out := make([]T, len(x))
	for i, v := range x {
		out[i] = T(v)
	}
	return out
}

// run returns the first output and its shape per sample.
func (s *Session) run(xs [][]float64, shapes [][]int64, n int) ([]float32, []int, error) {
	if len(xs) != len(s.ins) {
		return nil, nil, fmt.Errorf("ort: %d inputs given, the model has %d (%s)", len(xs), len(s.ins), inputNames(s.ins))
	}
	vals := make([]ortgo.Value, len(xs))
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, in := range s.ins {
		per := 1
		for _, d := range shapes[i] {
			per *= int(d)
		}
		if n <= 0 || len(xs[i]) != n*per {
			return nil, nil, fmt.Errorf("ort: input %q: %d values for %d samples of %d", in.Name, len(xs[i]), n, per)
		}
		v, err := tensor(in, xs[i], n, shapes[i])
		if err != nil {
			return nil, nil, fmt.Errorf("ort: input %q: %w", in.Name, err)
		}
		vals[i] = v
	}
	outs := []ortgo.Value{nil}
	if err := s.s.Run(vals, outs); err != nil {
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
// A dataset of several inputs (data.Inputs: token ids and a mask) feeds
// every model input, in the model's input order (the order the data were
// matched to), each converted to the input's element type.
func (s *Session) Evaluate(ctx context.Context, ds data.Dataset, o *EvalOptions) (eval.Result, []float32, error) {
	if o == nil {
		o = &EvalOptions{}
	}
	batch := o.Batch
	if batch <= 0 {
		batch = 100
	}
	dshapes := data.ShapesOf(ds)
	shapes, err := sampleShapes(s.ins, dshapes)
	if err != nil {
		return eval.Result{}, nil, err
	}
	sc := newScorer(o.Loss, ds)
	_, referenced := sc.loss.(nn.Referenced)
	if referenced && o.Ref == nil {
		return eval.Result{}, nil, fmt.Errorf("ort: the loss compares the model with a reference model, and no reference session was given")
	}
	pers := make([]int, len(shapes))
	bufs := make([][]float64, len(shapes))
	for i, sh := range dshapes {
		pers[i] = 1
		for _, d := range sh {
			pers[i] *= d
		}
		bufs[i] = make([]float64, batch*pers[i])
	}
	var logits []float32
	labels := make([]int, batch)
	chunk := make([][]float64, len(bufs))
	for start := 0; start < ds.Len(); start += batch {
		if err := ctx.Err(); err != nil {
			return eval.Result{}, nil, err
		}
		n := min(batch, ds.Len()-start)
		for i := range bufs {
			chunk[i] = bufs[i][:n*pers[i]]
		}
		if err := data.ReadAll(ds, start, chunk, labels[:n]); err != nil {
			return eval.Result{}, nil, err
		}
		z, shape, err := s.run(chunk, shapes, n)
		if err != nil {
			return eval.Result{}, nil, err
		}
		var ref []float32
		if referenced {
			if ref, err = o.Ref.RunInputs(chunk, dshapes, n); err != nil {
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

// Time runs the model on x (n samples of its one input) warm times
// untimed, then runs times timed, and summarises the wall times.
func (s *Session) Time(x []float32, n, warm, runs int) (Latency, error) {
	return s.time(func() error { _, err := s.Run(x, n); return err }, n, warm, runs)
}

func (s *Session) time(run func() error, n, warm, runs int) (Latency, error) {
	if runs <= 0 {
		return Latency{}, fmt.Errorf("ort: %d timed runs", runs)
	}
	for i := 0; i < warm; i++ {
		if err := run(); err != nil {
			return Latency{}, err
		}
	}
	ts := make([]time.Duration, runs)
	for i := range ts {
		t0 := time.Now()
		if err := run(); err != nil {
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
	s, err := open(model, "", o, path)
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
