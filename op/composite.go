package op

import "fmt"

// Expansion is a composite operator written over registered primitives:
// Nodes run in order; their inputs name the composite's inputs as "$0",
// "$1", … ("" for an omitted optional one) or earlier sub-node outputs,
// and the output "$out" is the composite's output 0. Sub-nodes may be
// Constant nodes.
type Expansion struct {
	Nodes []*Node
}

// Compose returns the Exec of an operator defined by the expansion
// expand builds for a node. The sub-nodes' kernels come from the registry,
// so the composite's derivative passes follow from theirs (class
// Composite): it runs them as a small plan of its own whose inputs and
// output are the node's, with private buffers for the intermediate values,
// R-values and adjoints.
func Compose(expand func(b *Build) (*Expansion, error)) *Exec {
	return Both(compose[float64](expand), compose[float32](expand))
}

func compose[T Real](expand func(b *Build) (*Expansion, error)) func(b *Build) (Kernel[T], error) {
	return func(b *Build) (Kernel[T], error) {
		x, err := expand(b)
		if err != nil {
			return nil, err
		}
		c := &composite[T]{outer: b.State, slots: &compSlots{}}
		name := map[string]int{"": -1}
		for i, s := range b.In {
			key := fmt.Sprintf("$%d", i)
			if s < 0 {
				name[key] = -1
				continue
			}
			v, isConst := b.Const(s)
			name[key] = c.slots.add(b.Shape(s), v, isConst, s)
		}
		shapes := &Shapes{Dims: map[string][]int{}, Types: map[string]DataType{}, Ints: map[string][]int64{}, Values: map[string]*Tensor{}}
		for key, s := range name {
			if s >= 0 {
				shapes.Dims[key] = c.slots.shapes[s]
				shapes.Types[key] = Float
			}
		}
		for _, sn := range x.Nodes {
			d := Lookup(sn.Op, b.Opset)
			if d == nil || d.Infer == nil || d.Exec == nil {
				return nil, fmt.Errorf("composite %s: sub-operator %s is not executable", b.Node.Op, sn.Op)
			}
			sn.Name = b.Node.Name + "/" + sn.Op
			if err := d.Infer(sn, shapes); err != nil {
				return nil, fmt.Errorf("composite %s: %w", b.Node.Op, err)
			}
			sb := &Build{Node: sn, Opset: b.Opset, Slots: c.slots}
			for _, in := range sn.Inputs {
				s, ok := name[in]
				if !ok {
					return nil, fmt.Errorf("composite %s: sub-node %s reads unknown %q", b.Node.Op, sn.Op, in)
				}
				sb.In = append(sb.In, s)
			}
			for _, o := range sn.Outputs {
				sh, ok := shapes.Dims[o]
				if !ok {
					return nil, fmt.Errorf("composite %s: shape of %q not inferred", b.Node.Op, o)
				}
				outer := -1
				if j, isOut := outputIndex(o); isOut {
					if j >= len(b.Out) {
						return nil, fmt.Errorf("composite %s: the expansion produces %s but the node has %d outputs", b.Node.Op, o, len(b.Out))
					}
					if outer = b.Out[j]; outer >= 0 {
						if !equalInts(sh, b.Shape(outer)) {
							return nil, fmt.Errorf("composite %s: output %d has shape %v, the node's is %v", b.Node.Op, j, sh, b.Shape(outer))
						}
						c.ys = append(c.ys, outer)
					}
				}
				name[o] = c.slots.add(sh, nil, false, outer)
				sb.Out = append(sb.Out, name[o])
			}
			sb.State = len(c.steps)
			k, err := NewKernel[T](d.Exec, sb)
			if err != nil {
				return nil, fmt.Errorf("composite %s: %s: %w", b.Node.Op, sn.Op, err)
			}
			if sn.Op == "Constant" {
				// Evaluated once: its output becomes a constant slot.
				// Only that output is allocated (a private work of every
				// intermediate per Constant cost a recurrent cell's
				// expansion most of its build time).
				o := sb.Out[0]
				w := &Work[T]{Val: make([][]T, len(c.slots.shapes)), RV: make([][]T, len(c.slots.shapes)),
					Adj: make([][]T, len(c.slots.shapes)), RAdj: make([][]T, len(c.slots.shapes)), State: make([]any, len(c.steps)+1)}
				w.Val[o] = make([]T, Numel(c.slots.shapes[o]))
				k.Forward(w)
				c.slots.consts[o], c.slots.isConst[o] = Convert[float64](w.Val[o]), true
				continue
			}
			c.steps = append(c.steps, k)
		}
		if _, ok := name["$out"]; !ok {
			return nil, fmt.Errorf("composite %s: the expansion does not produce $out", b.Node.Op)
		}
		return c, nil
	}
}

// outputIndex returns j for the expansion's names of the composite's
// outputs: "$out" (0), "$out1", "$out2", ….
func outputIndex(name string) (int, bool) {
	if name == "$out" {
		return 0, true
	}
	var j int
	if _, err := fmt.Sscanf(name, "$out%d", &j); err == nil && j > 0 && name == fmt.Sprintf("$out%d", j) {
		return j, true
	}
	return 0, false
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// compSlots are the tensors of a composite's private plan; outer maps a
// slot to the enclosing plan's slot (-1: private intermediate).
type compSlots struct {
	shapes  [][]int
	consts  [][]float64
	isConst []bool
	outer   []int
}

func (s *compSlots) add(shape []int, v []float64, isConst bool, outer int) int {
	s.shapes = append(s.shapes, shape)
	s.consts = append(s.consts, v)
	s.isConst = append(s.isConst, isConst)
	s.outer = append(s.outer, outer)
	return len(s.shapes) - 1
}

func (s *compSlots) Shape(i int) []int { return s.shapes[i] }
func (s *compSlots) Const(i int) ([]float64, bool) {
	return s.consts[i], s.isConst[i]
}
func (s *compSlots) Name(i int) string { return fmt.Sprintf("composite slot %d", i) }

type composite[T Real] struct {
	outer int   // the composite's state index in the outer Work
	ys    []int // the output slots in the outer Work
	slots *compSlots
	steps []Kernel[T]
}

// newWork allocates the private buffers of one execution: values,
// R-values and adjoints of the intermediates (the composite's inputs and
// output are bound from the outer Work on every pass).
func (c *composite[T]) newWork() *Work[T] {
	n := len(c.slots.shapes)
	w := &Work[T]{Val: make([][]T, n), RV: make([][]T, n), Adj: make([][]T, n),
		RAdj: make([][]T, n), State: make([]any, len(c.steps)+1)}
	for i, sh := range c.slots.shapes {
		switch {
		case c.slots.isConst[i]:
			w.Val[i] = Convert[T](c.slots.consts[i])
		case c.slots.outer[i] < 0:
			size := Numel(sh)
			w.Val[i], w.RV[i], w.Adj[i], w.RAdj[i] = make([]T, size), make([]T, size), make([]T, size), make([]T, size)
		}
	}
	return w
}

// NewState builds the private work and the sub-kernels' state.
func (c *composite[T]) NewState() any {
	w := c.newWork()
	for i, k := range c.steps {
		if st, ok := k.(Stateful); ok {
			w.State[i] = st.NewState()
		}
	}
	return w
}

// StateBytes counts the private buffers and the sub-kernels' state.
func (c *composite[T]) StateBytes() int64 {
	var b int64
	for i, sh := range c.slots.shapes {
		if !c.slots.isConst[i] && c.slots.outer[i] < 0 {
			b += 4 * SizeOf[T]() * int64(Numel(sh))
		}
	}
	for _, k := range c.steps {
		if st, ok := k.(Stateful); ok {
			b += st.StateBytes()
		}
	}
	return b
}

// bind points the private work at the outer buffers of the inputs and the
// output and returns it.
func (c *composite[T]) bind(w *Work[T]) *Work[T] {
	p := w.State[c.outer].(*Work[T])
	for i, o := range c.slots.outer {
		if o >= 0 {
			p.Val[i], p.RV[i], p.Adj[i], p.RAdj[i] = w.Val[o], w.RV[o], w.Adj[o], w.RAdj[o]
		}
	}
	p.scratch = w.scratch
	return p
}

// unbind hands scratch growth back to the outer work.
func (c *composite[T]) unbind(w, p *Work[T]) { w.scratch = p.scratch }

func (c *composite[T]) Forward(w *Work[T]) {
	p := c.bind(w)
	for _, k := range c.steps {
		k.Forward(p)
	}
	c.unbind(w, p)
}

// RForward runs the sub-kernels' R-forward passes; an intermediate whose
// inputs have no R-value gets zeros from its kernel.
func (c *composite[T]) RForward(w *Work[T]) {
	if none(w.RV, c.ys) {
		return
	}
	p := c.bind(w)
	for _, k := range c.steps {
		k.RForward(p)
	}
	c.unbind(w, p)
}

// none reports that every listed buffer is nil.
func none[T Real](b [][]T, slots []int) bool {
	for _, s := range slots {
		if b[s] != nil {
			return false
		}
	}
	return true
}

func (c *composite[T]) clearPrivate(b [][]T) {
	for i, o := range c.slots.outer {
		if o < 0 && !c.slots.isConst[i] {
			clear(b[i])
		}
	}
}

func (c *composite[T]) Backward(w *Work[T]) {
	if none(w.Adj, c.ys) {
		return
	}
	p := c.bind(w)
	c.clearPrivate(p.Adj)
	for i := len(c.steps) - 1; i >= 0; i-- {
		c.steps[i].Backward(p)
	}
	c.unbind(w, p)
}

func (c *composite[T]) RBackward(w *Work[T]) {
	if none(w.RAdj, c.ys) {
		return
	}
	p := c.bind(w)
	c.clearPrivate(p.RAdj)
	for i := len(c.steps) - 1; i >= 0; i-- {
		c.steps[i].RBackward(p)
	}
	c.unbind(w, p)
}
