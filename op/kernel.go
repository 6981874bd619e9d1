package op

// Work holds the buffers of one execution, indexed by slot (a tensor of the
// execution plan). Val holds values; RV the R-values (directional
// derivatives R{x} = d/dr x(θ + r v)); Adj the adjoints x̄ = ∂L/∂x; RAdj the
// R-adjoints R{x̄}. A nil RV entry is an R-value that is identically zero; a
// nil Adj or RAdj entry an adjoint nobody needs. State holds each kernel's
// per-work scratch at the index Build.State gave it.
type Work struct {
	Val, RV, Adj, RAdj [][]float64
	State              []any

	scratch [][]float64
}

// Scratch returns scratch buffer i of the Work with at least n elements,
// its contents undefined. The buffers are shared by every kernel of the
// Work (steps run one at a time), so a kernel may not expect a scratch
// buffer to survive from one of its passes to the next; they grow to the
// largest request.
func (w *Work) Scratch(i, n int) []float64 {
	for len(w.scratch) <= i {
		w.scratch = append(w.scratch, nil)
	}
	if len(w.scratch[i]) < n {
		w.scratch[i] = make([]float64, n)
	}
	return w.scratch[i][:n]
}

// ScratchBytes returns the bytes the scratch buffers hold.
func (w *Work) ScratchBytes() int64 {
	var b int64
	for _, s := range w.scratch {
		b += int64(len(s)) * 8
	}
	return b
}

// Kernel is the run-time implementation of one node. Forward and RForward
// overwrite their outputs; Backward and RBackward add into their inputs'
// adjoints. RBackward may read the values, R-values and adjoints the other
// passes left in the Work.
type Kernel interface {
	Forward(w *Work)
	RForward(w *Work)
	Backward(w *Work)
	RBackward(w *Work)
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
	// the plan is built.
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
func AddTo(dst, src []float64) {
	for i, v := range src {
		dst[i] += v
	}
}
