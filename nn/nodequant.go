package nn

import "fmt"

// NodeOutputFunc computes a node's output from one of its inputs in place
// of the node's own kernel: in is the chosen input and out the output, both
// a whole chunk (batch × per-sample elements) in row-major order. It lets a
// simulation replace an operator by an approximation of it (the integer-
// only GELU, Softmax and LayerNorm of I-BERT). Like an InputQuantizer it
// must be safe for concurrent calls.
type NodeOutputFunc func(in, out []float64)

// nodeHook is what is installed on one node: input quantizers by input
// index and an output replacement.
type nodeHook struct {
	ins   map[int]InputQuantizer
	clips map[int]clipRange // by input index, see SetNodeInputClip
	outIn int
	out   NodeOutputFunc
}

// nodeIndex returns the index in the model of the node named name (or,
// for a node without a name, whose first output is name).
func (e *Engine) nodeIndex(name string) (int, error) {
	for _, n := range e.m.Nodes {
		if n.Name == name || (n.Name == "" && len(n.Outputs) > 0 && n.Outputs[0] == name) {
			return n.Index, nil
		}
	}
	return -1, fmt.Errorf("nn: no node named %q", name)
}

// SetNodeInputQuantizer installs q on input number input of the named node
// (an activation × activation MatMul's operands, which no unit owns); q ==
// nil removes it. It acts as SetInputQuantizer does: in inference passes
// (Evaluate, Logits, Intermediates; Gradient with SetQuantizedGradient),
// on a private copy of the input.
// When a unit's quantizer and a node quantizer read the same slot of one
// node (a product of a tensor with itself), they are applied in turn.
// ClearInputQuantizers removes it. It must not run concurrently with
// evaluation.
func (e *Engine) SetNodeInputQuantizer(node string, input int, q InputQuantizer) error {
	i, err := e.nodeIndex(node)
	if err != nil {
		return err
	}
	if n := e.m.Nodes[i]; input < 0 || input >= len(n.Inputs) || n.Inputs[input] == "" {
		return fmt.Errorf("nn: %s has no input %d", n.Label(), input)
	}
	h := e.hook(i, q != nil)
	if h == nil {
		return nil
	}
	if q == nil {
		delete(h.ins, input)
		return nil
	}
	if h.ins == nil {
		h.ins = map[int]InputQuantizer{}
	}
	h.ins[input] = q
	return nil
}

// SetNodeOutput replaces, in inference passes, the first output of the
// named node by f(x, out) with x the node's input number input (as the
// node reads it, after any input quantizer); f == nil removes it. The
// node's kernel still runs first (its other outputs keep their values).
// Derivatives (HVP; Gradient unless SetQuantizedGradient) ignore it, as
// they ignore input quantizers.
// ClearInputQuantizers removes it. It must not run concurrently with
// evaluation.
func (e *Engine) SetNodeOutput(node string, input int, f NodeOutputFunc) error {
	i, err := e.nodeIndex(node)
	if err != nil {
		return err
	}
	n := e.m.Nodes[i]
	if input < 0 || input >= len(n.Inputs) || n.Inputs[input] == "" {
		return fmt.Errorf("nn: %s has no input %d", n.Label(), input)
	}
	if len(n.Outputs) == 0 || n.Outputs[0] == "" {
		return fmt.Errorf("nn: %s has no output", n.Label())
	}
	h := e.hook(i, f != nil)
	if h == nil {
		return nil
	}
	h.outIn, h.out = input, f
	return nil
}

// hook returns node i's hook, created when create is set (nil when there
// is none and create is not set).
func (e *Engine) hook(i int, create bool) *nodeHook {
	if h := e.nodeq[i]; h != nil || !create {
		return h
	}
	if e.nodeq == nil {
		e.nodeq = map[int]*nodeHook{}
	}
	h := &nodeHook{}
	e.nodeq[i] = h
	return h
}

// stepHook is what forwardQuant applies at one step: quantizers of input
// slots, in order, with their clipping ranges, and an output replacement.
type stepHook struct {
	slots []int
	qs    []InputQuantizer
	clips []clipRange
	outIn int // slot read by out
	out   NodeOutputFunc
}

// stepHooks returns the hooks of every step of the plan (nil when the
// engine has none).
func (p *plan) stepHooks() map[int]*stepHook {
	e := p.e
	if e.inq == nil && len(e.nodeq) == 0 {
		return nil
	}
	hs := map[int]*stepHook{}
	get := func(s int) *stepHook {
		if hs[s] == nil {
			hs[s] = &stepHook{outIn: -1}
		}
		return hs[s]
	}
	for u, q := range e.inq {
		if q != nil && p.unitIn[u].step >= 0 {
			h := get(p.unitIn[u].step)
			c := noClip
			if e.ste.unit != nil {
				c = e.ste.unit[u]
			}
			h.slots, h.qs, h.clips = append(h.slots, p.unitIn[u].slot), append(h.qs, q), append(h.clips, c)
		}
	}
	if len(e.nodeq) > 0 {
		for _, st := range p.steps {
			nh := e.nodeq[st.node.Index]
			if nh == nil || st.node != e.m.Nodes[st.node.Index] {
				continue
			}
			for in := range st.ins {
				if q := nh.ins[in]; q != nil && st.ins[in] >= 0 {
					h := get(st.idx)
					c, ok := nh.clips[in]
					if !ok {
						c = noClip
					}
					h.slots, h.qs, h.clips = append(h.slots, st.ins[in]), append(h.qs, q), append(h.clips, c)
				}
			}
			if nh.out != nil && nh.outIn < len(st.ins) && st.ins[nh.outIn] >= 0 && len(st.outs) > 0 && st.outs[0] >= 0 {
				h := get(st.idx)
				h.outIn, h.out = st.ins[nh.outIn], nh.out
			}
		}
	}
	return hs
}
