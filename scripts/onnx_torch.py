"""A small ONNX interpreter written in torch ops.

It evaluates an ONNX graph with the file's own initializers, in any float
dtype (float64 for the references), and lets the caller substitute chosen
initializers by differentiable tensors, so that PyTorch autograd gives
gradients and Hessian-vector products of the ONNX model itself rather than of
the module that was trained. Only inference semantics are implemented
(BatchNormalization uses its running mean and variance; Dropout is identity).

Supported ops: Conv, Gemm, MatMul, Add, Sub, Mul, Div, Relu, Sigmoid, Tanh,
MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, GlobalLpPool (any p,
(Σ |x|^p)^(1/p)), BatchNormalization, Flatten, Reshape,
Transpose, Squeeze, Unsqueeze, Concat, Shape, Gather, Constant, Identity,
Dropout, ConstantOfShape, Expand, Equal, Where, Slice (unit steps), ReduceMean, ReduceSum,
Cast (to float, double, int64), Range, ScatterND and ScatterElements
(reduction none or add, one index after the other: the last duplicate
wins), LSTM, GRU, RNN (the ONNX equations written
out step by step, default activations), ConvTranspose (F.conv_transpose with
the pads cropped), Resize and Upsample (F.interpolate: nearest with
asymmetric coordinates and floor rounding, linear with half_pixel,
pytorch_half_pixel or align_corners), DepthToSpace, SpaceToDepth, Einsum,
GatherElements, CumSum and Trilu, TopK, GatherND, NonZero, OneHot,
InstanceNormalization, MeanVarianceNormalization and GroupNormalization
(18 and 21). Anything else raises
NotImplementedError naming the node.

The reductions ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
ReduceSumSquare, ReduceLogSum and ReduceLogSumExp (_reduce) take their axes
as an attribute or (opset 18) an input, with keepdims and
noop_with_empty_axes; their derivatives are torch's (amax and amin split
the derivative among tied elements, the norm's is 0 at zero).
"""

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F


def attrs(node):
    """Return the attributes of an ONNX node as a dict name -> Python value."""
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        out[a.name] = v
    return out


def initializers(model):
    """Return the graph's initializers as a dict name -> numpy array."""
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


def _tensor(a, dtype):
    t = torch.from_numpy(np.array(a))
    return t.to(dtype) if t.is_floating_point() else t


def _pads2d(pads, kernel_shape):
    """Split ONNX pads [b0, b1, e0, e1] into torch padding or an explicit F.pad."""
    n = len(kernel_shape)
    pads = list(pads) if pads else [0] * (2 * n)
    begin, end = pads[:n], pads[n:]
    if begin == end:
        return tuple(begin), None
    # F.pad takes the last dimension first: (left, right, top, bottom).
    explicit = []
    for i in reversed(range(n)):
        explicit += [begin[i], end[i]]
    return (0,) * n, explicit


def conv2d_im2col(x, w, b, stride, padding, dilation, groups):
    """2-D grouped convolution (cross-correlation, as ONNX Conv) via im2col.

    Same result as F.conv2d, but built from F.unfold and a batched matrix
    product: in float64, torch 1.13's CPU convolution takes a slow
    non-BLAS path (and one call per group), which made double-backward
    Hessian-vector products of depthwise convolutions very slow.
    """
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = cols.reshape(n, groups, cg * kh * kw, oh * ow)
    out = torch.matmul(w.reshape(groups, o // groups, cg * kh * kw), cols)
    out = out.reshape(n, o, oh, ow)
    if b is not None:
        out = out + b.reshape(1, o, 1, 1)
    return out


def _check_auto_pad(node, a):
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise NotImplementedError(f"node {node.name}: auto_pad={a['auto_pad']} not supported")


def _rnn(node, a, ins, op):
    """LSTM, GRU or RNN by the ONNX operator equations (gate orders iofc,
    zrh), one time step at a time; returns (Y, Y_h[, Y_c])."""
    get = lambda j: ins[j] if len(ins) > j else None
    X, W, R, B, lens, h0, c0 = get(0), get(1), get(2), get(3), get(4), get(5), get(6)
    for k in ("clip", "activations", "activation_alpha", "activation_beta"):
        if k in a:
            raise NotImplementedError(f"node {node.name}: {op} attribute {k}")
    if a.get("input_forget", 0) or get(7) is not None:
        raise NotImplementedError(f"node {node.name}: LSTM input_forget or peepholes")
    layout = a.get("layout", 0)
    if layout:
        X = X.transpose(0, 1)
        h0 = None if h0 is None else h0.transpose(0, 1)
        c0 = None if c0 is None else c0.transpose(0, 1)
    T, N = X.shape[0], X.shape[1]
    if lens is not None and any(int(v) != T for v in lens.tolist()):
        raise NotImplementedError(f"node {node.name}: sequence_lens {lens.tolist()}")
    direction = a.get("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    H = a["hidden_size"]
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    lbr = a.get("linear_before_reset", 0)
    zeros = torch.zeros(N, H, dtype=X.dtype)
    ys = [[None] * dirs for _ in range(T)]
    hs, cs = [], []
    for d in range(dirs):
        Wd, Rd = W[d], R[d]
        if B is not None:
            Wb, Rb = B[d, :gates * H], B[d, gates * H:]
        else:
            Wb = Rb = torch.zeros(gates * H, dtype=X.dtype)
        h = zeros if h0 is None else h0[d]
        c = zeros if c0 is None else c0[d]
        order = range(T - 1, -1, -1) if (direction == "reverse" or d == 1) else range(T)
        for t in order:
            x = X[t]
            if op == "LSTM":
                g = x @ Wd.t() + h @ Rd.t() + Wb + Rb
                i, o, f, cc = g.split(H, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cc)
                h = torch.sigmoid(o) * torch.tanh(c)
            elif op == "GRU":
                xz, xr, xh = (x @ Wd.t() + Wb).split(H, dim=1)
                Rz, Rr, Rh = Rd.split(H, dim=0)
                bz, br, bh = Rb.split(H)
                z = torch.sigmoid(xz + h @ Rz.t() + bz)
                r = torch.sigmoid(xr + h @ Rr.t() + br)
                if lbr:
                    n = torch.tanh(xh + r * (h @ Rh.t() + bh))
                else:
                    n = torch.tanh(xh + (r * h) @ Rh.t() + bh)
                h = (1 - z) * n + z * h
            else:
                h = torch.tanh(x @ Wd.t() + h @ Rd.t() + Wb + Rb)
            ys[t][d] = h
        hs.append(h)
        cs.append(c)
    Y = torch.stack([torch.stack(row) for row in ys])
    Yh, Yc = torch.stack(hs), torch.stack(cs)
    if layout:
        Y, Yh, Yc = Y.permute(2, 0, 1, 3), Yh.transpose(0, 1), Yc.transpose(0, 1)
    return (Y, Yh, Yc) if op == "LSTM" else (Y, Yh)


def _conv_transpose(node, a, ins):
    w = ins[1]
    b = ins[2] if len(ins) > 2 else None
    nd = w.dim() - 2
    if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise NotImplementedError(f"node {node.name}: ConvTranspose output_shape or auto_pad")
    pads = a.get("pads", [0] * 2 * nd)
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d}[nd]
    out = fn(ins[0], w, b, stride=tuple(a.get("strides", [1] * nd)), padding=0,
             output_padding=tuple(a.get("output_padding", [0] * nd)), groups=a.get("group", 1),
             dilation=tuple(a.get("dilations", [1] * nd)))
    crop = [slice(None), slice(None)] + [slice(pads[i], out.shape[2 + i] - pads[i + nd]) for i in range(nd)]
    return out[tuple(crop)]


def _resize(node, a, ins, op):
    X = ins[0]
    nd = X.dim() - 2
    scales = sizes = None
    if op == "Upsample":
        scales = ins[1].tolist() if len(ins) > 1 else a["scales"]
    elif len(ins) == 2:
        scales = ins[1].tolist()
    else:
        if len(ins) > 2 and ins[2] is not None and ins[2].numel() > 0:
            scales = ins[2].tolist()
        if len(ins) > 3 and ins[3] is not None and ins[3].numel() > 0:
            sizes = [int(v) for v in ins[3].tolist()]
    # ONNX maps coordinates with the given scales (not out/in) when scales
    # are given: torch does so with scale_factor and no recompute.
    kw = {"size": sizes[2:]} if sizes is not None else {"scale_factor": scales[2:], "recompute_scale_factor": False}
    if sizes is None:
        sizes = [int(np.floor(X.shape[i] * scales[i])) for i in range(X.dim())]
    if list(sizes[:2]) != list(X.shape[:2]):
        raise NotImplementedError(f"node {node.name}: resizing the batch or channel axis")
    mode = a.get("mode", "nearest")
    default = "asymmetric" if op == "Upsample" or len(ins) == 2 else "half_pixel"
    coord = a.get("coordinate_transformation_mode", default)
    if mode == "nearest":
        if coord != "asymmetric" or a.get("nearest_mode", "floor" if op == "Upsample" else "round_prefer_floor") != "floor":
            raise NotImplementedError(f"node {node.name}: nearest with {coord}")
        return F.interpolate(X, mode="nearest", **kw)
    if mode in ("linear", "bilinear"):
        if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            raise NotImplementedError(f"node {node.name}: linear with {coord}")
        m = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
        return F.interpolate(X, mode=m, align_corners=coord == "align_corners", **kw)
    raise NotImplementedError(f"node {node.name}: Resize mode {mode}")


_REDUCE = {
    "ReduceMax": lambda x, d, k: x.amax(d, keepdim=k),
    "ReduceMin": lambda x, d, k: x.amin(d, keepdim=k),
    "ReduceL1": lambda x, d, k: x.abs().sum(d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.linalg.vector_norm(x, 2, d, keepdim=k),
    "ReduceSumSquare": lambda x, d, k: (x * x).sum(d, keepdim=k),
    "ReduceLogSum": lambda x, d, k: torch.log(x.sum(d, keepdim=k)),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
}


def _reduce(node, a, ins, op):
    """The reductions of _REDUCE and ReduceProd: axes from the attribute or
    input 1 (none: every axis, or none at all with noop_with_empty_axes,
    where each element is reduced alone)."""
    x = ins[0]
    axes = a.get("axes")
    if len(ins) > 1 and ins[1] is not None:
        axes = [int(v) for v in ins[1].tolist()]
    keep = bool(a.get("keepdims", 1))
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return _reduce_one(x, op)
        axes = list(range(x.dim()))
    dims = tuple(sorted(ax % x.dim() for ax in axes))
    if op == "ReduceProd":
        # torch.prod takes one dimension at a time (from the last, so the
        # others keep their index).
        out = x
        for d in reversed(dims):
            out = out.prod(d, keepdim=True)
        return out if keep else out.reshape([n for i, n in enumerate(x.shape) if i not in dims])
    return _REDUCE[op](x, dims, keep)


def _reduce_one(x, op):
    """A reduction of every element alone (noop_with_empty_axes, no axes)."""
    return {"ReduceL1": torch.abs, "ReduceL2": torch.abs, "ReduceSumSquare": lambda t: t * t,
            "ReduceLogSum": torch.log}.get(op, lambda t: t)(x)


# Layout operators and Einsum (scripts/make_layout_tiny.py), written from
# the ONNX definitions with torch ops.
LAYOUT_OPS = ("DepthToSpace", "SpaceToDepth", "Einsum", "GatherElements", "CumSum", "Trilu")


def _layout(node, a, ins, op):
    x = ins[0]
    if op in ("DepthToSpace", "SpaceToDepth"):
        b = a["blocksize"]
        n, c, h, w = x.shape
        if op == "SpaceToDepth":
            return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)
        if a.get("mode", "DCR") == "CRD":
            return x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // (b * b), h * b, w * b)
        return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)
    if op == "Einsum":
        return torch.einsum(a["equation"], *ins)
    if op == "GatherElements":
        axis = a.get("axis", 0) % x.dim()
        return torch.gather(x, axis, ins[1] % x.shape[axis])
    if op == "CumSum":
        axis = int(ins[1].reshape(-1)[0]) % x.dim()
        rev = a.get("reverse", 0)
        y = x.flip(axis) if rev else x
        out = torch.cumsum(y, axis)
        if a.get("exclusive", 0):
            out = out - y
        return out.flip(axis) if rev else out
    if op == "Trilu":
        k = int(ins[1].reshape(-1)[0]) if len(ins) > 1 and ins[1] is not None else 0
        return torch.triu(x, k) if a.get("upper", 1) else torch.tril(x, k)
    raise NotImplementedError(f"node {node.name}: op {op} not supported")


def _scatter(node, a, ins, op):
    """ScatterND and ScatterElements, reduction none or add: the updates
    written (added) one index (tuple) after the other in row-major order,
    so that the last of duplicate indices wins, as ONNX Runtime and
    bitplan's engine define it."""
    data, idx, upd = ins
    red = a.get("reduction", "none")
    if red not in ("none", "add"):
        raise NotImplementedError(f"node {node.name}: reduction {red}")
    out = data.clone()
    if op == "ScatterElements":
        axis = a.get("axis", 0) % data.dim()
        idx = torch.where(idx < 0, idx + data.shape[axis], idx)
        for c in np.ndindex(*idx.shape):
            t = list(c)
            t[axis] = int(idx[c])
            if red == "add":
                out[tuple(t)] = out[tuple(t)] + upd[c]
            else:
                out[tuple(t)] = upd[c]
        return out
    for c in np.ndindex(*idx.shape[:-1]):
        t = tuple(int(v) % data.shape[j] for j, v in enumerate(idx[c].tolist()))
        out[t] = out[t] + upd[c] if red == "add" else upd[c]
    return out


# TopK, GatherND, NonZero, OneHot and the normalizations
# (scripts/make_misc_tiny.py), written from the ONNX definitions.
MISC_OPS = ("TopK", "GatherND", "NonZero", "OneHot", "InstanceNormalization",
            "MeanVarianceNormalization", "GroupNormalization")


def _standardize(x, dims, eps, eps_std=False):
    mu = x.mean(dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dims, keepdim=True)
    if eps_std:
        return (x - mu) / (var.sqrt() + eps)
    return (x - mu) / (var + eps).sqrt()


def _misc(node, a, ins, op, opset):
    x = ins[0]
    if op == "TopK":
        k = int(ins[1].reshape(-1)[0])
        axis = a.get("axis", -1) % x.dim()
        largest = bool(a.get("largest", 1))
        # A stable sort: equal values keep the lower index first.
        order = torch.sort(x.detach(), dim=axis, descending=largest, stable=True).indices.narrow(axis, 0, k)
        return torch.gather(x, axis, order), order
    if op == "GatherND":
        b = a.get("batch_dims", 0)
        idx = ins[1].long()
        m = idx.shape[-1]
        lead = idx.shape[:-1]
        xb = x.reshape((-1,) + tuple(x.shape[b:]))
        ib = idx.reshape(xb.shape[0], -1, m)
        rows = []
        for n in range(xb.shape[0]):
            coords = tuple((ib[n, :, j] % x.shape[b + j]) for j in range(m))
            rows.append(xb[n][coords])
        return torch.stack(rows).reshape(tuple(lead) + tuple(x.shape[b + m:]))
    if op == "NonZero":
        return torch.nonzero(x).t().contiguous()
    if op == "OneHot":
        depth = int(ins[1].reshape(-1)[0])
        off, on = ins[2].reshape(-1)[0], ins[2].reshape(-1)[1]
        idx = x.long() % depth
        hot = F.one_hot(idx, depth)
        axis = a.get("axis", -1) % (x.dim() + 1)
        hot = hot.movedim(-1, axis)
        return torch.where(hot.bool(), on, off)
    eps = a.get("epsilon", 1e-5)
    if op == "InstanceNormalization":
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return _standardize(x, tuple(range(2, x.dim())), eps) * ins[1].reshape(shape) + ins[2].reshape(shape)
    if op == "MeanVarianceNormalization":
        return _standardize(x, tuple(a.get("axes", [0, 2, 3])), 1e-9, eps_std=True)
    if op == "GroupNormalization":
        g = a["num_groups"]
        n, c = x.shape[:2]
        y = _standardize(x.reshape(n, g, -1), (2,), eps)
        if opset < 21:
            return (y * ins[1].reshape(1, g, 1) + ins[2].reshape(1, g, 1)).reshape(x.shape)
        shape = (1, c) + (1,) * (x.dim() - 2)
        return y.reshape(x.shape) * ins[1].reshape(shape) + ins[2].reshape(shape)
    raise NotImplementedError(f"node {node.name}: op {op} not supported")


def load_module(mod, model, dtype=torch.float64):
    """Load a torch module's parameters and buffers from the ONNX model's
    initializers of the same names (the names torch.onnx.export keeps),
    converted to dtype; return the module in eval mode.

    Every state tensor except BatchNorm's num_batches_tracked must be an
    initializer (KeyError otherwise), so a module that does not match the
    file fails rather than keeping its random initialisation. BatchNorm's
    eps is rounded to float32, as the exported epsilon attribute is.
    """
    mod = mod.to(dtype).eval()
    for m in mod.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eps = float(np.float32(m.eps))
    inits = initializers(model)
    state = {}
    for k, v in mod.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = v
            continue
        if k not in inits:
            raise KeyError(f"module tensor {k} is not an initializer of the ONNX model")
        state[k] = torch.from_numpy(np.array(inits[k])).to(dtype)
    mod.load_state_dict(state, strict=True)
    return mod


def run(model, x, overrides=None, dtype=torch.float64, values=None, input_deltas=None):
    """Evaluate the ONNX model on input x (a tensor, or a dict of tensors by
    input name for several inputs) and return its single output.

    overrides maps initializer names to tensors used instead of the stored
    values (for example parameters with requires_grad). Other float
    initializers are converted to dtype. If values is a dict, every computed
    tensor is stored in it by name. input_deltas maps node names to tensors
    added to that node's first input as that node reads it: other readers
    of the same tensor (a residual branch) see it unchanged.
    """
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    env = {}
    for name, arr in initializers(model).items():
        env[name] = _tensor(arr, dtype)
    for name, t in (overrides or {}).items():
        if name not in env:
            raise KeyError(f"override {name!r} is not an initializer")
        env[name] = t
    inputs = [i.name for i in g.input if i.name not in env]
    if isinstance(x, dict):
        # Several inputs by name: floating-point ones converted to dtype,
        # integer ones (indices, token ids) kept.
        if sorted(x) != sorted(inputs):
            raise ValueError(f"inputs {sorted(x)} given, the graph has {inputs}")
        for name, t in x.items():
            env[name] = t.to(dtype) if t.is_floating_point() else t
    else:
        if len(inputs) != 1:
            raise ValueError(f"expected one graph input, got {inputs}")
        env[inputs[0]] = x.to(dtype)
    missing = set(input_deltas or ()) - {node.name for node in g.node}
    if missing:
        raise KeyError(f"input_deltas names no node of the graph: {sorted(missing)}")

    for node in g.node:
        a = attrs(node)
        ins = [env[i] if i else None for i in node.input]
        if input_deltas and node.name in input_deltas:
            ins[0] = ins[0] + input_deltas[node.name]
        op = node.op_type
        if op == "Conv":
            _check_auto_pad(node, a)
            w = ins[1]
            b = ins[2] if len(ins) > 2 else None
            k = a.get("kernel_shape", list(w.shape[2:]))
            pad, explicit = _pads2d(a.get("pads"), k)
            xin = F.pad(ins[0], explicit) if explicit else ins[0]
            conv = {1: F.conv1d, 2: conv2d_im2col, 3: F.conv3d}[len(k)]
            out = conv(xin, w, b, tuple(a.get("strides", [1] * len(k))), pad,
                       tuple(a.get("dilations", [1] * len(k))), a.get("group", 1))
        elif op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            out = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                out = out + a.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            out = ins[0] @ ins[1]
        elif op == "Add":
            out = ins[0] + ins[1]
        elif op == "Sub":
            out = ins[0] - ins[1]
        elif op == "Mul":
            out = ins[0] * ins[1]
        elif op == "Div":
            out = ins[0] / ins[1]
        elif op in ("Max", "Min", "Sum", "Mean"):
            # Variadic, broadcast together; torch's amax/amin split the
            # derivative among tied inputs (no ties on continuous data).
            xs = torch.stack(torch.broadcast_tensors(*ins))
            out = {"Max": lambda t: t.amax(0), "Min": lambda t: t.amin(0), "Sum": lambda t: t.sum(0),
                   "Mean": lambda t: t.mean(0)}[op](xs)
        elif op == "Relu":
            out = torch.relu(ins[0])
        elif op == "Sigmoid":
            out = torch.sigmoid(ins[0])
        elif op == "Tanh":
            out = torch.tanh(ins[0])
        elif op in ("MaxPool", "AveragePool"):
            _check_auto_pad(node, a)
            k = a["kernel_shape"]
            if len(k) != 2:
                raise NotImplementedError(f"node {node.name}: {len(k)}-D {op}")
            pad, explicit = _pads2d(a.get("pads"), k)
            strides = tuple(a.get("strides", [1, 1]))
            ceil = bool(a.get("ceil_mode", 0))
            if op == "MaxPool":
                if a.get("storage_order", 0) != 0 or len(node.output) > 1:
                    raise NotImplementedError(f"node {node.name}: MaxPool indices output")
                xin = F.pad(ins[0], explicit, value=-float("inf")) if explicit else ins[0]
                out = F.max_pool2d(xin, tuple(k), strides, pad,
                                   tuple(a.get("dilations", [1, 1])), ceil_mode=ceil)
            else:
                cip = bool(a.get("count_include_pad", 0))
                if explicit:
                    raise NotImplementedError(f"node {node.name}: asymmetric AveragePool pads")
                out = F.avg_pool2d(ins[0], tuple(k), strides, pad, ceil_mode=ceil,
                                   count_include_pad=cip)
        elif op == "GlobalAveragePool":
            out = ins[0].mean(dim=tuple(range(2, ins[0].dim())), keepdim=True)
        elif op == "GlobalMaxPool":
            out = ins[0].amax(dim=tuple(range(2, ins[0].dim())), keepdim=True)
        elif op == "GlobalLpPool":
            p = a.get("p", 2)
            out = ins[0].abs().pow(p).sum(dim=tuple(range(2, ins[0].dim())), keepdim=True).pow(1.0 / p)
        elif op == "BatchNormalization":
            if a.get("training_mode", 0) or len(node.output) > 1:
                raise NotImplementedError(f"node {node.name}: training-mode BatchNormalization")
            X, scale, bias, mean, var = ins
            shape = (1, -1) + (1,) * (X.dim() - 2)
            out = (X - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + a.get("epsilon", 1e-5))
            out = out * scale.reshape(shape) + bias.reshape(shape)
        elif op == "Flatten":
            axis = a.get("axis", 1)
            if axis < 0:
                axis += ins[0].dim()
            s = ins[0].shape
            out = ins[0].reshape(int(np.prod(s[:axis])), int(np.prod(s[axis:])))
        elif op == "Reshape":
            shape = [int(v) for v in ins[1].tolist()]
            if not a.get("allowzero", 0):
                shape = [ins[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            out = ins[0].reshape(shape)
        elif op == "Transpose":
            perm = a.get("perm", list(reversed(range(ins[0].dim()))))
            out = ins[0].permute(*perm)
        elif op == "Squeeze":
            axes = ins[1].tolist() if len(ins) > 1 and ins[1] is not None else a.get("axes")
            out = ins[0]
            if axes is None:
                out = out.squeeze()
            else:
                for ax in sorted((ax % out.dim() for ax in axes), reverse=True):
                    out = out.squeeze(ax)
        elif op == "Unsqueeze":
            axes = ins[1].tolist() if len(ins) > 1 else a["axes"]
            out = ins[0]
            rank = out.dim() + len(axes)
            for ax in sorted(ax % rank for ax in axes):
                out = out.unsqueeze(ax)
        elif op == "Concat":
            out = torch.cat(ins, dim=a["axis"])
        elif op == "Shape":
            out = torch.tensor(list(ins[0].shape), dtype=torch.int64)
        elif op == "Gather":
            idx = ins[1]
            axis = a.get("axis", 0)
            out = torch.index_select(ins[0], axis, idx.reshape(-1) % ins[0].shape[axis])
            out = out.reshape(ins[0].shape[:axis] + idx.shape + ins[0].shape[axis + 1:])
        elif op == "Constant":
            out = _tensor(onnx.numpy_helper.to_array(a["value"]), dtype)
        elif op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
            out = ins[0]
            if lo is not None:
                out = torch.maximum(out, torch.as_tensor(lo, dtype=out.dtype))
            if hi is not None:
                out = torch.minimum(out, torch.as_tensor(hi, dtype=out.dtype))
        elif op in ("Identity", "Dropout"):
            out = ins[0]
        elif op == "ConstantOfShape":
            v = onnx.numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            shape = [int(d) for d in ins[0].tolist()]
            out = _tensor(np.full(shape, v.reshape(-1)[0], dtype=v.dtype), dtype)
        elif op == "Expand":
            shape = [int(d) for d in ins[1].tolist()]
            out = ins[0] * torch.ones(shape, dtype=ins[0].dtype) if ins[0].is_floating_point() else ins[0].expand(shape)
        elif op in ("ReduceMean", "ReduceSum"):
            axes = a.get("axes")
            if axes is None and len(ins) > 1 and ins[1] is not None:
                axes = ins[1].tolist()
            axes = tuple(axes) if axes is not None else tuple(range(ins[0].dim()))
            f = ins[0].mean if op == "ReduceMean" else ins[0].sum
            out = f(dim=axes, keepdim=bool(a.get("keepdims", 1)))
        elif op in _REDUCE or op == "ReduceProd":
            out = _reduce(node, a, ins, op)
        elif op == "Equal":
            out = torch.eq(ins[0], ins[1])
        elif op == "Where":
            out = torch.where(ins[0], ins[1], ins[2])
        elif op == "Slice":
            x = ins[0]
            starts, ends = ins[1].tolist(), ins[2].tolist()
            axes = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            idx = [slice(None)] * x.dim()
            for st, en, ax, sp in zip(starts, ends, axes, steps):
                if sp != 1:
                    raise NotImplementedError(f"node {node.name}: Slice step {sp}")
                d = x.shape[ax]
                st, en = max(-d, min(st, d)), max(-d, min(en, d))
                idx[ax] = slice(st, en)
            out = x[tuple(idx)]
        elif op == "Cast":
            to = a["to"]
            if to in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
                out = ins[0].to(dtype)
            elif to == onnx.TensorProto.INT64:
                out = ins[0].to(torch.int64)
            else:
                raise NotImplementedError(f"node {node.name}: Cast to {to}")
        elif op == "Range":
            out = torch.arange(ins[0].item(), ins[1].item(), ins[2].item(), dtype=ins[0].dtype)
        elif op in ("ScatterND", "ScatterElements"):
            out = _scatter(node, a, ins, op)
        elif op in ("LSTM", "GRU", "RNN"):
            out = _rnn(node, a, ins, op)
        elif op == "ConvTranspose":
            out = _conv_transpose(node, a, ins)
        elif op in LAYOUT_OPS:
            out = _layout(node, a, ins, op)
        elif op in ("Resize", "Upsample"):
            out = _resize(node, a, ins, op)
        elif op in MISC_OPS:
            out = _misc(node, a, ins, op, opset)
        else:
            raise NotImplementedError(f"node {node.name}: op {op} not supported")
        outs = out if isinstance(out, tuple) else (out,)
        for name, t in zip(node.output, outs):
            if name:
                env[name] = t
                if values is not None:
                    values[name] = t

    outs = [o.name for o in g.output]
    if len(outs) != 1:
        raise ValueError(f"expected one graph output, got {outs}")
    return env[outs[0]]
