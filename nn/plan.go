package nn

import (
	"fmt"
	"slices"
	"sync"

	"github.com/bitplan/bitplan/model"
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
}

// kernel is the run-time implementation of one node. Every method reads and
// writes the work's buffers; a nil buffer stands for an R-value that is
// identically zero (w.rv) or an adjoint nobody needs (w.adj, w.radj).
// forward and rforward overwrite their outputs; backward and rbackward add
// into their inputs' adjoints.
type kernel interface {
	forward(w *work)
	rforward(w *work)
	backward(w *work)
	rbackward(w *work)
}

// stateful kernels keep per-work scratch (im2col buffers, argmax indices) in
// work.state at the index len(plan.steps) had when they were constructed.
type stateful interface {
	newState() any
}

type step struct {
	node *model.Node
	k    kernel
	idx  int
	ins  []int
	outs []int
}

// plan is the executable form of the graph for one batch size.
type plan struct {
	e      *Engine
	n      int
	slots  []slot
	index  map[string]int
	steps  []step
	in     int
	out    int
	shapes *model.Shapes

	// firstUse[i] is the first step reading parameter i (Engine.params).
	firstUse []int
	// unitIn locates every unit's data input (see SetInputQuantizer).
	unitIn []unitInput

	mu   sync.Mutex
	free []*work
}

// work holds the buffers of one execution of a plan.
type work struct {
	p                  *plan
	val, rv, adj, radj [][]float64
	// rvBuf keeps the allocated R-value buffers of activations while rv
	// entries are nil (identically zero) in a restricted pass.
	rvBuf  [][]float64
	state  []any
	labels []int
	// qbuf holds, per step, the quantized copy of a unit's data input
	// (allocated on first use by forwardQuant).
	qbuf [][]float64
}

func (p *plan) slotOf(name string) int {
	if i, ok := p.index[name]; ok {
		return i
	}
	return -1
}

func (p *plan) addSlot(s slot) int {
	s.size = numel(s.shape)
	p.slots = append(p.slots, s)
	p.index[s.name] = len(p.slots) - 1
	return len(p.slots) - 1
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// buildPlan prepares the graph for batch size n.
func (e *Engine) buildPlan(n int) (*plan, error) {
	m := e.m
	inShape := append([]int{n}, e.sample...)
	shapes, err := m.InferShapes(map[string][]int{e.input: inShape})
	if err != nil {
		return nil, fmt.Errorf("nn: batch size %d: %w", n, err)
	}
	p := &plan{e: e, n: n, index: make(map[string]int), shapes: shapes}
	p.in = p.addSlot(slot{name: e.input, shape: inShape, kind: kInput})
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
		// expanded to the batch).
		folded := true
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
		if nd.Domain != "" && nd.Domain != "ai.onnx" {
			return nil, fmt.Errorf("nn: %s: operator domain %q is not supported", nd.Label(), nd.Domain)
		}
		mk, ok := kernels[nd.Op]
		if !ok && foldOnly[nd.Op] {
			return nil, fmt.Errorf("nn: %s: operator %s is supported only on shape values known before execution, not on computed data", nd.Label(), nd.Op)
		}
		if !ok {
			return nil, fmt.Errorf("nn: %s: operator %s is not supported by the engine (supported: %s)", nd.Label(), nd.Op, supportedList())
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
		k, err := mk(p, nd, ins, outs)
		if err != nil {
			return nil, fmt.Errorf("nn: %s: %w", nd.Label(), err)
		}
		if allConst {
			if err := p.evalConst(k, outs); err != nil {
				return nil, fmt.Errorf("nn: %s: %w", nd.Label(), err)
			}
			continue
		}
		p.steps = append(p.steps, step{node: nd, k: k, idx: len(p.steps), ins: ins, outs: outs})
	}
	p.firstUse = make([]int, len(e.params))
	for i := range p.firstUse {
		p.firstUse[i] = len(p.steps)
	}
	for _, st := range p.steps {
		for _, in := range st.ins {
			if in >= 0 && p.slots[in].kind == kParam {
				p.firstUse[p.slots[in].param] = min(p.firstUse[p.slots[in].param], st.idx)
			}
		}
	}
	p.out = p.slotOf(e.output)
	if p.out < 0 {
		return nil, fmt.Errorf("nn: output %q is not computed", e.output)
	}
	if o := p.slots[p.out]; len(o.shape) != 2 || o.shape[0] != n || o.kind != kAct {
		return nil, fmt.Errorf("nn: output %q has shape %v, want batch×classes logits computed from the input", e.output, o.shape)
	}
	p.locateUnitInputs()
	return p, nil
}

// evalConst runs a node whose inputs are all constants once and turns its
// outputs into constants.
func (p *plan) evalConst(k kernel, outs []int) error {
	// A kernel's state index is the step index it would have had.
	si := len(p.steps)
	w := &work{p: p, val: make([][]float64, len(p.slots)), rv: make([][]float64, len(p.slots)),
		adj: make([][]float64, len(p.slots)), radj: make([][]float64, len(p.slots)), state: make([]any, si+1)}
	for i, s := range p.slots {
		if s.kind == kConst {
			w.val[i] = s.data
		}
	}
	for _, o := range outs {
		if o >= 0 {
			w.val[o] = make([]float64, p.slots[o].size)
		}
	}
	if st, ok := k.(stateful); ok {
		w.state[si] = st.newState()
	}
	k.forward(w)
	for _, o := range outs {
		if o >= 0 {
			p.slots[o].kind = kConst
			p.slots[o].theta = false
			p.slots[o].data = w.val[o]
		}
	}
	return nil
}

// getWork returns a work for the plan, reusing a released one.
func (p *plan) getWork() *work {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		w := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	ns := len(p.slots)
	w := &work{p: p, val: make([][]float64, ns), rv: make([][]float64, ns), adj: make([][]float64, ns),
		radj: make([][]float64, ns), state: make([]any, len(p.steps)), labels: make([]int, p.n)}
	for i, s := range p.slots {
		switch s.kind {
		case kInput:
			w.val[i] = make([]float64, s.size)
		case kConst:
			w.val[i] = s.data
		case kAct:
			w.val[i] = make([]float64, s.size)
			if s.theta {
				w.rv[i] = make([]float64, s.size)
				w.adj[i] = make([]float64, s.size)
				w.radj[i] = make([]float64, s.size)
			}
		}
	}
	for i, st := range p.steps {
		if sk, ok := st.k.(stateful); ok {
			w.state[i] = sk.newState()
		}
	}
	w.rvBuf = slices.Clone(w.rv)
	return w
}

func (p *plan) putWork(w *work) {
	p.mu.Lock()
	p.free = append(p.free, w)
	p.mu.Unlock()
}

// bind points the parameter slots at θ, the direction v (nil: no
// R-values), and the gradient and Hv accumulators (nil: not wanted). v, grad
// and hv cover θ[base : base+len]; parameters outside that range get no
// R-value and no accumulator (their direction component is zero and their
// products are not wanted).
func (w *work) bind(theta, v, grad, hv []float64, base int) {
	for i, s := range w.p.slots {
		if s.kind != kParam {
			continue
		}
		prm := w.p.e.params[s.param]
		lo, hi := prm.Offset-base, prm.Offset+prm.Size-base
		w.val[i] = theta[prm.Offset : prm.Offset+prm.Size]
		w.rv[i], w.adj[i], w.radj[i] = sub(v, lo, hi), sub(grad, lo, hi), sub(hv, lo, hi)
	}
}

func sub(v []float64, lo, hi int) []float64 {
	if v == nil || lo < 0 || hi > len(v) {
		return nil
	}
	return v[lo:hi]
}

func (w *work) forward() {
	for _, s := range w.p.steps {
		s.k.forward(w)
	}
}

// rforward propagates R-values from step start on; outputs of earlier steps
// are identically zero (their direction has no component in the
// parameters they read), marked by nil.
func (w *work) rforward(start int) {
	for _, s := range w.p.steps {
		for _, o := range s.outs {
			if o < 0 {
				continue
			}
			if s.idx < start {
				w.rv[o] = nil
			} else {
				w.rv[o] = w.rvBuf[o]
			}
		}
		if s.idx >= start {
			s.k.rforward(w)
		}
	}
}

func (w *work) backward() {
	for i, s := range w.p.slots {
		if s.kind == kAct && i != w.p.out && w.adj[i] != nil {
			clear(w.adj[i])
		}
	}
	for i := len(w.p.steps) - 1; i >= 0; i-- {
		w.p.steps[i].k.backward(w)
	}
}

// rbackward propagates R-adjoints back to step stop; R-adjoints of
// parameters first read before stop are then incomplete.
func (w *work) rbackward(stop int) {
	for i, s := range w.p.slots {
		if s.kind == kAct && i != w.p.out && w.radj[i] != nil {
			clear(w.radj[i])
		}
	}
	for i := len(w.p.steps) - 1; i >= stop; i-- {
		w.p.steps[i].k.rbackward(w)
	}
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
