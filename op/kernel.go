package op

// Work holds the buffers of one execution, indexed by slot (a tensor of the
// execution plan), in precision T. Val holds values; RV the R-values
// (directional derivatives R{x} = d/dr x(θ + r v)); Adj the adjoints
// x̄ = ∂L/∂x; RAdj the R-adjoints R{x̄}. A nil RV entry is an R-value that
// is identically zero; a nil Adj or RAdj entry an adjoint nobody needs.
// State holds each kernel's per-work scratch at the index Build.State gave
// it.
type Work[T Real] struct {
	Val, RV, Adj, RAdj [][]T
	State              []any

	scratch [][]T
}

// Scratch returns scratch buffer i of the Work with at least n elements,
// its contents undefined. The buffers are shared by every kernel of the
// Work (steps run one at a time), so a kernel may not expect a scratch
// buffer to survive from one of its passes to the next; they grow to the
// largest request.
func (w *Work[T]) Scratch(i, n int) []T {
	for len(w.scratch) <= i {
		w.scratch = append(w.scratch, nil)
	}
	if len(w.scratch[i]) < n {
		w.scratch[i] = make([]T, n)
	}
	return w.scratch[i][:n]
}

// ScratchBytes returns the bytes the scratch buffers hold.
func (w *Work[T]) ScratchBytes() int64 {
	var b int64
	for _, s := range w.scratch {
		b += int64(len(s)) * SizeOf[T]()
	}
	return b
}

// SizeOf returns the bytes of one element of type T.
func SizeOf[T Real]() int64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 4
	}
	return 8
}

// Kernel is the run-time implementation of one node in precision T.
// Forward and RForward overwrite their outputs; Backward and RBackward add
// into their inputs' adjoints. RBackward may read the values, R-values and
// adjoints the other passes left in the Work.
type Kernel[T Real] interface {
	Forward(w *Work[T])
	RForward(w *Work[T])
	Backward(w *Work[T])
	RBackward(w *Work[T])
}

// Retains declares which buffers a kernel's derivative passes (R-forward,
// backward, R-backward) read after its forward pass, beyond those every
// kernel reads: R-forward the R-values of the inputs, backward the adjoints
// of the outputs, R-backward the R-adjoints of the outputs. The engine
// (package nn) recycles a buffer as soon as no later pass of any kernel
// reads it, so an op whose gradient needs only its output does not keep
// its input. A pass may still test whether an undeclared buffer is nil (a
// nil R-value is zero): the engine leaves a recycled buffer's slice in
// place, so nil-ness never changes, only the contents become undefined. A
// kernel that is not a Retainer is taken to read every value, R-value and
// adjoint of its inputs and outputs in every pass. The class-derived
// kernels declare theirs (Linear: none; Elementwise: the arguments, f′ and
// f″ terms; see Unary, Binary), as do the hand-written ones;
// TestRetainsDeclared checks every declaration against the kernel by
// poisoning the undeclared buffers.
type Retains struct {
	// InVal: the derivative passes read the inputs' values (a bilinear
	// operator's other operand, an elementwise argument, indices).
	InVal bool
	// OutVal: they read the outputs' values (f′ written in terms of y).
	OutVal bool
	// InRV and OutRV: R-backward reads the inputs' (outputs') R-values
	// (second-order terms).
	InRV, OutRV bool
	// OutAdj: R-backward reads the outputs' adjoints ȳ (second-order terms).
	OutAdj bool
}

// Retainer is a kernel that declares what its derivative passes read.
type Retainer interface {
	Retains() Retains
}

// RetainsAll is what a kernel that declares nothing is taken to read.
var RetainsAll = Retains{InVal: true, OutVal: true, InRV: true, OutRV: true, OutAdj: true}

// RetainsOf returns k's declaration and true, or RetainsAll and false when
// k declares none.
func RetainsOf(k any) (Retains, bool) {
	if r, ok := k.(Retainer); ok {
		return r.Retains(), true
	}
	return RetainsAll, false
}

// Or returns the union of two declarations.
func (r Retains) Or(s Retains) Retains {
	return Retains{InVal: r.InVal || s.InVal, OutVal: r.OutVal || s.OutVal, InRV: r.InRV || s.InRV,
		OutRV: r.OutRV || s.OutRV, OutAdj: r.OutAdj || s.OutAdj}
}

// retainsBilinear is the declaration of a product of two operands (Gemm,
// MatMul, Conv, ConvTranspose): each operand's gradient reads the other
// operand, R-backward the R-values of both and ȳ.
var retainsBilinear = Retains{InVal: true, InRV: true, OutAdj: true}

// Exec builds the kernel of a node in either precision: the two
// instantiations of one generic constructor (see Both).
type Exec struct {
	F64 func(b *Build) (Kernel[float64], error)
	F32 func(b *Build) (Kernel[float32], error)
}

// Both returns the Exec of a constructor written once over Real, given
// its two instantiations: Both(newConv[float64], newConv[float32]).
func Both(f64 func(b *Build) (Kernel[float64], error), f32 func(b *Build) (Kernel[float32], error)) *Exec {
	return &Exec{F64: f64, F32: f32}
}

// NewKernel builds the kernel of e in precision T.
func NewKernel[T Real](e *Exec, b *Build) (Kernel[T], error) {
	var k any
	var err error
	var z T
	if _, ok := any(z).(float32); ok {
		k, err = e.F32(b)
	} else {
		k, err = e.F64(b)
	}
	if err != nil {
		return nil, err
	}
	return k.(Kernel[T]), nil
}

// Stateful kernels keep per-work state between their passes (argmax
// indices, softmax probabilities): NewState is called once per Work and its
// result stored at Work.State[Build.State]; StateBytes is its size, for
// the memory plan.
type Stateful interface {
	NewState() any
	StateBytes() int64
}

// ScratchUser kernels use the Work's shared scratch buffers; ScratchSizes
// returns the length each buffer index must have, so that the engine can
// allocate and count them before any work.
type ScratchUser interface {
	ScratchSizes() []int
}

// Slots describes the tensors of a plan to a kernel constructor.
type Slots interface {
	// Shape returns the shape of slot i.
	Shape(i int) []int
	// Const returns the values of slot i when it is a constant known when
	// the plan is built (in float64 whatever the precision of the run).
	Const(i int) ([]float64, bool)
	// Name returns the tensor name of slot i.
	Name(i int) string
}

// Build is what a kernel constructor sees: the node, the opset, the slots
// of its inputs and outputs (-1 for an omitted one) and the index of its
// state in Work.State.
type Build struct {
	Node    *Node
	Opset   int64
	In, Out []int
	State   int
	Slots   Slots
}

// Shape returns the shape of slot i.
func (b *Build) Shape(i int) []int { return b.Slots.Shape(i) }

// Size returns the number of elements of slot i.
func (b *Build) Size(i int) int { return Numel(b.Slots.Shape(i)) }

// Const returns the values of slot i when it is a constant.
func (b *Build) Const(i int) ([]float64, bool) { return b.Slots.Const(i) }

// Input returns the slot of input j, or -1 when it is absent.
func (b *Build) Input(j int) int {
	if j < len(b.In) {
		return b.In[j]
	}
	return -1
}

// AddTo adds src into dst elementwise.
func AddTo[T Real](dst, src []T) {
	for i, v := range src {
		dst[i] += v
	}
}

// Convert returns src converted to element type T (src itself when it
// already has that type; nil for nil).
func Convert[T, S Real](src []S) []T {
	if src == nil {
		return nil
	}
	if d, ok := any(src).([]T); ok {
		return d
	}
	d := make([]T, len(src))
	for i, v := range src {
		d[i] = T(v)
	}
	return d
}
