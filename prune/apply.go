package prune

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/bitplan/bitplan/model"
	"github.com/bitplan/bitplan/nn"
)

// cut is one slicing of an initializer: keep the channels keep of c along
// axis, in blocks of inner elements, in each of parts repetitions of the
// channels along the axis (0 means 1). With dirs > 1, axis dirAxis (before
// axis) holds the directions in dirs equal blocks (one index each for a
// recurrent node, a convolution group's rows for a grouped convolution):
// in block d, axis holds direction d's c/dirs channels, channel d·c/dirs +
// j being its j.
type cut struct {
	axis, inner, c, parts int
	dirs, dirAxis         int
	keep                  []int
}

// Apply returns a copy of the ONNX model mp (the file the Structure was
// analysed from) with every channel not listed in keep removed: keep[g]
// holds the kept channel indices of group g (Structure.Groups order),
// e.g. Plan.Keep(). The units' weights and biases, BatchNormalization
// vectors, per-channel constants, the consumers' input weights and the
// group attribute of depthwise convolutions shrink; value_info entries of
// the pruned tensors are dropped (shapes are re-inferred on load).
// Unprunable groups must keep every channel, and the directions of a group
// with Directions > 1 the same number each (their kept units need not be
// the same). The result is checked by importing it again.
func Apply(mp *onnx.ModelProto, st *Structure, keep [][]int) (*onnx.ModelProto, error) {
	return applyCuts(mp, st, keep, nil)
}

// ApplyCompensated is Apply with mean replacement: each consumer keeps the
// mean contribution of its removed input channels (means from InputMeans
// on calibration data), folded into its bias or into the running mean of
// the BatchNormalization after it, so the pruned model's outputs are not
// shifted by the removed channels' average activation. It returns the
// consumers that could not be compensated (no bias and no BatchNorm).
func ApplyCompensated(mp *onnx.ModelProto, st *Structure, keep [][]int, means Means) (*onnx.ModelProto, []string, error) {
	if len(keep) != len(st.Groups) {
		return nil, nil, fmt.Errorf("prune: Apply: keep lists for %d groups, the structure has %d", len(keep), len(st.Groups))
	}
	add, skipped := compensation(st, keep, means)
	out, err := applyCuts(mp, st, keep, add)
	return out, skipped, err
}

func applyCuts(mp *onnx.ModelProto, st *Structure, keep [][]int, add map[string][]float64) (*onnx.ModelProto, error) {
	if mp == nil || mp.Graph == nil {
		return nil, fmt.Errorf("prune: Apply: no model")
	}
	if len(keep) != len(st.Groups) {
		return nil, fmt.Errorf("prune: Apply: keep lists for %d groups, the structure has %d", len(keep), len(st.Groups))
	}
	cuts := map[string][]cut{}
	type nodeAttr struct {
		node int
		name string
	}
	attrs := map[nodeAttr]int{}
	drops := map[int][]int{}    // node → inputs to remove
	shapes := map[int][]edit{}  // Reshape node → its shape entries to set (Inner = the value)
	bounds := map[int][]int64{} // Slice node → new starts and ends; Split node → new sizes
	dropped := map[string]bool{}
	for gi, g := range st.Groups {
		k := keep[gi]
		if len(k) == 0 {
			return nil, fmt.Errorf("prune: Apply: group %q keeps no channel (at least one is needed)", g.Name)
		}
		for j, c := range k {
			if c < 0 || c >= g.Channels || (j > 0 && c <= k[j-1]) {
				return nil, fmt.Errorf("prune: Apply: group %q: kept channels %v must be increasing indices in 0..%d", g.Name, k, g.Channels-1)
			}
		}
		if len(k) == g.Channels {
			continue
		}
		if !g.Prunable {
			return nil, fmt.Errorf("prune: Apply: group %q is not prunable (%v) but keeps %d of %d channels", g.Name, g.Reasons, len(k), g.Channels)
		}
		if n := perDirection(g, k); n == nil {
			return nil, fmt.Errorf("prune: Apply: group %q: its %d directions keep %v units, want the same number each (the node has one hidden_size, or one group attribute)", g.Name, g.Directions, dirCounts(g, k))
		}
		for _, e := range g.edits {
			n := len(k)
			if e.Dirs > 1 {
				n /= e.Dirs
			}
			size := e.parts() * n * e.Inner // the axis's new length
			switch {
			case e.Attr != "":
				attrs[nodeAttr{e.Node, e.Attr}] = e.parts() * n
			case e.Drop:
				drops[e.Node] = append(drops[e.Node], e.Part)
			case e.Shape:
				e.Inner = size
				shapes[e.Node] = append(shapes[e.Node], e)
			case e.Slice:
				bounds[e.Node] = []int64{int64(e.Part * size), int64((e.Part + 1) * size)}
			case e.Split:
				bounds[e.Node] = slices.Repeat([]int64{int64(size)}, e.Part)
			default:
				cuts[e.Init] = append(cuts[e.Init], cut{axis: e.Axis, inner: e.Inner, c: g.Channels, parts: e.Parts, dirs: e.Dirs, dirAxis: e.DirAxis, keep: k})
			}
		}
		for _, t := range g.Tensors {
			dropped[t] = true
		}
	}
	out := proto.Clone(mp).(*onnx.ModelProto)
	gr := out.Graph
	newDims := map[string][]int64{}
	for _, tp := range gr.Initializer {
		cs, ok := cuts[tp.GetName()]
		d, adj := add[tp.GetName()]
		if !ok && !adj {
			continue
		}
		t, err := model.TensorFromProto(tp)
		if err != nil {
			return nil, fmt.Errorf("prune: initializer %q: %w", tp.GetName(), err)
		}
		vals, shape := t.Float, slices.Clone(t.Shape)
		if adj {
			if len(d) != len(vals) {
				return nil, fmt.Errorf("prune: initializer %q: %d compensation values for %d entries", tp.GetName(), len(d), len(vals))
			}
			for i := range d {
				vals[i] += d[i]
			}
		}
		for _, c := range cs {
			if vals, shape, err = sliceAxis(vals, shape, c); err != nil {
				return nil, fmt.Errorf("prune: initializer %q: %w", tp.GetName(), err)
			}
		}
		if err := encode(tp, shape, vals); err != nil {
			return nil, err
		}
		newDims[tp.GetName()] = tp.Dims
		delete(cuts, tp.GetName())
	}
	for name := range cuts {
		return nil, fmt.Errorf("prune: initializer %q to slice is not in the model", name)
	}
	for _, in := range gr.Input {
		if d, ok := newDims[in.GetName()]; ok {
			if tt := in.GetType().GetTensorType(); tt != nil && tt.Shape != nil && len(tt.Shape.Dim) == len(d) {
				for i := range d {
					tt.Shape.Dim[i] = &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d[i]}}
				}
			}
		}
	}
	for na, k := range attrs {
		if na.node >= len(gr.Node) {
			return nil, fmt.Errorf("prune: node #%d not in the model", na.node)
		}
		set := false
		for _, a := range gr.Node[na.node].Attribute {
			if a.GetName() == na.name {
				a.I, set = int64(k), true
			}
		}
		if !set {
			gr.Node[na.node].Attribute = append(gr.Node[na.node].Attribute, &onnx.AttributeProto{Name: na.name, Type: onnx.AttributeProto_INT, I: int64(k)})
		}
	}
	for ni, ins := range drops {
		if ni >= len(gr.Node) {
			return nil, fmt.Errorf("prune: node #%d not in the model", ni)
		}
		for _, i := range ins {
			if i >= len(gr.Node[ni].Input) {
				return nil, fmt.Errorf("prune: node %s has no input %d to drop", gr.Node[ni].GetName(), i)
			}
			gr.Node[ni].Input[i] = ""
		}
	}
	if err := rewriteShapes(gr, shapes); err != nil {
		return nil, err
	}
	if err := rewriteBounds(gr, bounds, out.GetOpsetImport()); err != nil {
		return nil, err
	}
	if len(bounds) > 0 || len(shapes) > 0 || len(drops) > 0 {
		dropDead(gr)
	}
	vi := gr.ValueInfo[:0]
	for _, v := range gr.ValueInfo {
		if !dropped[v.GetName()] {
			vi = append(vi, v)
		}
	}
	gr.ValueInfo = vi
	if _, err := model.FromProto(out); err != nil {
		return nil, fmt.Errorf("prune: the pruned model does not import: %w", err)
	}
	return out, nil
}

// rewriteShapes gives every Reshape node of shapes a shape constant of its
// own (a shared one may serve layers pruned differently) with the entries
// set, and drops the original constants nothing reads any more.
func rewriteShapes(gr *onnx.GraphProto, shapes map[int][]edit) error {
	if len(shapes) == 0 {
		return nil
	}
	byName := map[string]*onnx.TensorProto{}
	for _, tp := range gr.Initializer {
		byName[tp.GetName()] = tp
	}
	orig := map[string]bool{}
	for _, ni := range slices.Sorted(maps.Keys(shapes)) {
		es := shapes[ni]
		if ni >= len(gr.Node) || len(gr.Node[ni].Input) < 2 {
			return fmt.Errorf("prune: Reshape node #%d not in the model", ni)
		}
		n := gr.Node[ni]
		var v []int64
		if es[0].Vals != nil {
			// A shape computed at run time: the analysis's constant.
			v = slices.Clone(es[0].Vals)
		} else {
			orig[n.Input[1]] = true
			tp := byName[n.Input[1]]
			if tp == nil {
				return fmt.Errorf("prune: shape %q of %s is not an initializer", n.Input[1], n.GetName())
			}
			t, err := model.TensorFromProto(tp)
			if err != nil || len(t.Int) == 0 {
				return fmt.Errorf("prune: shape %q of %s is not an integer constant", n.Input[1], n.GetName())
			}
			v = slices.Clone(t.Int)
		}
		for _, e := range es {
			if e.Axis < 0 {
				continue // the constant holds as it is (−1 infers the heads kept)
			}
			if e.Axis >= len(v) {
				return fmt.Errorf("prune: shape %q of %s has no entry %d", n.Input[1], n.GetName(), e.Axis)
			}
			v[e.Axis] = int64(e.Inner)
		}
		n.Input[1] = addInt64(gr, fmt.Sprintf("%s/pruned_%d", n.Input[1], ni), v)
	}
	used := map[string]bool{}
	for _, n := range gr.Node {
		for _, in := range n.Input {
			used[in] = true
		}
	}
	for _, o := range gr.Output {
		used[o.GetName()] = true
	}
	keep := gr.Initializer[:0]
	for _, tp := range gr.Initializer {
		if used[tp.GetName()] || !orig[tp.GetName()] {
			keep = append(keep, tp)
		}
	}
	gr.Initializer = keep
	return nil
}

// addInt64 appends a 1-D INT64 initializer named name (made unique) with
// values v and returns its name.
func addInt64(gr *onnx.GraphProto, name string, v []int64) string {
	taken := map[string]bool{}
	for _, tp := range gr.Initializer {
		taken[tp.GetName()] = true
	}
	for _, n := range gr.Node {
		for _, o := range n.Output {
			taken[o] = true
		}
	}
	base := name
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	raw := make([]byte, 0, 8*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(x))
	}
	gr.Initializer = append(gr.Initializer, &onnx.TensorProto{Name: name, DataType: int32(onnx.TensorProto_INT64),
		Dims: []int64{int64(len(v))}, RawData: raw})
	return name
}

// rewriteBounds gives every Slice node of bounds constant starts and ends
// of its own (bounds holds start and end), and every Split node its split
// sizes (input 1 from opset 13, else the split attribute).
func rewriteBounds(gr *onnx.GraphProto, bounds map[int][]int64, opsets []*onnx.OperatorSetIdProto) error {
	opset := int64(0)
	for _, o := range opsets {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			opset = o.GetVersion()
		}
	}
	for _, ni := range slices.Sorted(maps.Keys(bounds)) {
		if ni >= len(gr.Node) {
			return fmt.Errorf("prune: node #%d not in the model", ni)
		}
		n, b := gr.Node[ni], bounds[ni]
		switch {
		case n.GetOpType() == "Slice" && len(n.Input) >= 3:
			n.Input[1] = addInt64(gr, fmt.Sprintf("%s/pruned_starts", n.GetName()), b[:1])
			n.Input[2] = addInt64(gr, fmt.Sprintf("%s/pruned_ends", n.GetName()), b[1:])
		case n.GetOpType() == "Split" && opset >= 13 && len(n.Input) >= 2:
			n.Input[1] = addInt64(gr, fmt.Sprintf("%s/pruned_split", n.GetName()), b)
		case n.GetOpType() == "Split":
			set := false
			for _, a := range n.Attribute {
				if a.GetName() == "split" {
					a.Ints, set = slices.Clone(b), true
				}
			}
			if !set {
				return fmt.Errorf("prune: Split node %s has no split sizes to rewrite", n.GetName())
			}
		default:
			return fmt.Errorf("prune: node #%d (%s) is not the Slice or Split node the analysis saw", ni, n.GetOpType())
		}
	}
	return nil
}

// dropDead removes the nodes whose outputs nothing reads (the shape
// arithmetic whose results pruning replaced by constants), then the
// initializers only they read and the value_info entries of tensors no
// node produces any more.
func dropDead(gr *onnx.GraphProto) {
	outputs := map[string]bool{}
	for _, o := range gr.Output {
		outputs[o.GetName()] = true
	}
	before := map[string]bool{}
	for _, n := range gr.Node {
		for _, in := range n.Input {
			before[in] = true
		}
	}
	for {
		used := map[string]bool{}
		for _, n := range gr.Node {
			for _, in := range n.Input {
				used[in] = true
			}
		}
		kept := gr.Node[:0]
		for _, n := range gr.Node {
			live := false
			for _, o := range n.Output {
				live = live || used[o] || outputs[o]
			}
			if live {
				kept = append(kept, n)
			}
		}
		done := len(kept) == len(gr.Node)
		gr.Node = kept
		if done {
			break
		}
	}
	used := map[string]bool{}
	produced := map[string]bool{}
	for _, n := range gr.Node {
		for _, in := range n.Input {
			used[in] = true
		}
		for _, o := range n.Output {
			produced[o] = true
		}
	}
	removed := map[string]bool{}
	inits := gr.Initializer[:0]
	for _, tp := range gr.Initializer {
		// Only initializers that were read before and are not now go.
		if used[tp.GetName()] || outputs[tp.GetName()] || !before[tp.GetName()] {
			inits = append(inits, tp)
		} else {
			removed[tp.GetName()] = true
		}
	}
	gr.Initializer = inits
	ins := gr.Input[:0]
	for _, in := range gr.Input {
		// Graph inputs stay (the caller feeds them) unless they are
		// initializers listed as inputs (old exports) that went.
		if !removed[in.GetName()] {
			ins = append(ins, in)
		}
	}
	gr.Input = ins
	vi := gr.ValueInfo[:0]
	for _, v := range gr.ValueInfo {
		if produced[v.GetName()] {
			vi = append(vi, v)
		}
	}
	gr.ValueInfo = vi
}

// perDirection returns the kept channels k of group g by direction, each
// relative to its direction's first (all of k when g has no directions),
// or nil when the directions keep different numbers.
func perDirection(g *Group, k []int) [][]int {
	d := max(g.Directions, 1)
	h := g.Channels / d
	out := make([][]int, d)
	for _, c := range k {
		out[c/h] = append(out[c/h], c%h)
	}
	for _, o := range out {
		if len(o) != len(out[0]) {
			return nil
		}
	}
	return out
}

// dirCounts returns how many of the channels k every direction of g keeps.
func dirCounts(g *Group, k []int) []int {
	d := max(g.Directions, 1)
	n := make([]int, d)
	for _, c := range k {
		n[c/(g.Channels/d)]++
	}
	return n
}

// sliceAxis keeps channels c.keep of axis c.axis (blocks of c.inner, in
// each of c.parts repetitions of the channels; per direction with c.dirs).
func sliceAxis(v []float64, shape []int, c cut) ([]float64, []int, error) {
	p, dirs := max(c.parts, 1), max(c.dirs, 1)
	per := c.c / dirs // channels along the axis
	if c.axis < 0 || c.axis >= len(shape) || shape[c.axis] != p*per*c.inner || c.c%dirs != 0 {
		return nil, nil, fmt.Errorf("shape %v: axis %d should hold %d×%d×%d values", shape, c.axis, p, per, c.inner)
	}
	if dirs > 1 && (c.dirAxis < 0 || c.dirAxis >= c.axis || shape[c.dirAxis]%dirs != 0) {
		return nil, nil, fmt.Errorf("shape %v: axis %d should hold the %d directions", shape, c.dirAxis, dirs)
	}
	keeps := [][]int{c.keep}
	if dirs > 1 {
		keeps = make([][]int, dirs)
		for _, ch := range c.keep {
			keeps[ch/per] = append(keeps[ch/per], ch%per)
		}
		for _, k := range keeps {
			if len(k) != len(keeps[0]) {
				return nil, nil, fmt.Errorf("the %d directions keep different numbers of channels", dirs)
			}
		}
	}
	outer, stride, dstride := p, 1, p // dstride: outer indices per direction index
	for _, d := range shape[:c.axis] {
		outer *= d
	}
	if dirs > 1 {
		for _, d := range shape[c.dirAxis+1 : c.axis] {
			dstride *= d
		}
	}
	for _, d := range shape[c.axis+1:] {
		stride *= d
	}
	n := per * c.inner
	kn := len(keeps[0])
	res := make([]float64, 0, outer*kn*c.inner*stride)
	for o := 0; o < outer; o++ {
		keep := keeps[0]
		if dirs > 1 {
			// Axis dirAxis holds the directions in equal blocks (one
			// entry each for a recurrent node, a convolution group's
			// rows for a grouped convolution).
			keep = keeps[o/dstride%shape[c.dirAxis]/(shape[c.dirAxis]/dirs)]
		}
		for _, ch := range keep {
			lo := (o*n + ch*c.inner) * stride
			res = append(res, v[lo:lo+c.inner*stride]...)
		}
	}
	ns := slices.Clone(shape)
	ns[c.axis] = p * kn * c.inner
	return res, ns, nil
}

// encode stores values in tp (FLOAT or DOUBLE) as raw_data.
func encode(tp *onnx.TensorProto, shape []int, v []float64) error {
	tp.Dims = tp.Dims[:0]
	for _, d := range shape {
		tp.Dims = append(tp.Dims, int64(d))
	}
	tp.FloatData, tp.DoubleData, tp.Int32Data = nil, nil, nil
	var raw []byte
	switch onnx.TensorProto_DataType(tp.DataType) {
	case onnx.TensorProto_FLOAT:
		raw = make([]byte, 0, 4*len(v))
		for _, x := range v {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32(x)))
		}
	case onnx.TensorProto_DOUBLE:
		raw = make([]byte, 0, 8*len(v))
		for _, x := range v {
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(x))
		}
	default:
		return fmt.Errorf("prune: initializer %q has type %v; only FLOAT and DOUBLE weights can be rewritten", tp.GetName(), model.DataType(tp.DataType))
	}
	tp.RawData = raw
	return nil
}

// WriteWeights copies the engine's parameters θ (every unit's weight and
// bias, e.g. after FineTune) into the matching initializers of mp, which
// must be the model the engine was built from.
func WriteWeights(mp *onnx.ModelProto, e *nn.Engine) error {
	theta := e.Theta()
	byName := map[string]*onnx.TensorProto{}
	for _, tp := range mp.GetGraph().GetInitializer() {
		byName[tp.GetName()] = tp
	}
	for _, p := range e.Params() {
		tp := byName[p.Name]
		if tp == nil {
			return fmt.Errorf("prune: parameter %q is not an initializer of the model", p.Name)
		}
		n := 1
		for _, d := range tp.Dims {
			n *= int(d)
		}
		if n != p.Size {
			return fmt.Errorf("prune: initializer %q has %d values, the engine %d", p.Name, n, p.Size)
		}
		if err := encode(tp, p.Shape, theta[p.Offset:p.Offset+p.Size]); err != nil {
			return err
		}
	}
	return nil
}
