//go:build !ort

package ort

import (
	"context"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
)

// Init returns ErrNotBuilt: this build has no ONNX Runtime.
func Init(lib string) error { return ErrNotBuilt }

// Version returns "": this build has no ONNX Runtime.
func Version() string { return "" }

// Session is a model loaded in ONNX Runtime; this build cannot make one.
type Session struct{}

// Open returns ErrNotBuilt.
func Open(model []byte, o *Options) (*Session, error) { return nil, ErrNotBuilt }

// OpenFile returns ErrNotBuilt.
func OpenFile(path string, o *Options) (*Session, error) { return nil, ErrNotBuilt }

// Inputs returns nil: this build has no ONNX Runtime.
func (s *Session) Inputs() []Input { return nil }

// RunInputs returns ErrNotBuilt.
func (s *Session) RunInputs(xs [][]float64, shapes [][]int, n int) ([]float32, error) {
	return nil, ErrNotBuilt
}

// Close does nothing.
func (s *Session) Close() {}

// Run returns ErrNotBuilt.
func (s *Session) Run(x []float32, n int) ([]float32, error) { return nil, ErrNotBuilt }

// Evaluate returns ErrNotBuilt.
func (s *Session) Evaluate(ctx context.Context, ds data.Dataset, o *EvalOptions) (eval.Result, []float32, error) {
	return eval.Result{}, nil, ErrNotBuilt
}

// Time returns ErrNotBuilt.
func (s *Session) Time(x []float32, n, warm, runs int) (Latency, error) {
	return Latency{}, ErrNotBuilt
}

// OptimizedKernels returns ErrNotBuilt.
func OptimizedKernels(model []byte, o *Options) (Kernels, error) { return nil, ErrNotBuilt }

// TimeInputs returns ErrNotBuilt.
func TimeInputs(model []byte, o *Options, feeds []Feed, warm, runs int) (Latency, error) {
	return Latency{}, ErrNotBuilt
}
