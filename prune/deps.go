package prune

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bitplan/bitplan/internal/unionfind"
	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
	"github.com/bitplan/bitplan/op"
)

// Structure is the channel-dependency analysis of a model: which output
// channels can be removed together, and every tensor and attribute that
// must shrink with them.
type Structure struct {
	// Model is the analysed model.
	Model *model.Model
	// Groups lists the channel groups in order of their first source unit.
	// A group is a set of output channels that must be removed together:
	// the output channels of one unit, or of several units whose outputs
	// are added (a residual Add ties them channel by channel).
	Groups []*Group
	// Roles gives every unit's place in the groups, in model.Units order.
	Roles []Role
}

// Group is one set of channels c = 0..Channels−1 that are pruned together:
// removing channel c removes output channel c of every Source and Through
// unit, entry c of every BatchNormalization and per-channel constant on the
// way, and input channel c (or the block of inputs it became after a
// Flatten) of every Consumer.
type Group struct {
	// Index is the position in Structure.Groups.
	Index int
	// Name is the source units' names joined by "+".
	Name string
	// Channels is the number of channels.
	Channels int
	// Sources are the units whose output channels define the group (Conv
	// and ConvTranspose that are not depthwise, Gemm and MatMul with a
	// constant weight).
	Sources []string
	// Through are depthwise convolutions the channels pass through: their
	// output channel c is their input channel c, so they lose channel c
	// (weights, bias and the group attribute) without a decision of their
	// own.
	Through []string
	// Consumers are the units reading the channels as inputs.
	Consumers []string
	// Prunable is false when the analysis met something it does not model
	// (Reasons says what); the group's channels are then left intact.
	Prunable bool
	// Reasons explains why the group is not prunable.
	Reasons []string
	// Tensors are the activation tensors that carry the channels.
	Tensors []string
	// Directions (0 or 1: none) is the direction count D of a bidirectional
	// recurrent layer whose directions are pruned each on its own: channel
	// c is hidden unit c mod H of direction ⌊c/H⌋, H = Channels/D, and
	// every direction must keep the same number of units (the node has one
	// hidden_size). Direction d's kept units k₀ < k₁ < … become its units
	// 0, 1, … of the pruned node, and torch's merge of the directions makes
	// unit k of direction d the consumer's input d·H + k, so its columns
	// follow. A grouped (not depthwise) Conv or ConvTranspose of G groups
	// that produces or reads the channels makes D = G the same way: its
	// group d's channels are d·H … (d+1)·H − 1, and every group must keep
	// the same number (the node has one group attribute, kept).
	Directions int

	edits []edit
}

// Members returns the units that lose output channels with the group:
// Sources then Through.
func (g *Group) Members() []string {
	return append(slices.Clone(g.Sources), g.Through...)
}

// Role is one unit's place in the channel groups.
type Role struct {
	// Unit is the unit's name.
	Unit string
	// Out is the index of the group holding the unit's output channels
	// (as a source or a depthwise pass-through), or −1 when its outputs are
	// not tracked (a constant left operand, a depthwise convolution of
	// untracked inputs).
	Out int
	// In is the index of the group whose channels the unit reads (as a
	// consumer), or −1. For a depthwise convolution In = Out.
	In int
	// Depthwise marks a depthwise convolution (output channel c reads only
	// input channel c).
	Depthwise bool
}

// edit is one change that removing channels of a group makes to the model:
// slice initializer Init along Axis in blocks of Inner elements per channel
// (it is read by node Node), set attribute Attr of node Node to the number
// of channels kept, (Shape) give Reshape node Node a shape constant of its
// own whose entry Axis is Inner times the number of channels kept, (Slice)
// give Slice node Node constant starts and ends that select part Part of
// its input, or (Split) give Split node Node split sizes of its own.
//
// Parts (0 means 1) says that the axis holds the channels Parts times over
// (the q, k and v thirds of a fused projection): channel c occupies the
// blocks [p·C·Inner + c·Inner, p·C·Inner + (c+1)·Inner) for p < Parts, and
// every count above is Parts times larger.
type edit struct {
	Node  int
	Init  string
	Axis  int
	Inner int
	Parts int
	Attr  string
	Shape bool
	// Vals, for a Shape edit of a Reshape whose shape is computed at run
	// time (Shape → Gather → Concat chains), is the shape constant that
	// replaces it, entry Axis to be set: entries before Axis are 0 (copy
	// the input's dimension), so it holds for every batch size.
	Vals  []int64
	Slice bool
	Split bool
	Part  int
	// Drop removes input Part of node Node (a recurrent node's initial
	// state computed at run time as zeros: absent means zero).
	Drop bool
	// Dirs (0 or 1: none) says that axis DirAxis < Axis of Init holds the
	// Dirs directions of a group whose channels are per direction (Group.
	// Directions): in block d of Dirs equal blocks of DirAxis (index d of
	// a recurrent node's direction axis; group d's rows of a grouped
	// convolution's weight), Axis holds direction d's C/Dirs channels (in
	// Parts and Inner as above), channel d·C/Dirs + k being its k. An Attr
	// edit with Dirs is set to the channels kept per direction.
	Dirs, DirAxis int
}

// parts returns e.Parts, at least 1.
func (e edit) parts() int { return max(e.Parts, 1) }

// tref says that a tensor carries a channel space: channel c occupies
// indices [p·C·inner + c·inner, p·C·inner + (c+1)·inner) for p < parts
// (parts 0 means 1) of axis axis of a tensor of rank rank, where C is the
// space's channel count.
//
// dirs ≥ 2 marks a tensor of a space whose channels are per direction
// (Group.Directions): channel d·C/dirs + k is at index d of axis dirAxis
// and index k of axis.
type tref struct {
	id, axis, inner, rank, parts int
	dirs, dirAxis                int
}

// perDir reports whether the tensor holds per-direction channels.
func (t tref) perDir() bool { return t.dirs > 1 }

// whole reports whether the tensor holds its channels once.
func (t tref) whole() bool { return t.parts <= 1 }

type space struct {
	channels  int
	sources   []string
	through   []string
	consumers []string
	edits     []edit
	reasons   []string
	tensors   []string
	firstUnit int
	// dirs is the direction count of a space of per-direction channels
	// (Group.Directions), rnns the recurrent nodes that made it so.
	dirs int
	rnns []int
}

type analyzer struct {
	m      *model.Model
	shapes map[string]tref // Shape node outputs → the tracked tensor they measure
	parted map[string]int  // tensor → parts it was split into by Slice or Split nodes
	batch2 *model.Shapes   // shapes at batch size 2 (nil until needed)
	b2err  error
	sets   unionfind.Sets
	sp     []*space
	tens   map[string]tref
	unitOf map[int]*model.Unit
	unitIx map[string]int
	out    map[string]int // unit → space id of its output channels
	in     map[string]int // unit → space id of its input channels
	dw     map[string]bool
	prod   map[string]*model.Node // tensor → producer (producers, cached)
	// tied lists the bidirectional recurrent nodes whose directions are
	// tied (unit k of both is one channel); untie collects, during a pass,
	// those whose per-direction channels met an operator that is modelled
	// only for tied directions, for the next pass.
	tied, untie map[int]bool
}

// Analyze follows every unit's output channels through the graph and
// returns the channel groups. It understands element-wise activations
// (Relu, Clip, Sigmoid, ...), pooling, BatchNormalization (its four vectors
// lose entry c), element-wise Add/Sub/Mul/Div and the variadic
// Sum/Mean/Max/Min of any number of inputs (tracked operands are tied into
// one group, as a residual join; one whose channel axis is broadcast — a
// one-channel map — is left whole instead; a constant operand is sliced
// when it varies along the channels), Flatten with axis 1 into a Gemm or MatMul (channel c becomes
// the block of H·W inputs), the reductions (ReduceMean, ReduceSum,
// ReduceMax, ...) over axes other than the channels' (torch's
// x.mean(dim=(2, 3)): the channels pass through, moved down with keepdims
// 0) and a sum-like one (ReduceSum, ReduceL1, ReduceL2, ReduceSumSquare,
// ReduceLogSum) over them, which consumes them, depthwise convolutions and transposed
// convolutions (pass-through), ConvTranspose (its C×M/G×kernel
// weight holds the output channels on axis 1 and the input channels it
// consumes on axis 0) and Conv/Gemm/MatMul consumers, grouped (not
// depthwise) Conv and ConvTranspose with their channels kept group by
// group (Group.Directions = G), the hidden units of
// LSTM, GRU and RNN nodes (see rnn: rows of every gate of W, R and B,
// columns of R, the initial states; the directions of a bidirectional
// node each on its own, or tied where that is not modelled) with Squeeze,
// Unsqueeze and Gather along other axes after them and the next recurrent
// layer's W as a consumer, and in attention the head Reshapes (constant
// or computed shapes), Transpose, Softmax, the activation products Q·Kᵀ and
// P·V, and the Slice or Split of a fused q/k/v projection into equal parts
// (see the package documentation). Shape and Size nodes may read tracked
// tensors when their values reach only the constants pruning rewrites.
// Anything else that touches a tracked tensor — another Reshape, Concat, a
// grouped convolution of channels split differently elsewhere (another
// group count, a bidirectional layer's directions), a reduction over the channel axis
// that is not sum-like (a LayerNorm's ReduceMean, whose divisor counts the
// channels; ReduceMax, ReduceMin), a recurrent node's initial state, an unknown operator, a graph output
// (the classifier's logits) or an initializer also read elsewhere — makes
// the affected group unprunable, with the reason recorded; such groups are
// never modified.
//
// The error is non-nil only for a model without units.
func Analyze(m *model.Model) (*Structure, error) {
	if m == nil || len(m.Units) == 0 {
		return nil, fmt.Errorf("prune: the model has no prunable units (Conv, Gemm, MatMul with a constant weight)")
	}
	// A bidirectional recurrent layer's directions are first pruned each
	// on its own; where its channels meet an operator modelled only for
	// tied directions (a Gather or Slice of one direction, a constant
	// varying along the units, a Concat, …) the analysis is repeated with
	// that layer's directions tied.
	tied := map[int]bool{}
	for {
		a := analyze(m, tied)
		if len(a.untie) == 0 {
			return a.finish(), nil
		}
		for n := range a.untie {
			tied[n] = true
		}
	}
}

// analyze is one pass of Analyze with the directions of the recurrent
// nodes tied tied; the structure is a.finish().
func analyze(m *model.Model, tied map[int]bool) *analyzer {
	a := &analyzer{m: m, tens: map[string]tref{}, unitOf: map[int]*model.Unit{}, unitIx: map[string]int{},
		out: map[string]int{}, in: map[string]int{}, dw: map[string]bool{},
		shapes: map[string]tref{}, parted: map[string]int{}, tied: tied, untie: map[int]bool{}}
	for i := range m.Units {
		a.unitOf[m.Units[i].Node] = &m.Units[i]
		a.unitIx[m.Units[i].Name] = i
	}
	for _, n := range m.Nodes {
		a.node(n)
	}
	for _, o := range m.Outputs {
		if t, ok := a.tens[o.Name]; ok {
			a.bad(t.id, "its channels reach graph output %q (the classifier's outputs are never pruned)", o.Name)
		}
	}
	a.shapeUses()
	return a
}

func (a *analyzer) find(i int) int { return a.sets.Find(i) }

func (a *analyzer) newSpace(channels int, unit string) int {
	id := len(a.sp)
	a.sets.Add()
	a.sp = append(a.sp, &space{channels: channels, firstUnit: a.unitIx[unit]})
	return id
}

func (a *analyzer) bad(id int, format string, args ...any) {
	s := a.sp[a.find(id)]
	r := fmt.Sprintf(format, args...)
	if !slices.Contains(s.reasons, r) {
		s.reasons = append(s.reasons, r)
	}
}

func (a *analyzer) union(x, y int, at *model.Node) int {
	rx, ry := a.sets.Union(x, y)
	if rx == ry {
		return rx
	}
	sx, sy := a.sp[rx], a.sp[ry]
	if sx.channels != sy.channels {
		sx.reasons = append(sx.reasons, fmt.Sprintf("%s combines %d and %d channels", at.Label(), sx.channels, sy.channels))
	}
	sx.sources = append(sx.sources, sy.sources...)
	sx.through = append(sx.through, sy.through...)
	sx.consumers = append(sx.consumers, sy.consumers...)
	sx.edits = append(sx.edits, sy.edits...)
	sx.tensors = append(sx.tensors, sy.tensors...)
	for _, r := range sy.reasons {
		if !slices.Contains(sx.reasons, r) {
			sx.reasons = append(sx.reasons, r)
		}
	}
	sx.firstUnit = min(sx.firstUnit, sy.firstUnit)
	if sx.dirs > 1 && sy.dirs > 1 && sx.dirs != sy.dirs {
		sx.reasons = append(sx.reasons, fmt.Sprintf("%s combines layers of %d and %d directions", at.Label(), sx.dirs, sy.dirs))
	}
	sx.dirs = max(sx.dirs, sy.dirs)
	sx.rnns = append(sx.rnns, sy.rnns...)
	return rx
}

func (a *analyzer) space(id int) *space { return a.sp[a.find(id)] }

func (a *analyzer) set(name string, t tref) {
	if name == "" {
		return
	}
	a.tens[name] = t
	s := a.space(t.id)
	s.tensors = append(s.tensors, name)
}

func (a *analyzer) addEdit(id int, e edit) {
	s := a.space(id)
	s.edits = append(s.edits, e)
}

func (a *analyzer) dims(name string) []int { return a.m.Shapes.Dims[name] }

func (a *analyzer) floatInit(name string) *model.Tensor {
	t := a.m.Initializers[name]
	if name == "" || t == nil || !t.Type.IsFloat() {
		return nil
	}
	return t
}

// spaced returns the tracked inputs of n by input index.
func (a *analyzer) spaced(n *model.Node) map[int]tref {
	s := map[int]tref{}
	for i, in := range n.Inputs {
		if t, ok := a.tens[in]; ok && in != "" {
			s[i] = t
		}
	}
	return s
}

// rejectAll marks every tracked input of n as unprunable.
func (a *analyzer) rejectAll(n *model.Node, sp map[int]tref, format string, args ...any) {
	for _, t := range sp {
		a.bad(t.id, "%s: %s", n.Label(), fmt.Sprintf(format, args...))
	}
}

// partsPass lists the operators (besides element-wise ones) that may read
// a tensor holding its channels several times (parts): they move or keep
// the channel axis, or consume it (Gemm, a MatMul unit and a recurrent
// node's W, whose input weights are sliced in every part).
var partsPass = map[string]bool{"Softmax": true, "LogSoftmax": true, "Transpose": true, "Squeeze": true, "Unsqueeze": true,
	"Gather": true, "Gemm": true, "MatMul": true, "LSTM": true, "GRU": true, "RNN": true}

func (a *analyzer) node(n *model.Node) {
	if !op.IsDefault(n.Domain) {
		a.rejectAll(n, a.spaced(n), "operator %s of domain %q is not modelled", n.Op, n.Domain)
		return
	}
	sp := a.spaced(n)
	flow := op.FlowBlocks
	if d := op.Lookup(n.Op, a.m.Opset); d != nil {
		flow = d.Channels
	}
	if len(sp) > 0 && !a.dirPass(n, sp, flow) {
		return
	}
	if len(sp) > 0 {
		switch n.Op {
		case "Shape", "Size":
			a.shape(n, sp)
			return
		case "Slice":
			a.slice(n, sp)
			return
		case "Split":
			a.split(n, sp)
			return
		}
		if flow != op.FlowBroadcast && flow != op.FlowPass && !partsPass[n.Op] {
			for _, t := range sp {
				if !t.whole() {
					a.rejectAll(n, sp, "reads a fused tensor that holds the channels %d times (only Slice or Split of it is modelled)", t.parts)
					return
				}
			}
		}
		switch n.Op {
		case "Reshape":
			a.reshape(n, sp)
			return
		case "Transpose":
			a.transpose(n, sp)
			return
		case "Softmax", "LogSoftmax":
			a.softmax(n, sp)
			return
		case "Squeeze", "Unsqueeze":
			a.squeeze(n, sp)
			return
		case "Gather":
			if _, ok := sp[0]; ok {
				a.gather(n, sp)
				return
			}
		}
	}
	if nn.RecurrentGates(n.Op) > 0 {
		a.rnn(n, sp)
		return
	}
	switch flow {
	case op.FlowConv:
		a.conv(n, sp, convLayout)
	case op.FlowConvTranspose:
		a.conv(n, sp, convTransposeLayout)
	case op.FlowGemm:
		a.gemm(n, sp)
	case op.FlowMatMul:
		a.matmul(n, sp)
	case op.FlowNorm:
		a.batchNorm(n, sp)
	case op.FlowBroadcast:
		a.binary(n, sp)
	case op.FlowFlatten:
		a.flatten(n, sp)
	case op.FlowPass:
		a.pass(n, sp, false)
	case op.FlowPool:
		a.pass(n, sp, true)
	case op.FlowReduce:
		a.reduce(n, sp)
	default:
		if len(sp) > 0 {
			a.rejectAll(n, sp, "operator %s is not modelled (a layout change or mixing of channels)", n.Op)
		}
	}
}

// dirPass reports whether node n may read its tracked inputs sp (flow
// is its channel flow) when some hold per-direction channels: Shape and
// Size, Transpose, Reshape (its handler accepts only torch's merge of the
// directions with the units), Squeeze, Unsqueeze and Gather (not of the
// direction axis: their handlers check), element-wise operators. Otherwise
// the directions of the recurrent layers behind them are tied in the next
// pass (false).
func (a *analyzer) dirPass(n *model.Node, sp map[int]tref, flow op.Flow) bool {
	dirs := false
	for _, t := range sp {
		dirs = dirs || t.perDir()
	}
	if !dirs {
		return true
	}
	switch n.Op {
	case "Shape", "Size", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Gather":
		return true
	}
	if flow == op.FlowPass || flow == op.FlowBroadcast {
		return true
	}
	a.tie(n, sp, "operator %s is modelled only for tied directions", n.Op)
	return false
}

// tie asks for the next pass to tie the directions of the recurrent layers
// whose per-direction channels n reads (sp), and marks their groups
// unprunable in this pass.
func (a *analyzer) tie(n *model.Node, sp map[int]tref, format string, args ...any) {
	for _, t := range sp {
		if t.perDir() {
			for _, r := range a.space(t.id).rnns {
				a.untie[r] = true
			}
			a.bad(t.id, "%s: %s", n.Label(), fmt.Sprintf(format, args...))
		}
	}
}

// dataInput returns the tracked first input of a single-output operator
// whose other inputs are parameters; false (the groups marked) when a
// parameter input is tracked, the first is not, or a second output is
// used.
func (a *analyzer) dataInput(n *model.Node, sp map[int]tref) (tref, bool) {
	t, ok := sp[0]
	if !ok {
		if len(sp) > 0 {
			a.rejectAll(n, sp, "a tracked tensor is a parameter input")
		}
		return t, false
	}
	for i, o := range sp {
		if i != 0 {
			a.bad(o.id, "%s: a tracked tensor is input %d", n.Label(), i)
		}
	}
	for i, o := range n.Outputs {
		if i > 0 && o != "" {
			a.bad(t.id, "%s: second output %q is not modelled", n.Label(), o)
			return t, false
		}
	}
	return t, len(n.Outputs) > 0
}

// pass handles single-input channel-preserving operators.
func (a *analyzer) pass(n *model.Node, sp map[int]tref, pool bool) {
	t, ok := a.dataInput(n, sp)
	if !ok {
		return
	}
	if pool && (t.axis != 1 || t.inner != 1 || t.rank < 3) {
		a.bad(t.id, "%s: pooling over a tensor whose channels are not axis 1", n.Label())
		return
	}
	a.set(n.Outputs[0], t)
}

// sumLike lists the reductions to which a zero contributes nothing: over
// the channel axis they consume the channels, and removing a channel is
// silencing it.
var sumLike = map[string]bool{"ReduceSum": true, "ReduceL1": true, "ReduceL2": true, "ReduceSumSquare": true, "ReduceLogSum": true}

// reduce handles the reductions (FlowReduce: ReduceMean, ReduceSum,
// ReduceMax, ...). Over axes without the channel axis (torch's
// x.mean(dim=(2, 3)), a global pooling) the channels pass through, on the
// same axis with keepdims 1 or moved down by the reduced axes before it
// with keepdims 0. Over the channel axis a sum-like reduction (sumLike)
// consumes them: its output carries none, and removing a channel equals
// silencing it. Any other (ReduceMean over a LayerNorm's features: its
// divisor counts the channels; ReduceMax/Min: a removed channel's zero
// may be the extreme; ReduceProd, ReduceLogSumExp) would change its
// output, so the group is left intact, reported.
func (a *analyzer) reduce(n *model.Node, sp map[int]tref) {
	t, ok := a.dataInput(n, sp)
	if !ok {
		return
	}
	in, out := a.dims(n.Input(0)), a.dims(n.Outputs[0])
	if len(in) != t.rank || out == nil {
		a.bad(t.id, "%s: shapes unknown", n.Label())
		return
	}
	var v []int64
	fromInput := n.Input(1) != ""
	if fromInput {
		if v, ok = a.intValue(n.Input(1)); !ok {
			a.bad(t.id, "%s: axes are not known before run time", n.Label())
			return
		}
	}
	red, keep, err := op.ReduceAxes(n, len(in), v, fromInput)
	if err != nil {
		a.bad(t.id, "%s: %v", n.Label(), err)
		return
	}
	if red[t.axis] {
		if !sumLike[n.Op] {
			why := "a removed channel's zero is not neutral to it"
			switch n.Op {
			case "ReduceMean":
				why = "its divisor counts the channels"
			case "ReduceMax", "ReduceMin":
				why = "a removed channel's zero may be the extreme"
			}
			a.bad(t.id, "%s reduces the channel axis: removing channels would change its output (%s)", n.Label(), why)
		}
		return
	}
	axis := t.axis
	if !keep {
		for x := range t.axis {
			if red[x] {
				axis--
			}
		}
	}
	if axis >= len(out) || out[axis] != in[t.axis] {
		a.bad(t.id, "%s: the channel axis %d of %v is not found in %v", n.Label(), t.axis, in, out)
		return
	}
	a.set(n.Outputs[0], tref{id: t.id, axis: axis, inner: t.inner, rank: len(out), parts: t.parts})
}

// convAxes is the weight layout of a convolution-like unit: the axes of
// its input and output channels, and its name in messages.
type convAxes struct {
	in, out int
	kind    string
}

var (
	// convLayout is Conv's M×C/group×kernel weight.
	convLayout = convAxes{in: 1, out: 0, kind: "convolution"}
	// convTransposeLayout is ConvTranspose's C×M/group×kernel weight.
	convTransposeLayout = convAxes{in: 0, out: 1, kind: "transposed convolution"}
)

// conv handles a Conv or ConvTranspose unit (ax gives its weight layout):
// with group 1 its input channels are the weight's axis ax.in and its
// output channels axis ax.out (with bias entry m). A depthwise one (group
// = input channels, one input and one output channel per group: a
// G×1×kernel weight in both layouts) passes its input channels through:
// channel c is its weight's and bias's entry c and the group attribute
// shrinks. Another grouped one (G groups) keeps its group attribute: its
// input and output channels are kept group by group (perGroup), and the
// weight's axis 0 holds all channels of its side in order (Conv's outputs
// M×C/G, ConvTranspose's inputs C×M/G) while axis 1 holds one group's
// (channel j of group d is entry j of axis 1 in group d's rows: convEdit).
func (a *analyzer) conv(n *model.Node, sp map[int]tref, ax convAxes) {
	u := a.unitOf[n.Index]
	for i := range sp {
		if i != 0 {
			a.rejectAll(n, sp, "a tracked tensor is the weight or bias")
			return
		}
	}
	g64, _ := n.AttrInt("group", 1)
	g := int(g64)
	t, tracked := sp[0]
	dw := false
	if u != nil && g > 1 && len(u.WeightShape) > 1 && u.WeightShape[0] == g && u.WeightShape[1] == 1 {
		if x := a.dims(n.Input(0)); len(x) > 1 && x[1] == g {
			dw = true
		}
	}
	rank := len(a.dims(n.Outputs[0]))
	why := ""
	if os, _ := n.AttrInts("output_shape", nil); ax.out == 1 && len(os) == rank && rank > 0 {
		why = fmt.Sprintf("%s: attribute output_shape %v lists the channel count", n.Label(), os)
	}
	if tracked {
		switch {
		case t.axis != 1 || t.inner != 1:
			a.bad(t.id, "%s reads channels that are not axis 1 of its input", n.Label())
		case u == nil:
			a.bad(t.id, "%s has a non-constant weight", n.Label())
		case dw:
			s := a.space(t.id)
			if s.channels != g {
				a.bad(t.id, "%s: depthwise over %d channels, the group has %d", n.Label(), g, s.channels)
			}
			if why != "" {
				a.bad(t.id, "%s", why)
			}
			s.through = append(s.through, u.Name)
			a.addEdit(t.id, edit{Node: n.Index, Init: u.Weight, Axis: 0, Inner: 1})
			if u.Bias != "" {
				a.addEdit(t.id, edit{Node: n.Index, Init: u.Bias, Axis: 0, Inner: 1})
			}
			a.addEdit(t.id, edit{Node: n.Index, Attr: "group"})
			a.out[u.Name], a.in[u.Name], a.dw[u.Name] = t.id, t.id, true
			a.set(n.Outputs[0], t)
			return
		case convChannels(u, ax.in, g) != a.space(t.id).channels:
			a.bad(t.id, "%s: weight has %d input channels, the group has %d", n.Label(), convChannels(u, ax.in, g), a.space(t.id).channels)
		case !a.perGroup(t.id, n, g, ax):
			// a grouped convolution of channels that cannot be kept
			// group by group (marked)
		default:
			s := a.space(t.id)
			s.consumers = append(s.consumers, u.Name)
			a.addEdit(t.id, convEdit(n, u.Weight, ax.in, g))
			a.in[u.Name] = t.id
		}
	}
	if u == nil {
		return
	}
	if dw {
		a.dw[u.Name] = true
		return // depthwise over untracked channels: outputs stay
	}
	id := a.newSpace(unitOutChannels(u), u.Name)
	a.sp[id].sources = append(a.sp[id].sources, u.Name)
	a.out[u.Name] = id
	a.perGroup(id, n, g, ax)
	a.addEdit(id, convEdit(n, u.Weight, ax.out, g))
	if u.Bias != "" {
		a.addEdit(id, edit{Node: n.Index, Init: u.Bias, Axis: 0, Inner: 1})
	}
	if rank < 3 {
		a.bad(id, "%s: output shape unknown", n.Label())
	}
	if why != "" {
		a.bad(id, "%s", why)
	}
	a.set(n.Outputs[0], tref{id: id, axis: 1, inner: 1, rank: rank})
}

// convChannels returns the channels that axis axis (0 or 1) of u's
// convolution weight indexes with group g: axis 0 holds all of them, axis
// 1 those of one group.
func convChannels(u *model.Unit, axis, g int) int {
	if axis == 1 {
		return u.WeightShape[1] * g
	}
	return u.WeightShape[0]
}

// convEdit is the edit of a convolution weight's axis axis (0 or 1) with
// group g: axis 0 holds the channels in order; axis 1 holds those of one
// group, so with g > 1 the group of a row (its block of axis 0, Dirs g)
// says which of them it holds.
func convEdit(n *model.Node, weight string, axis, g int) edit {
	e := edit{Node: n.Index, Init: weight, Axis: axis, Inner: 1}
	if axis == 1 && g > 1 {
		e.Dirs, e.DirAxis = g, 0
	}
	return e
}

// perGroup records that the channels of space id are split into the g
// groups of convolution n (g > 1; nothing for g = 1): every group must keep
// the same number of them (Group.Directions = g, the group attribute
// stays), so the space's channels must divide into g and it may not be
// split differently elsewhere (another group count, a bidirectional
// layer's directions). It reports false (the space marked) when they are.
func (a *analyzer) perGroup(id int, n *model.Node, g int, ax convAxes) bool {
	if g <= 1 {
		return true
	}
	s := a.space(id)
	switch {
	case s.channels%g != 0:
		a.bad(id, "%s is a grouped %s (group %d) of %d channels", n.Label(), ax.kind, g, s.channels)
	case s.dirs > 1 && s.dirs != g:
		a.bad(id, "%s is a grouped %s (group %d) of channels also split into %d groups or directions", n.Label(), ax.kind, g, s.dirs)
	default:
		s.dirs = g
		return true
	}
	return false
}

// unitOutChannels returns the number of output channels of u's node, the
// channels pruning removes: OutChannels but for a ConvTranspose, whose
// OutChannels are the C slices of its C×M/group×kernel weight along axis 0
// (its input channels, quantized per channel) and whose output has
// M = WeightShape[1]·group channels.
func unitOutChannels(u *model.Unit) int {
	if u.Op == "ConvTranspose" && len(u.WeightShape) > 1 {
		return u.WeightShape[1] * max(u.Group, 1)
	}
	return u.OutChannels
}

func (a *analyzer) gemm(n *model.Node, sp map[int]tref) {
	u := a.unitOf[n.Index]
	ta, _ := n.AttrInt("transA", 0)
	tb, _ := n.AttrInt("transB", 0)
	for i, t := range sp {
		if i != 0 {
			a.bad(t.id, "%s: a tracked tensor is input %d (only the data input A is modelled)", n.Label(), i)
		}
	}
	if t, ok := sp[0]; ok {
		switch {
		case u == nil || u.WeightInput != 1:
			a.bad(t.id, "%s has no constant weight B", n.Label())
		case ta != 0:
			a.bad(t.id, "%s has transA set", n.Label())
		case t.rank != 2 || t.axis != 1:
			a.bad(t.id, "%s reads a tensor whose channels are not its feature axis", n.Label())
		default:
			s := a.space(t.id)
			k := u.WeightShape[0]
			axis := 0
			if tb != 0 {
				k, axis = u.WeightShape[1], 1
			}
			if k != s.channels*t.inner*max(t.parts, 1) {
				a.bad(t.id, "%s: %d input features, the group gives %d×%d×%d", n.Label(), k, max(t.parts, 1), s.channels, t.inner)
				break
			}
			s.consumers = append(s.consumers, u.Name)
			a.addEdit(t.id, edit{Node: n.Index, Init: u.Weight, Axis: axis, Inner: t.inner, Parts: t.parts})
			a.in[u.Name] = t.id
		}
	}
	if u == nil || u.WeightInput != 1 {
		return
	}
	id := a.newSpace(u.OutChannels, u.Name)
	a.sp[id].sources = append(a.sp[id].sources, u.Name)
	a.out[u.Name] = id
	axis := 1
	if tb != 0 {
		axis = 0
	}
	a.addEdit(id, edit{Node: n.Index, Init: u.Weight, Axis: axis, Inner: 1})
	out := tref{id: id, axis: 1, inner: 1, rank: 2}
	if c := n.Input(2); c != "" {
		a.constOperand(n, c, out)
	}
	a.set(n.Outputs[0], out)
}

func (a *analyzer) matmul(n *model.Node, sp map[int]tref) {
	u := a.unitOf[n.Index]
	if u == nil {
		a.batchedMatMul(n, sp)
		return
	}
	for i, t := range sp {
		if i != 0 {
			a.bad(t.id, "%s: a tracked tensor is the right operand", n.Label())
		}
	}
	if t, ok := sp[0]; ok {
		switch {
		case u.WeightInput != 1 || len(u.WeightShape) != 2:
			a.bad(t.id, "%s has no constant 2-D weight", n.Label())
		case t.rank < 2 || t.axis != t.rank-1:
			a.bad(t.id, "%s reads a tensor whose channels are not its feature axis", n.Label())
		case u.WeightShape[0] != a.space(t.id).channels*t.inner*max(t.parts, 1):
			a.bad(t.id, "%s: %d input features, the group gives %d×%d×%d", n.Label(), u.WeightShape[0], max(t.parts, 1), a.space(t.id).channels, t.inner)
		default:
			s := a.space(t.id)
			s.consumers = append(s.consumers, u.Name)
			a.addEdit(t.id, edit{Node: n.Index, Init: u.Weight, Axis: 0, Inner: t.inner, Parts: t.parts})
			a.in[u.Name] = t.id
		}
	}
	if u.WeightInput != 1 {
		return
	}
	id := a.newSpace(u.OutChannels, u.Name)
	a.sp[id].sources = append(a.sp[id].sources, u.Name)
	a.out[u.Name] = id
	rank := len(a.dims(n.Outputs[0]))
	if len(u.WeightShape) != 2 || rank < 2 {
		a.bad(id, "%s: only MatMul of a 2-D weight and an input of rank ≥ 2 (features last) is modelled", n.Label())
	}
	a.addEdit(id, edit{Node: n.Index, Init: u.Weight, Axis: len(u.WeightShape) - 1, Inner: 1})
	a.set(n.Outputs[0], tref{id: id, axis: max(rank-1, 0), inner: 1, rank: rank})
}

// batchedMatMul handles a MatMul of two activations (attention's Q·Kᵀ and
// P·V): channels on a batch axis (the heads) of both operands are tied
// and stay on that axis; channels on a multiplied axis mix.
func (a *analyzer) batchedMatMul(n *model.Node, sp map[int]tref) {
	for _, t := range sp {
		if !t.whole() {
			a.rejectAll(n, sp, "reads a fused tensor that holds the channels %d times", t.parts)
			return
		}
	}
	l, r := a.dims(n.Input(0)), a.dims(n.Input(1))
	out := len(a.dims(n.Outputs[0]))
	ok := len(l) >= 3 && len(l) == len(r) && len(l) == out
	var t tref
	first := true
	for _, i := range sortedKeys(sp) {
		o := sp[i]
		if !ok || o.axis >= o.rank-2 || o.inner != 1 || o.rank != len(l) {
			a.bad(o.id, "%s multiplies along the axis of the channels (only heads on a batch axis pass)", n.Label())
			return
		}
		if first {
			t, first = o, false
			continue
		}
		if o.axis != t.axis {
			a.bad(o.id, "%s: the operands' channels lie on different axes", n.Label())
			a.bad(t.id, "%s: the operands' channels lie on different axes", n.Label())
			return
		}
		t.id = a.union(t.id, o.id, n)
	}
	if len(sp) == 1 {
		// A batch axis of one operand only: the other must broadcast along it.
		i := sortedKeys(sp)[0]
		other := r
		if i == 1 {
			other = l
		}
		if other[t.axis] != 1 {
			a.bad(t.id, "%s: the other operand is not tracked but varies along the channels", n.Label())
			return
		}
	}
	a.set(n.Outputs[0], t)
}

// transpose moves the tracked axis.
func (a *analyzer) transpose(n *model.Node, sp map[int]tref) {
	t := sp[0]
	perm, _ := n.AttrInts("perm", nil)
	if perm == nil {
		for i := t.rank - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != t.rank || t.inner != 1 {
		a.bad(t.id, "%s: permutation %v of a rank-%d tensor whose channels are blocks of %d", n.Label(), perm, t.rank, t.inner)
		return
	}
	axis, dax := -1, -1
	for j, p := range perm {
		if int(p) == t.axis {
			axis = j
		}
		if int(p) == t.dirAxis {
			dax = j
		}
	}
	if axis < 0 || (t.perDir() && dax < 0) {
		a.bad(t.id, "%s: permutation %v lacks the channel axis", n.Label(), perm)
		return
	}
	t.axis = axis
	if t.perDir() {
		t.dirAxis = dax
	}
	a.set(n.Outputs[0], t)
}

// softmax passes the channels when it normalises another axis.
func (a *analyzer) softmax(n *model.Node, sp map[int]tref) {
	t := sp[0]
	def := int64(-1)
	if a.m.Opset < 13 {
		def = 1
	}
	ax, _ := n.AttrInt("axis", def)
	if ax < 0 {
		ax += int64(t.rank)
	}
	if a.m.Opset < 13 {
		// Opset < 13 normalises the flattened axes ax.. together: the
		// channels pass on an axis before them.
		if t.axis >= int(ax) {
			a.bad(t.id, "%s: opset %d Softmax normalises axes %d.. together, the channels are axis %d", n.Label(), a.m.Opset, ax, t.axis)
			return
		}
		a.set(n.Outputs[0], t)
		return
	}
	if int(ax) == t.axis {
		a.bad(t.id, "%s normalises along the channels", n.Label())
		return
	}
	a.set(n.Outputs[0], t)
}

// reshape follows two reshapes of attention: splitting the feature axis
// into heads × head size (the channels become the heads, each a block of
// head-size features: a space of single features is coarsened to heads),
// and merging heads × head size back. The shape is an edit: a constant
// initializer gets its entry rewritten; a shape computed at run time (an
// export's Shape → Gather → Concat chain, known here at batch size 1) is
// replaced by a constant of its own whose entries before the heads are 0
// (copy the input's dimension), valid for every batch size.
func (a *analyzer) reshape(n *model.Node, sp map[int]tref) {
	t, ok := sp[0]
	if !ok || len(sp) > 1 {
		a.rejectAll(n, sp, "the shape input is tracked")
		return
	}
	in, out := a.dims(n.Input(0)), a.dims(n.Outputs[0])
	sh, isInit := a.intValue(n.Input(1))
	if sh == nil || in == nil || out == nil || len(sh) != len(out) {
		a.bad(t.id, "%s: shape is not known before run time, or shapes unknown", n.Label())
		return
	}
	s := a.space(t.id)
	ax := t.axis
	same := func(x, y []int) bool { return slices.Equal(x, y) }
	var e edit
	merge := len(out) == len(in)-1 && t.inner == 1 && ax >= 1 && same(in[:ax-1], out[:ax-1]) && same(in[ax+1:], out[ax:]) && out[ax-1] == in[ax-1]*in[ax]
	switch {
	case t.perDir() && (!merge || t.dirAxis != ax-1 || !t.whole()):
		a.tie(n, sp, "it reshapes %v to %v, not merging the directions with the units", in, out)
		return
	case t.perDir():
		// torch's merge of per-direction units, [T, N, D, H] → [T, N, D·H]:
		// channel d·H + k is entry d·H + k of the merged axis, so the axis
		// holds the group's channels once, in order.
		if sh[ax-1] != int64(out[ax-1]) && sh[ax-1] != -1 {
			a.bad(t.id, "%s: shape entry %d is %d, not %d or −1", n.Label(), ax-1, sh[ax-1], out[ax-1])
			return
		}
		ax--
		e = edit{Node: n.Index, Init: n.Input(1), Axis: ax, Inner: 1, Shape: true}
		t = tref{id: t.id, axis: ax, inner: 1, rank: len(out)}
	case len(out) == len(in)+1 && same(in[:ax], out[:ax]) && same(in[ax+1:], out[ax+2:]) && out[ax]*out[ax+1] == in[ax]:
		// split into heads out[ax] of out[ax+1] features.
		h, dh := out[ax], out[ax+1]
		switch {
		case t.inner == 1 && s.channels == h*dh && dh > 1:
			a.coarsen(t.id, dh)
		case t.inner*s.channels == in[ax] && s.channels == h && t.inner == dh:
		default:
			a.bad(t.id, "%s splits %d×%d channels into %d×%d", n.Label(), s.channels, t.inner, h, dh)
			return
		}
		if sh[ax] != int64(h) {
			a.bad(t.id, "%s: shape entry %d is %d, not the %d heads", n.Label(), ax, sh[ax], h)
			return
		}
		e = edit{Node: n.Index, Init: n.Input(1), Axis: ax, Inner: 1, Shape: true}
		t = tref{id: t.id, axis: ax, inner: 1, rank: len(out)}
	case !isInit && len(out) == len(in) && ax >= 1 && ax == len(in)-1 && in[ax-1] == 1 && same(in[:ax-1], out[:ax-1]) && out[ax-1]*out[ax] == in[ax]:
		// torch's MultiheadAttention: [T, B, E] → [T, B·H, dh], the heads
		// merged with the batch (B = 1 here): channel h is entry b·H + h of
		// axis ax−1 for every b. The constant [0…, −1, dh] holds for every
		// batch size and head count.
		h, dh := out[ax-1], out[ax]
		switch {
		case t.inner == 1 && s.channels == h*dh && dh > 1:
			a.coarsen(t.id, dh)
		case t.inner*s.channels == in[ax] && s.channels == h && t.inner == dh:
		default:
			a.bad(t.id, "%s splits %d×%d channels into %d×%d", n.Label(), s.channels, t.inner, h, dh)
			return
		}
		in2, out2 := a.dims2(n.Input(0)), a.dims2(n.Outputs[0])
		if z, _ := n.AttrInt("allowzero", 0); z != 0 || len(in2) != len(in) || len(out2) != len(out) ||
			!same(in2[:ax-1], out2[:ax-1]) || out2[ax-1] != in2[ax-1]*h || out2[ax] != dh {
			a.bad(t.id, "%s: the heads merged with axis %d are not that axis times %d at batch size 2 (%v to %v), or allowzero is set", n.Label(), ax-1, h, in2, out2)
			return
		}
		v := make([]int64, len(out))
		v[ax-1], v[ax] = -1, int64(dh)
		a.addEdit(t.id, edit{Node: n.Index, Axis: -1, Shape: true, Vals: v})
		a.set(n.Outputs[0], tref{id: t.id, axis: ax - 1, inner: 1, rank: len(out)})
		return
	case len(out) == len(in)-1 && t.inner == 1 && ax+1 < len(in) && same(in[:ax], out[:ax]) && same(in[ax+2:], out[ax+1:]) && out[ax] == in[ax]*in[ax+1]:
		// merge heads × head size.
		if sh[ax] != int64(out[ax]) {
			a.bad(t.id, "%s: shape entry %d is %d, not %d", n.Label(), ax, sh[ax], out[ax])
			return
		}
		e = edit{Node: n.Index, Init: n.Input(1), Axis: ax, Inner: in[ax+1], Shape: true}
		t = tref{id: t.id, axis: ax, inner: in[ax+1], rank: len(out)}
	case merge:
		// merge P × channels (a bidirectional recurrent layer's
		// directions × hidden units, torch's [T, N, 2, H] → [T, N, 2·H],
		// when its directions are tied): channel c is entry p·C + c of the
		// merged axis for every p.
		if sh[ax-1] != int64(out[ax-1]) && sh[ax-1] != -1 {
			a.bad(t.id, "%s: shape entry %d is %d, not %d or −1", n.Label(), ax-1, sh[ax-1], out[ax-1])
			return
		}
		p := in[ax-1] * max(t.parts, 1)
		ax--
		e = edit{Node: n.Index, Init: n.Input(1), Axis: ax, Inner: 1, Parts: p, Shape: true}
		t = tref{id: t.id, axis: ax, inner: 1, rank: len(out), parts: p}
	default:
		a.bad(t.id, "%s reshapes %v to %v across the channels", n.Label(), in, out)
		return
	}
	if !isInit {
		lead, why := a.computedShape(n, ax, len(sh)-1-ax)
		if why != "" {
			a.bad(t.id, "%s: %s", n.Label(), why)
			return
		}
		e.Init = ""
		e.Vals = make([]int64, len(sh))
		copy(e.Vals, lead)
		copy(e.Vals[ax:], sh[ax:])
	}
	a.addEdit(t.id, e)
	a.set(n.Outputs[0], t)
}

// computedShape checks that a Reshape whose shape is computed at run time
// can take a constant (allowzero unset, at most one entry after the channel
// axis) and returns its entries before ax: 0 (copy) where the input's and
// output's dimensions agree at batch size 2 too, or, for a single leading
// entry that does not (torch's MultiheadAttention merges the sequence with
// the batch: [T, B·H, dh] → [T·B, E]), −1 (inferred) when the entries
// from ax on do not change with the batch size.
func (a *analyzer) computedShape(n *model.Node, ax, trail int) ([]int64, string) {
	if z, _ := n.AttrInt("allowzero", 0); z != 0 {
		return nil, "allowzero is set: a copied dimension cannot be written as 0"
	}
	if trail > 1 {
		return nil, fmt.Sprintf("the shape is computed at run time and has %d entries after the channel axis", trail)
	}
	in, out := a.dims2(n.Input(0)), a.dims2(n.Outputs[0])
	if len(in) > ax && len(out) > ax && slices.Equal(in[:ax], out[:ax]) {
		return make([]int64, ax), ""
	}
	if ax == 1 && len(out) == len(a.dims(n.Outputs[0])) && slices.Equal(out[ax:], a.dims(n.Outputs[0])[ax:]) {
		return []int64{-1}, ""
	}
	return nil, fmt.Sprintf("the shape is computed at run time and its leading entries are not the input's at batch size 2 (%v to %v)", in, out)
}

// intValue returns the integer value of a tensor known before run time: an
// initializer (second result true) or a value shape inference computed at
// batch size 1 (from Shape nodes of activations).
func (a *analyzer) intValue(name string) ([]int64, bool) {
	if name == "" {
		return nil, false
	}
	if t := a.m.Initializers[name]; t != nil {
		if t.Type.IsFloat() {
			return nil, false
		}
		return t.Int, true
	}
	if a.m.Shapes == nil {
		return nil, false
	}
	if t := a.m.Shapes.Values[name]; t != nil && !t.Type.IsFloat() {
		return t.Int, false
	}
	return nil, false
}

// dims2 returns a tensor's shape at batch size 2 (every input's first
// dimension 2), or nil.
func (a *analyzer) dims2(name string) []int {
	if a.batch2 == nil && a.b2err == nil {
		in := map[string][]int{}
		for _, v := range a.m.Inputs {
			d := slices.Clone(a.dims(v.Name))
			if len(d) > 0 {
				d[0] = 2
			}
			in[v.Name] = d
		}
		a.batch2, a.b2err = a.m.InferShapes(in)
	}
	if a.batch2 == nil {
		return nil
	}
	return a.batch2.Dims[name]
}

// shape lets a Shape (or Size) node read a tracked tensor. Its value
// depends on the channels kept: shapeUses checks that it only reaches the
// constants that pruning rewrites.
func (a *analyzer) shape(n *model.Node, sp map[int]tref) {
	t := sp[0]
	if n.Op == "Size" {
		t.axis = -1
	}
	if len(n.Outputs) > 0 && n.Outputs[0] != "" {
		a.shapes[n.Outputs[0]] = t
	}
}

// sliceBounds returns the range [lo, hi) that Slice node n takes of axis
// (of size dim) of its input, whether it slices that axis at all, and why
// not when the bounds are not understood.
func (a *analyzer) sliceBounds(n *model.Node, axis, rank, dim int) (lo, hi int, sliced bool, why string) {
	if a.m.Opset < 10 {
		return 0, 0, true, "Slice with attribute bounds (opset < 10) is not modelled"
	}
	starts, _ := a.intValue(n.Input(1))
	ends, _ := a.intValue(n.Input(2))
	axes, _ := a.intValue(n.Input(3))
	steps, _ := a.intValue(n.Input(4))
	if starts == nil || ends == nil || len(starts) != len(ends) || (n.Input(3) != "" && axes == nil) || (n.Input(4) != "" && steps == nil) {
		return 0, 0, true, "its bounds are not known before run time"
	}
	k := -1
	for i := range starts {
		ai := i
		if axes != nil {
			if i >= len(axes) {
				return 0, 0, true, "axes and starts differ in length"
			}
			ai = int(axes[i])
			if ai < 0 {
				ai += rank
			}
		}
		if ai == axis {
			k = i
		}
	}
	if k < 0 {
		return 0, 0, false, ""
	}
	if len(starts) != 1 {
		return 0, 0, true, "it slices several axes at once"
	}
	if steps != nil && (len(steps) != 1 || steps[0] != 1) {
		return 0, 0, true, fmt.Sprintf("step %v is not 1", steps)
	}
	clamp := func(v int64) int {
		if v < 0 {
			v += int64(dim)
		}
		return int(min(max(v, 0), int64(dim)))
	}
	lo, hi = clamp(starts[0]), clamp(ends[0])
	if hi <= lo {
		return 0, 0, true, "it takes no channel"
	}
	return lo, hi, true, ""
}

// slice follows a Slice of a tracked tensor: along another axis the
// channels pass; along the channel axis it must take one of P equal parts
// (q, k or v of a fused projection, the way torch exports chunk): the
// space is partitioned (channel c becomes the P channels c + p·C/P) and the
// output holds part p, with Slice bounds rewritten for the channels kept.
func (a *analyzer) slice(n *model.Node, sp map[int]tref) {
	t, ok := sp[0]
	if !ok || len(sp) > 1 {
		a.rejectAll(n, sp, "a tracked tensor is a Slice bound")
		return
	}
	dim := a.space(t.id).channels * t.inner * max(t.parts, 1)
	lo, hi, sliced, why := a.sliceBounds(n, t.axis, t.rank, dim)
	if !sliced {
		a.set(n.Outputs[0], t)
		return
	}
	in := n.Input(0)
	if _, done := a.parted[in]; why == "" && !done && !t.whole() {
		why = "it slices a tensor that already holds the channels several times"
	}
	w := hi - lo
	if why == "" && (dim%w != 0 || lo%w != 0) {
		why = fmt.Sprintf("it takes [%d, %d) of %d channel entries, not one of equal parts", lo, hi, dim)
	}
	p := 0
	if why == "" {
		p = dim / w
		switch q, done := a.parted[in]; {
		case done && q != p:
			why = fmt.Sprintf("it takes a %d-th of the channel axis, another Slice of %q a %d-th", p, in, q)
		case !done:
			if s := a.space(t.id); s.channels%p != 0 || p < 2 {
				why = fmt.Sprintf("%d channels do not split into %d parts", s.channels, p)
				break
			}
			a.parted[in] = p
			a.partition(t.id, p)
		}
	}
	if why != "" {
		a.bad(t.id, "%s: %s", n.Label(), why)
		return
	}
	t = a.tens[in]
	inner := t.inner
	a.addEdit(t.id, edit{Node: n.Index, Slice: true, Part: lo / w, Inner: inner, Axis: t.axis})
	a.set(n.Outputs[0], tref{id: t.id, axis: t.axis, inner: inner, rank: t.rank})
}

// split follows a Split of a tracked tensor: along another axis every
// output carries the channels; along the channel axis the outputs must be
// equal parts (a fused q/k/v projection), as for slice.
func (a *analyzer) split(n *model.Node, sp map[int]tref) {
	t, ok := sp[0]
	if !ok || len(sp) > 1 {
		a.rejectAll(n, sp, "a tracked tensor is the split sizes")
		return
	}
	ax, _ := n.AttrInt("axis", 0)
	if ax < 0 {
		ax += int64(t.rank)
	}
	if int(ax) != t.axis {
		for _, o := range n.Outputs {
			a.set(o, t)
		}
		return
	}
	p := len(n.Outputs)
	s := a.space(t.id)
	dim := s.channels * t.inner * max(t.parts, 1)
	var sizes []int64
	explicit := false
	if a.m.Opset >= 13 && n.Input(1) != "" {
		sizes, _ = a.intValue(n.Input(1))
		explicit = true
		if sizes == nil {
			a.bad(t.id, "%s: split sizes are not known before run time", n.Label())
			return
		}
	} else if v, _ := n.AttrInts("split", nil); v != nil && a.m.Opset < 13 {
		sizes, explicit = v, true
	}
	var why string
	switch {
	case !t.whole():
		why = "it splits a tensor that already holds the channels several times"
	case p < 2 || dim%p != 0 || s.channels%p != 0:
		why = fmt.Sprintf("%d channels do not split into %d parts", s.channels, p)
	}
	for _, v := range sizes {
		if why == "" && (len(sizes) != p || v != int64(dim/p)) {
			why = fmt.Sprintf("sizes %v are not %d equal parts", sizes, p)
		}
	}
	if why != "" {
		a.bad(t.id, "%s: %s", n.Label(), why)
		return
	}
	if a.parted[n.Input(0)] != 0 {
		a.bad(t.id, "%s: %q is also sliced", n.Label(), n.Input(0))
		return
	}
	a.parted[n.Input(0)] = p
	a.partition(t.id, p)
	t = a.tens[n.Input(0)]
	if explicit {
		a.addEdit(t.id, edit{Node: n.Index, Split: true, Inner: t.inner, Axis: t.axis, Part: p})
	}
	for _, o := range n.Outputs {
		a.set(o, tref{id: t.id, axis: t.axis, inner: t.inner, rank: t.rank})
	}
}

// partition turns a space of C channels into C/P channels each held P
// times along the axis (channel c becomes the channels c + p·C/P): every
// edit and tracked tensor of the space takes P parts.
func (a *analyzer) partition(id, p int) {
	r := a.find(id)
	s := a.sp[r]
	s.channels /= p
	for i := range s.edits {
		s.edits[i].Parts = s.edits[i].parts() * p
	}
	for name, t := range a.tens {
		if a.find(t.id) == r {
			t.parts = max(t.parts, 1) * p
			a.tens[name] = t
		}
	}
}

// shapeUses makes a group unprunable when the shape of one of its tensors,
// read by a Shape or Size node, reaches a graph output other than through
// the constants the group's own edits replace (computed Reshape shapes,
// Slice bounds, Split sizes): its value changes when channels are removed.
// A Gather or Slice of such a shape that picks only other axes (the batch
// size, the sequence length) does not depend on the channels.
func (a *analyzer) shapeUses() {
	if len(a.shapes) == 0 {
		return
	}
	type key struct{ node, input int }
	stop := map[key][]int{}
	for id, s := range a.sp {
		if a.find(id) != id {
			continue
		}
		for _, e := range s.edits {
			switch {
			case e.Shape && e.Vals != nil, e.Split:
				stop[key{e.Node, 1}] = append(stop[key{e.Node, 1}], id)
			case e.Slice:
				stop[key{e.Node, 1}] = append(stop[key{e.Node, 1}], id)
				stop[key{e.Node, 2}] = append(stop[key{e.Node, 2}], id)
			}
		}
	}
	taint := map[string]map[int]string{} // tensor → space root → the Shape node's label
	prod := a.m.Producers()
	for name, t := range a.shapes {
		taint[name] = map[int]string{a.find(t.id): prod[name].Label()}
	}
	for _, n := range a.m.Nodes {
		var out map[int]string
		for i, in := range n.Inputs {
			for r, why := range taint[in] {
				if slices.Contains(stop[key{n.Index, i}], r) || (i == 0 && a.picksOther(n, in)) {
					continue
				}
				if out == nil {
					out = map[int]string{}
				}
				out[r] = why
			}
		}
		for _, o := range n.Outputs {
			if out != nil && o != "" {
				taint[o] = out
			}
		}
	}
	for _, o := range a.m.Outputs {
		for r, why := range taint[o.Name] {
			a.bad(r, "the shape of its tensor read by %s reaches graph output %q through computations pruning does not rewrite", why, o.Name)
		}
	}
}

// picksOther reports whether node n (Gather or Slice) reads from the shape
// in (the output of a Shape node of a tracked tensor) only entries of axes
// that do not hold the channels.
func (a *analyzer) picksOther(n *model.Node, in string) bool {
	t, ok := a.shapes[in]
	if !ok || t.axis < 0 {
		return false
	}
	var idx []int64
	switch n.Op {
	case "Gather":
		if ax, _ := n.AttrInt("axis", 0); ax != 0 {
			return false
		}
		v, _ := a.intValue(n.Input(1))
		if v == nil {
			return false
		}
		idx = v
	case "Slice":
		lo, hi, sliced, why := a.sliceBounds(n, 0, 1, t.rank)
		if !sliced || why != "" {
			return false
		}
		for i := lo; i < hi; i++ {
			idx = append(idx, int64(i))
		}
	default:
		return false
	}
	for _, i := range idx {
		if i < 0 {
			i += int64(t.rank)
		}
		if int(i) == t.axis {
			return false
		}
	}
	return true
}

// coarsen turns a space of C channels into C/k channels of k consecutive
// ones (features into heads): every edit and tracked tensor of the space
// takes blocks k times larger.
func (a *analyzer) coarsen(id, k int) {
	r := a.find(id)
	s := a.sp[r]
	s.channels /= k
	for i := range s.edits {
		if !s.edits[i].Shape && s.edits[i].Attr == "" {
			s.edits[i].Inner *= k
		}
	}
	for name, t := range a.tens {
		if a.find(t.id) == r {
			t.inner *= k
			a.tens[name] = t
		}
	}
}

func (a *analyzer) batchNorm(n *model.Node, sp map[int]tref) {
	t, ok := sp[0]
	if !ok {
		if len(sp) > 0 {
			a.rejectAll(n, sp, "a tracked tensor is a parameter input")
		}
		return
	}
	for i, o := range sp {
		if i != 0 {
			a.bad(o.id, "%s: a tracked tensor is parameter input %d", n.Label(), i)
		}
	}
	if t.axis != 1 || t.inner != 1 {
		a.bad(t.id, "%s normalises axis 1, which does not hold the channels", n.Label())
	}
	s := a.space(t.id)
	// BatchNormalization's four vectors, InstanceNormalization's two.
	for i := 1; i < len(n.Inputs); i++ {
		p := a.floatInit(n.Input(i))
		if p == nil || p.Len() != s.channels {
			a.bad(t.id, "%s: input %d (%q) is not a constant vector of %d values", n.Label(), i, n.Input(i), s.channels)
			continue
		}
		a.addEdit(t.id, edit{Node: n.Index, Init: n.Input(i), Axis: 0, Inner: 1})
	}
	for i, o := range n.Outputs {
		if i > 0 && o != "" {
			a.bad(t.id, "%s: training-mode output %q is not modelled", n.Label(), o)
		}
	}
	a.set(n.Outputs[0], t)
}

// constOperand handles a non-tracked operand name of a node whose tracked
// result is t: it may broadcast along the channels (no change), or vary
// along them as a float initializer (sliced), else the group is
// unprunable.
func (a *analyzer) constOperand(n *model.Node, name string, t tref) {
	d := a.dims(name)
	if d == nil {
		if tt := a.m.Initializers[name]; tt != nil {
			d = tt.Shape
		}
	}
	if d == nil {
		a.bad(t.id, "%s: shape of operand %q unknown", n.Label(), name)
		return
	}
	ax := t.axis - (t.rank - len(d))
	if ax < 0 || ax >= len(d) || d[ax] == 1 {
		return
	}
	if t.perDir() {
		a.tie(n, map[int]tref{0: t}, "operand %q varies along the units", name)
		return
	}
	s := a.space(t.id)
	if d[ax] != s.channels*t.inner*max(t.parts, 1) {
		a.bad(t.id, "%s: operand %q has %d entries along the channel axis, want 1 or %d", n.Label(), name, d[ax], s.channels*t.inner*max(t.parts, 1))
		return
	}
	if a.floatInit(name) == nil {
		a.bad(t.id, "%s: operand %q varies along the channels and is not a constant initializer", n.Label(), name)
		return
	}
	a.addEdit(t.id, edit{Node: n.Index, Init: name, Axis: ax, Inner: t.inner, Parts: t.parts})
}

// binary handles the broadcasting element-wise operators (FlowBroadcast):
// Add, Sub, Mul, Div, and Sum, Mean, Max and Min of one or more inputs.
func (a *analyzer) binary(n *model.Node, sp map[int]tref) {
	if len(sp) == 0 {
		return
	}
	var t tref
	first := true
	out := a.dims(n.Outputs[0])
	for _, i := range sortedKeys(sp) {
		o := sp[i]
		// A tracked operand whose channel axis is broadcast (a one-channel
		// map joined with a C-channel tensor): every output channel reads
		// its one channel, so its group is not tied to the output's and
		// stays whole.
		if in := a.dims(n.Input(i)); len(in) == len(out) && o.axis < len(in) && in[o.axis] == 1 && out[o.axis] > 1 {
			a.bad(o.id, "%s broadcasts the channel of input %d across %d channels", n.Label(), i, out[o.axis])
			continue
		}
		if first {
			t, first = o, false
			continue
		}
		if o.axis != t.axis || o.inner != t.inner || o.rank != t.rank || max(o.parts, 1) != max(t.parts, 1) ||
			o.perDir() != t.perDir() || (t.perDir() && (o.dirs != t.dirs || o.dirAxis != t.dirAxis)) {
			a.bad(t.id, "%s adds tensors whose channels lie differently", n.Label())
			a.bad(o.id, "%s adds tensors whose channels lie differently", n.Label())
		}
		t.id = a.union(t.id, o.id, n)
	}
	if first {
		return // every tracked operand is broadcast across the channels
	}
	if r := len(out); r != t.rank {
		a.bad(t.id, "%s broadcasts the tracked tensor to rank %d", n.Label(), r)
	}
	for i, in := range n.Inputs {
		if _, ok := sp[i]; ok || in == "" {
			continue
		}
		a.constOperand(n, in, t)
	}
	a.set(n.Outputs[0], t)
}

func (a *analyzer) flatten(n *model.Node, sp map[int]tref) {
	t, ok := sp[0]
	if !ok {
		return
	}
	ax, _ := n.AttrInt("axis", 1)
	x := a.dims(n.Input(0))
	if ax < 0 {
		ax += int64(len(x))
	}
	if x == nil || int(ax) != t.axis {
		a.bad(t.id, "%s flattens at axis %d, the channels are axis %d", n.Label(), ax, t.axis)
		return
	}
	inner := t.inner
	for _, d := range x[t.axis+1:] {
		inner *= d
	}
	a.set(n.Outputs[0], tref{id: t.id, axis: 1, inner: inner, rank: 2})
}

func sortedKeys(m map[int]tref) []int {
	k := make([]int, 0, len(m))
	for i := range m {
		k = append(k, i)
	}
	slices.Sort(k)
	return k
}

// finish checks the edits of every group against the graph (an
// initializer read by a node the analysis did not see, or sliced twice
// along one axis, makes its groups unprunable) and builds the Structure.
func (a *analyzer) finish() *Structure {
	cons := a.m.Consumers()
	for changed := true; changed; {
		changed = false
		type use struct {
			root int
			e    edit
		}
		byInit := map[string][]use{}
		for id := range a.sp {
			if a.find(id) != id || len(a.sp[id].reasons) > 0 {
				continue
			}
			for _, e := range a.sp[id].edits {
				if e.Init != "" && !e.Shape {
					byInit[e.Init] = append(byInit[e.Init], use{id, e})
				}
			}
		}
		for _, name := range sortedNames(byInit) {
			uses := byInit[name]
			nodes := map[int]bool{}
			axes := map[int]int{}
			for _, u := range uses {
				nodes[u.e.Node] = true
				axes[u.e.Axis]++
			}
			var why string
			for _, c := range cons[name] {
				if !nodes[c.Index] {
					why = fmt.Sprintf("initializer %q is also read by %s", name, c.Label())
					break
				}
			}
			for ax, k := range axes {
				if k > 1 && why == "" {
					why = fmt.Sprintf("initializer %q would be sliced twice along axis %d", name, ax)
				}
			}
			if why != "" {
				for _, u := range uses {
					if len(a.sp[u.root].reasons) == 0 {
						changed = true
					}
					a.bad(u.root, "%s", why)
				}
			}
		}
	}
	st := &Structure{Model: a.m}
	gi := map[int]int{}
	var roots []int
	for id := range a.sp {
		if a.find(id) == id {
			roots = append(roots, id)
		}
	}
	slices.SortStableFunc(roots, func(x, y int) int { return a.sp[x].firstUnit - a.sp[y].firstUnit })
	for _, r := range roots {
		s := a.sp[r]
		g := &Group{Index: len(st.Groups), Name: strings.Join(s.sources, "+"), Channels: s.channels,
			Sources: s.sources, Through: s.through, Consumers: s.consumers, Prunable: len(s.reasons) == 0,
			Reasons: s.reasons, Tensors: s.tensors, edits: s.edits}
		if s.dirs > 1 {
			g.Directions = s.dirs
		}
		gi[r] = g.Index
		st.Groups = append(st.Groups, g)
	}
	for _, u := range a.m.Units {
		r := Role{Unit: u.Name, Out: -1, In: -1, Depthwise: a.dw[u.Name]}
		if id, ok := a.out[u.Name]; ok {
			r.Out = gi[a.find(id)]
		}
		if id, ok := a.in[u.Name]; ok {
			r.In = gi[a.find(id)]
		}
		st.Roles = append(st.Roles, r)
	}
	return st
}

func sortedNames[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// Group returns the group holding the named unit's output channels, or nil.
func (s *Structure) Group(unit string) *Group {
	for _, r := range s.Roles {
		if r.Unit == unit && r.Out >= 0 {
			return s.Groups[r.Out]
		}
	}
	return nil
}

// Role returns the named unit's role and whether the unit exists.
func (s *Structure) Role(unit string) (Role, bool) {
	for _, r := range s.Roles {
		if r.Unit == unit {
			return r, true
		}
	}
	return Role{}, false
}

// Unprunable lists the groups that are left intact with their reasons, one
// line per group: "units: reason; reason", then the units whose output
// channels form no group (an LSTM's W without a constant R, a depthwise
// convolution of untracked channels).
func (s *Structure) Unprunable() []string {
	var out []string
	for _, g := range s.Groups {
		if !g.Prunable {
			out = append(out, fmt.Sprintf("%s: %s", strings.Join(g.Members(), ", "), strings.Join(g.Reasons, "; ")))
		}
	}
	if s.Model != nil {
		for i, r := range s.Roles {
			if r.Out < 0 && i < len(s.Model.Units) {
				u := s.Model.Units[i]
				out = append(out, fmt.Sprintf("%s: the output channels of operator %s are not modelled", u.Name, u.Op))
			}
		}
	}
	return out
}

// parts returns how many times the output axis of member unit u holds the
// group's channels: 3 for a fused q/k/v projection whose thirds are split
// by Slice or Split (channel c is then the blocks of c in every third), 1
// otherwise.
func (g *Group) parts(u *model.Unit) int {
	for _, e := range g.edits {
		if e.Init == u.Weight && e.Node == u.Node && !e.Shape && !e.Slice && !e.Split && e.Attr == "" {
			return e.parts()
		}
	}
	return 1
}
