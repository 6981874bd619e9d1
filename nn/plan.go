package nn

import (
	"fmt"
	"slices"
	"sync"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/op"
)

type slotKind uint8

const (
	kInput slotKind = iota // the graph input (data)
	kParam                 // a slice of θ
	kConst                 // a constant known when the plan is built
	kAct                   // an activation computed at run time
)

// slot is one tensor of a plan.
type slot struct {
	name  string
	shape []int
	size  int
	kind  slotKind
	// theta reports that the tensor depends on θ: it has R-values and
	// adjoints.
	theta bool
	// param indexes Engine.params for kParam slots.
	param int
	// data holds kConst values.
	data []float64
	// alias is the slot whose storage a view's output shares (-1: own
	// storage).
	alias int
}

type step struct {
	node *model.Node
	// k is the kernel, an op.Kernel[T] of the plan's precision.
	k    any
	idx  int
	ins  []int
	outs []int
}

// plan is the executable form of the graph for one batch size.
type plan struct {
	e     *Engine
	n     int
	slots []slot
	index map[string]int
	steps []step
	// in is the slot of the first input, ins those of every input in
	// graph order.
	in     int
	ins    []int
	out    int
	shapes *model.Shapes

	// aliases lists, for a slot, the view outputs sharing its storage.
	aliases map[int][]int

	// validators are the steps whose kernels are op.Validators.
	validators []int
	// firstUse[i] is the first step reading parameter i (Engine.params),
	// pslot[i] its slot; accTake[s] lists the parameters whose last
	// reader is step s (the backward passes' first accumulation into
	// them), accGive[s] those whose first reader is s (their last).
	firstUse         []int
	pslot            []int
	accTake, accGive [][]int
	// stepParams[s] lists the parameters step s reads.
	stepParams [][]int
	// unitIn locates every unit's data input (see SetInputQuantizer).
	unitIn []unitInput

	// scratch holds the length of every shared scratch buffer; bytes is
	// the memory of one work (see memory).
	scratch []int
	bytes   int64
	// retains is every step's declaration of what its derivative passes
	// read (op.Retains; op.RetainsAll for a kernel without one), all
	// marks the steps that declare nothing; sched holds the buffer
	// schedule of each pass mode (see liveness.go), poolBytes what the
	// work's buffer pool holds at most over them.
	retains   []op.Retains
	all       []bool
	sched     [nModes]*schedule
	poolBytes int64

	// f32 reports that the kernels run in float32; const32 then holds
	// the float32 values of the constant slots.
	f32     bool
	const32 [][]float32

	mu   sync.Mutex
	free []any // *work[T] of the plan's precision, recycling buffers
	// fullFree holds works that keep every buffer (see getFullWork).
	fullFree []any
}

// work holds the buffers of one execution of a plan in precision T.
type work[T op.Real] struct {
	op.Work[T]
	p  *plan
	ks []op.Kernel[T]
	// full reports a work holding every buffer for the whole run
	// (getFullWork); otherwise buffers come from pool as the plan's
	// schedule says and own[k][s] is the buffer of kind k that root slot
	// s holds now (nil: none; the Work's entry may still point at a
	// recycled buffer, see op.Retains).
	full bool
	own  [nBufs][][]T
	// acc receives the parameters' derivatives during a pass (see
	// startAcc); dir converts a product's direction (see dirTake).
	acc    accState[T]
	dir    dirState[T]
	pool   bufPool[T]
	labels []int
	// refBuf holds the outputs at a Referenced loss's parameters.
	refBuf []float64
	// qbuf holds, per step, the quantized copies of its quantized inputs
	// (allocated on first use by forwardQuant); qtmp and qout are the
	// float64 staging when T is float32.
	qbuf       [][][]T
	qtmp, qout []float64
	// ste is the state of a quantized gradient pass (ste.go).
	ste steWork[T]
	// Float64 staging of the inputs, the output and the loss's adjoints,
	// used when T is float32 (the data and the loss are float64).
	ins64                  [][]float64
	out64, rz64, g64, rg64 []float64
}

// Shape, Const and Name make the plan the op.Slots of its kernels.
func (p *plan) Shape(i int) []int { return p.slots[i].shape }

func (p *plan) Const(i int) ([]float64, bool) {
	if p.slots[i].kind != kConst {
		return nil, false
	}
	return p.slots[i].data, true
}

func (p *plan) Name(i int) string { return p.slots[i].name }

func (p *plan) slotOf(name string) int {
	if i, ok := p.index[name]; ok {
		return i
	}
	return -1
}

func (p *plan) addSlot(s slot) int {
	s.size = op.Numel(s.shape)
	s.alias = -1
	p.slots = append(p.slots, s)
	p.index[s.name] = len(p.slots) - 1
	return len(p.slots) - 1
}

// buildPlan prepares the graph for batch size n.
func (e *Engine) buildPlan(n int) (*plan, error) {
	m := e.m
	inShapes := make(map[string][]int, len(e.inputs))
	for _, in := range e.inputs {
		inShapes[in.Name] = append([]int{n}, in.Sample...)
	}
	shapes, err := m.InferShapes(inShapes)
	if err != nil {
		return nil, fmt.Errorf("nn: batch size %d: %w", n, err)
	}
	p := &plan{e: e, n: n, index: make(map[string]int), shapes: shapes, aliases: make(map[int][]int)}
	for _, in := range e.inputs {
		p.ins = append(p.ins, p.addSlot(slot{name: in.Name, shape: inShapes[in.Name], kind: kInput}))
	}
	p.in = p.ins[0]
	for i, prm := range e.params {
		p.addSlot(slot{name: prm.Name, shape: prm.Shape, kind: kParam, theta: true, param: i})
	}
	for _, name := range m.InitializerNames {
		if _, isParam := p.index[name]; isParam {
			continue
		}
		t := m.Initializers[name]
		p.addSlot(slot{name: name, shape: t.Shape, kind: kConst, data: t.Values()})
	}

	// Liveness: only nodes the output depends on are executed.
	live := make(map[string]bool)
	live[e.output] = true
	need := make([]bool, len(m.Nodes))
	for i := len(m.Nodes) - 1; i >= 0; i-- {
		nd := m.Nodes[i]
		for _, o := range nd.Outputs {
			if live[o] {
				need[i] = true
			}
		}
		if need[i] {
			for _, in := range nd.Inputs {
				if in != "" {
					live[in] = true
				}
			}
		}
	}

	for i, nd := range m.Nodes {
		if !need[i] {
			continue
		}
		// Values folded by shape inference (shape arithmetic, constants
		// expanded to the batch), unless the node reads a tensor that
		// depends on θ (an embedding table gathered at indices known before
		// execution: position ids) — its output then depends on θ too.
		// (Shape and Size of such a tensor read only its shape.)
		folded := true
		if d := op.Lookup(nd.Op, m.Opset); d != nil && d.Exec != nil {
			for _, in := range nd.Inputs {
				if s := p.slotOf(in); in != "" && s >= 0 && p.slots[s].theta {
					folded = false
				}
			}
		}
		for _, o := range nd.Outputs {
			if o == "" || !live[o] {
				continue
			}
			if _, ok := shapes.Values[o]; !ok {
				folded = false
			}
		}
		if folded {
			for _, o := range nd.Outputs {
				if t, ok := shapes.Values[o]; ok {
					p.addSlot(slot{name: o, shape: shapes.Dims[o], kind: kConst, data: t.Values()})
				}
			}
			continue
		}
		if !op.IsDefault(nd.Domain) {
			return nil, fmt.Errorf("nn: %s: operator domain %q is not supported", nd.Label(), nd.Domain)
		}
		def := op.Lookup(nd.Op, m.Opset)
		if def != nil && def.Exec == nil && def.Fold {
			return nil, fmt.Errorf("nn: %s: operator %s is supported only on shape values known before execution, not on computed data", nd.Label(), nd.Op)
		}
		if def == nil || def.Exec == nil {
			return nil, fmt.Errorf("nn: %s: operator %s is not supported by the engine at opset %d (supported: %s)", nd.Label(), nd.Op, m.Opset, op.Executable())
		}
		ins := make([]int, len(nd.Inputs))
		allConst, theta := true, false
		for j, in := range nd.Inputs {
			ins[j] = -1
			if in == "" {
				continue
			}
			s := p.slotOf(in)
			if s < 0 {
				return nil, fmt.Errorf("nn: %s: input %q is not available", nd.Label(), in)
			}
			ins[j] = s
			allConst = allConst && p.slots[s].kind == kConst
			theta = theta || p.slots[s].theta
		}
		outs := make([]int, len(nd.Outputs))
		for j, o := range nd.Outputs {
			outs[j] = -1
			if o == "" {
				continue
			}
			sh, ok := shapes.Dims[o]
			if !ok {
				if j > 0 && !live[o] {
					continue
				}
				return nil, fmt.Errorf("nn: %s: shape of output %q could not be inferred", nd.Label(), o)
			}
			outs[j] = p.addSlot(slot{name: o, shape: slices.Clone(sh), kind: kAct, theta: theta})
		}
		// A kernel's state can be as large as its outputs (a pick's index
		// map): an output beyond the memory limit is refused before the
		// kernel is made.
		if lim := e.opts.Memory; lim > 0 {
			for _, o := range outs {
				if o >= 0 && int64(p.slots[o].size) > lim/8 {
					return nil, &MemoryError{Need: 8 * int64(p.slots[o].size), Limit: lim,
						Tensor: fmt.Sprintf("%s: output %q of shape %v", nd.Label(), p.slots[o].name, p.slots[o].shape)}
				}
			}
		}
		b := &op.Build{Node: nd, Opset: m.Opset, In: ins, Out: outs, State: len(p.steps), Slots: p}
		if allConst {
			// Constants are folded once, in float64.
			k, err := op.NewKernel[float64](def.Exec, b)
			if err == nil {
				err = p.evalConst(k, outs)
			}
			if err != nil {
				return nil, fmt.Errorf("nn: %s: %w", nd.Label(), err)
			}
			continue
		}
		var k any
		if e.prec == Float32 {
			k, err = op.NewKernel[float32](def.Exec, b)
		} else {
			k, err = op.NewKernel[float64](def.Exec, b)
		}
		if err != nil {
			return nil, fmt.Errorf("nn: %s: %w", nd.Label(), err)
		}
		if def.View && p.share(ins[0], outs[0]) {
			continue
		}
		p.steps = append(p.steps, step{node: nd, k: k, idx: len(p.steps), ins: ins, outs: outs})
	}
	for _, st := range p.steps {
		_, v64 := st.k.(op.Validator[float64])
		_, v32 := st.k.(op.Validator[float32])
		if v64 || v32 {
			p.validators = append(p.validators, st.idx)
		}
	}
	p.firstUse = make([]int, len(e.params))
	for i := range p.firstUse {
		p.firstUse[i] = len(p.steps)
	}
	lastUse := make([]int, len(e.params))
	for i := range lastUse {
		lastUse[i] = -1
	}
	p.stepParams = make([][]int, len(p.steps))
	for _, st := range p.steps {
		for _, in := range st.ins {
			if in >= 0 && p.slots[in].kind == kParam {
				q := p.slots[in].param
				p.firstUse[q] = min(p.firstUse[q], st.idx)
				lastUse[q] = max(lastUse[q], st.idx)
				if !slices.Contains(p.stepParams[st.idx], q) {
					p.stepParams[st.idx] = append(p.stepParams[st.idx], q)
				}
			}
		}
	}
	p.pslot = make([]int, len(e.params))
	p.accTake, p.accGive = make([][]int, len(p.steps)), make([][]int, len(p.steps))
	for q, prm := range e.params {
		p.pslot[q] = p.index[prm.Name]
		if lastUse[q] >= 0 {
			p.accTake[lastUse[q]] = append(p.accTake[lastUse[q]], q)
			p.accGive[p.firstUse[q]] = append(p.accGive[p.firstUse[q]], q)
		}
	}
	p.out = p.slotOf(e.output)
	if p.out < 0 {
		return nil, fmt.Errorf("nn: output %q is not computed", e.output)
	}
	if o := p.slots[p.out]; len(o.shape) < 1 || o.shape[0] != n || o.kind != kAct {
		return nil, fmt.Errorf("nn: output %q has shape %v, want a batch of %d outputs computed from the input", e.output, o.shape, n)
	}
	if _, classes := e.loss.(ClassLabels); classes && len(p.slots[p.out].shape) != 2 {
		return nil, fmt.Errorf("nn: output %q has shape %v, want batch×classes logits computed from the input (or a loss for other outputs, Options.Loss)", e.output, p.slots[p.out].shape)
	}
	p.locateUnitInputs()
	p.f32 = e.prec == Float32
	if p.f32 {
		p.const32 = make([][]float32, len(p.slots))
		for i, s := range p.slots {
			if s.kind == kConst {
				p.const32[i] = op.Convert[float32](s.data)
			}
		}
	}
	p.memory()
	return p, nil
}

// share lets view output out use the storage of its input in (or of the
// slot in shares storage with) instead of running a kernel. It declines
// for parameters (bound per call) and for the graph output (its adjoint is
// the loss gradient, which the backward pass must not clear).
func (p *plan) share(in, out int) bool {
	if out < 0 {
		return false
	}
	root := in
	if a := p.slots[in].alias; a >= 0 {
		root = a
	}
	r := p.slots[root]
	if (r.kind != kAct && r.kind != kInput) || r.size != p.slots[out].size ||
		r.name == p.e.output || p.slots[out].name == p.e.output {
		return false
	}
	p.slots[out].alias, p.slots[out].theta = root, r.theta
	p.aliases[root] = append(p.aliases[root], out)
	return true
}

// evalConst runs a node whose inputs are all constants once and turns its
// outputs into constants.
func (p *plan) evalConst(k op.Kernel[float64], outs []int) error {
	// A kernel's state index is the step index it would have had.
	si := len(p.steps)
	ns := len(p.slots)
	w := &op.Work[float64]{Val: make([][]float64, ns), RV: make([][]float64, ns), Adj: make([][]float64, ns),
		RAdj: make([][]float64, ns), State: make([]any, si+1)}
	for i, s := range p.slots {
		if s.kind == kConst {
			w.Val[i] = s.data
		}
	}
	for _, o := range outs {
		if o >= 0 {
			w.Val[o] = make([]float64, p.slots[o].size)
		}
	}
	if st, ok := k.(op.Stateful); ok {
		w.State[si] = st.NewState()
	}
	k.Forward(w)
	for _, o := range outs {
		if o >= 0 {
			p.slots[o].kind = kConst
			p.slots[o].theta = false
			p.slots[o].data = w.Val[o]
		}
	}
	return nil
}

// getWork returns a work for plan p in its precision T whose buffers are
// recycled by the plan's schedules, reusing a released one.
func getWork[T op.Real](p *plan) *work[T] {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		w := p.free[n-1].(*work[T])
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	w := newWork[T](p)
	for k := range w.own {
		w.own[k] = make([][]T, len(p.slots))
	}
	return w
}

// getFullWork returns a work holding a value buffer for every activation
// and an adjoint buffer for every one that depends on θ, for the whole
// run, and no R-values: for the calls that read tensors after the passes
// (Intermediates, TensorValues, TensorGradients, InputGradient).
func getFullWork[T op.Real](p *plan) *work[T] {
	p.mu.Lock()
	if n := len(p.fullFree); n > 0 {
		w := p.fullFree[n-1].(*work[T])
		p.fullFree = p.fullFree[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	w := newWork[T](p)
	w.full = true
	for i, s := range p.slots {
		if s.kind != kAct {
			continue
		}
		if s.alias >= 0 {
			w.Val[i], w.Adj[i] = w.Val[s.alias], w.Adj[s.alias]
			continue
		}
		w.Val[i] = make([]T, s.size)
		if s.theta {
			w.Adj[i] = make([]T, s.size)
		}
	}
	return w
}

// newWork allocates a work's inputs, constants, kernel state and scratch.
func newWork[T op.Real](p *plan) *work[T] {
	ns := len(p.slots)
	w := &work[T]{p: p, Work: op.Work[T]{Val: make([][]T, ns), RV: make([][]T, ns), Adj: make([][]T, ns),
		RAdj: make([][]T, ns), State: make([]any, len(p.steps))}, labels: make([]int, p.n)}
	for i, s := range p.slots {
		switch s.kind {
		case kInput:
			w.Val[i] = make([]T, s.size)
		case kConst:
			if p.f32 {
				w.Val[i] = any(p.const32[i]).([]T)
			} else {
				w.Val[i] = any(s.data).([]T)
			}
		}
	}
	for i, s := range p.slots { // views of an input
		if s.alias >= 0 && p.slots[s.alias].kind == kInput {
			w.Val[i] = w.Val[s.alias]
		}
	}
	w.ks = make([]op.Kernel[T], len(p.steps))
	for i, st := range p.steps {
		w.ks[i] = st.k.(op.Kernel[T])
		if sk, ok := st.k.(op.Stateful); ok {
			w.State[i] = sk.NewState()
		}
	}
	for i, n := range p.scratch {
		w.Scratch(i, n)
	}
	return w
}

// release returns the work (and every buffer it holds) for reuse.
func (w *work[T]) release() {
	p := w.p
	w.ste.hooks = nil // a quantized gradient pass that failed before its backward
	if !w.full {
		w.giveAll()
	}
	p.mu.Lock()
	if w.full {
		p.fullFree = append(p.fullFree, w)
	} else {
		p.free = append(p.free, w)
	}
	p.mu.Unlock()
}

// bind points the parameter slots at θ, the direction v (nil: no
// R-values), and the gradient and Hv accumulators (nil: not wanted). v, grad
// and hv cover θ[base : base+len]; parameters outside that range get no
// R-value and no accumulator (their direction component is zero and their
// products are not wanted).
func (w *work[T]) bind(theta, v, grad, hv []T, base int) {
	for i, s := range w.p.slots {
		if s.kind != kParam {
			continue
		}
		prm := w.p.e.params[s.param]
		lo, hi := prm.Offset-base, prm.Offset+prm.Size-base
		w.Val[i] = theta[prm.Offset : prm.Offset+prm.Size]
		w.RV[i], w.Adj[i], w.RAdj[i] = sub(v, lo, hi), sub(grad, lo, hi), sub(hv, lo, hi)
	}
}

func sub[T op.Real](v []T, lo, hi int) []T {
	if v == nil || lo < 0 || hi > len(v) {
		return nil
	}
	return v[lo:hi]
}

// forward runs the forward pass (a full work's, or by the schedule of mode
// md).
func (w *work[T]) forward(md mode) {
	sc := w.schedule(md)
	for i, k := range w.ks {
		w.takeAt(sc, w.p.tF(i))
		k.Forward(&w.Work)
		w.giveAt(sc, w.p.tF(i))
	}
}

// validate runs the checks of the kernels that can find their inputs
// invalid only at run time (op.Validator: an index out of range) after a
// forward pass in mode md; the error names the node.
func (w *work[T]) validate(md mode) error {
	sc := w.schedule(md)
	w.takeAt(sc, w.p.tValidate())
	defer w.giveAt(sc, w.p.tValidate())
	for _, i := range w.p.validators {
		if err := w.ks[i].(op.Validator[T]).Validate(&w.Work); err != nil {
			return fmt.Errorf("nn: %s: %w", w.p.steps[i].node.Label(), err)
		}
	}
	return nil
}

// backward runs the backward pass: a full work clears every adjoint
// first, a recycled one takes each adjoint, zeroed, at its first
// accumulation (the output's at the score, takeAt(tScore)).
func (w *work[T]) backward(md mode) {
	sc := w.schedule(md)
	if sc == nil {
		for i, s := range w.p.slots {
			if s.kind == kAct && i != w.p.out && w.Adj[i] != nil {
				clear(w.Adj[i])
			}
		}
	}
	for i := len(w.ks) - 1; i >= 0; i-- {
		w.takeAt(sc, w.p.tB(i))
		w.accTake(bufAdj, i)
		w.stepBackward(i)
		w.accGive(bufAdj, i)
		w.giveAt(sc, w.p.tB(i))
	}
}

// rforward propagates R-values from step start on (by the schedule of
// mode md, modeHVP or modeHVP1); outputs of earlier steps are
// identically zero (their direction has no component in the parameters
// they read), marked by nil. Only recycled works run it.
func (w *work[T]) rforward(md mode, start int) {
	p := w.p
	sc := p.sched[md]
	for _, s := range p.steps {
		if s.idx < start {
			for _, o := range s.outs {
				if o >= 0 {
					w.set(bufRV, o, nil)
				}
			}
			continue
		}
		w.takeAt(sc, p.tRF(s.idx))
		w.dirTake(s.idx, false)
		w.ks[s.idx].RForward(&w.Work)
		w.dirGive(s.idx)
		w.giveAt(sc, p.tRF(s.idx))
	}
}

// rbackward propagates R-adjoints back to step stop; R-adjoints of
// parameters first read before stop are then incomplete. It gives back
// every R-value and R-adjoint, ready for the next direction.
func (w *work[T]) rbackward(stop int) {
	p := w.p
	sc := p.sched[modeHVP]
	for i := len(p.steps) - 1; i >= stop; i-- {
		w.takeAt(sc, p.tRB(i))
		w.accTake(bufRAdj, i)
		w.dirTake(i, true)
		w.ks[i].RBackward(&w.Work)
		w.dirGive(i)
		w.accGive(bufRAdj, i)
		w.giveAt(sc, p.tRB(i))
	}
	w.giveKind(bufRV)
	w.giveKind(bufRAdj)
}

// reverse is the backward and R-backward passes fused, by the schedule of
// modeHVP1: each step's backward then its R-backward, from the last step
// back to stop (earlier steps' adjoints feed no wanted R-adjoint).
func (w *work[T]) reverse(stop int) {
	p := w.p
	sc := p.sched[modeHVP1]
	for i := len(p.steps) - 1; i >= stop; i-- {
		w.takeAt(sc, p.tB(i))
		w.ks[i].Backward(&w.Work)
		w.giveAt(sc, p.tB(i))
		w.takeAt(sc, p.tRB(i))
		w.accTake(bufRAdj, i)
		w.dirTake(i, true)
		w.ks[i].RBackward(&w.Work)
		w.dirGive(i)
		w.accGive(bufRAdj, i)
		w.giveAt(sc, p.tRB(i))
	}
	w.giveKind(bufRV)
	w.giveKind(bufRAdj)
}

// span returns the first step reading any parameter overlapping θ[lo:hi).
func (p *plan) span(lo, hi int) int {
	first := len(p.steps)
	for i, prm := range p.e.params {
		if prm.Offset < hi && prm.Offset+prm.Size > lo {
			first = min(first, p.firstUse[i])
		}
	}
	return first
}
