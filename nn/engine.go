package nn

import (
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/bitplan/bitplan/hessian"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/op"
)

// Options configures an Engine. The zero value (or nil) means defaults.
type Options struct {
	// Workers is the number of goroutines that process chunks in parallel
	// (default runtime.GOMAXPROCS(0)).
	Workers int
	// BatchSize is the number of samples per chunk, the unit of work and of
	// memory (default 32).
	BatchSize int
	// Output names the graph output holding the logits (default: the first
	// graph output).
	Output string
	// Loss is the objective (default ClassLabels{}, the mean cross-entropy
	// against one class label per sample).
	Loss Loss
	// Memory, when positive, bounds the bytes of the engine's work areas
	// (see WorkBytes): Workers of them at BatchSize samples plus one for a
	// final partial chunk. BatchSize is chosen from it when not set (at
	// most 256) and lowered to fit when set; Workers is lowered when even
	// one sample each does not fit; New fails with a *MemoryError when one
	// worker at one sample does not fit. 0: no limit (BatchSize defaults
	// to 32).
	Memory int64
	// check, set by tests, changes how work buffers are recycled (see
	// bufferCheck).
	check bufferCheck
	// Precision is the element type of the computation (default Auto:
	// float32 for models of at least AutoFloat32Params parameters, float64
	// below). θ, directions, gradients, products and losses are float64 at
	// the API whatever the precision; float32 runs accumulate each chunk's
	// products in float32 and add the chunks in float64.
	Precision Precision
}

// Precision is the element type the engine computes in.
type Precision int

const (
	// Auto chooses Float32 for models of at least AutoFloat32Params
	// parameters (real-size models, where float32 halves the memory and
	// doubles the GEMM throughput) and Float64 below (small models, tests).
	Auto Precision = iota
	// Float64 computes in float64: the reference for tests.
	Float64
	// Float32 computes in float32, as PyTorch does by default.
	Float32
)

// AutoFloat32Params is the parameter count from which Auto means Float32.
const AutoFloat32Params = 1 << 20

// String returns "auto", "float64" or "float32".
func (p Precision) String() string {
	switch p {
	case Float64:
		return "float64"
	case Float32:
		return "float32"
	}
	return "auto"
}

// ParsePrecision reads "auto", "float64" or "float32" (also "fp64",
// "fp32").
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "float64", "fp64", "f64":
		return Float64, nil
	case "float32", "fp32", "f32":
		return Float32, nil
	}
	return Auto, fmt.Errorf("precision %q: want auto, float64 or float32", s)
}

// MemoryError reports that the model does not fit the memory limit.
type MemoryError struct {
	// Need is the bytes of the smallest configuration (two work areas of
	// one sample: one worker and the partial chunk); Limit is
	// Options.Memory.
	Need, Limit int64
	// Tensor, when set, names the one tensor that alone needs Need bytes
	// ("Pad node "p" (#3): output "y" of shape [1 3 200001 200001]"): it
	// was refused before its kernel was made, so the whole model's need is
	// not known.
	Tensor string
}

func (e *MemoryError) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("nn: %s needs %.1f MB at batch size 1, more than the engine's memory limit of %.1f MB", e.Tensor, float64(e.Need)/1e6, float64(e.Limit)/1e6)
	}
	return fmt.Sprintf("nn: the model needs %.1f MB of engine memory at batch size 1, more than the limit of %.1f MB", float64(e.Need)/1e6, float64(e.Limit)/1e6)
}

// maxAutoBatch caps the batch size chosen from a memory limit: larger
// chunks gain little in GEMM efficiency.
const maxAutoBatch = 256

// Param is one parameter tensor (a unit's weight or bias initializer) and
// its range in θ.
type Param struct {
	Name   string
	Shape  []int
	Offset int
	Size   int
}

// UnitLayout places a quantizable unit's parameters in θ: the weight at
// [WeightOffset, WeightOffset+WeightSize), then the bias (BiasSize 0 when
// absent); together [Offset, Offset+Size).
type UnitLayout struct {
	Name                     string
	Op                       string
	Weight, Bias             string
	WeightShape              []int
	Offset, Size             int
	WeightOffset, WeightSize int
	BiasOffset, BiasSize     int
	// OutChannels is the number of output channels (an embedding table's
	// rows).
	OutChannels int
	// ChannelAxis is the weight's axis of output channels, along which a
	// per-channel quantizer keeps one scale per slice (model.Unit's).
	ChannelAxis int
	// HasInput reports that the unit's data input is a tensor of the
	// graph, so SetInputQuantizer acts on it; it is false for an LSTM's,
	// GRU's or RNN's R, whose input is the hidden state computed inside
	// the node.
	HasInput bool
	// channelStride and channelStep locate output channel c's weights:
	// element j of channel c is at WeightOffset + c·channelStride +
	// j·channelStep, for j < WeightSize/OutChannels.
	channelStride, channelStep int
	// group is the node's group count (1 but for grouped convolutions).
	group int
}

// OutputChannelIndices returns, for every output channel of the unit's
// node — the channels structured pruning removes — the indices in θ of its
// weights followed by its bias elements (when the bias has elements per
// output channel). It is ChannelIndices but for a ConvTranspose: its
// per-channel slices (OutChannels, axis 0 of its C×M/G×kernel weight) are
// its input channels, and its output channel m = g·M/G + j is the weight's
// axis-1 entry j over group g's C/G input channels; and for the W and R of
// an LSTM, GRU or RNN (D×gates·H×…), whose channels are the D·H hidden
// units of its D directions (each direction has its own rows and its own
// hidden state): channel d·H + k, unit k of direction d, is row g·H + k of
// every gate g of direction d, and of W's bias B (D×2·gates·H) entry
// p·H + k of each of direction d's 2·gates blocks.
func (u UnitLayout) OutputChannelIndices() [][]int {
	if gates := RecurrentGates(u.Op); gates > 0 && len(u.WeightShape) == 3 && u.WeightShape[1]%gates == 0 {
		return u.hiddenUnitIndices(gates)
	}
	if u.Op != "ConvTranspose" || len(u.WeightShape) < 3 {
		return u.ChannelIndices()
	}
	g := max(u.group, 1)
	c, mg := u.WeightShape[0], u.WeightShape[1]
	k := u.WeightSize / (c * mg)
	out := make([][]int, g*mg)
	for m := range out {
		grp, j := m/mg, m%mg
		idx := make([]int, 0, c/g*k+1)
		for ci := grp * c / g; ci < (grp+1)*c/g; ci++ {
			for t := 0; t < k; t++ {
				idx = append(idx, u.WeightOffset+(ci*mg+j)*k+t)
			}
		}
		if u.BiasSize == len(out) {
			idx = append(idx, u.BiasOffset+m)
		}
		out[m] = idx
	}
	return out
}

// RecurrentGates returns the gate blocks of a recurrent operator (ONNX's
// gate order: LSTM i, o, f, c; GRU z, r, h; RNN one), 0 for any other.
func RecurrentGates(op string) int {
	switch op {
	case "LSTM":
		return 4
	case "GRU":
		return 3
	case "RNN":
		return 1
	}
	return 0
}

// hiddenUnitIndices is OutputChannelIndices of a recurrent W or R:
// direction-major, channel d·H + k.
func (u UnitLayout) hiddenUnitIndices(gates int) [][]int {
	d, gh, x := u.WeightShape[0], u.WeightShape[1], u.WeightShape[2]
	h := gh / gates
	bias := u.biasPerOutputChannel(d * h)
	out := make([][]int, d*h)
	for di := 0; di < d; di++ {
		for k := 0; k < h; k++ {
			idx := make([]int, 0, gates*x+2*gates)
			for g := 0; g < gates; g++ {
				row := u.WeightOffset + (di*gh+g*h+k)*x
				for j := 0; j < x; j++ {
					idx = append(idx, row+j)
				}
			}
			if bias {
				for p := 0; p < 2*gates; p++ {
					idx = append(idx, u.BiasOffset+di*2*gh+p*h+k)
				}
			}
			out[di*h+k] = idx
		}
	}
	return out
}

// biasPerOutputChannel reports whether OutputChannelIndices's n channels
// hold the bias (one element per channel, or a recurrent B of 2·gates
// entries per unit of each direction), so no bias is left over.
func (u UnitLayout) biasPerOutputChannel(n int) bool {
	if u.BiasSize == 0 {
		return false
	}
	if gates := RecurrentGates(u.Op); gates > 0 && len(u.WeightShape) == 3 {
		return u.BiasSize == 2*gates*n
	}
	return u.BiasSize == n
}

// ChannelIndices returns, for every output channel, the indices in θ of
// its weights followed by its bias element (when the bias has one element
// per channel; a broadcast bias belongs to no channel).
func (u UnitLayout) ChannelIndices() [][]int {
	per := u.WeightSize / u.OutChannels
	out := make([][]int, u.OutChannels)
	for c := range out {
		idx := make([]int, 0, per+1)
		for j := 0; j < per; j++ {
			idx = append(idx, u.WeightOffset+c*u.channelStride+j*u.channelStep)
		}
		if u.BiasSize == u.OutChannels {
			idx = append(idx, u.BiasOffset+c)
		}
		out[c] = idx
	}
	return out
}

// Engine evaluates a model in float64 or float32 (Options.Precision) with gradients and exact
// Hessian-vector products with respect to θ. Evaluation methods are safe for
// concurrent use; SetParams and SetWeights must not run concurrently with
// them.
type Engine struct {
	m    *model.Model
	opts Options
	// inputs are the graph's data inputs in graph order; sample is the
	// first one's sample shape.
	inputs  []Input
	sample  []int
	output  string
	classes int
	// outShape is the output shape of one sample.
	outShape []int
	loss     Loss

	params []Param
	units  []UnitLayout
	// theta holds θ in float64. A float32 engine leaves it nil until θ is
	// first changed (SetTheta, SetWeights) and reads parameter i's float64
	// values from the model's initializer src[i] (not copied: the float32
	// kernels read th32); dim is θ's length.
	theta []float64
	src   [][]float64
	dim   int
	// prec is the resolved precision (Float64 or Float32); th32 holds θ
	// in float32 for Float32 runs, refreshed when th32Stale.
	prec      Precision
	th32Mu    sync.Mutex
	th32      []float32
	th32Stale bool

	mu     sync.Mutex
	plans  map[int]*plan
	vecs   vecPool[float64]
	vecs32 vecPool[float32]

	// inq holds the input quantizer of every unit (nil: none), see
	// SetInputQuantizer.
	inq []InputQuantizer
	// nodeq holds the input quantizers and output replacements of nodes
	// by node index, see SetNodeInputQuantizer and SetNodeOutput.
	nodeq map[int]*nodeHook
	// ste is the straight-through setting of gradient passes (ste.go).
	ste steConfig
}

// Input is one data input of the graph as the engine feeds it.
type Input struct {
	// Name is the graph input's name.
	Name string
	// Sample is the shape of one sample (without the batch dimension).
	Sample []int
	// Type is the declared element type; Integer reports an integer or
	// boolean input (token ids, attention masks), whose values the engine
	// holds as exact integers in floating point and never differentiates.
	Type    model.DataType
	Integer bool
}

// New prepares model m for execution. It fails, naming the node and
// operator, when the graph uses an operator or attribute the engine cannot
// execute, and when the output does not suit the loss (batch×classes
// logits for class labels and KL); the static Check runs first and reports
// every unsupported operator and construct at once (an *UnsupportedError).
// A KL loss without Theta takes the model's own parameters as loaded as
// its reference.
//
// The engine keeps reading m (plans for new batch sizes are built from
// it), and a float32 engine reads θ's float64 values from m's unit
// initializers until θ is first changed (SetTheta, SetWeights) instead of
// copying them: m must not be modified while the engine is in use.
func New(m *model.Model, opts *Options) (*Engine, error) {
	e := &Engine{m: m, plans: make(map[int]*plan)}
	if opts != nil {
		e.opts = *opts
	}
	e.loss = e.opts.Loss
	if e.loss == nil {
		e.loss = ClassLabels{}
	}
	if err := check(m, e.loss); err != nil {
		return nil, err
	}
	if e.opts.Workers <= 0 {
		e.opts.Workers = runtime.GOMAXPROCS(0)
	}
	autoBatch := e.opts.BatchSize <= 0
	if autoBatch {
		e.opts.BatchSize = 32
	}
	if len(m.Inputs) == 0 {
		return nil, fmt.Errorf("nn: the model has no data inputs")
	}
	for _, in := range m.Inputs {
		if len(in.Shape) < 1 {
			return nil, fmt.Errorf("nn: input %q has unknown rank, want batch×sample dimensions", in.Name)
		}
		spec := Input{Name: in.Name, Sample: slices.Clone(in.Shape[1:]), Type: in.Type, Integer: in.Type.IsInt()}
		for d, v := range spec.Sample {
			if v < 0 {
				return nil, fmt.Errorf("nn: input %q has shape %v: dimension %d is symbolic, only the batch dimension may be", in.Name, in.Shape, d+1)
			}
		}
		e.inputs = append(e.inputs, spec)
	}
	e.sample = e.inputs[0].Sample
	e.output = e.opts.Output
	if e.output == "" {
		e.output = m.Outputs[0].Name
	}
	owner := make(map[string]string)
	add := func(unit, name string) (int, int, error) {
		if name == "" {
			return 0, 0, nil
		}
		if u, dup := owner[name]; dup {
			return 0, 0, fmt.Errorf("nn: initializer %q is shared by units %q and %q; shared parameters are not supported", name, u, unit)
		}
		owner[name] = unit
		t := m.Initializers[name]
		off := e.dim
		e.params = append(e.params, Param{Name: name, Shape: slices.Clone(t.Shape), Offset: off, Size: t.Len()})
		e.src = append(e.src, t.Float)
		e.dim += t.Len()
		return off, t.Len(), nil
	}
	for _, u := range m.Units {
		l := UnitLayout{Name: u.Name, Op: u.Op, Weight: u.Weight, Bias: u.Bias, WeightShape: slices.Clone(u.WeightShape), OutChannels: u.OutChannels,
			ChannelAxis: u.ChannelAxis, HasInput: u.DataInput >= 0, group: u.Group}
		var err error
		if l.WeightOffset, l.WeightSize, err = add(u.Name, u.Weight); err != nil {
			return nil, err
		}
		if l.BiasOffset, l.BiasSize, err = add(u.Name, u.Bias); err != nil {
			return nil, err
		}
		if l.BiasSize == 0 {
			l.BiasOffset = l.WeightOffset + l.WeightSize
		}
		l.Offset, l.Size = l.WeightOffset, l.WeightSize+l.BiasSize
		ws := u.WeightShape
		switch {
		case u.OutChannels <= 0:
			l.OutChannels = 1
			l.channelStride, l.channelStep = l.WeightSize, 1
		case u.Op == "Conv" || u.Op == "ConvTranspose" || u.Op == "Gather" || u.Op == "LSTM" || u.Op == "GRU" || u.Op == "RNN" ||
			(u.Op == "Gemm" && u.WeightInput == 1 && u.TransB) ||
			(u.Op == "MatMul" && u.WeightInput == 0 && len(ws) == 2) ||
			(u.Op == "Einsum" && u.ChannelAxis == 0):
			// Output channel = leading dimension: contiguous rows.
			l.channelStride, l.channelStep = l.WeightSize/u.OutChannels, 1
		case u.Op == "Gemm" && u.WeightInput == 0:
			if ta, _ := m.Nodes[u.Node].AttrInt("transA", 0); ta != 0 {
				l.channelStride, l.channelStep = 1, u.OutChannels // A is K×M: columns
			} else {
				l.channelStride, l.channelStep = l.WeightSize/u.OutChannels, 1
			}
		default: // K×N weight: output channel is a column
			l.channelStride, l.channelStep = 1, u.OutChannels
			if len(ws) > 2 {
				l.OutChannels = 1
				l.channelStride, l.channelStep = l.WeightSize, 1
			}
		}
		e.units = append(e.units, l)
	}
	if e.dim == 0 {
		return nil, fmt.Errorf("nn: the model has no quantizable units (Conv, Gemm, MatMul or Einsum with a constant weight, Gather of an embedding table)")
	}
	switch e.prec = e.opts.Precision; e.prec {
	case Auto:
		e.prec = Float64
		if e.dim >= AutoFloat32Params {
			e.prec = Float32
		}
	case Float64, Float32:
	default:
		return nil, fmt.Errorf("nn: unknown precision %d", e.opts.Precision)
	}
	if e.prec == Float64 {
		e.own() // the kernels read θ itself
	}
	e.th32Stale = true
	p, err := e.plan(1)
	if err != nil {
		return nil, err
	}
	if e.opts.Memory > 0 {
		if err := e.fitMemory(autoBatch); err != nil {
			return nil, err
		}
	}
	e.outShape = slices.Clone(p.slots[p.out].shape[1:])
	e.classes = e.outShape[len(e.outShape)-1]
	if err := e.SetLoss(e.loss); err != nil {
		return nil, err
	}
	return e, nil
}

// SetLoss replaces the engine's objective (for example with per-position
// labels read after the engine was made: the labels' shape depends on the
// output's). It fails, before any work, when the loss does not suit the
// output: class labels and KL need batch×classes logits, per-position
// labels an output with a class axis. A KL loss without Theta takes a
// copy of the current θ as its reference. Like SetWeights, it must not run
// concurrently with evaluation.
func (e *Engine) SetLoss(l Loss) error {
	if l == nil {
		l = ClassLabels{}
	}
	if kl, ok := l.(KL); ok && kl.Theta == nil {
		kl.Theta = e.Theta()
		l = kl
	}
	if classLogits(l) && len(e.outShape) != 1 {
		return fmt.Errorf("nn: output %q has shape %v per sample; %s takes batch×classes logits (per-position labels or MSE take other outputs)", e.output, e.outShape, lossName(l))
	}
	if _, ok := l.(PositionLabels); ok && len(e.outShape) < 1 {
		return fmt.Errorf("nn: output %q is one value per sample; per-position labels need a class axis", e.output)
	}
	if ref, ok := l.(Referenced); ok && len(ref.Reference()) != e.dim {
		return fmt.Errorf("nn: the loss's reference parameters have %d values, want %d", len(ref.Reference()), e.dim)
	}
	e.loss = l
	return nil
}

// lossName names a loss in messages.
func lossName(l Loss) string {
	switch l.(type) {
	case ClassLabels:
		return "the class-label loss"
	case KL:
		return "the KL loss"
	case PositionLabels:
		return "the per-position loss"
	case MSE:
		return "the MSE loss"
	}
	return fmt.Sprintf("loss %T", l)
}

// fitMemory chooses the batch size (when auto) and the number of workers so
// that Workers+1 work areas of the batch size fit Options.Memory. A work
// area's bytes are affine in the batch size (tensors scale with it; the
// input shapes are fixed), so two plans give the line.
func (e *Engine) fitMemory(autoBatch bool) error {
	lim := e.opts.Memory
	b1, err := e.WorkBytes(1)
	if err != nil {
		return err
	}
	b2, err := e.WorkBytes(2)
	if err != nil {
		return err
	}
	per, base := b2-b1, 2*b1-b2
	if 2*b1 > lim {
		return &MemoryError{Need: 2 * b1, Limit: lim}
	}
	fits := func(workers, batch int) bool { return int64(workers+1)*(base+per*int64(batch)) <= lim }
	for e.opts.Workers > 1 && !fits(e.opts.Workers, 1) {
		e.opts.Workers--
	}
	if autoBatch {
		b := maxAutoBatch
		if per > 0 {
			b = int(min(int64(maxAutoBatch), (lim/int64(e.opts.Workers+1)-base)/per))
		}
		e.opts.BatchSize = max(b, 1)
	}
	for e.opts.BatchSize > 1 && !fits(e.opts.Workers, e.opts.BatchSize) {
		e.opts.BatchSize--
	}
	// The line is exact unless buffers of two tensors have equal lengths
	// at some batch sizes only (the pool shares them): check the plan.
	for e.opts.BatchSize > 1 {
		b, err := e.WorkBytes(e.opts.BatchSize)
		if err != nil {
			return err
		}
		if int64(e.opts.Workers+1)*b <= lim {
			break
		}
		e.opts.BatchSize--
	}
	return nil
}

// WorkBytes returns the bytes of one work area at batch size n: the most
// its recycled activation buffers (values, R-values, adjoints and
// R-adjoints, see the package comment's Memory) hold at once over an
// evaluation, a gradient and Hessian-vector products, plus the inputs, the
// kernels' state and the shared convolution scratch (the parameters, the
// passes' per-parameter accumulators and the dataset are not counted). Intermediates, TensorValues,
// TensorGradients and InputGradient use separate work areas holding every
// value and adjoint.
func (e *Engine) WorkBytes(n int) (int64, error) {
	p, err := e.plan(n)
	if err != nil {
		return 0, err
	}
	return p.bytes, nil
}

// BatchSize returns the samples per chunk (chosen from Options.Memory when
// it was not given).
func (e *Engine) BatchSize() int { return e.opts.BatchSize }

// Workers returns the number of goroutines that run chunks.
func (e *Engine) Workers() int { return e.opts.Workers }

// plan returns the cached plan for batch size n, building it on first use.
func (e *Engine) plan(n int) (*plan, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.plans[n]; ok {
		return p, nil
	}
	p, err := e.buildPlan(n)
	if err != nil {
		return nil, err
	}
	e.plans[n] = p
	return p, nil
}

// Precision returns the precision the engine computes in (Float64 or
// Float32; Auto is resolved by New).
func (e *Engine) Precision() Precision { return e.prec }

// touch marks the float32 copy of θ stale.
func (e *Engine) touch() {
	e.th32Mu.Lock()
	e.th32Stale = true
	e.th32Mu.Unlock()
}

// theta32 returns θ in float32 (nil in float64), converting it when θ
// changed since the last call.
func (e *Engine) theta32() []float32 {
	if e.prec != Float32 {
		return nil
	}
	e.th32Mu.Lock()
	defer e.th32Mu.Unlock()
	if e.th32Stale {
		if len(e.th32) != e.dim {
			e.th32 = make([]float32, e.dim)
		}
		for i, prm := range e.params {
			dst := e.th32[prm.Offset : prm.Offset+prm.Size]
			for k, v := range e.values(i) {
				dst[k] = float32(v)
			}
		}
		e.th32Stale = false
	}
	return e.th32
}

// values returns parameter i's float64 values (read-only).
func (e *Engine) values(i int) []float64 {
	if e.theta != nil {
		prm := e.params[i]
		return e.theta[prm.Offset : prm.Offset+prm.Size]
	}
	return e.src[i]
}

// own gives the engine its own float64 θ (before it is changed, or for
// float64 kernels): a copy of the model's initializers.
func (e *Engine) own() {
	if e.theta != nil {
		return
	}
	theta := make([]float64, e.dim)
	for i, prm := range e.params {
		copy(theta[prm.Offset:], e.src[i])
	}
	e.theta, e.src = theta, nil
}

// thetaRange returns a copy of θ[lo:hi).
func (e *Engine) thetaRange(lo, hi int) []float64 {
	out := make([]float64, hi-lo)
	if e.theta != nil {
		copy(out, e.theta[lo:hi])
		return out
	}
	for i, prm := range e.params {
		a, b := max(lo, prm.Offset), min(hi, prm.Offset+prm.Size)
		if a < b {
			copy(out[a-lo:b-lo], e.src[i][a-prm.Offset:b-prm.Offset])
		}
	}
	return out
}

// Model returns the imported model.
func (e *Engine) Model() *model.Model { return e.m }

// Dim returns the length of θ.
func (e *Engine) Dim() int { return e.dim }

// SampleShape returns the shape of one sample of the first input (without
// the batch dimension).
func (e *Engine) SampleShape() []int { return slices.Clone(e.sample) }

// Inputs returns the graph's data inputs in graph order.
func (e *Engine) Inputs() []Input {
	out := slices.Clone(e.inputs)
	for i := range out {
		out[i].Sample = slices.Clone(out[i].Sample)
	}
	return out
}

// Classes returns the length of the last output axis (the number of logits
// per sample for class labels).
func (e *Engine) Classes() int { return e.classes }

// OutputShape returns the output shape of one sample.
func (e *Engine) OutputShape() []int { return slices.Clone(e.outShape) }

// Loss returns the engine's objective.
func (e *Engine) Loss() Loss { return e.loss }

// Params returns the parameter tensors in θ order.
func (e *Engine) Params() []Param { return slices.Clone(e.params) }

// Units returns the layout of every quantizable unit in θ, in node order.
func (e *Engine) Units() []UnitLayout { return slices.Clone(e.units) }

// Blocks returns one block per unit (its weight and bias), named by the unit.
func (e *Engine) Blocks() []hessian.Block {
	b := make([]hessian.Block, len(e.units))
	for i, u := range e.units {
		b[i] = hessian.Block{Name: u.Name, Offset: u.Offset, Size: u.Size}
	}
	return b
}

// Theta returns a copy of the current parameters θ.
func (e *Engine) Theta() []float64 { return e.thetaRange(0, e.dim) }

// SetTheta replaces all parameters. len(theta) must be Dim().
func (e *Engine) SetTheta(theta []float64) error {
	if len(theta) != e.dim {
		return fmt.Errorf("nn: θ has %d values, want %d", len(theta), e.dim)
	}
	e.own()
	copy(e.theta, theta)
	e.touch()
	return nil
}

// SetWeights replaces the weight tensor of the named unit (for example with
// its fake-quantized values); w has the weight's shape in row-major order.
func (e *Engine) SetWeights(unit string, w []float64) error {
	for _, u := range e.units {
		if u.Name == unit {
			if len(w) != u.WeightSize {
				return fmt.Errorf("nn: unit %q: %d weight values, want %d (shape %v)", unit, len(w), u.WeightSize, u.WeightShape)
			}
			e.own()
			copy(e.theta[u.WeightOffset:], w)
			e.touch()
			return nil
		}
	}
	return fmt.Errorf("nn: no unit named %q", unit)
}

// Weights returns a copy of the named unit's weight tensor.
func (e *Engine) Weights(unit string) ([]float64, error) {
	for _, u := range e.units {
		if u.Name == unit {
			return e.thetaRange(u.WeightOffset, u.WeightOffset+u.WeightSize), nil
		}
	}
	return nil, fmt.Errorf("nn: no unit named %q", unit)
}

// Supported reports whether the engine can execute operator typ (on
// computed data, or on shape values folded before execution).
func Supported(typ string) bool {
	d := op.Lookup(typ, 0)
	return d != nil && (d.Exec != nil || d.Fold)
}
