package model

import (
	"fmt"
	"slices"

	"github.com/bitplan/bitplan/op"
)

// InferShapes runs shape inference for the given shapes of the graph inputs
// (all of them must be given, with non-negative dimensions). Operators that
// inference does not know get the shape recorded in the graph's value_info,
// if any, else an unknown shape; inconsistent shapes of known operators are
// errors naming the node.
func (m *Model) InferShapes(inputs map[string][]int) (*Shapes, error) {
	for _, in := range m.Inputs {
		s, ok := inputs[in.Name]
		if !ok {
			return nil, fmt.Errorf("model: shape of graph input %q not given", in.Name)
		}
		for d, v := range s {
			if v < 0 {
				return nil, fmt.Errorf("model: graph input %q: dimension %d is %d, want ≥ 0", in.Name, d, v)
			}
		}
		if in.Shape != nil && len(in.Shape) != len(s) {
			return nil, fmt.Errorf("model: graph input %q has rank %d, the model declares %v", in.Name, len(s), in.Shape)
		}
		for d, v := range in.Shape {
			if d > 0 && v >= 0 && s[d] != v {
				return nil, fmt.Errorf("model: graph input %q: dimension %d is %d, the model declares %d (shape %v)", in.Name, d, s[d], v, in.Shape)
			}
		}
	}
	return m.infer(inputs, false)
}

type inferer struct {
	m     *Model
	s     *Shapes
	batch int
}

func (m *Model) infer(inputs map[string][]int, _ bool) (*Shapes, error) {
	s := &Shapes{Dims: make(map[string][]int), Types: make(map[string]DataType), Ints: make(map[string][]int64),
		Values: make(map[string]*Tensor)}
	batch := 1
	for _, in := range m.Inputs {
		if sh, ok := inputs[in.Name]; ok {
			s.Dims[in.Name] = sh
			if len(sh) > 0 {
				batch = sh[0]
			}
		}
		s.Types[in.Name] = in.Type
	}
	for name, t := range m.Initializers {
		s.Dims[name] = t.Shape
		s.Types[name] = t.Type
		s.Values[name] = t
		if !t.Type.IsFloat() {
			s.Ints[name] = t.Int
		}
	}
	s.Batch = batch
	inf := &inferer{m: m, s: s, batch: batch}
	for _, n := range m.Nodes {
		done, err := inf.fold(n)
		if err != nil {
			return nil, err
		}
		if !done {
			if err := inf.node(n); err != nil {
				return nil, err
			}
		}
		for _, o := range n.Outputs {
			if _, ok := s.Dims[o]; ok || o == "" {
				continue
			}
			if vi, ok := m.ValueInfo[o]; ok && vi.Shape != nil {
				sh := slices.Clone(vi.Shape)
				if len(sh) > 0 && sh[0] < 0 {
					sh[0] = batch
				}
				if !slices.Contains(sh, -1) {
					s.Dims[o] = sh
				}
				if _, ok := s.Types[o]; !ok && vi.Type != Undefined {
					s.Types[o] = vi.Type
				}
			}
		}
		for _, o := range n.Outputs {
			if d, ok := s.Dims[o]; ok && o != "" {
				if err := op.CheckDims(d); err != nil { // a node whose attributes ask for an absurd output
					return nil, fmt.Errorf("%s: output %q has shape %v: %v", n.Label(), o, d, err)
				}
			}
		}
	}
	return s, nil
}

// fold evaluates n by its operator's record (Fold) when the values it
// needs are known — its inputs', or only input 0's shape for Shape and
// Size — and records its outputs.
func (f *inferer) fold(n *Node) (bool, error) {
	ins := make([]*Tensor, len(n.Inputs))
	for i, in := range n.Inputs {
		if in != "" {
			ins[i] = f.s.Values[in]
		}
	}
	shape0, _ := f.dims(n.Input(0))
	outs, ok, err := Fold(n, f.m.Opset, ins, shape0)
	if err != nil || !ok {
		return false, err
	}
	for i, o := range n.Outputs {
		if o == "" || i >= len(outs) || outs[i] == nil {
			continue
		}
		t := outs[i]
		f.set(o, t.Shape, t.Type)
		f.s.Values[o] = t
		if !t.Type.IsFloat() {
			f.s.Ints[o] = t.Int
		}
	}
	return true, nil
}

func (f *inferer) dims(name string) ([]int, bool) {
	d, ok := f.s.Dims[name]
	return d, ok
}

func (f *inferer) set(name string, dims []int, t DataType) {
	if name == "" {
		return
	}
	f.s.Dims[name] = dims
	if t != Undefined {
		f.s.Types[name] = t
	}
}

// node runs the registry's shape inference for one node (package op).
// Operators of other domains and operators without a record leave their
// outputs unknown (or as the graph's value_info records them).
func (f *inferer) node(n *Node) error {
	if !op.IsDefault(n.Domain) {
		return nil
	}
	if d := op.Lookup(n.Op, f.m.Opset); d != nil && d.Infer != nil {
		return d.Infer(n, f.s)
	}
	return nil
}
