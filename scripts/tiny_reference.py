"""The float64 PyTorch reference of the torch-exported tiny models
(scripts/make_*_tiny.py, make_groupnorm_reference.py): the checks of each
export and the reference they write to testdata/models/<name>_ref.npz.

Imported by those scripts, which are run as /usr/bin/python3
scripts/make_X.py from the repository root (their directory is on
sys.path). The reference is computed by the module in float64 on the
float32 weights: the logits, the mean cross-entropy loss, and per
parameter the gradient and H v for a Rademacher v (seed 3) by double
backprop; the ONNX graphs evaluated by scripts/onnx_torch.py (float64, the
file's own initializers, as autograd leaves for H v) must agree with the
module.
"""

import argparse
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F

import onnx_torch


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup(doc, make):
    """Parse --out (testdata/models by default; the description doc's first
    line) and return the arguments, the module make() drawn with seed 1 (in
    eval mode), four standard normal float32 inputs 4 x 1 x 8 x 8 (seed 2)
    and their labels in 0..2 (seed 2)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "models"))
    args = ap.parse_args()
    torch.manual_seed(1)
    m = make().eval()
    x32 = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.randint(0, 3, (4,), generator=torch.Generator().manual_seed(2))
    return args, m, x32, labels


def export(m, inputs, path, opset, params, **kw):
    """torch.onnx.export of m on inputs (a dict by input name; the batch axis
    dynamic, the output "logits") at opset to path (replaced at once; kw are
    further export options), checked by check_export; returns the model."""
    dynamic = {n: {0: "batch"} for n in inputs}
    dynamic["logits"] = {0: "batch"}
    torch.onnx.export(m, tuple(inputs.values()), path + ".tmp", input_names=list(inputs), output_names=["logits"],
                      dynamic_axes=dynamic, opset_version=opset, **kw)
    os.replace(path + ".tmp", path)
    mp = onnx.load(path)
    check_export(mp, path, params)
    return mp


def hvp(loss_of, params, v):
    """Gradient and H v of loss_of(params) by double backprop."""
    loss = loss_of(params)
    g = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
    hv = torch.autograd.grad(dot, params)
    return loss, [x.detach() for x in g], [x.detach() for x in hv]


def rademacher(shapes, seed=3):
    """A Rademacher (±1, float64) tensor of each shape, from one generator."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2, s, generator=gen).double() * 2 - 1 for s in shapes]


def check_export(mp, path, params):
    """onnx.checker (full check) on the exported model mp written to path,
    and every name of params an initializer of its own name."""
    onnx.checker.check_model(mp, full_check=True)
    inits = {t.name for t in mp.graph.initializer}
    missing = [k for k in params if k not in inits]
    if missing:
        raise SystemExit(f"{path}: parameters {missing} are not initializers of their own name")


def float64_module(m, make):
    """A float64 copy make().double().eval() of module m with m's float32
    weights (integer buffers kept)."""
    m64 = make().double().eval()
    m64.load_state_dict({k: (v.double() if v.is_floating_point() else v) for k, v in m.state_dict().items()})
    return m64


def save_npz(out, ref):
    """Write the arrays of ref (in C order: a 1x1 kernel's gradient is not)
    to out, replacing it at once."""
    ref = {k: np.ascontiguousarray(a) for k, a in ref.items()}
    np.savez(out + ".tmp.npz", **ref)
    os.replace(out + ".tmp.npz", out)


def reference(m64, inputs, labels, paths, out, v_of=None, note=""):
    """Compute the reference of the float64 module m64 on inputs (a dict by
    ONNX input name, in the order of the module's arguments; floating ones
    float64), check the ONNX graphs of paths (by opset) against it and
    write out: the inputs, "labels", "logits", "loss", and per parameter
    "grad.<name>", "v.<name>" and "hv.<name>". v_of, when given, maps the
    parameter names and the Rademacher v to the v used; note is printed
    before |H v|."""
    args = list(inputs.values())
    feed = inputs if len(inputs) > 1 else args[0]
    names = [k for k, _ in m64.named_parameters()]
    params = [p for _, p in m64.named_parameters()]
    v = rademacher([p.shape for p in params])
    if v_of is not None:
        v = v_of(names, v)

    def module_loss(ps):
        for p, q in zip(params, ps):
            assert p is q
        return F.cross_entropy(m64(*args), labels)

    with torch.no_grad():
        logits = m64(*args)
    loss, grad, hv = hvp(module_loss, params, v)

    # The ONNX graphs, interpreted on their own initializers.
    for opset, path in paths.items():
        mp = onnx.load(path)
        got = onnx_torch.run(mp, feed)
        d = (got - logits).abs().max().item()
        if d > 1e-12 * max(1.0, logits.abs().max().item()):
            raise SystemExit(f"{path}: interpreted logits differ from the module's by {d:.3g}")
        inits = onnx_torch.initializers(mp)
        leaves = [torch.tensor(inits[n], dtype=torch.float64, requires_grad=True) for n in names]

        def graph_loss(ps):
            return F.cross_entropy(onnx_torch.run(mp, feed, overrides=dict(zip(names, ps))), labels)

        gl, gg, ghv = hvp(graph_loss, leaves, v)
        dh = max((a - b).abs().max().item() for a, b in zip(ghv, hv))
        scale = max(b.abs().max().item() for b in hv)
        if abs(gl.item() - loss.item()) > 1e-12 or dh > 1e-10 * scale:
            raise SystemExit(f"{path}: interpreted loss {gl.item()} vs {loss.item()}, H v differs by {dh:.3g}")
        print(f"op{opset}: interpreter agrees (logits {d:.2g}, H v {dh:.2g} of scale {scale:.3g})")

    ref = {k: t.numpy() for k, t in inputs.items()}
    ref.update({"labels": labels.numpy(), "logits": logits.numpy(), "loss": np.array(loss.item())})
    for n, g, vi, h in zip(names, grad, v, hv):
        ref["grad." + n], ref["v." + n], ref["hv." + n] = g.numpy(), vi.numpy(), h.numpy()
    save_npz(out, ref)
    print(f"wrote {out}: loss {loss.item():.6f}, {note}|H v| {torch.cat([h.flatten() for h in hv]).norm().item():.6g}")
