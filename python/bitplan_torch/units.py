"""Quantizable units found in a module tree.

A unit is a ``Conv1d/2d/3d``, ``Linear`` or ``Embedding`` module (or any
module the caller names) whose ``weight`` is quantized. One forward pass on
a calibration batch, observed by forward hooks, gives every unit's call
order, MACs and activation sizes per sample, so the table carries the same
``macs`` / ``in_elems`` / ``out_elems`` that bitplan's ONNX importer
computes:

    Conv:          MACs = out_elems · (weight elements per output channel)
    Linear:        MACs = out_elems · in_features
    Embedding:     MACs = 0 (a lookup)

Names follow torch.onnx.export's node names (torch ≥ 1.13 scopes): the
module ``layer1.0.conv1`` called on a 4-D input becomes
``/layer1/layer1.0/conv1/Conv``; a Linear on a matrix becomes ``…/Gemm``,
on a higher-rank input ``…/MatMul``; an Embedding ``…/Gather``. With
``names="module"`` the module path itself is used.

Shared weights (one Parameter used by several units, e.g. a language
model's tied embedding and output projection): the parameter appears once
in θ and its Hessian block belongs to the first unit that uses it; the
other units are rows tied to it (``tie``) with ``params`` 0 and
``avg_trace`` 0, so size and Ω count the tensor once while each use keeps
its MACs. A module called several times is one unit with the MACs of all
calls.
"""

import torch
import torch.nn as nn

#: Module types that are units by default.
UNIT_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding)


class Unit:
    """One quantizable unit: its module, parameters and per-sample costs."""

    def __init__(self, module_name, module):
        self.module_name = module_name
        self.module = module
        self.weight = module.weight
        self.bias = getattr(module, "bias", None)
        if not isinstance(self.bias, torch.Tensor):
            self.bias = None
        self.name = module_name
        self.op = None
        self.weight_name = (module_name + "." if module_name else "") + "weight"
        self.bias_name = None if self.bias is None else (module_name + "." if module_name else "") + "bias"
        self.axis = 0  # output channels: Conv O×I×k…, Linear out×in, Embedding rows
        self.out_channels = int(self.weight.shape[0])
        self.macs = 0
        self.in_elems = 0
        self.out_elems = 0
        self.calls = 0
        self.first_call = None
        self.owner = None     # the unit owning a shared weight, or None
        self.tie = None

    @property
    def params(self):
        """Number of weight elements (the quantized parameters)."""
        return int(self.weight.numel())

    def __repr__(self):
        return f"Unit({self.name!r}, {self.op}, weight {list(self.weight.shape)})"


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)):
        for v in x:
            t = _first_tensor(v)
            if t is not None:
                return t
    if isinstance(x, dict):
        for v in x.values():
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def onnx_name(module_name, op):
    """The node name torch.onnx.export gives the op of module ``module_name``."""
    if not module_name:
        return "/" + op
    parts = module_name.split(".")
    scopes = [".".join(parts[:i + 1]) for i in range(len(parts))]
    return "/" + "/".join(scopes) + "/" + op


def _op_of(module, inp):
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "Conv"
    if isinstance(module, nn.Embedding):
        return "Gather"
    if isinstance(module, nn.Linear):
        return "Gemm" if inp is not None and inp.dim() == 2 else "MatMul"
    return type(module).__name__


def _macs(module, inp, out, per):
    """MACs per sample of one call."""
    if isinstance(module, nn.Embedding):
        return 0
    if isinstance(module, nn.Linear):
        return out.numel() // per * module.in_features
    w = module.weight
    return out.numel() // per * (w.numel() // w.shape[0])


def select(model, units=None):
    """Return [(module_name, module)] of the candidate units of model.

    ``units`` is None (every Conv/Linear/Embedding), a list of module names,
    or a predicate ``f(name, module) -> bool``.
    """
    named = dict(model.named_modules())
    if units is None:
        chosen = [(n, m) for n, m in named.items() if isinstance(m, UNIT_TYPES)]
    elif callable(units):
        chosen = [(n, m) for n, m in named.items() if units(n, m)]
    else:
        chosen = []
        for n in units:
            if n not in named:
                raise ValueError(f"units: the model has no module {n!r} "
                                 f"(modules with a weight: {[k for k, m in named.items() if isinstance(getattr(m, 'weight', None), torch.Tensor)][:20]})")
            chosen.append((n, named[n]))
    for n, m in chosen:
        w = getattr(m, "weight", None)
        if not isinstance(w, torch.Tensor) or not w.is_floating_point() or w.dim() < 1:
            raise ValueError(f"unit {n!r} ({type(m).__name__}) has no floating-point weight tensor")
    return chosen


def find_units(model, call, batch_size, units=None, names="onnx"):
    """Find the units of model by one observed forward pass.

    ``call()`` runs the model on one calibration batch of ``batch_size``
    samples. Returns (units in call order, warnings). Raises ValueError
    when no unit is found or none is called.
    """
    if names not in ("onnx", "module"):
        raise ValueError(f"names={names!r}: want 'onnx' or 'module'")
    chosen = select(model, units)
    if not chosen:
        raise ValueError("the model has no units: no Conv1d/2d/3d, Linear or Embedding module "
                         "(pass units=[module names] to choose others)")
    found = {}
    counter = [0]
    hooks = []

    def hook_for(name, module):
        def hook(mod, inputs, output):
            inp = _first_tensor(inputs)
            out = _first_tensor(output)
            u = found.get(name)
            if u is None:
                u = found[name] = Unit(name, module)
                u.first_call = counter[0]
                u.op = _op_of(module, inp)
            counter[0] += 1
            u.calls += 1
            if out is not None:
                u.macs += _macs(module, inp, out, batch_size)
                u.out_elems += out.numel() // batch_size
            if inp is not None:
                u.in_elems += inp.numel() // batch_size
        return hook

    for n, m in chosen:
        hooks.append(m.register_forward_hook(hook_for(n, m)))
    try:
        with torch.no_grad():
            call()
    finally:
        for h in hooks:
            h.remove()
    warnings = [f"unit {n!r} was not called by the model's forward pass; left out" for n, _ in chosen if n not in found]
    ordered = sorted(found.values(), key=lambda u: u.first_call)
    if not ordered:
        raise ValueError("no unit was called by the model's forward pass")
    owners = {}
    for u in ordered:
        u.name = onnx_name(u.module_name, u.op) if names == "onnx" else (u.module_name or type(u.module).__name__)
        key = id(u.weight)
        if key in owners:
            o = owners[key]
            u.owner = o
            o.tie = u.tie = "shared:" + o.weight_name
        else:
            owners[key] = u
    seen = {}
    for u in ordered:
        if u.name in seen:
            raise ValueError(f"units {seen[u.name]!r} and {u.module_name!r} get the same name {u.name!r}; use names='module'")
        seen[u.name] = u.module_name
    return ordered, warnings


def theta_params(units):
    """The parameters of θ in order: each unit's weight then bias, each tensor once.

    Returns (params, names, offsets) where offsets[i] is params[i]'s start in θ.
    """
    params, pnames, offsets, seen = [], [], [], set()
    off = 0
    for u in units:
        for t, n in ((u.weight, u.weight_name), (u.bias, u.bias_name)):
            if t is None or id(t) in seen:
                continue
            if not t.requires_grad and not isinstance(t, nn.Parameter):
                raise ValueError(f"unit {u.name}: {n} is not a parameter")
            seen.add(id(t))
            params.append(t)
            pnames.append(n)
            offsets.append(off)
            off += t.numel()
    return params, pnames, offsets
