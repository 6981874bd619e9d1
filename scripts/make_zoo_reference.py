#!/usr/bin/python3
"""Write float64 PyTorch reference values (logits, loss, gradient, H v and the
exact Hessian trace of every unit) for the recurrent and dense-prediction
models: the committed zoo exports tiny_lstm, tiny_gru and tiny_unet, and two
small exports made here that cover what those do not (rnn_variants: a
2-layer bidirectional LSTM with learned initial states feeding a
bidirectional GRU whose final states are read; updown: grouped strided
ConvTranspose with padding and output_padding, a dilated ConvTranspose,
nearest upsampling, bilinear resizing to sizes with align_corners and by a
scale of 1.5 with half_pixel).

Usage (from the repository root, with Debian's PyTorch):

    /usr/bin/python3 scripts/make_zoo_reference.py [--only tiny_lstm,updown]

As scripts/make_reference.py does for the MNIST models, the ONNX graph itself
is evaluated in float64 by the torch interpreter scripts/onnx_torch.py, so
the derivatives are those of the file's own initializers. theta is the
concatenation, in graph node order, of each unit's weight then bias: Conv,
ConvTranspose, Gemm and MatMul nodes with an initializer weight, and for
LSTM/GRU/RNN nodes two units, node/W (W then B) and node/R (R); every other
initializer is a constant. This is the layout of bitplan's engine (nn.Params).

Losses: mean cross-entropy of class logits against labels.npy (N), or, for
tiny_unet, per-pixel cross-entropy against labels.npy (N x H x W) with
ignore_index -100 (about 10% of the pixels), averaged over the scored pixels
(F.cross_entropy with ignore_index).

Derivatives are exact double backprop; the exact trace of a unit is the sum
of the diagonal entries of its Hessian block, each the i-th entry of the
gradient of the i-th gradient component. For tiny_unet (7,383 parameters,
about a second per entry on a loaded 2-core machine) the traces come from
the unit's Gauss-Newton block instead, which is its Hessian block exactly
there (see ggn_traces), and three units, among them the ConvTranspose, are
redone by double backprop and must agree to GGN_TOL. Written to testdata/ref/<name>/:

  meta.json    onnx path, loss kind, theta layout (params, units), loss, vTHv,
               exact_block_traces (every unit), checks, versions
  inputs.npy   float64 inputs (the zoo's committed input.npy for zoo models)
  labels.npy   int64 labels
  logits.npy   float64 outputs of the interpreter
  grad.npy, v.npy, hv.npy   gradient, Rademacher probe, H v
  model.onnx   (rnn_variants, updown) the export, opset 13

Self-checks (the script fails when one does not hold): the interpreter's
outputs equal the torch module's (zoo: the committed logits.npy, the module
in float64; the exports here: the module run in float64) to LOGIT_TOL of
their scale; H v equals a central difference of the gradient along v; for
tiny_unet the Gauss-Newton traces equal double backprop on the checked
units.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_torch  # noqa: E402

# These models have no depthwise convolutions, for which the interpreter
# builds 2-D convolutions from im2col: torch's own is about twice as fast
# here (the same values; the module check below holds either way).
onnx_torch.conv2d_im2col = F.conv2d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261201
V_SEED = 20240606
LOGIT_TOL = 1e-6   # interpreter vs module, relative to the outputs' scale (zoo exports fold BN in float32)
FD_EPS = [1e-5, 1e-6]
FD_TOL = 1e-6
IGNORE = -100
GGN_TOL = 1e-10   # Gauss-Newton vs double-backprop block traces, relative
# Units whose Gauss-Newton trace is re-done by double backprop (the
# ConvTranspose and the two 1x1 convolutions; about 7 minutes on a loaded
# 2-core machine).
DOUBLE_BACKPROP_CHECK = {"tiny_unet": ["/up2/ConvTranspose", "/red1/Conv", "/out/Conv"]}


class RNNVariants(nn.Module):
    """2-layer bidirectional LSTM with learned initial states, then a
    bidirectional GRU; the GRU's last output step and both of its final
    hidden states (Y_h) feed the classifier."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 3, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(6, 3, bidirectional=True, batch_first=True)
        self.h0 = nn.Parameter(0.5 * torch.randn(4, 1, 3))
        self.c0 = nn.Parameter(0.5 * torch.randn(4, 1, 3))
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        n = x.shape[0]
        y, _ = self.lstm(x, (self.h0.expand(-1, n, -1).contiguous(), self.c0.expand(-1, n, -1).contiguous()))
        z, hz = self.gru(y)
        return self.fc(torch.cat([z[:, -1], hz.transpose(0, 1).reshape(n, 6)], 1))


class UpDown(nn.Module):
    """ConvTranspose and Resize variants around two convolutions, mean-pooled
    to class logits."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.t1 = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.t2 = nn.ConvTranspose2d(4, 2, 2, dilation=2, bias=False)
        self.c2 = nn.Conv2d(2, 3, 1)

    def forward(self, x):
        y = torch.tanh(self.c1(x))
        y = torch.tanh(self.t1(y))
        y = F.interpolate(y, scale_factor=2.0, mode="nearest")
        y = torch.tanh(self.t2(y))
        y = F.interpolate(y, size=(7, 5), mode="bilinear", align_corners=True)
        y = F.interpolate(y, scale_factor=1.5, mode="bilinear", align_corners=False)
        return self.c2(y).mean((2, 3))


# name -> (zoo model or None, module factory, input shape per sample, loss kind)
CASES = {
    "tiny_lstm": ("tiny_lstm", None, None, "class"),
    "tiny_gru": ("tiny_gru", None, None, "class"),
    "tiny_unet": ("tiny_unet", None, None, "position"),
    "rnn_variants": (None, RNNVariants, (5, 4), "class"),
    "updown": (None, UpDown, (2, 5, 4), "class"),
}
N_EXPORT = 3  # samples of the exports made here


def ggn_traces(model, params, units, theta0, x, y):
    """Exact block traces of the per-pixel cross-entropy for a model whose
    outputs are piecewise linear in each unit's parameters (ReLU, MaxPool,
    convolutions, Resize): a diagonal block is then J_bᵀ H_L J_b, and with
    H_L = Σ_q (diag p_q − p_q p_qᵀ)/m over the m scored pixels q and
    diag p − p pᵀ = Σ_c p_c (e_c − p)(e_c − p)ᵀ,

        Tr H_bb = (1/m) Σ_q Σ_c p_qc ‖J_{b,q}ᵀ (e_c − p_q)‖²,

    one vector-Jacobian product per scored pixel and class, shared by all
    units."""
    theta = theta0.clone().requires_grad_(True)
    over = {p["name"]: theta[p["offset"]:p["offset"] + p["size"]].reshape(p["shape"]) for p in params}
    z = onnx_torch.run(model, x, over, torch.float64)
    p = torch.softmax(z.detach(), dim=1)
    scored = (y != IGNORE).nonzero().tolist()
    m = len(scored)
    acc = torch.zeros(len(units), dtype=torch.float64)
    classes = z.shape[1]
    for q in scored:
        s, rest = q[0], tuple(q[1:])
        pq = p[(s, slice(None)) + rest]
        for c in range(classes):
            u = torch.zeros_like(z)
            vec = -pq.clone()
            vec[c] += 1
            u[(s, slice(None)) + rest] = vec
            jt = torch.autograd.grad(z, theta, grad_outputs=u, retain_graph=True)[0]
            for k, un in enumerate(units):
                o, sz = un["offset"], un["size"]
                acc[k] += pq[c] * (jt[o:o + sz] ** 2).sum()
    return {un["name"]: float(acc[k] / m) for k, un in enumerate(units)}


def layout(model):
    """theta layout of bitplan's engine: units in node order."""
    inits = onnx_torch.initializers(model)
    params, units, used = [], [], set()
    off = 0

    def add(name):
        nonlocal off
        if not name or name not in inits or name in used:
            return 0
        used.add(name)
        a = inits[name]
        params.append({"name": name, "shape": list(a.shape), "offset": off, "size": int(a.size)})
        off += int(a.size)
        return int(a.size)

    for node in model.graph.node:
        ins = list(node.input) + [""] * 4
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and ins[1] in inits:
            o = off
            size = add(ins[1]) + add(ins[2] if node.op_type != "MatMul" else "")
            units.append({"name": node.name, "op": node.op_type, "weight": ins[1],
                          "bias": ins[2] if node.op_type != "MatMul" else "", "offset": o, "size": size})
        elif node.op_type in ("LSTM", "GRU", "RNN"):
            o = off
            size = add(ins[1]) + add(ins[3])
            units.append({"name": node.name + "/W", "op": node.op_type, "weight": ins[1], "bias": ins[3], "offset": o, "size": size})
            o = off
            units.append({"name": node.name + "/R", "op": node.op_type, "weight": ins[2], "bias": "", "offset": o, "size": add(ins[2])})
    return params, units


def export(name, factory, shape, out_dir, gen):
    torch.manual_seed(SEED)
    module = factory().eval()
    x = torch.randn((N_EXPORT,) + shape, generator=gen)
    path = os.path.join(out_dir, "model.onnx")
    torch.onnx.export(module, (x,), path, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    with torch.no_grad():
        want = module.double()(x.double())
    return path, x.double(), want


def reference(name, out_dir):
    zoo, factory, shape, kind = CASES[name]
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    if zoo:
        zdir = os.path.join(ROOT, "testdata", "zoo", zoo)
        path = os.path.join(zdir, "op13.onnx")
        x = torch.from_numpy(np.load(os.path.join(zdir, "input.npy"))).double()
        want = torch.from_numpy(np.load(os.path.join(zdir, "logits.npy")))
        rel = os.path.relpath(path, out_dir)
    else:
        path, x, want = export(name, factory, shape, out_dir, gen)
        rel = "model.onnx"
    model = onnx.load(path)
    params, units = layout(model)
    inits = onnx_torch.initializers(model)
    theta0 = torch.cat([torch.from_numpy(np.array(inits[p["name"]], dtype=np.float64)).reshape(-1) for p in params])
    P = theta0.numel()
    n = x.shape[0]
    if kind == "class":
        classes = int(want.shape[1])
        y = torch.randint(0, classes, (n,), generator=gen)
    else:
        classes = int(want.shape[1])
        y = torch.randint(0, classes, (n,) + tuple(want.shape[2:]), generator=gen)
        y[torch.rand(y.shape, generator=gen) < 0.1] = IGNORE

    def loss_fn(theta):
        over = {p["name"]: theta[p["offset"]:p["offset"] + p["size"]].reshape(p["shape"]) for p in params}
        out = onnx_torch.run(model, x, over, torch.float64)
        return F.cross_entropy(out, y, ignore_index=IGNORE), out

    def grad_at(theta):
        theta = theta.detach().requires_grad_(True)
        return torch.autograd.grad(loss_fn(theta)[0], theta)[0]

    theta = theta0.clone().requires_grad_(True)
    loss, logits = loss_fn(theta)
    scale = want.abs().max().item()
    logit_err = (logits.detach() - want).abs().max().item()
    if logit_err > LOGIT_TOL * scale:
        raise SystemExit(f"{name}: interpreter outputs differ from the module's by {logit_err:.3g} (scale {scale:.3g})")
    g = torch.autograd.grad(loss, theta, create_graph=True)[0]
    v = (torch.randint(0, 2, (P,), generator=torch.Generator().manual_seed(V_SEED)) * 2 - 1).double()
    hv = torch.autograd.grad(g, theta, grad_outputs=v, retain_graph=True)[0]
    fd_errs = {}
    for eps in FD_EPS:
        fd = (grad_at(theta0 + eps * v) - grad_at(theta0 - eps * v)) / (2 * eps)
        fd_errs[eps] = ((fd - hv).norm() / hv.norm()).item()
        if fd_errs[eps] <= FD_TOL:
            break
    if min(fd_errs.values()) > FD_TOL:
        raise SystemExit(f"{name}: H v vs finite differences {fd_errs}")
    started = time.time()

    def diag_trace(u):
        """Tr of the unit's Hessian block by double backprop: one backward
        of a gradient component per diagonal entry."""
        o, s = u["offset"], u["size"]
        return sum(torch.autograd.grad(g[i], theta, retain_graph=True)[0][i].item() for i in range(o, o + s))

    checked = {}
    if kind == "class":
        traces = {}
        for u in units:
            traces[u["name"]] = diag_trace(u)
            print(f"  {name}: {u['name']} ({u['size']} params) Tr = {traces[u['name']]:.10g} ({time.time() - started:.0f} s)", flush=True)
    else:
        traces = ggn_traces(model, params, units, theta0, x, y)
        print(f"  {name}: Gauss-Newton block traces of {len(units)} units ({time.time() - started:.0f} s)", flush=True)
        for uname in DOUBLE_BACKPROP_CHECK.get(name, []):
            u = next(u for u in units if u["name"] == uname)
            db = diag_trace(u)
            drel = abs(db - traces[uname]) / abs(db)
            checked[uname] = {"double_backprop": db, "gauss_newton": traces[uname], "rel": drel}
            print(f"  {name}: {uname} ({u['size']} params) double backprop {db:.12g}, Gauss-Newton {traces[uname]:.12g} "
                  f"(relative {drel:.2g}, {time.time() - started:.0f} s)", flush=True)
            if drel > GGN_TOL:
                raise SystemExit(f"{name}: {uname}: the Gauss-Newton block trace is not the Hessian's")

    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "inputs.npy"), x.numpy())
    np.save(os.path.join(out_dir, "labels.npy"), y.numpy())
    np.save(os.path.join(out_dir, "logits.npy"), logits.detach().numpy())
    np.save(os.path.join(out_dir, "grad.npy"), g.detach().numpy())
    np.save(os.path.join(out_dir, "v.npy"), v.numpy())
    np.save(os.path.join(out_dir, "hv.npy"), hv.numpy())
    meta = {
        "model": name,
        "onnx": rel,
        "n": n,
        "loss_kind": kind,
        "ignore_index": IGNORE,
        "loss_fn": "mean cross-entropy of class logits" if kind == "class" else
        "per-pixel cross-entropy, class axis 1, ignore_index -100, mean over scored pixels",
        "theta": "units in node order, weight then bias; LSTM/GRU/RNN: node/W (W, B) then node/R (R)",
        "theta_size": P,
        "params": params,
        "units": units,
        "loss": float(loss),
        "exact_block_traces": traces,
        "vTHv": float(v @ hv),
        "exact_block_traces_method": "double backprop, one gradient component per diagonal entry" if kind == "class" else
        "Gauss-Newton blocks J_b^T H_L J_b from per-pixel vector-Jacobian products (exact: the outputs are "
        "piecewise linear in each unit's parameters, so a diagonal block has no second-derivative term); "
        "checked against double backprop on the units of checks.double_backprop",
        "checks": {"outputs_vs_module_max_abs": logit_err, "outputs_scale": scale, "double_backprop": checked,
                   "hv_vs_central_fd_rel": {f"{e:g}": r for e, r in fd_errs.items()}},
        "generated_by": "scripts/make_zoo_reference.py",
        "torch": torch.__version__,
        "onnx_version": onnx.__version__,
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"RESULT {name}: P={P} loss={float(loss):.10g} vTHv={float(v @ hv):.10g} "
          f"|out-module|={logit_err:.2g} fd={fd_errs}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "ref"))
    args = ap.parse_args()
    names = [s for s in args.only.split(",") if s] or list(CASES)
    for name in names:
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; want one of {', '.join(CASES)}")
        reference(name, os.path.join(args.out, name))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
