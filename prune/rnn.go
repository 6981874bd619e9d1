package prune

import (
	"slices"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// rnn handles an LSTM, GRU or RNN node whose W and R are units: its H
// hidden units are the channels of a new group whose sources are W and R.
// Hidden unit k is row g·H + k of every gate block g of W (D×gates·H×I),
// of R (D×gates·H×H) and of both halves of B (D×2·gates·H), column k of R
// (R also reads the group: its cost is quadratic in the units kept), entry
// k of the last axis of initial_h and initial_c, and of the outputs Y
// (T×D×N×H, or N×T×D×H with layout 1), Y_h and Y_c (D×N×H or N×D×H). The
// directions of a bidirectional node (D = 2) are pruned each on its own:
// the group has D·H channels, d·H + k being unit k of direction d, at
// index d of the direction axis of every one of those tensors
// (Group.Directions), and every direction keeps the same number; unless
// a.tied lists the node (its outputs meet an operator modelled only for
// tied directions), when unit k is one channel of both. The hidden_size
// attribute shrinks. An initial state computed at run time
// must be zero (a ConstantOfShape of 0, possibly sliced, as torch exports
// it): it is dropped from the node (absent means zero). A tracked input X
// (features last) makes W a consumer of the group feeding it. With
// linear_before_reset either way a GRU's unit k is the same rows, so both
// are modelled; peepholes (input P) are not.
func (a *analyzer) rnn(n *model.Node, sp map[int]tref) {
	var uw, ur *model.Unit
	for i := range a.m.Units {
		u := &a.m.Units[i]
		if u.Node == n.Index && u.WeightInput == 1 {
			uw = u
		}
		if u.Node == n.Index && u.WeightInput == 2 {
			ur = u
		}
	}
	for i, t := range sp {
		if i != 0 {
			a.bad(t.id, "%s: a tracked tensor is input %d (only the sequence X is modelled)", n.Label(), i)
		}
	}
	gates := nn.RecurrentGates(n.Op)
	if t, ok := sp[0]; ok {
		s := a.space(t.id)
		switch {
		case uw == nil:
			a.bad(t.id, "%s has a non-constant input weight W", n.Label())
		case t.rank != 3 || t.axis != 2:
			a.bad(t.id, "%s reads a tensor whose channels are not its feature axis", n.Label())
		case len(uw.WeightShape) != 3 || uw.WeightShape[2] != s.channels*t.inner*max(t.parts, 1):
			a.bad(t.id, "%s: W has shape %v, the group gives %d×%d×%d input features", n.Label(), uw.WeightShape, max(t.parts, 1), s.channels, t.inner)
		default:
			s.consumers = append(s.consumers, uw.Name)
			a.addEdit(t.id, edit{Node: n.Index, Init: uw.Weight, Axis: 2, Inner: t.inner, Parts: t.parts})
			a.in[uw.Name] = t.id
		}
	}
	if uw == nil || ur == nil {
		return
	}
	hs, _ := n.AttrInt("hidden_size", 0)
	h := int(hs)
	if len(uw.WeightShape) == 3 && h <= 0 {
		h = uw.WeightShape[1] / gates
	}
	d := 0
	if len(uw.WeightShape) == 3 {
		d = uw.WeightShape[0]
	}
	// dirs > 1: per-direction channels, dirs·h of them.
	dirs := 0
	if d > 1 && !a.tied[n.Index] {
		dirs = d
	}
	id := a.newSpace(max(h, 1)*max(dirs, 1), uw.Name)
	s := a.sp[id]
	s.sources = append(s.sources, uw.Name, ur.Name)
	if dirs > 1 {
		s.dirs, s.rnns = dirs, []int{n.Index}
	}
	a.out[uw.Name], a.out[ur.Name], a.in[ur.Name] = id, id, id
	layout, _ := n.AttrInt("layout", 0)
	if !slices.Equal(uw.WeightShape, []int{d, gates * h, uw.WeightShape[len(uw.WeightShape)-1]}) || !slices.Equal(ur.WeightShape, []int{d, gates * h, h}) {
		a.bad(id, "%s: W %v and R %v are not D×%d·%d×… with hidden_size %d", n.Label(), uw.WeightShape, ur.WeightShape, gates, h, h)
		return
	}
	if n.Input(7) != "" {
		a.bad(id, "%s: peepholes (input P) are not modelled", n.Label())
	}
	// W, R and B hold the directions on axis 0, the states on axis 0 (1
	// with layout 1).
	a.addEdit(id, edit{Node: n.Index, Init: uw.Weight, Axis: 1, Inner: 1, Parts: gates, Dirs: dirs})
	a.addEdit(id, edit{Node: n.Index, Init: ur.Weight, Axis: 1, Inner: 1, Parts: gates, Dirs: dirs})
	a.addEdit(id, edit{Node: n.Index, Init: ur.Weight, Axis: 2, Inner: 1, Dirs: dirs})
	if b := n.Input(3); b != "" {
		if bt := a.floatInit(b); bt == nil || !slices.Equal(bt.Shape, []int{d, 2 * gates * h}) {
			a.bad(id, "%s: bias B %q is not a constant D×%d·%d", n.Label(), b, 2*gates, h)
		} else {
			a.addEdit(id, edit{Node: n.Index, Init: b, Axis: 1, Inner: 1, Parts: 2 * gates, Dirs: dirs})
		}
	}
	a.addEdit(id, edit{Node: n.Index, Attr: "hidden_size", Dirs: dirs})
	stateDir := 0
	if layout != 0 {
		stateDir = 1
	}
	states := []int{5}
	if n.Op == "LSTM" {
		states = append(states, 6)
	}
	for _, i := range states {
		name := n.Input(i)
		switch {
		case name == "":
		case a.floatInit(name) != nil:
			if sh := a.floatInit(name).Shape; len(sh) != 3 || sh[2] != h {
				a.bad(id, "%s: initial state %q has shape %v, want the hidden units last", n.Label(), name, sh)
				continue
			}
			a.addEdit(id, edit{Node: n.Index, Init: name, Axis: 2, Inner: 1, Dirs: dirs, DirAxis: stateDir})
		case a.zeroFill(name):
			a.addEdit(id, edit{Node: n.Index, Drop: true, Part: i})
		default:
			a.bad(id, "%s: initial state %q is computed at run time and is not a zero ConstantOfShape (only those are rewritten: dropped, as absent means zero)", n.Label(), name)
		}
	}
	for i, o := range n.Outputs {
		if o == "" || i > 2 {
			continue
		}
		rank := len(a.dims(o))
		want := 3
		if i == 0 {
			want = 4
		}
		if rank != want {
			a.bad(id, "%s: output %q has rank %d, want %d", n.Label(), o, rank, want)
			continue
		}
		t := tref{id: id, axis: rank - 1, inner: 1, rank: rank}
		if dirs > 1 {
			// Y: T×D×N×H (N×T×D×H); Y_h, Y_c: D×N×H (N×D×H).
			t.dirs, t.dirAxis = dirs, rank-3+stateDir
			if i == 0 && layout != 0 {
				t.dirAxis = 2
			}
		}
		a.set(o, t)
	}
}

// zeroFill reports whether tensor name is computed at run time as zeros:
// a ConstantOfShape of 0 (its default), possibly through Slice, Reshape,
// Squeeze, Unsqueeze, Expand, Transpose, Tile, Cast or Identity.
func (a *analyzer) zeroFill(name string) bool {
	prod := a.producers()
	for range len(a.m.Nodes) + 1 {
		p := prod[name]
		if p == nil {
			return false
		}
		switch p.Op {
		case "ConstantOfShape":
			v, ok := p.Attrs["value"]
			if !ok || v.Tensor == nil {
				return true
			}
			for _, x := range v.Tensor.Float {
				if x != 0 {
					return false
				}
			}
			for _, x := range v.Tensor.Int {
				if x != 0 {
					return false
				}
			}
			return true
		case "Slice", "Reshape", "Squeeze", "Unsqueeze", "Expand", "Transpose", "Tile", "Cast", "Identity":
			name = p.Input(0)
		default:
			return false
		}
	}
	return false
}

// producers returns the model's tensor → producing node map (cached).
func (a *analyzer) producers() map[string]*model.Node {
	if a.prod == nil {
		a.prod = a.m.Producers()
	}
	return a.prod
}

// squeeze follows Squeeze and Unsqueeze of a tracked tensor: the channel
// axis moves with the axes removed or inserted before it; squeezing it is
// not modelled.
func (a *analyzer) squeeze(n *model.Node, sp map[int]tref) {
	t, ok := sp[0]
	if !ok || len(sp) > 1 {
		a.rejectAll(n, sp, "a tracked tensor is the axes input")
		return
	}
	in, out := a.dims(n.Input(0)), a.dims(n.Outputs[0])
	if in == nil || out == nil || len(in) != t.rank {
		a.bad(t.id, "%s: shapes unknown", n.Label())
		return
	}
	var axes []int64
	if a.m.Opset >= 13 && n.Input(1) != "" {
		v, _ := a.intValue(n.Input(1))
		if v == nil {
			a.bad(t.id, "%s: axes are not known before run time", n.Label())
			return
		}
		axes = v
	} else {
		axes, _ = n.AttrInts("axes", nil)
	}
	r := len(out)
	if n.Op == "Squeeze" {
		r = len(in)
	}
	norm := map[int]bool{}
	for _, x := range axes {
		if x < 0 {
			x += int64(r)
		}
		norm[int(x)] = true
	}
	if n.Op == "Squeeze" && len(axes) == 0 { // every axis of size 1
		for i, d := range in {
			if d == 1 {
				norm[i] = true
			}
		}
	}
	// move returns the output axis of input axis x, −1 when squeezed.
	move := func(x int) int {
		if n.Op == "Squeeze" {
			if norm[x] {
				return -1
			}
			y := x
			for z := range norm {
				if z < x {
					y--
				}
			}
			return y
		}
		// The input's axes fill the output positions not in axes, in order.
		j := -1
		for i := 0; i < r; i++ {
			if !norm[i] {
				j++
				if j == x {
					return i
				}
			}
		}
		return -1
	}
	axis := move(t.axis)
	if axis < 0 && n.Op == "Squeeze" {
		a.bad(t.id, "%s removes the channel axis", n.Label())
		return
	}
	if axis < 0 || axis >= len(out) || out[axis] != in[t.axis] {
		a.bad(t.id, "%s: the channel axis %d of %v is not found in %v", n.Label(), t.axis, in, out)
		return
	}
	u := tref{id: t.id, axis: axis, inner: t.inner, rank: len(out), parts: t.parts}
	if t.perDir() {
		u.dirs, u.dirAxis = t.dirs, move(t.dirAxis)
		if u.dirAxis < 0 || u.dirAxis >= len(out) || out[u.dirAxis] != t.dirs {
			a.bad(t.id, "%s: the direction axis %d of %v is not found in %v", n.Label(), t.dirAxis, in, out)
			return
		}
	}
	a.set(n.Outputs[0], u)
}

// gather follows a Gather of a tracked tensor along another axis (a time
// step of a sequence, y[:, -1]): the indices' axes replace the gathered
// one.
func (a *analyzer) gather(n *model.Node, sp map[int]tref) {
	t, ok := sp[0]
	if !ok || len(sp) > 1 {
		a.rejectAll(n, sp, "a tracked tensor is the indices")
		return
	}
	ax, _ := n.AttrInt("axis", 0)
	if ax < 0 {
		ax += int64(t.rank)
	}
	idx := a.dims(n.Input(1))
	if idx == nil {
		if it := a.m.Initializers[n.Input(1)]; it != nil {
			idx = it.Shape
		}
	}
	out := a.dims(n.Outputs[0])
	switch {
	case int(ax) == t.axis:
		a.bad(t.id, "%s gathers along the channels", n.Label())
		return
	case idx == nil || out == nil || len(out) != t.rank-1+len(idx):
		a.bad(t.id, "%s: shapes unknown", n.Label())
		return
	}
	if t.perDir() && int(ax) == t.dirAxis {
		a.tie(n, sp, "it gathers along the directions")
		return
	}
	axis := t.axis
	if axis > int(ax) {
		axis += len(idx) - 1
	}
	u := tref{id: t.id, axis: axis, inner: t.inner, rank: len(out), parts: t.parts}
	if t.perDir() {
		u.dirs, u.dirAxis = t.dirs, t.dirAxis
		if u.dirAxis > int(ax) {
			u.dirAxis += len(idx) - 1
		}
	}
	a.set(n.Outputs[0], u)
}
