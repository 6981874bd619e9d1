// Package ort runs ONNX models in ONNX Runtime: the accuracy and loss of a
// (QDQ) model on a dataset, the kernels ONNX Runtime chose for it (from
// its optimized graph: QLinearConv, QLinearMatMul, MatMulNBits, or
// DequantizeLinear followed by a float operator) and its latency on this
// machine. Every data input of the model is fed (a data.Inputs dataset of
// several inputs, such as token ids and an attention mask, in the model's
// input order, each converted to its element type: INT64 ids stay exact);
// OpenFile loads a model whose weights are ONNX external data.
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
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/data"
	"github.com/bitplan/bitplan/eval"
	"github.com/bitplan/bitplan/nn"
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

// Feed is one graph input's values for TimeInputs: Shape with the batch
// dimension, and Float (float32 inputs) or Int (int64 inputs: token ids,
// attention masks).
type Feed struct {
	Name  string
	Shape []int64
	Float []float32
	Int   []int64
}

// NewFeed makes input name's feed of n samples of per-sample shape sample
// from x (n × the sample's size values, as a dataset reads them): Int when
// integer (token ids, masks), else Float.
func NewFeed(name string, integer bool, x []float64, n int, sample []int) Feed {
	f := Feed{Name: name, Shape: []int64{int64(n)}}
	for _, d := range sample {
		f.Shape = append(f.Shape, int64(d))
	}
	if integer {
		f.Int = make([]int64, len(x))
		for i, v := range x {
			f.Int[i] = int64(v)
		}
	} else {
		f.Float = make([]float32, len(x))
		for i, v := range x {
			f.Float[i] = float32(v)
		}
	}
	return f
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

// Input is one data input of a model as ONNX Runtime is fed it.
type Input struct {
	// Name is the graph input's name.
	Name string
	// Type is its ONNX element type (onnx.TensorProto_FLOAT, _INT64…).
	Type onnx.TensorProto_DataType
	// Sample is the per-sample shape (without the batch dimension); 0
	// marks a symbolic dimension, taken from the data.
	Sample []int64
}

// modelIO returns a model's data inputs (the graph inputs that are not
// initializers, in file order: the order of the engine's model.Inputs,
// to which data.Inputs datasets are matched) and its first output.
func modelIO(b []byte) (ins []Input, out string, err error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil || mp.Graph == nil {
		return nil, "", fmt.Errorf("ort: not an ONNX model: %v", err)
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
		in := Input{Name: v.Name, Type: onnx.TensorProto_FLOAT}
		if tt := v.GetType().GetTensorType(); tt != nil {
			if tt.ElemType != 0 {
				in.Type = onnx.TensorProto_DataType(tt.ElemType)
			}
			if tt.Shape != nil {
				in.Sample = []int64{}
				for i, d := range tt.Shape.Dim {
					if i > 0 {
						in.Sample = append(in.Sample, d.GetDimValue())
					}
				}
			}
		}
		ins = append(ins, in)
	}
	if len(ins) == 0 || len(g.Output) == 0 {
		return nil, "", fmt.Errorf("ort: the model has no data input or no output")
	}
	return ins, g.Output[0].Name, nil
}

// sampleShapes returns the per-sample shape of every input for data whose
// samples have the given shapes (nil: the model's own, which must then be
// fixed), checked against the model's fixed dimensions.
func sampleShapes(ins []Input, data [][]int) ([][]int64, error) {
	if data != nil && len(data) != len(ins) {
		return nil, fmt.Errorf("ort: %d inputs in the data, the model has %d (%s)", len(data), len(ins), inputNames(ins))
	}
	out := make([][]int64, len(ins))
	for i, in := range ins {
		if data == nil {
			if in.Sample == nil || slices.Contains(in.Sample, 0) {
				return nil, fmt.Errorf("ort: input %q has the symbolic per-sample shape %v; give the data's shape", in.Name, in.Sample)
			}
			out[i] = in.Sample
			continue
		}
		d := data[i]
		ok := in.Sample == nil || len(in.Sample) == len(d)
		for k := 0; ok && in.Sample != nil && k < len(d); k++ {
			ok = in.Sample[k] == 0 || in.Sample[k] == int64(d[k])
		}
		if !ok {
			return nil, fmt.Errorf("ort: input %d of the data has samples of shape %v, the model's input %q takes %v (0: any size)", i, d, in.Name, in.Sample)
		}
		out[i] = make([]int64, len(d))
		for k, v := range d {
			out[i][k] = int64(v)
		}
	}
	return out, nil
}

func inputNames(ins []Input) string {
	names := make([]string, len(ins))
	for i, in := range ins {
		names[i] = in.Name
	}
	return strings.Join(names, ", ")
}

// EvalOptions are the options of Session.Evaluate.
type EvalOptions struct {
	// Batch is the number of samples of one run (0: 100).
	Batch int
	// Loss scores the outputs, as the engine's simulation scores them
	// (nil: nn.ClassLabels{}): per-position labels read the class axis the
	// loss names, and the loss is the mean over what the loss counts
	// (samples, labelled positions, output elements).
	Loss nn.Loss
	// Ref is the session of the reference model of an nn.Referenced loss
	// (KL: the float model); its outputs on each batch are the chunk's
	// reference outputs. Required by such a loss, ignored by others.
	Ref *Session
	// Keep returns the outputs of every sample.
	Keep bool
}

// scorer accumulates a loss over the batches of an evaluation with the
// loss's own Eval, the function the engine's simulation scores with, so
// ONNX Runtime's outputs are read in the same layout (class axis 1 or
// last of N×C×… / N×…×C, mean over scored positions).
type scorer struct {
	loss    nn.Loss
	ds      data.Dataset
	shape   []int // per-sample output shape, set by the first batch
	denom   float64
	sum     float64
	correct int
	scored  int
	n       int
	z, ref  []float64
}

func newScorer(l nn.Loss, ds data.Dataset) *scorer {
	if l == nil {
		l = nn.ClassLabels{}
	}
	return &scorer{loss: l, ds: ds}
}

// add scores samples [start, start+n) whose outputs z have per-sample
// shape shape (ref: the reference outputs of a referenced loss, else nil);
// labels are the dataset's labels of the samples.
func (s *scorer) add(start, n int, z []float32, shape []int, labels []int, ref []float32) error {
	per := 1
	for _, d := range shape {
		per *= d
	}
	if n <= 0 || len(z) != n*per {
		return fmt.Errorf("ort: %d output values for %d samples of shape %v", len(z), n, shape)
	}
	if s.shape == nil {
		d, err := s.loss.Prepare(shape, s.ds)
		if err != nil {
			return fmt.Errorf("ort: %w", err)
		}
		s.shape, s.denom = append([]int{}, shape...), d
	} else if !slices.Equal(shape, s.shape) {
		return fmt.Errorf("ort: output shape %v per sample at sample %d, %v before", shape, start, s.shape)
	}
	s.z = widen(s.z, z)
	c := &nn.Chunk{Start: start, N: n, Out: s.z, Shape: s.shape, Labels: labels[:n]}
	if _, ok := s.loss.(nn.Referenced); ok {
		if len(ref) != len(z) {
			return fmt.Errorf("ort: %d reference output values for %d outputs", len(ref), len(z))
		}
		s.ref = widen(s.ref, ref)
		c.Ref = s.ref
	}
	l, correct, scored, err := s.loss.Eval(c, 1, nil, nil, nil)
	if err != nil {
		return fmt.Errorf("ort: %w", err)
	}
	s.sum += l
	s.correct += correct
	s.scored += scored
	s.n += n
	return nil
}

// result returns the mean loss and the accuracy over the scored
// predictions, as the simulation reports them.
func (s *scorer) result() eval.Result {
	r := eval.Result{Correct: s.correct, Scored: s.scored, N: s.n}
	if s.denom > 0 {
		r.Loss = s.sum / s.denom
	}
	if s.scored > 0 {
		r.Accuracy = float64(s.correct) / float64(s.scored)
	}
	return r
}

func widen(dst []float64, z []float32) []float64 {
	dst = slices.Grow(dst[:0], len(z))[:len(z)]
	for i, v := range z {
		dst[i] = float64(v)
	}
	return dst
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
