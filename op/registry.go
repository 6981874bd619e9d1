package op

import (
	"fmt"
	"sort"
	"strings"
)

// Class is how an operator's derivatives are obtained. It names the rule
// family the kernel's four passes follow (see the package comment).
type Class int

const (
	// NotDifferentiable operators never carry derivatives: they run only on
	// values known before execution (shape arithmetic) or produce integer
	// or boolean outputs.
	NotDifferentiable Class = iota
	// Linear operators y = L(x_1, …, x_k) give the map and its transpose:
	// R{y} = L(R{x}), x̄ += Lᵀ ȳ, R{x̄} += Lᵀ R{ȳ}.
	Linear
	// Elementwise operators y = f(x) give f, f′ and f″ (unary) or f and its
	// first and second partials (binary, with broadcasting).
	Elementwise
	// Bilinear operators y = B(a, b) give B and its two transposes.
	Bilinear
	// Composite operators are written over the primitives above; their
	// rules follow from the primitives'.
	Composite
	// Custom operators hand-write all four passes because a derived rule
	// would be much slower; the Def says why.
	Custom
)

var classNames = [...]string{"not differentiable", "linear", "elementwise", "bilinear", "composite", "custom"}

// String returns the class name.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Flow is how an operator moves the channels of a tracked tensor, as
// structured pruning sees it.
type Flow int

const (
	// FlowBlocks operators mix or reorder channels: a pruning group that
	// reaches one is not pruned.
	FlowBlocks Flow = iota
	// FlowPass operators map channel c of their first input to channel c of
	// their output, elementwise (activations, Identity, Dropout, Cast).
	FlowPass
	// FlowPool operators keep the channel axis 1 and reduce or window the
	// spatial axes (pooling).
	FlowPool
	// FlowBroadcast operators combine their inputs elementwise with
	// broadcasting: two tracked operands are tied, a constant one is sliced.
	FlowBroadcast
	// FlowNorm operators map channel c of their input to channel c of
	// their output alone, through constant per-channel vectors on every
	// other input (inference BatchNormalization, an affine map;
	// InstanceNormalization, which standardizes each channel).
	FlowNorm
	// FlowFlatten operators flatten the trailing axes, so channel c becomes
	// a block of features.
	FlowFlatten
	// FlowConv, FlowGemm and FlowMatMul operators consume channels through
	// a weight (and produce new ones when they own a unit).
	FlowConv
	FlowGemm
	FlowMatMul
	// FlowConvTranspose operators consume channels through axis 0 of a
	// C×M/group×kernel weight and produce new ones on its axis 1.
	FlowConvTranspose
	// FlowReduce operators (ReduceMean, ReduceSum, ReduceMax, …) reduce a
	// set of axes (ReduceAxes): channels on an axis they keep pass
	// through (moved when keepdims is 0); a reduction over the channel
	// axis consumes them.
	FlowReduce
)

// Def is everything the program knows about one ONNX operator of the
// default domain. Package model reads Infer, Eval and Exec (folding, see
// Fold) and Unit, package nn Exec and Fold, package prune Channels; the
// conformance test reads Cases.
type Def struct {
	// Type is the ONNX operator type, e.g. "Relu".
	Type string
	// Since is the first opset whose semantics the record implements (0:
	// every opset); Until, when non-zero, the last. Opset-dependent
	// attributes (Softmax's axis) are resolved by Infer and Exec from
	// Build.Opset.
	Since, Until int64
	// Infer sets the shapes and element types of n's outputs in s from its
	// inputs', and, for integer outputs computable without the input data,
	// their values in s.Ints (the shape arithmetic of exports). It leaves an
	// output unset when an input is unknown. nil: outputs are unknown
	// (taken from the graph's value_info).
	Infer func(n *Node, s *Shapes) error
	// Fold reports that the operator is evaluated only on values known
	// before execution — by Infer (Shape, Size) or Eval (Equal, Where,
	// Range, ...) — and that the engine has no kernel for it.
	Fold bool
	// Eval computes the outputs of n from constant inputs, for an
	// operator without a kernel (see Fold in fold.go): ins[i] is the
	// value of input i (nil for an omitted one), and outs[j] is allocated
	// with output j's inferred shape and type (nil for an omitted output)
	// for Eval to fill. An operator with a kernel has no Eval: its
	// constants are folded by the kernel itself.
	Eval func(n *Node, ins, outs []*Tensor) error
	// Exec builds the kernel that runs the node on computed data with its
	// derivative passes, in float64 or float32; nil when the engine cannot
	// run it.
	Exec *Exec
	// Class is how the kernel's derivatives are obtained.
	Class Class
	// View reports that output 0 is input 0's data unchanged in another
	// shape (Reshape, Flatten, Identity, ...): the engine lets the two share
	// storage and runs no kernel.
	View bool
	// Unit, when set, recognises a node that owns a quantizable weight and
	// returns its description, or nil when this node has none (e.g. a
	// MatMul of two activations).
	Unit func(n *Node, g UnitGraph) (*UnitSpec, error)
	// Units, for a node that owns several quantizable weights (LSTM's W
	// and R), returns one description each (their Suffix names them);
	// it is read instead of Unit when set.
	Units func(n *Node, g UnitGraph) ([]*UnitSpec, error)
	// Channels is how the operator moves channels (package prune).
	Channels Flow
	// Cases are the small problems the conformance test runs; every
	// registered operator needs at least one.
	Cases []Case
}

// Case is one conformance problem for an operator: attributes, input
// shapes, and which inputs are constants. Inputs without Const values are
// random and differentiable; the test checks the kernel's gradient, its
// Hessian-vector product and the symmetry of its Hessian against finite
// differences, and Infer's shapes against the kernel's outputs.
type Case struct {
	// Name describes the case in failures.
	Name string
	// Opset is the opset to build at (0: 17).
	Opset int64
	// Attrs are the node's attributes.
	Attrs []*Attr
	// Inputs are the node's inputs in order.
	Inputs []CaseInput
	// Outputs is the number of node outputs (0: 1).
	Outputs int
	// Want, when set, is the expected shape of output 0 (checked for every
	// operator, executable or not).
	Want []int
}

// CaseInput is one input of a Case.
type CaseInput struct {
	// Shape is the input's shape.
	Shape []int
	// Const holds the values of a constant floating-point input; Ints the
	// values of a constant integer input (for shape operands). Neither:
	// random and differentiable.
	Const []float64
	Ints  []int64
	// Lo and Hi bound the random values (default −1, 1); keep them away
	// from the kinks of piecewise operators.
	Lo, Hi float64
	// Data marks Ints as run-time integer data (token ids read from an
	// input), not a constant: the kernel sees them only when it runs, and
	// they carry no derivative.
	Data bool
	// Absent marks an omitted optional input ("").
	Absent bool
}

var registry = map[string]*Def{}

// Register adds d to the registry. It panics on a duplicate or unnamed
// operator: registration happens in init functions of this package, so a
// mistake is a programming error found by every test.
func Register(d *Def) {
	if d.Type == "" {
		panic("op: Register: empty operator type")
	}
	if _, dup := registry[d.Type]; dup {
		panic("op: Register: duplicate operator " + d.Type)
	}
	registry[d.Type] = d
}

// Lookup returns the record of operator typ of the default domain at the
// given opset (0: any), or nil when none is registered.
func Lookup(typ string, opset int64) *Def {
	d := registry[typ]
	if d == nil {
		return nil
	}
	if opset > 0 && (opset < d.Since || (d.Until > 0 && opset > d.Until)) {
		return nil
	}
	return d
}

// Defs returns every registered record sorted by operator type.
func Defs() []*Def {
	out := make([]*Def, 0, len(registry))
	for _, d := range registry {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Executable returns the sorted operator types the engine runs on computed
// data, joined by ", " (for error messages).
func Executable() string {
	var ops []string
	for _, d := range Defs() {
		if d.Exec != nil {
			ops = append(ops, d.Type)
		}
	}
	return strings.Join(ops, ", ")
}

// IsDefault reports whether domain is the default ONNX domain.
func IsDefault(domain string) bool { return domain == "" || domain == "ai.onnx" }
