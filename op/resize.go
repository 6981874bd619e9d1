package op

import (
	"fmt"
	"math"
	"slices"
)

// Resize (opset 10+) and Upsample (opsets 7–9) with modes nearest and
// linear (bilinear, trilinear: one linear interpolation per resized axis)
// are linear maps of their input (class Linear): every output element is
// a fixed weighted sum of at most 2^k input elements, k the number of
// resized axes,
//
//	y[o] = Σ_{t ∈ {0,1}^k} Π_a w_a(o_a, t_a) · x[i_a(o_a, t_a)],
//
// with the per-axis positions and weights from the ONNX operator spec: the
// output coordinate o_a maps to the input coordinate
//
//	half_pixel:          (o + ½)/s − ½
//	pytorch_half_pixel:  (o + ½)/s − ½, 0 when the output length is 1
//	align_corners:       o·(L_in − 1)/(L_out − 1), 0 when L_out is 1
//	asymmetric:          o/s
//	tf_half_pixel_for_nn: (o + ½)/s
//
// (s the axis's scale: the scales input, else L_out/L_in from sizes);
// nearest picks one element by nearest_mode (round_prefer_floor,
// round_prefer_ceil, floor, ceil), linear the two neighbours ⌊c⌋ and
// ⌊c⌋+1 with the coordinate clamped to [0, L_in − 1], as PyTorch's
// interpolate and ONNX Runtime do. So R{y} = L R{x}, x̄ += Lᵀ ȳ.
// Scales or sizes must be constants (torch exports them so). Not
// supported, with an error naming the attribute: cubic, antialias,
// tf_crop_and_resize, the axes attribute and keep_aspect_ratio_policy
// other than stretch.
func init() {
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	str := func(name, v string) *Attr { return &Attr{Name: name, Type: AttrString, String: v} }
	scales := func(v ...float64) CaseInput { return CaseInput{Shape: []int{len(v)}, Const: v} }
	sizes := func(v ...int64) CaseInput { return CaseInput{Shape: []int{len(v)}, Ints: v} }
	absent := CaseInput{Absent: true}
	Register(&Def{Type: "Resize", Since: 10, Infer: inferResize, Exec: Both(newResize[float64], newResize[float32]), Class: Linear, Channels: FlowPool,
		Cases: []Case{
			{Name: "bilinear half_pixel ×2 (torch, opset 13)", Opset: 13, Inputs: []CaseInput{x(1, 2, 3, 3), absent, scales(1, 1, 2, 2)},
				Attrs: []*Attr{str("mode", "linear"), str("coordinate_transformation_mode", "half_pixel")}, Want: []int{1, 2, 6, 6}},
			{Name: "nearest asymmetric floor ×2 (torch, opset 11, empty roi)", Opset: 11,
				Inputs: []CaseInput{x(2, 1, 2, 3), {Shape: []int{0}, Const: []float64{}}, scales(1, 1, 2, 2)},
				Attrs:  []*Attr{str("mode", "nearest"), str("coordinate_transformation_mode", "asymmetric"), str("nearest_mode", "floor")}, Want: []int{2, 1, 4, 6}},
			{Name: "bilinear align_corners to sizes", Opset: 13, Inputs: []CaseInput{x(1, 1, 3, 2), absent, absent, sizes(1, 1, 5, 4)},
				Attrs: []*Attr{str("mode", "linear"), str("coordinate_transformation_mode", "align_corners")}, Want: []int{1, 1, 5, 4}},
			{Name: "linear pytorch_half_pixel 1-D downscale", Opset: 13, Inputs: []CaseInput{x(1, 2, 7), absent, absent, sizes(1, 2, 3)},
				Attrs: []*Attr{str("mode", "linear"), str("coordinate_transformation_mode", "pytorch_half_pixel")}, Want: []int{1, 2, 3}},
			{Name: "nearest ×1.5, opset 10 (X, scales; asymmetric)", Opset: 10, Inputs: []CaseInput{x(1, 1, 2, 4), scales(1, 1, 1.5, 1.5)},
				Attrs: []*Attr{str("mode", "nearest")}, Want: []int{1, 1, 3, 6}},
		}})
	Register(&Def{Type: "Upsample", Since: 7, Until: 9, Infer: inferResize, Exec: Both(newResize[float64], newResize[float32]), Class: Linear, Channels: FlowPool,
		Cases: []Case{
			{Name: "nearest scales input (opset 9)", Opset: 9, Inputs: []CaseInput{x(1, 2, 2, 2), scales(1, 1, 2, 3)}, Want: []int{1, 2, 4, 6}},
			{Name: "linear scales attribute (opset 7)", Opset: 7, Inputs: []CaseInput{x(1, 1, 2, 3)},
				Attrs: []*Attr{str("mode", "linear"), {Name: "scales", Type: AttrFloats, Floats: []float64{1, 1, 2, 2}}}, Want: []int{1, 1, 4, 6}},
		}})
}

// resizeSpec is a resolved Resize or Upsample node.
type resizeSpec struct {
	out    []int
	scales []float64
	linear bool
	coord  string
	near   string
}

// resizeInputs returns the scales and sizes operands of n (nil when absent
// or empty), reading constants from ok-returning lookups; known is false
// when an operand is computed. A Resize with two inputs has the opset-10
// form (X, scales); from opset 11 they are X, roi, scales, sizes.
func resizeInputs(n *Node, floats func(string) ([]float64, bool), ints func(string) ([]int64, bool)) (scales []float64, sizes []int64, known bool, err error) {
	get := func(j int) ([]float64, bool) {
		name := n.Input(j)
		if name == "" {
			return nil, true
		}
		return floats(name)
	}
	switch {
	case n.Op == "Upsample" && n.Input(1) == "":
		a, ok := n.Attrs["scales"]
		if !ok || a.Type != AttrFloats {
			return nil, nil, false, AttrError(n, "scales", "is missing; want the scales attribute (opset 7, 8) or input (opset 9)")
		}
		return a.Floats, nil, true, nil
	case n.Op == "Upsample" || len(n.Inputs) == 2:
		// Upsample at opset 9 and Resize at opset 10: X, scales.
		v, ok := get(1)
		return v, nil, ok, nil
	}
	v, ok := get(2)
	if !ok {
		return nil, nil, false, nil
	}
	if s := n.Input(3); s != "" {
		iv, ok := ints(s)
		if !ok {
			return nil, nil, false, nil
		}
		sizes = iv
	}
	if len(v) > 0 && len(sizes) > 0 {
		return nil, nil, false, fmt.Errorf("%s: both scales and sizes are given, want one", n.Label())
	}
	return v, sizes, true, nil
}

// resolveResize checks n's attributes and computes its output shape for
// input shape x at the given opset (0: 11 or later; before 11 Resize had
// no coordinate_transformation_mode and was asymmetric).
func resolveResize(n *Node, opset int64, x []int, scales []float64, sizes []int64) (*resizeSpec, error) {
	r := &resizeSpec{}
	mode, err := n.AttrString("mode", "nearest")
	if err != nil {
		return nil, err
	}
	switch mode {
	case "nearest":
	case "linear", "bilinear", "trilinear":
		r.linear = true
	default:
		return nil, AttrError(n, "mode", "is %q; nearest and linear are supported", mode)
	}
	defCoord := "half_pixel"
	if n.Op == "Upsample" || (opset > 0 && opset < 11) {
		defCoord = "asymmetric"
	}
	if r.coord, err = n.AttrString("coordinate_transformation_mode", defCoord); err != nil {
		return nil, err
	}
	switch r.coord {
	case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn":
	default:
		return nil, AttrError(n, "coordinate_transformation_mode", "is %q; half_pixel, pytorch_half_pixel, align_corners, asymmetric and tf_half_pixel_for_nn are supported", r.coord)
	}
	defNear := "round_prefer_floor"
	if n.Op == "Upsample" {
		defNear = "floor"
	}
	if r.near, err = n.AttrString("nearest_mode", defNear); err != nil {
		return nil, err
	}
	switch r.near {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
	default:
		return nil, AttrError(n, "nearest_mode", "is %q, want round_prefer_floor, round_prefer_ceil, floor or ceil", r.near)
	}
	if a, err := n.AttrInt("antialias", 0); err != nil {
		return nil, err
	} else if a != 0 {
		return nil, AttrError(n, "antialias", "is %d; only 0 is supported", a)
	}
	if _, ok := n.Attrs["axes"]; ok {
		return nil, AttrError(n, "axes", "is set; only scales or sizes for every axis are supported")
	}
	if p, err := n.AttrString("keep_aspect_ratio_policy", "stretch"); err != nil {
		return nil, err
	} else if p != "stretch" {
		return nil, AttrError(n, "keep_aspect_ratio_policy", "is %q; only stretch is supported", p)
	}
	r.out = make([]int, len(x))
	r.scales = make([]float64, len(x))
	switch {
	case len(sizes) > 0:
		if len(sizes) != len(x) {
			return nil, fmt.Errorf("%s: sizes %v for an input of rank %d", n.Label(), sizes, len(x))
		}
		for i, v := range sizes {
			if v <= 0 || v > MaxDim {
				return nil, fmt.Errorf("%s: sizes %v: axis %d is %d, want 1..%d", n.Label(), sizes, i, v, MaxDim)
			}
			r.out[i] = int(v)
			r.scales[i] = float64(v) / float64(x[i])
		}
	case len(scales) > 0:
		if len(scales) != len(x) {
			return nil, fmt.Errorf("%s: %d scales for an input of rank %d (want one per axis)", n.Label(), len(scales), len(x))
		}
		for i, s := range scales {
			if !(s > 0) || math.IsInf(s, 0) {
				return nil, fmt.Errorf("%s: scale %v on axis %d, want > 0", n.Label(), s, i)
			}
			if f := math.Floor(float64(x[i]) * s); f > MaxDim {
				return nil, fmt.Errorf("%s: scale %v makes axis %d of length %d %g long, more than %d", n.Label(), s, i, x[i], f, MaxDim)
			}
			r.out[i] = int(math.Floor(float64(x[i]) * s))
			if r.out[i] < 1 {
				return nil, fmt.Errorf("%s: scale %v makes axis %d of length %d empty", n.Label(), s, i, x[i])
			}
			r.scales[i] = s
		}
	default:
		return nil, fmt.Errorf("%s: neither scales nor sizes given", n.Label())
	}
	return r, nil
}

func inferResize(n *Node, s *Shapes) error {
	x, ok := s.dims(n.Input(0))
	if !ok {
		return nil
	}
	floats := func(name string) ([]float64, bool) {
		if t, ok := s.Values[name]; ok && t != nil {
			return t.Values(), true
		}
		return nil, false
	}
	ints := func(name string) ([]int64, bool) { v, ok := s.Ints[name]; return v, ok }
	scales, sizes, known, err := resizeInputs(n, floats, ints)
	if err != nil || !known {
		return err
	}
	r, err := resolveResize(n, 0, x, scales, sizes)
	if err != nil {
		return err
	}
	s.Set(n.Outputs[0], r.out, s.Types[n.Input(0)])
	return nil
}

// axisMap is one axis of a resize: output position o reads input
// positions lo[o] and hi[o] with weights wlo[o] and 1 − wlo[o] (hi = lo
// and wlo = 1 for nearest and identity axes).
type axisMap struct {
	lo, hi []int32
	wlo    []float64
}

func (r *resizeSpec) axis(in, out int, scale float64) axisMap {
	m := axisMap{lo: make([]int32, out), hi: make([]int32, out), wlo: make([]float64, out)}
	for o := 0; o < out; o++ {
		var c float64
		switch r.coord {
		case "half_pixel":
			c = (float64(o)+0.5)/scale - 0.5
		case "pytorch_half_pixel":
			if out > 1 {
				c = (float64(o)+0.5)/scale - 0.5
			}
		case "align_corners":
			if out > 1 {
				c = float64(o) * float64(in-1) / float64(out-1)
			}
		case "asymmetric":
			c = float64(o) / scale
		case "tf_half_pixel_for_nn":
			c = (float64(o) + 0.5) / scale
		}
		if !r.linear {
			var i float64
			switch r.near {
			case "round_prefer_floor":
				i = math.Ceil(c - 0.5)
			case "round_prefer_ceil":
				i = math.Floor(c + 0.5)
			case "floor":
				i = math.Floor(c)
			case "ceil":
				i = math.Ceil(c)
			}
			k := int32(min(max(i, 0), float64(in-1)))
			m.lo[o], m.hi[o], m.wlo[o] = k, k, 1
			continue
		}
		c = min(max(c, 0), float64(in-1))
		l := math.Floor(c)
		h := min(l+1, float64(in-1))
		m.lo[o], m.hi[o], m.wlo[o] = int32(l), int32(h), 1-(c-l)
	}
	return m
}

// resize is the linear map of a Resize node.
type resize[T Real] struct {
	in, out []int
	axes    []int // the resized axes (the others are copied)
	maps    []axisMap
	inStr   []int
}

func newResize[T Real](b *Build) (Kernel[T], error) {
	n := b.Node
	if b.Input(0) < 0 {
		return nil, errMissing(0)
	}
	floats := func(name string) ([]float64, bool) {
		for j, in := range n.Inputs {
			if in == name && b.Input(j) >= 0 {
				return b.Const(b.In[j])
			}
		}
		return nil, false
	}
	ints := func(name string) ([]int64, bool) {
		v, ok := floats(name)
		if !ok {
			return nil, false
		}
		out := make([]int64, len(v))
		for i, f := range v {
			out[i] = FloatToInt(f)
		}
		return out, true
	}
	scales, sizes, known, err := resizeInputs(n, floats, ints)
	if err != nil {
		return nil, err
	}
	if !known {
		return nil, fmt.Errorf("scales or sizes are computed; only constant scales or sizes are supported")
	}
	xs := b.Shape(b.In[0])
	r, err := resolveResize(n, b.Opset, xs, scales, sizes)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(r.out, b.Shape(b.Out[0])) {
		return nil, fmt.Errorf("output shape %v, want %v", b.Shape(b.Out[0]), r.out)
	}
	k := &resize[T]{in: slices.Clone(xs), out: r.out, inStr: strides(xs)}
	for a := range xs {
		m := r.axis(xs[a], r.out[a], r.scales[a])
		identity := xs[a] == r.out[a]
		for o, l := range m.lo {
			identity = identity && int(l) == o && m.wlo[o] == 1
		}
		if !identity {
			k.axes = append(k.axes, a)
			k.maps = append(k.maps, m)
		}
	}
	return LinearKernel[T](k, b.In[:1], b.Out[0]), nil
}

// each calls f(o, i, w) for every output element o and each input element
// i it reads with weight w.
func (k *resize[T]) each(f func(o, i int, w float64)) {
	r := len(k.out)
	coord := make([]int, r)
	resized := make([]int, r) // position in k.axes, or -1
	for a := range resized {
		resized[a] = -1
	}
	for j, a := range k.axes {
		resized[a] = j
	}
	terms := 1 << len(k.axes)
	total := Numel(k.out)
	for o := 0; o < total; o++ {
		base := 0
		for a := 0; a < r; a++ {
			if resized[a] < 0 {
				base += coord[a] * k.inStr[a]
			}
		}
		for t := 0; t < terms; t++ {
			i, w := base, 1.0
			for j, a := range k.axes {
				m, c := &k.maps[j], coord[a]
				if t&(1<<j) == 0 {
					i += int(m.lo[c]) * k.inStr[a]
					w *= m.wlo[c]
				} else {
					i += int(m.hi[c]) * k.inStr[a]
					w *= 1 - m.wlo[c]
				}
			}
			if w != 0 {
				f(o, i, w)
			}
		}
		for a := r - 1; a >= 0; a-- {
			coord[a]++
			if coord[a] < k.out[a] {
				break
			}
			coord[a] = 0
		}
	}
}

// Apply sets dst = L src.
func (k *resize[T]) Apply(dst []T, src [][]T) {
	clear(dst)
	x := src[0]
	if x == nil {
		return
	}
	k.each(func(o, i int, w float64) { dst[o] += T(w) * x[i] })
}

// Transpose adds Lᵀ src into dst.
func (k *resize[T]) Transpose(dst [][]T, src []T) {
	dx := dst[0]
	if dx == nil {
		return
	}
	k.each(func(o, i int, w float64) { dx[i] += T(w) * src[o] })
}
