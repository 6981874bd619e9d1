package op

import "fmt"

// Window is the resolved sliding-window geometry of a Conv or pooling node
// over its spatial dimensions (ONNX operator spec, Conv/MaxPool "Output
// shape" formulas):
//
//	out[i] = floor((in[i] + PadBegin[i] + PadEnd[i] − ((Kernel[i]−1)·Dilations[i] + 1)) / Strides[i]) + 1
//
// with ceil instead of floor when CeilMode is set (and the PyTorch rule that
// the last window must start inside the input or the leading padding), and
// auto_pad SAME_UPPER / SAME_LOWER giving out[i] = ceil(in[i]/Strides[i]) with
// the total padding split evenly, the odd element at the end (SAME_UPPER) or
// the beginning (SAME_LOWER).
type Window struct {
	Kernel, Strides, Dilations []int
	PadBegin, PadEnd           []int
	// In and Out are the input and output spatial sizes.
	In, Out  []int
	CeilMode bool
}

// Window resolves the sliding-window attributes of node n (Conv, MaxPool,
// AveragePool, LpPool) for an input with the given spatial sizes. kernel is
// the kernel size (from the weight shape for Conv; nil means read the
// kernel_shape attribute).
func (n *Node) Window(in []int, kernel []int) (Window, error) {
	k := len(in)
	w := Window{In: append([]int(nil), in...)}
	if kernel == nil {
		ks, err := n.AttrDims("kernel_shape", k, 0, 1)
		if err != nil {
			return w, err
		}
		if _, ok := n.Attrs["kernel_shape"]; !ok {
			return w, fmt.Errorf("%s: attribute \"kernel_shape\" is required", n.Label())
		}
		kernel = ks
	} else if ks, ok := n.Attrs["kernel_shape"]; ok {
		kk, err := n.AttrDims("kernel_shape", k, 0, 1)
		if err != nil {
			return w, err
		}
		for i := range kk {
			if kk[i] != kernel[i] {
				return w, AttrError(n, "kernel_shape", "is %v but the weight's kernel is %v", ks.Ints, kernel)
			}
		}
	}
	w.Kernel = append([]int(nil), kernel...)
	var err error
	if w.Strides, err = n.AttrDims("strides", k, 1, 1); err != nil {
		return w, err
	}
	if w.Dilations, err = n.AttrDims("dilations", k, 1, 1); err != nil {
		return w, err
	}
	ceil, err := n.AttrInt("ceil_mode", 0)
	if err != nil {
		return w, err
	}
	if ceil != 0 && ceil != 1 {
		return w, AttrError(n, "ceil_mode", "is %d, want 0 or 1", ceil)
	}
	w.CeilMode = ceil == 1
	autoPad, err := n.AttrString("auto_pad", "NOTSET")
	if err != nil {
		return w, err
	}
	w.PadBegin, w.PadEnd, w.Out = make([]int, k), make([]int, k), make([]int, k)
	switch autoPad {
	case "NOTSET", "":
		pads, err := n.AttrDims("pads", 2*k, 0, 0)
		if err != nil {
			return w, err
		}
		copy(w.PadBegin, pads[:k])
		copy(w.PadEnd, pads[k:])
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		for i := 0; i < k; i++ {
			out := (in[i] + w.Strides[i] - 1) / w.Strides[i]
			total := max(0, (out-1)*w.Strides[i]+(w.Kernel[i]-1)*w.Dilations[i]+1-in[i])
			if autoPad == "SAME_UPPER" {
				w.PadBegin[i] = total / 2
			} else {
				w.PadBegin[i] = total - total/2
			}
			w.PadEnd[i] = total - w.PadBegin[i]
		}
	default:
		return w, AttrError(n, "auto_pad", "is %q, want NOTSET, VALID, SAME_UPPER or SAME_LOWER", autoPad)
	}
	for i := 0; i < k; i++ {
		span := (w.Kernel[i]-1)*w.Dilations[i] + 1
		num := in[i] + w.PadBegin[i] + w.PadEnd[i] - span
		if num < 0 {
			return w, fmt.Errorf("%s: spatial dim %d: input %d with pads %d+%d is smaller than the kernel extent %d",
				n.Label(), i, in[i], w.PadBegin[i], w.PadEnd[i], span)
		}
		out := num/w.Strides[i] + 1
		if w.CeilMode {
			out = (num+w.Strides[i]-1)/w.Strides[i] + 1
			if (out-1)*w.Strides[i] >= in[i]+w.PadBegin[i] {
				out--
			}
		}
		w.Out[i] = out
	}
	return w, nil
}
