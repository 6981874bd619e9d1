package op

import "fmt"

// ConvTranspose (1-D and 2-D, strides, dilations, pads, output_padding,
// output_shape, auto_pad, groups) is the adjoint of a convolution in its
// input: with the weight W (C × M/G × kernel) read as the weight of a
// convolution conv_W from M to C channels over the transposed output's
// geometry,
//
//	y = conv_Wᵀ(x) + b,   i.e. ⟨ȳ, conv_Wᵀ(x)⟩ = ⟨conv_W(ȳ), x⟩,
//
// so y = col2im(Wᵀ·x) per group. Bilinear in (x, W):
//
//	R{y} = conv_Wᵀ(R{x}) + conv_{R{W}}ᵀ(x) + R{b}
//	x̄ += conv_W(ȳ),   W̄ += x·col(ȳ)ᵀ,   b̄ += Σ ȳ
//	R{x̄} += conv_W(R{ȳ}) + conv_{R{W}}(ȳ)
//	R{W̄} += R{x}·col(ȳ)ᵀ + x·col(R{ȳ})ᵀ,   R{b̄} += Σ R{ȳ}
//
// Class Custom (bilinear, hand-written) for the reason Conv is: one
// im2col of ȳ or R{ȳ} per pass serves the weight and input products, each
// one BLAS call per group; it reuses the convolution's im2col, col2im and
// products and its shared scratch buffers.
func init() {
	ints := func(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
	x := func(s ...int) CaseInput { return CaseInput{Shape: s} }
	Register(&Def{Type: "ConvTranspose", Infer: inferConvTranspose, Exec: Both(newConvTranspose[float64], newConvTranspose[float32]), Class: Custom,
		Unit: unitConvTranspose, Channels: FlowConvTranspose, Cases: []Case{
			{Name: "2x2 stride 2 with bias (U-Net)", Inputs: []CaseInput{x(2, 3, 2, 2), x(3, 2, 2, 2), x(2)},
				Attrs: []*Attr{ints("strides", 2, 2)}, Want: []int{2, 2, 4, 4}},
			{Name: "3x3 stride 2 pads output_padding", Inputs: []CaseInput{x(1, 2, 2, 3), x(2, 2, 3, 3)},
				Attrs: []*Attr{ints("strides", 2, 2), ints("pads", 1, 1, 1, 1), ints("output_padding", 1, 0)}, Want: []int{1, 2, 4, 5}},
			{Name: "grouped dilated", Inputs: []CaseInput{x(1, 4, 3, 3), x(4, 1, 2, 2), x(2)},
				Attrs: []*Attr{{Name: "group", Type: AttrInt, Int: 2}, ints("dilations", 2, 1)}, Want: []int{1, 2, 5, 4}},
			{Name: "1-D output_shape", Inputs: []CaseInput{x(2, 2, 3), x(2, 3, 3)},
				Attrs: []*Attr{ints("strides", 2), ints("output_shape", 8)}, Want: []int{2, 3, 8}},
			{Name: "2-D auto_pad SAME_UPPER", Inputs: []CaseInput{x(1, 2, 2, 2), x(2, 1, 3, 3)},
				Attrs: []*Attr{ints("strides", 2, 2), {Name: "auto_pad", Type: AttrString, String: "SAME_UPPER"}}, Want: []int{1, 1, 4, 4}},
		}})
}

// convTransposeGeom resolves a ConvTranspose node over input x (N×C×…) and
// weight w (C×M/G×kernel): the output shape and the leading padding of
// each spatial axis (ONNX operator spec, ConvTranspose).
func convTransposeGeom(n *Node, x, w []int) (out, padBegin []int, err error) {
	if len(x) < 3 || len(x) > 4 || len(w) != len(x) {
		return nil, nil, fmt.Errorf("%s: input shape %v and weight shape %v, want N×C×spatial and C×M/group×kernel of the same rank (1-D or 2-D)", n.Label(), x, w)
	}
	k := len(x) - 2
	g, err := n.AttrInt("group", 1)
	if err != nil {
		return nil, nil, err
	}
	if g < 1 || w[0] != x[1] || x[1]%int(g) != 0 {
		return nil, nil, fmt.Errorf("%s: input has %d channels, weight %v (group %d) expects %d", n.Label(), x[1], w, g, w[0])
	}
	strides, err := n.AttrDims("strides", k, 1, 1)
	if err != nil {
		return nil, nil, err
	}
	dil, err := n.AttrDims("dilations", k, 1, 1)
	if err != nil {
		return nil, nil, err
	}
	outPad, err := n.AttrDims("output_padding", k, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	pads, err := n.AttrDims("pads", 2*k, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	autoPad, err := n.AttrString("auto_pad", "NOTSET")
	if err != nil {
		return nil, nil, err
	}
	outShape, err := n.AttrInts("output_shape", nil)
	if err != nil {
		return nil, nil, err
	}
	if outShape != nil && len(outShape) != k {
		if len(outShape) != k+2 {
			return nil, nil, AttrError(n, "output_shape", "has %d values, want %d", len(outShape), k)
		}
		outShape = outShape[2:]
	}
	out = []int{x[0], w[1] * int(g)}
	padBegin = make([]int, k)
	for i := 0; i < k; i++ {
		if outPad[i] < 0 || outPad[i] >= max(strides[i], dil[i]) {
			return nil, nil, AttrError(n, "output_padding", "%v: each value must be below its stride or dilation", outPad)
		}
		span := (w[2+i]-1)*dil[i] + 1
		full := strides[i]*(x[2+i]-1) + outPad[i] + span
		var d int
		switch {
		case outShape != nil || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER":
			d = x[2+i] * strides[i]
			if outShape != nil {
				d = int(outShape[i])
			}
			total := full - d
			if autoPad == "SAME_UPPER" {
				padBegin[i] = total / 2
			} else {
				padBegin[i] = total - total/2
			}
		case autoPad == "NOTSET" || autoPad == "" || autoPad == "VALID":
			if autoPad == "VALID" {
				pads[i], pads[i+k] = 0, 0
			}
			d = full - pads[i] - pads[i+k]
			padBegin[i] = pads[i]
		default:
			return nil, nil, AttrError(n, "auto_pad", "is %q, want NOTSET, VALID, SAME_UPPER or SAME_LOWER", autoPad)
		}
		if d <= 0 {
			return nil, nil, fmt.Errorf("%s: spatial dim %d of the output is %d", n.Label(), i, d)
		}
		out = append(out, d)
	}
	return out, padBegin, nil
}

func inferConvTranspose(n *Node, s *Shapes) error {
	x, okX := s.dims(n.Input(0))
	w, okW := s.dims(n.Input(1))
	if !okX || !okW {
		return nil
	}
	out, _, err := convTransposeGeom(n, x, w)
	if err != nil {
		return err
	}
	s.Set(n.Outputs[0], out, s.Types[n.Input(0)])
	return nil
}

// unitConvTranspose describes the weight W (C × M/G × kernel). Its
// output channels are axis 1 (ChannelAxis: one quantization scale per
// output channel within a group, shared by the groups, as a QDQ
// DequantizeLinear's axis 1 stores them); OutChannels counts the slices
// along axis 0 (one per input channel, contiguous); pruning removes the
// M output channels (axis 1, Channels: FlowConvTranspose); the bias has M
// elements. No BatchNorm is folded (its channels are W's
// axis 1).
//
//	MACs per sample = C·H_in·W_in · (M/G)·kh·kw
func unitConvTranspose(n *Node, g UnitGraph) (*UnitSpec, error) {
	w := g.FloatConst(n.Input(1))
	if w == nil {
		return nil, nil
	}
	if len(w.Shape) < 3 {
		return nil, unitErr("%s: weight %q has shape %v, want C×M/group×kernel", n.Label(), w.Name, w.Shape)
	}
	u := &UnitSpec{WeightInput: 1, DataInput: 0, BiasInput: -1, OutChannels: w.Shape[0], Group: 1, ChannelAxis: 1}
	if grp, err := n.AttrInt("group", 1); err != nil {
		return nil, err
	} else if grp >= 1 {
		u.Group = int(grp)
	}
	if b := n.Input(2); b != "" {
		bt := g.FloatConst(b)
		if bt == nil {
			return nil, fmt.Errorf("%s: bias %q is not a floating-point initializer (only constant biases are supported)", n.Label(), b)
		}
		if bt.Len() != w.Shape[1]*u.Group {
			return nil, unitErr("%s: bias %q has %d elements, want %d", n.Label(), b, bt.Len(), w.Shape[1]*u.Group)
		}
		u.BiasInput = 2
	}
	if x, y := g.Dims(n.Input(0)), g.Dims(n.Outputs[0]); x != nil && y != nil {
		u.ShapeKnown = true
		u.InElems, u.OutElems = int64(Numel(x[1:])), int64(Numel(y[1:]))
		u.MACs = u.InElems * int64(Numel(w.Shape[1:]))
	}
	return u, nil
}

// convTranspose holds the geometry of the convolution it transposes: that
// convolution's input is this node's output y (N×M×…) and its output this
// node's input x (N×C×…).
type convTranspose[T Real] struct {
	k        conv[T]
	x, w, b  int
	y        int
	outPlane int // elements of one output channel image
}

func newConvTranspose[T Real](b *Build) (Kernel[T], error) {
	n, in := b.Node, b.In
	if len(in) < 2 || in[0] < 0 || in[1] < 0 {
		return nil, fmt.Errorf("want inputs X and W")
	}
	xs, ws := b.Shape(in[0]), b.Shape(in[1])
	ys, pb, err := convTransposeGeom(n, xs, ws)
	if err != nil {
		return nil, err
	}
	grp, _ := n.AttrInt("group", 1)
	t := &convTranspose[T]{x: in[0], w: in[1], b: -1, y: b.Out[0]}
	if len(in) > 2 && in[2] >= 0 {
		t.b = in[2]
		if b.Size(t.b) != ys[1] {
			return nil, fmt.Errorf("bias has %d elements, want %d", b.Size(t.b), ys[1])
		}
	}
	strides, _ := n.AttrDims("strides", len(xs)-2, 1, 1)
	dil, _ := n.AttrDims("dilations", len(xs)-2, 1, 1)
	k := &t.k
	k.n, k.c, k.m, k.g = xs[0], ys[1], xs[1], int(grp)
	k.cg, k.mg = k.c/k.g, k.m/k.g
	if len(xs) == 4 {
		k.h, k.wd, k.oh, k.ow = ys[2], ys[3], xs[2], xs[3]
		k.kh, k.kw = ws[2], ws[3]
		k.sh, k.sw, k.dh, k.dw = strides[0], strides[1], dil[0], dil[1]
		k.ph, k.pw = pb[0], pb[1]
	} else {
		k.h, k.wd, k.oh, k.ow = 1, ys[2], 1, xs[2]
		k.kh, k.kw = 1, ws[2]
		k.sh, k.sw, k.dh, k.dw = 1, strides[0], 1, dil[0]
		k.ph, k.pw = 0, pb[0]
	}
	k.ckg = k.cg * k.kh * k.kw
	k.p = k.oh * k.ow
	k.np = k.n * k.p
	t.outPlane = k.h * k.wd
	return t, nil
}

// ScratchSizes are the convolution's.
func (t *convTranspose[T]) ScratchSizes() []int { return t.k.ScratchSizes() }

// addChannels adds b_m to every element of output channel m.
func (t *convTranspose[T]) addChannels(y, b []T) {
	if b == nil {
		return
	}
	k := &t.k
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.c; m++ {
			row := y[(s*k.c+m)*t.outPlane : (s*k.c+m+1)*t.outPlane]
			for i := range row {
				row[i] += b[m]
			}
		}
	}
}

// sumChannels adds the channel sums of g into db.
func (t *convTranspose[T]) sumChannels(g, db []T) {
	k := &t.k
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.c; m++ {
			var sum T
			for _, v := range g[(s*k.c+m)*t.outPlane : (s*k.c+m+1)*t.outPlane] {
				sum += v
			}
			db[m] += sum
		}
	}
}

// addScatter adds yb (C × N·P) into x-shaped dx (N×C×P).
func (t *convTranspose[T]) addScatter(yb, dx []T) {
	k := &t.k
	for s := 0; s < k.n; s++ {
		for m := 0; m < k.m; m++ {
			src := yb[m*k.np+s*k.p : m*k.np+(s+1)*k.p]
			dst := dx[(s*k.m+m)*k.p : (s*k.m+m+1)*k.p]
			for i, v := range src {
				dst[i] += v
			}
		}
	}
}

func (t *convTranspose[T]) bias(b [][]T) []T {
	if t.b < 0 {
		return nil
	}
	return b[t.b]
}

func (t *convTranspose[T]) Forward(w *Work[T]) {
	k := &t.k
	gb, dcol := w.Scratch(scYB, k.m*k.np), w.Scratch(scRCol, k.colSize())
	k.gather(w.Val[t.x], gb)
	k.xcol(w.Val[t.w], gb, dcol, 0)
	y := w.Val[t.y]
	clear(y)
	k.col2im(dcol, y)
	t.addChannels(y, t.bias(w.Val))
}

func (t *convTranspose[T]) RForward(w *Work[T]) {
	ry := w.RV[t.y]
	if ry == nil {
		return
	}
	k := &t.k
	rx, rw := w.RV[t.x], w.RV[t.w]
	clear(ry)
	if rx != nil || rw != nil {
		dcol := w.Scratch(scRCol, k.colSize())
		var beta T
		if rx != nil {
			gb := w.Scratch(scYB, k.m*k.np)
			k.gather(rx, gb)
			k.xcol(w.Val[t.w], gb, dcol, 0)
			beta = 1
		}
		if rw != nil {
			gb := w.Scratch(scGB, k.m*k.np)
			k.gather(w.Val[t.x], gb)
			k.xcol(rw, gb, dcol, beta)
		}
		k.col2im(dcol, ry)
	}
	t.addChannels(ry, t.bias(w.RV))
}

func (t *convTranspose[T]) Backward(w *Work[T]) {
	dy := w.Adj[t.y]
	if dy == nil {
		return
	}
	k := &t.k
	dx, dw := w.Adj[t.x], w.Adj[t.w]
	if dx != nil || dw != nil {
		col := w.Scratch(scCol, k.colSize())
		k.im2col(dy, col)
		if dw != nil {
			gb := w.Scratch(scGB, k.m*k.np)
			k.gather(w.Val[t.x], gb)
			k.wgrad(gb, col, dw)
		}
		if dx != nil {
			yb := w.Scratch(scYB, k.m*k.np)
			k.matY(w.Val[t.w], col, yb, 0)
			t.addScatter(yb, dx)
		}
	}
	if db := t.bias(w.Adj); db != nil {
		t.sumChannels(dy, db)
	}
}

func (t *convTranspose[T]) RBackward(w *Work[T]) {
	rdy, dy := w.RAdj[t.y], w.Adj[t.y]
	if rdy == nil {
		return
	}
	k := &t.k
	rx, rw := w.RV[t.x], w.RV[t.w]
	rdx, rdw := w.RAdj[t.x], w.RAdj[t.w]
	if rdx != nil || rdw != nil {
		rcol := w.Scratch(scRCol, k.colSize())
		k.im2col(rdy, rcol)
		var col []T
		if (rdw != nil && rx != nil) || (rdx != nil && rw != nil) {
			col = w.Scratch(scCol, k.colSize())
			k.im2col(dy, col)
		}
		if rdw != nil {
			gb := w.Scratch(scGB, k.m*k.np)
			k.gather(w.Val[t.x], gb)
			k.wgrad(gb, rcol, rdw)
			if rx != nil {
				k.gather(rx, gb)
				k.wgrad(gb, col, rdw)
			}
		}
		if rdx != nil {
			yb := w.Scratch(scYB, k.m*k.np)
			k.matY(w.Val[t.w], rcol, yb, 0)
			if rw != nil {
				k.matY(rw, col, yb, 1)
			}
			t.addScatter(yb, rdx)
		}
	}
	if rdb := t.bias(w.RAdj); rdb != nil {
		t.sumChannels(rdy, rdb)
	}
}

// Retains: see retainsBilinear.
func (t *convTranspose[T]) Retains() Retains { return retainsBilinear }
