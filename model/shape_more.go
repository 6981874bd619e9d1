package model

import (
	"fmt"
	"slices"
)

// Shape inference of the operators of transformer, recurrent and
// dense-prediction exports: reductions, Split, Pad, Tile, Einsum-free attention blocks.

// moreShapes infers the output shapes of n when it is one of the operators
// of this file; it reports whether it was.
func (f *inferer) moreShapes(n *Node) (bool, error) {
	in0, ok0 := f.dims(n.Input(0))
	t0 := f.s.Types[n.Input(0)]
	switch n.Op {
	case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin":
		if !ok0 {
			return true, nil
		}
		return true, f.reduceShape(n, in0, t0)
	case "Split":
		if !ok0 {
			return true, nil
		}
		return true, f.splitShape(n, in0, t0)
	case "Pad":
		if !ok0 {
			return true, nil
		}
		var pads []int64
		if len(n.Inputs) >= 2 {
			v, ok := f.s.Ints[n.Input(1)]
			if !ok {
				return true, nil
			}
			pads = v
		} else {
			v, err := n.AttrInts("pads", nil)
			if err != nil {
				return true, err
			}
			pads = v
		}
		r := len(in0)
		axes := make([]int, r)
		for i := range axes {
			axes[i] = i
		}
		if a := n.Input(3); a != "" {
			v, ok := f.s.Ints[a]
			if !ok {
				return true, nil
			}
			axes = axes[:0]
			for _, x := range v {
				ax, err := normAxis(n, "axes", x, r, false)
				if err != nil {
					return true, err
				}
				axes = append(axes, ax)
			}
		}
		if len(pads) != 2*len(axes) {
			return true, fmt.Errorf("%s: %d pads for %d axes, want 2 per axis", n.Label(), len(pads), len(axes))
		}
		o := slices.Clone(in0)
		for i, ax := range axes {
			o[ax] += int(pads[i]) + int(pads[i+len(axes)])
			if o[ax] < 0 {
				return true, fmt.Errorf("%s: pads %v make axis %d of %v negative", n.Label(), pads, ax, in0)
			}
		}
		f.set(n.Outputs[0], o, t0)
		return true, nil
	case "Tile":
		reps, ok := f.s.Ints[n.Input(1)]
		if !ok0 || !ok {
			return true, nil
		}
		if len(reps) != len(in0) {
			return true, fmt.Errorf("%s: %d repeats for rank %d", n.Label(), len(reps), len(in0))
		}
		o := slices.Clone(in0)
		for i, r := range reps {
			o[i] *= int(r)
		}
		f.set(n.Outputs[0], o, t0)
		return true, nil
	}
	return false, nil
}

func (f *inferer) reduceShape(n *Node, in []int, t DataType) error {
	var axes []int64
	switch {
	case n.Op == "ArgMax" || n.Op == "ArgMin":
		a, err := n.AttrInt("axis", 0)
		if err != nil {
			return err
		}
		axes = []int64{a}
		t = Int64
	case n.Input(1) != "":
		v, ok := f.s.Ints[n.Input(1)]
		if !ok {
			return nil
		}
		axes = v
	default:
		v, err := n.AttrInts("axes", nil)
		if err != nil {
			return err
		}
		axes = v
	}
	keep, err := n.AttrInt("keepdims", 1)
	if err != nil {
		return err
	}
	noop, err := n.AttrInt("noop_with_empty_axes", 0)
	if err != nil {
		return err
	}
	if len(axes) == 0 && noop != 0 {
		f.set(n.Outputs[0], slices.Clone(in), t)
		return nil
	}
	red := make([]bool, len(in))
	for _, a := range axes {
		ax, err := normAxis(n, "axes", a, len(in), false)
		if err != nil {
			return err
		}
		red[ax] = true
	}
	o := []int{}
	for i, d := range in {
		switch {
		case !red[i] && len(axes) > 0:
			o = append(o, d)
		case keep != 0:
			o = append(o, 1)
		}
	}
	f.set(n.Outputs[0], o, t)
	return nil
}

func (f *inferer) splitShape(n *Node, in []int, t DataType) error {
	a, err := n.AttrInt("axis", 0)
	if err != nil {
		return err
	}
	ax, err := normAxis(n, "axis", a, len(in), false)
	if err != nil {
		return err
	}
	var parts []int64
	switch {
	case n.Input(1) != "":
		v, ok := f.s.Ints[n.Input(1)]
		if !ok {
			return nil
		}
		parts = v
	default:
		v, err := n.AttrInts("split", nil)
		if err != nil {
			return err
		}
		parts = v
	}
	k := len(n.Outputs)
	if parts == nil {
		// Equal parts; the last one smaller when num_outputs (opset 18)
		// does not divide the axis.
		d := in[ax]
		size := (d + k - 1) / k
		for i := 0; i < k; i++ {
			parts = append(parts, int64(min(size, max(0, d-i*size))))
		}
	}
	if len(parts) != k {
		return fmt.Errorf("%s: %d split sizes %v for %d outputs", n.Label(), len(parts), parts, k)
	}
	sum := int64(0)
	for _, p := range parts {
		sum += p
	}
	if sum != int64(in[ax]) {
		return fmt.Errorf("%s: split sizes %v sum to %d, axis %d has %d", n.Label(), parts, sum, a, in[ax])
	}
	for i, o := range n.Outputs {
		s := slices.Clone(in)
		s[ax] = int(parts[i])
		f.set(o, s, t)
	}
	return nil
}
