// Package ort runs ONNX models in ONNX Runtime: the accuracy and loss of a
// (QDQ) model on a dataset, the kernels ONNX Runtime chose for it (from
// its optimized graph: QLinearConv, QLinearMatMul, MatMulNBits, or
// DequantizeLinear followed by a float operator) and its latency on this
// machine.
//
// The binding (github.com/yalue/onnxruntime_go, cgo) is built only with
// the build tag ort; default builds are pure Go and every function returns
// ErrNotBuilt. The shared library is loaded at run time from the path
// given to Init, or else from the environment variable BITPLAN_ORT_LIB.
// onnxruntime_go v1.27.0 speaks ONNX Runtime's C API version 24 (ONNX
// Runtime 1.24); the npm package onnxruntime-node@1.24.1 ships a matching
// Linux x64 library:
//
//	npm install --ignore-scripts --prefix DIR onnxruntime-node@1.24.1
//	export BITPLAN_ORT_LIB=DIR/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1
//	go test -tags ort ./ort
//
// Newer libraries also serve API version 24.
package ort

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// LibraryEnv is the environment variable that names the ONNX Runtime
// shared library when Init gets no path.
const LibraryEnv = "BITPLAN_ORT_LIB"

// Install says how to get the library, for error and skip messages.
const Install = "install ONNX Runtime's library with `npm install --ignore-scripts --prefix DIR onnxruntime-node@1.24.1` and set " +
	LibraryEnv + "=DIR/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1; build with -tags ort"

// ErrNotBuilt is returned by every function of a build without the ort
// tag.
var ErrNotBuilt = errors.New("ort: bitplan was built without ONNX Runtime (rebuild with -tags ort; " + Install + ")")

// ErrNoLibrary is returned by Init when neither a path nor LibraryEnv
// names the library.
var ErrNoLibrary = errors.New("ort: no ONNX Runtime library: " + Install)

// Options tunes a session. The zero value (or nil) means defaults.
type Options struct {
	// Threads is the number of intra-op threads (0: 1, so that latency
	// figures are per core and reproducible on a shared machine).
	Threads int
	// NoOptimize turns ONNX Runtime's graph optimizations off (the QDQ
	// nodes then run as written, DequantizeLinear + float operator).
	NoOptimize bool
}

// Kernels counts the operators of ONNX Runtime's optimized graph by
// "domain:op" ("QLinearConv", "com.microsoft:QGemm").
type Kernels map[string]int

// Quantized returns the integer kernels among k: QLinear*, QGemm,
// MatMulInteger*, ConvInteger, MatMulNBits, DynamicQuantize*.
func (k Kernels) Quantized() Kernels {
	out := Kernels{}
	for n, c := range k {
		op := n[strings.LastIndex(n, ":")+1:]
		if strings.HasPrefix(op, "QLinear") || op == "QGemm" || strings.HasPrefix(op, "MatMulInteger") ||
			op == "ConvInteger" || op == "MatMulNBits" || strings.HasPrefix(op, "DynamicQuantize") || op == "NhwcQLinearConv" {
			out[n] = c
		}
	}
	return out
}

// countKernels reads an optimized model and counts its operators.
func countKernels(b []byte) (Kernels, error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil || mp.Graph == nil {
		return nil, fmt.Errorf("ort: reading the optimized model: %v", err)
	}
	k := Kernels{}
	for _, n := range mp.Graph.Node {
		name := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			name = n.Domain + ":" + n.OpType
		}
		k[name]++
	}
	return k, nil
}

// io returns a model's data input (the first graph input that is not an
// initializer), its per-sample shape and its first output.
func modelIO(b []byte) (in string, sample []int64, out string, err error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil || mp.Graph == nil {
		return "", nil, "", fmt.Errorf("ort: not an ONNX model: %v", err)
	}
	g := mp.Graph
	inits := map[string]bool{}
	for _, t := range g.Initializer {
		inits[t.Name] = true
	}
	for _, v := range g.Input {
		if inits[v.Name] {
			continue
		}
		in = v.Name
		if tt := v.GetType().GetTensorType(); tt != nil && tt.Shape != nil {
			for i, d := range tt.Shape.Dim {
				if i == 0 {
					continue
				}
				sample = append(sample, d.GetDimValue())
			}
		}
		break
	}
	if in == "" || len(g.Output) == 0 {
		return "", nil, "", fmt.Errorf("ort: the model has no data input or no output")
	}
	return in, sample, g.Output[0].Name, nil
}

// crossEntropy returns −log softmax(z)[label] and whether the arg max is
// the label (the first maximum, as the Go engine counts it).
func crossEntropy(z []float32, label int) (float64, bool) {
	best := 0
	m := math.Inf(-1)
	for i, v := range z {
		if float64(v) > m {
			m, best = float64(v), i
		}
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - m)
	}
	return math.Log(s) + m - float64(z[label]), best == label
}

// Latency summarises repeated timings of one inference.
type Latency struct {
	// Median, Min and Max of Runs timed runs (after warm-up runs).
	Median, Min, Max time.Duration
	Runs             int
	// Batch is the batch size of one run.
	Batch int
}

func summarize(ts []time.Duration, batch int) Latency {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return Latency{Median: ts[len(ts)/2], Min: ts[0], Max: ts[len(ts)-1], Runs: len(ts), Batch: batch}
}

// IdentityModel returns a model whose one node, Identity, returns its
// float input of the given shape: timing it measures the runtime's fixed
// cost of one call (tensor creation, session dispatch), which a per-layer
// latency subtracts.
func IdentityModel(shape []int) []byte {
	tt := &onnx.TypeProto_Tensor{ElemType: int32(onnx.TensorProto_FLOAT), Shape: &onnx.TensorShapeProto{}}
	for _, d := range shape {
		tt.Shape.Dim = append(tt.Shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	vi := func(name string) *onnx.ValueInfoProto {
		return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: tt}}}
	}
	mp := &onnx.ModelProto{IrVersion: 10, ProducerName: "bitplan",
		OpsetImport: []*onnx.OperatorSetIdProto{{Version: 21}},
		Graph: &onnx.GraphProto{Name: "identity", Input: []*onnx.ValueInfoProto{vi("X")}, Output: []*onnx.ValueInfoProto{vi("Y")},
			Node: []*onnx.NodeProto{{OpType: "Identity", Input: []string{"X"}, Output: []string{"Y"}}}}}
	b, err := proto.Marshal(mp)
	if err != nil {
		panic("ort: marshalling a fixed model: " + err.Error())
	}
	return b
}
